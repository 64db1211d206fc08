"""Safety at the chair: the day-of-treatment questions (gate 6), the history's
cautions acknowledged for the areas treated (gate 7), and a session never
completed before it happens (gate 8). The facts come from domain.md
("Contraindication screening", "Cautions"); every clock here is frozen."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.db import DatabaseError, transaction
from django.test import Client, override_settings
from django.urls import reverse

from clinic.models import User
from tests.conftest import sign_in
from tests.factories import make_history
from tests.treatments.test_session_helpers import (
    World,
    day_of_answers,
    make_booking,
    make_world,
    session_post,
)
from treatments.gates import completion_opens_at, gate_timing
from treatments.models import (
    DAY_OF_FIELDS,
    BookingStatus,
    CautionAcknowledgement,
    CocktailLine,
    DayOfCheck,
    PatientDocument,
    SessionRecord,
)

pytestmark = pytest.mark.django_db

LONDON = ZoneInfo("Europe/London")
# Tue 24 Nov 2026, 10:00 in London (GMT).
NOW = datetime(2026, 11, 24, 10, 0, tzinfo=LONDON)


@pytest.fixture
def clock() -> Iterator[None]:
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def client(practitioner: User, clock: None) -> Client:
    return sign_in(Client(), practitioner)


def url(world: World) -> str:
    return reverse("treatments:session_record", kwargs={"booking": world.booking.uuid})


def assert_nothing_saved(world: World) -> None:
    assert not SessionRecord.objects.filter(booking=world.booking).exists()
    assert CocktailLine.objects.count() == 0
    assert DayOfCheck.objects.count() == 0
    assert CautionAcknowledgement.objects.count() == 0
    world.booking.refresh_from_db()
    assert world.booking.status == BookingStatus.ARRIVED


def with_area(data: dict[str, str], area: str, lines: int = 2) -> dict[str, str]:
    return {**data, **{f"lines-{i}-area": area for i in range(lines)}}


# --- Gate 6: asked on the day ----------------------------------------------------------

DAY_OF_SENTENCES = {
    "unwell": "The patient is unwell today (a cold counts): postpone the session",
    "pregnant": "The patient is or may be pregnant: no mesotherapy during pregnancy",
    "breastfeeding": "The patient is breastfeeding: no mesotherapy while breastfeeding.",
    "skin_infection": "A skin infection in or near an area to treat today",
    "active_acne": "Active acne in or near an area to treat today",
    "cold_sore": "A cold sore in or near an area to treat today",
    "new_medicine_or_allergy": "take a new medical history before treating.",
}


def test_every_day_of_question_has_its_sentence() -> None:
    assert set(DAY_OF_SENTENCES) == set(DAY_OF_FIELDS)


@pytest.mark.parametrize("question", sorted(DAY_OF_SENTENCES))
def test_a_yes_on_the_day_refuses_completion_with_its_sentence_and_keeps_the_form(
    client: Client, practitioner: User, question: str
) -> None:
    world = make_world(practitioner)
    data = session_post(world.batches, day_of=day_of_answers(**{question: "yes"}))
    response = client.post(url(world), data)
    page = response.content.decode()
    assert response.status_code == 409
    assert DAY_OF_SENTENCES[question] in page
    assert "Tolerated well, typed by hand" in page
    # The answer given stays chosen.
    assert f'name="today-{question}" value="yes" class="day-of-answer" id=' in page
    assert "checked" in page.split(f'name="today-{question}" value="yes"')[1].split(">")[0]
    assert_nothing_saved(world)


def test_a_post_without_the_day_of_answers_is_refused_and_marks_them(
    client: Client, practitioner: User
) -> None:
    world = make_world(practitioner)
    data = session_post(world.batches, day_of={})
    response = client.post(url(world), data)
    page = response.content.decode()
    assert response.status_code == 409
    assert "Ask the patient the day-of-treatment questions and record every answer" in page
    assert page.count("not answered") == len(DAY_OF_FIELDS)
    assert "Tolerated well, typed by hand" in page
    assert_nothing_saved(world)


def test_one_unanswered_question_is_enough_to_refuse(client: Client, practitioner: User) -> None:
    world = make_world(practitioner)
    answers = day_of_answers()
    del answers["today-pregnant"]
    response = client.post(url(world), session_post(world.batches, day_of=answers))
    assert response.status_code == 409
    assert response.content.decode().count("not answered") == 1
    assert_nothing_saved(world)


def test_the_answers_are_kept_with_the_record_and_never_changed(
    client: Client, practitioner: User
) -> None:
    world = make_world(practitioner)
    response = client.post(url(world), session_post(world.batches))
    assert response.status_code == 302
    check = DayOfCheck.objects.get(session__booking=world.booking)
    assert check.asked_by == practitioner
    assert check.asked_at == NOW
    assert [answer for _question, answer in check.answers()] == [False] * len(DAY_OF_FIELDS)
    page = client.get(url(world)).content.decode()
    assert "Feels unwell today, even a cold: <strong>no</strong>" in page
    with pytest.raises(DatabaseError), transaction.atomic():
        DayOfCheck.objects.filter(pk=check.pk).update(unwell=True)
    with pytest.raises(DatabaseError), transaction.atomic():
        DayOfCheck.objects.filter(pk=check.pk).delete()


def test_a_cold_in_an_old_history_does_not_block_a_later_session(
    client: Client, practitioner: User
) -> None:
    world = make_world(practitioner, history=False)
    with time_machine.travel(NOW - timedelta(days=90), tick=False):
        make_history(world.patient, practitioner, unwell_today=True, active_acne=True)
    response = client.post(url(world), session_post(world.batches))
    assert response.status_code == 302, response.content.decode()[:3000]


def test_a_cold_declared_in_todays_history_still_blocks(client: Client, practitioner: User) -> None:
    world = make_world(practitioner, history=False)
    make_history(world.patient, practitioner, unwell_today=True)
    response = client.post(url(world), session_post(world.batches))
    assert response.status_code == 409
    assert "The patient is unwell today" in response.content.decode()
    assert_nothing_saved(world)


def test_not_pregnant_eleven_months_ago_does_not_answer_for_today(
    client: Client, practitioner: User
) -> None:
    world = make_world(practitioner, history=False)
    with time_machine.travel(NOW - timedelta(days=335), tick=False):
        make_history(world.patient, practitioner, pregnant=False)
    data = session_post(world.batches, day_of=day_of_answers(pregnant="yes"))
    response = client.post(url(world), data)
    assert response.status_code == 409
    assert DAY_OF_SENTENCES["pregnant"] in response.content.decode()
    assert_nothing_saved(world)


def test_a_new_medicine_sends_the_practitioner_to_take_a_new_history_naming_the_old_one(
    client: Client, practitioner: User
) -> None:
    world = make_world(practitioner, history=False)
    with time_machine.travel(datetime(2026, 3, 2, 11, 0, tzinfo=LONDON), tick=False):
        make_history(world.patient, practitioner)
    data = session_post(world.batches, day_of=day_of_answers(new_medicine_or_allergy="yes"))
    response = client.post(url(world), data)
    assert response.status_code == 409
    assert (
        "The patient has a new medicine or a new allergy since the medical history of "
        "Mon 2 Mar: take a new medical history before treating."
    ) in response.content.decode()


# --- Gate 7: cautions reach the chair ---------------------------------------------------


def test_the_cold_sore_caution_is_shown_beside_the_face_and_must_be_acknowledged(
    client: Client, practitioner: User
) -> None:
    world = make_world(practitioner, history=False)
    make_history(world.patient, practitioner, cold_sores_history=True)
    from treatments.models import ProtocolCocktailLine

    assert ProtocolCocktailLine.objects.filter(protocol=world.protocol).exists()
    world.protocol.default_areas = ["face"]
    world.protocol.save(update_fields=["default_areas"])

    form = client.get(url(world)).content.decode()
    assert 'data-testid="cautions-panel"' in form
    assert 'data-testid="line-caution"' in form
    # One sentence naming today's area and the reason, not the screening's "the face" after a label.
    assert (
        "The patient has had cold sores, and injections in the <strong data-caution-shown>Face"
        "</strong> can bring on an outbreak."
    ) in form
    assert "History of cold sores:" not in form

    refused = client.post(url(world), session_post(world.batches))
    page = refused.content.decode()
    assert refused.status_code == 409
    assert (
        "Not acknowledged yet: The patient has had cold sores, and injections in the Face "
        "can bring on an outbreak. Tick it once the patient is warned."
    ) in page
    assert "Tolerated well, typed by hand" in page
    assert_nothing_saved(world)

    done = client.post(url(world), session_post(world.batches, caution="cold_sores:face"))
    assert done.status_code == 302
    [ack] = CautionAcknowledgement.objects.filter(session__booking=world.booking)
    assert ack.code == "cold_sores"
    assert ack.wording == (
        "History of cold sores: injections in the face can bring on an outbreak."
    )
    assert ack.areas == ["face"]
    assert ack.acknowledged_by == practitioner
    assert ack.acknowledged_at == NOW
    record = client.get(url(world)).content.decode()
    assert "injections in the face can bring on an outbreak." in record
    assert 'data-testid="record-cautions"' in record
    with pytest.raises(DatabaseError), transaction.atomic():
        CautionAcknowledgement.objects.filter(pk=ack.pk).update(wording="Nothing")


def test_the_cold_sore_caution_does_not_apply_to_the_scalp(
    client: Client, practitioner: User
) -> None:
    world = make_world(practitioner, history=False)
    make_history(world.patient, practitioner, cold_sores_history=True)
    world.protocol.default_areas = ["scalp"]
    world.protocol.save(update_fields=["default_areas"])
    form = client.get(url(world)).content.decode()
    assert 'data-testid="cautions-panel"' not in form
    assert "cold sores" not in form
    response = client.post(url(world), with_area(session_post(world.batches), "scalp"))
    assert response.status_code == 302
    assert not CautionAcknowledgement.objects.exists()


def test_a_caution_for_every_area_needs_acknowledging_on_the_scalp_too(
    client: Client, practitioner: User
) -> None:
    world = make_world(practitioner, history=False)
    make_history(world.patient, practitioner, bruising_supplements=True)
    data = with_area(session_post(world.batches), "scalp")
    refused = client.post(url(world), data)
    assert refused.status_code == 409
    assert (
        "Not acknowledged yet: The patient takes supplements or over-the-counter medicines"
    ) in refused.content.decode()
    done = client.post(url(world), {**data, "caution": "bruising_supplements"})
    assert done.status_code == 302
    assert CautionAcknowledgement.objects.get().areas == []


def test_acknowledging_a_caution_that_does_not_apply_is_refused(
    client: Client, practitioner: User
) -> None:
    # Another patient's caution, or one for an area not treated today, named in a forged post.
    world = make_world(practitioner)
    data = session_post(world.batches, caution="cold_sores")
    response = client.post(url(world), data)
    page = response.content.decode()
    assert response.status_code == 400
    assert "A caution was acknowledged that does not apply to this session" in page
    assert "Tolerated well, typed by hand" in page
    assert_nothing_saved(world)


def test_a_caution_from_an_older_history_still_needs_acknowledging(
    client: Client, practitioner: User
) -> None:
    # Cautions are not bound to the day the history was taken: a month-old
    # "important event soon" still warns about bruising.
    world = make_world(practitioner, history=False)
    with time_machine.travel(NOW - timedelta(days=30), tick=False):
        make_history(world.patient, practitioner, important_event_soon=True)
    refused = client.post(url(world), session_post(world.batches))
    assert refused.status_code == 409
    assert "An important event is coming up soon" in refused.content.decode()
    done = client.post(url(world), session_post(world.batches, caution="important_event_soon"))
    assert done.status_code == 302


# --- Gate 8: never before it happens -----------------------------------------------------


@override_settings(SESSION_COMPLETE_EARLY_MINUTES=15)
def test_completion_opens_fifteen_minutes_before_the_booked_start() -> None:
    start = datetime(2026, 11, 24, 10, 0, tzinfo=LONDON)
    assert gate_timing(starts_at=start, at=start - timedelta(minutes=15)) == []
    [failure] = gate_timing(starts_at=start, at=start - timedelta(minutes=15, seconds=1))
    assert failure.gate == 8
    assert failure.earliest == start - timedelta(minutes=15)
    assert "can be completed from Tue 24 Nov, 09:45" in failure.sentence


@override_settings(SESSION_COMPLETE_EARLY_MINUTES=15)
def test_a_session_just_after_midnight_is_never_completed_the_day_before() -> None:
    start = datetime(2026, 11, 25, 0, 5, tzinfo=LONDON)
    assert completion_opens_at(start) == datetime(2026, 11, 25, 0, 0, tzinfo=LONDON)
    assert gate_timing(starts_at=start, at=datetime(2026, 11, 24, 23, 55, tzinfo=LONDON))
    assert gate_timing(starts_at=start, at=datetime(2026, 11, 25, 0, 0, tzinfo=LONDON)) == []


def test_a_booking_seven_days_ahead_cannot_be_completed_now(
    client: Client, practitioner: User
) -> None:
    world = make_world(practitioner)
    future = make_booking(
        patient=world.patient,
        practitioner=practitioner,
        protocol=world.protocol,
        starts_at=NOW + timedelta(days=7),
        status=BookingStatus.BOOKED,
    )
    address = reverse("treatments:session_record", kwargs={"booking": future.uuid})
    form = client.get(address).content.decode()
    assert "This session is booked for Tue 1 Dec, 10:00: it can be completed from" in form
    response = client.post(address, session_post(world.batches))
    assert response.status_code == 409
    assert "it can be completed from Tue 1 Dec, 09:45, not before it has happened." in (
        response.content.decode()
    )
    future.refresh_from_db()
    assert future.status == BookingStatus.BOOKED
    assert not SessionRecord.objects.exists()
    assert not PatientDocument.objects.exists()  # no aftercare sheet thanking them early


# --- Judged as the session happened -----------------------------------------------------


def test_a_session_recorded_late_is_not_cleared_by_a_consent_signed_afterwards(
    client: Client, practitioner: User
) -> None:
    # Treated a month ago without consent; consent signed today must not make
    # the old session look as if it passed the gates.
    with time_machine.travel(NOW - timedelta(days=40), tick=False):
        world = make_world(practitioner, consent=False)
    past = make_booking(
        patient=world.patient,
        practitioner=practitioner,
        protocol=world.protocol,
        starts_at=NOW - timedelta(days=30),
        status=BookingStatus.BOOKED,
    )
    from tests.consent.helpers import signed_consent_for

    signed_consent_for(patient=world.patient, version=world.version)
    address = reverse("treatments:session_record", kwargs={"booking": past.uuid})
    response = client.post(address, session_post(world.batches))
    assert response.status_code == 409
    assert "The patient has not signed the consent form" in response.content.decode()
    assert not SessionRecord.objects.exists()


def test_a_reading_that_expires_while_the_patient_is_in_the_chair_does_not_undo_the_session(
    practitioner: User,
) -> None:
    # The negative reading was taken at 09:55 on 24 May, so it allows treatment
    # until 09:55 on 24 Nov; the session began at 09:50 and is recorded at 10:00.
    read_at = datetime(2026, 5, 24, 9, 55, tzinfo=LONDON)
    with time_machine.travel(read_at, tick=False):
        world = make_world(practitioner, allergy=False)
    from tests.treatments.test_session_helpers import give_and_read

    give_and_read(
        world.patient, practitioner, world.ingredients, given_at=read_at - timedelta(hours=25)
    )
    with time_machine.travel(NOW, tick=False):
        client = sign_in(Client(), practitioner)
        response = client.post(url(world), session_post(world.batches))
    assert response.status_code == 302, response.content.decode()[:3000]


def test_a_booking_cancelled_while_the_form_is_filled_in_keeps_what_was_typed(
    client: Client, practitioner: User, receptionist: User
) -> None:
    from treatments.services.booking import booking_cancel

    world = make_world(practitioner)
    assert client.get(url(world)).status_code == 200
    booking_cancel(booking=world.booking, reason="Patient left", cancelled_by=receptionist)
    response = client.post(url(world), session_post(world.batches))
    page = response.content.decode()
    assert response.status_code == 409
    assert "This booking was cancelled" in page
    assert "Tolerated well, typed by hand" in page
    assert 'value="2.50"' in page
    assert not SessionRecord.objects.exists()


def test_a_forged_count_of_a_million_lines_is_refused_without_building_them(
    client: Client, practitioner: User
) -> None:
    world = make_world(practitioner)
    data = {**session_post(world.batches), "lines-TOTAL_FORMS": "1000000"}
    response = client.post(url(world), data)
    assert response.status_code == 400
    assert len(response.content) < 1_000_000  # 20 lines at most, not a million
    assert not SessionRecord.objects.exists()


def test_an_adverse_event_dated_before_the_session_or_resolved_in_the_future_is_refused(
    client: Client, practitioner: User
) -> None:
    world = make_world(practitioner)
    event = {
        "effect": "bruising",
        "severity": "mild",
        "onset": "0001-01-01T00:00",
        "resolved_on": "",
    }
    response = client.post(url(world), session_post(world.batches, events=[event]))
    assert response.status_code == 400
    assert "It cannot start before the session did." in response.content.decode()
    event = {**event, "onset": "2026-11-24T09:55", "resolved_on": "9999-12-31"}
    response = client.post(url(world), session_post(world.batches, events=[event]))
    assert response.status_code == 400
    assert "It cannot have resolved later than today" in response.content.decode()
    assert not SessionRecord.objects.exists()


def test_two_answers_to_one_question_are_not_an_answer(client: Client, practitioner: User) -> None:
    world = make_world(practitioner)
    data = session_post(world.batches)
    body = "&".join(f"{k}={v}" for k, v in data.items() if k != "today-unwell")
    body += "&today-unwell=yes&today-unwell=no"
    response = client.post(url(world), body, content_type="application/x-www-form-urlencoded")
    assert response.status_code == 400
    assert "Choose one answer: yes or no." in response.content.decode()
    assert_nothing_saved(world)


# --- Beside the button: what this form cannot clear ------------------------------------


def test_beside_the_button_what_blocks_completion_from_outside_the_form(
    client: Client, practitioner: User
) -> None:
    # No history and no consent: nothing on this form can clear them; said by the button.
    world = make_world(practitioner, history=False, consent=False)
    form = client.get(url(world)).content.decode()
    button = form.index('data-testid="complete-session"')
    blocked = form.index('data-testid="complete-blocked"')
    assert button < blocked
    note = " ".join(form[blocked : form.index("</div>", blocked)].split())
    assert "Completing will be refused until this is settled outside this form:" in note
    assert "Take the patient&#x27;s medical history, on the patient&#x27;s page." in note
    assert "Have the patient sign the consent form, on the patient&#x27;s page." in note
    # The button stays usable: a consent signed at reception meanwhile clears it on the press.
    tag = form[form.rindex("<button", 0, button) : form.index(">", button)]
    assert "disabled" not in tag
    assert 'aria-describedby="complete-blocked"' in tag


def test_the_booked_time_is_said_by_the_button(client: Client, practitioner: User) -> None:
    world = make_world(practitioner)
    future = make_booking(
        patient=world.patient,
        practitioner=practitioner,
        protocol=world.protocol,
        starts_at=NOW + timedelta(days=7),
        status=BookingStatus.BOOKED,
    )
    address = reverse("treatments:session_record", kwargs={"booking": future.uuid})
    form = client.get(address).content.decode()
    assert "Wait: the session can be completed from Tue 1 Dec, 09:45." in form


def test_a_caution_to_tick_is_cleared_on_the_form_so_nothing_is_said_by_the_button(
    client: Client, practitioner: User
) -> None:
    warned = make_world(practitioner, history=False)
    make_history(warned.patient, practitioner, bruising_supplements=True)
    assert 'data-testid="complete-blocked"' not in client.get(url(warned)).content.decode()
    # Nor when a post is refused for it alone.
    refused = client.post(url(warned), session_post(warned.batches))
    assert refused.status_code == 409
    assert 'data-testid="complete-blocked"' not in refused.content.decode()
