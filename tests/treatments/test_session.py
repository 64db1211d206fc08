"""Recording and completing a session behind the safety gates; the record
afterwards: read-only, amendments, later adverse events."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
import time_machine
from dateutil.relativedelta import relativedelta
from django.db import DatabaseError, transaction
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from clinic import dates
from clinic.models import User
from consent.models import ConsentWithdrawal
from tests.conftest import frozen_at, sign_in
from tests.factories import BatchFactory, ConsentFormVersionFactory, make_history
from tests.treatments.test_session_helpers import (
    World,
    give_and_read,
    make_booking,
    make_world,
    session_post,
)
from treatments.models import (
    AdverseEvent,
    BatchStatus,
    Booking,
    BookingEvent,
    BookingStatus,
    CocktailLine,
    CourseStatus,
    PatientAllergy,
    SessionAmendment,
    SessionRecord,
    TreatmentCourse,
)

pytestmark = pytest.mark.django_db
# A Tuesday morning in London, whatever the wall clock says.
NOW = datetime(2026, 11, 24, 10, 0, tzinfo=ZoneInfo("Europe/London"))
frozen = frozen_at(NOW)


def url(booking: Booking) -> str:
    return reverse("treatments:session_record", kwargs={"booking": booking.uuid})


@pytest.fixture
def client(practitioner: User) -> Client:
    return sign_in(Client(), practitioner)


def assert_refused_and_nothing_saved(
    response: object, world: World, sentence: str, *, status: int = 409
) -> str:
    page = response.content.decode()  # type: ignore[attr-defined]
    assert response.status_code == status, page[:2000]  # type: ignore[attr-defined]
    assert sentence in page
    assert not SessionRecord.objects.filter(booking=world.booking).exists()
    assert CocktailLine.objects.count() == 0
    world.booking.refresh_from_db()
    assert world.booking.status == BookingStatus.ARRIVED
    assert not BookingEvent.objects.filter(booking=world.booking).exists()
    # What was typed is shown again.
    assert "Tolerated well, typed by hand" in page
    assert 'value="2.50"' in page
    assert 'value="1.5"' in page
    return page


# --- The gates, one by one ------------------------------------------------------------


def test_no_medical_history_blocks_completion(client: Client, practitioner: User) -> None:
    world = make_world(practitioner, history=False)
    response = client.post(url(world.booking), session_post(world.batches))
    assert_refused_and_nothing_saved(
        response, world, "No medical history on record: take one before treating."
    )


def test_out_of_date_medical_history_blocks_completion(client: Client, practitioner: User) -> None:
    world = make_world(practitioner, history=False)
    with time_machine.travel(timezone.now() - timedelta(days=400), tick=False):
        make_history(world.patient, practitioner)
    response = client.post(url(world.booking), session_post(world.batches))
    assert_refused_and_nothing_saved(response, world, "is older than 365 days")


def test_absolute_contraindication_blocks_completion(client: Client, practitioner: User) -> None:
    world = make_world(practitioner, history=False)
    make_history(world.patient, practitioner, pregnant=True)
    response = client.post(url(world.booking), session_post(world.batches))
    assert_refused_and_nothing_saved(
        response, world, "The patient is pregnant: no mesotherapy during pregnancy."
    )


def test_missing_consent_blocks_completion(client: Client, practitioner: User) -> None:
    world = make_world(practitioner, consent=False)
    response = client.post(url(world.booking), session_post(world.batches))
    assert_refused_and_nothing_saved(response, world, "The patient has not signed the consent form")


def test_consent_on_an_old_version_blocks_completion(client: Client, practitioner: User) -> None:
    world = make_world(practitioner)
    ConsentFormVersionFactory(form=world.version.form, published_at=timezone.now())
    response = client.post(url(world.booking), session_post(world.batches))
    assert_refused_and_nothing_saved(
        response, world, "Re-consent needed: the patient signed version 1"
    )


def test_withdrawn_consent_blocks_completion(client: Client, practitioner: User) -> None:
    world = make_world(practitioner)
    ConsentWithdrawal.objects.create(
        signed_consent=world.patient.signed_consents.get(),
        reason="Changed their mind",
        withdrawn_at=timezone.now(),
        recorded_by=practitioner,
    )
    response = client.post(url(world.booking), session_post(world.batches))
    assert_refused_and_nothing_saved(response, world, "The patient withdrew their consent")


def test_missing_allergy_test_blocks_completion(client: Client, practitioner: User) -> None:
    world = make_world(practitioner, allergy=False)
    response = client.post(url(world.booking), session_post(world.batches))
    page = assert_refused_and_nothing_saved(
        response, world, f"No allergy test for {world.ingredients[0].name}."
    )
    assert f"No allergy test for {world.ingredients[1].name}." in page


def test_allergy_test_not_yet_read_blocks_completion_with_the_time_it_can_be_read(
    client: Client, practitioner: User
) -> None:
    world = make_world(practitioner, allergy=False)
    given = timezone.now() - timedelta(hours=3)
    give_and_read(world.patient, practitioner, world.ingredients, given_at=given, result=None)
    response = client.post(url(world.booking), session_post(world.batches))
    opens = timezone.localtime(given + timedelta(hours=24)).strftime("%H:%M")
    page = assert_refused_and_nothing_saved(response, world, "has not been read yet")
    assert opens in page


def test_positive_allergy_reading_refuses_the_line_with_that_ingredient(
    client: Client, practitioner: User
) -> None:
    world = make_world(practitioner, allergy=False)
    give_and_read(
        world.patient,
        practitioner,
        world.ingredients[:1],
        given_at=timezone.now() - timedelta(days=2),
        result="positive",
    )
    give_and_read(
        world.patient,
        practitioner,
        world.ingredients[1:],
        given_at=timezone.now() - timedelta(days=2),
    )
    assert PatientAllergy.objects.filter(patient=world.patient).count() == 1
    response = client.post(url(world.booking), session_post(world.batches))
    page = assert_refused_and_nothing_saved(
        response, world, f"Allergic to {world.ingredients[0].name}: positive test read on"
    )
    assert world.ingredients[1].name not in page.split("gate-failures")[1].split("</ul>")[0]


def test_negative_allergy_reading_older_than_the_limit_blocks_completion(
    client: Client, practitioner: User
) -> None:
    world = make_world(practitioner, allergy=False)
    give_and_read(
        world.patient,
        practitioner,
        world.ingredients,
        given_at=timezone.now() - relativedelta(months=7),
    )
    response = client.post(url(world.booking), session_post(world.batches))
    assert_refused_and_nothing_saved(response, world, "is older than 6 months: test again.")


def test_expired_batch_is_refused_with_its_sentence(client: Client, practitioner: User) -> None:
    world = make_world(practitioner)
    today = timezone.localdate()
    expired = BatchFactory(
        product=world.batches[0].product,
        received_on=today - timedelta(days=400),
        expiry_date=today - timedelta(days=1),
    )
    response = client.post(url(world.booking), session_post([expired, world.batches[1]]))
    page = assert_refused_and_nothing_saved(response, world, f"lot {expired.lot_number} expired on")
    # The expired batch stays chosen in the form, marked unusable.
    assert f'value="{expired.uuid}" selected' in page
    assert "(cannot be used)" in page


def test_recalled_batch_is_refused_with_its_sentence(
    client: Client, practitioner: User, manager: User
) -> None:
    world = make_world(practitioner)
    recalled = world.batches[0]
    recalled.status = BatchStatus.RECALLED
    recalled.recalled_at = timezone.now()
    recalled.recalled_by = manager
    recalled.recall_reason = "Supplier notice"
    recalled.save()
    response = client.post(url(world.booking), session_post(world.batches))
    assert_refused_and_nothing_saved(
        response, world, f"lot {recalled.lot_number} was recalled: do not use it."
    )


# --- Completing ---------------------------------------------------------------------


def test_session_with_everything_in_place_is_completed_and_recorded(
    client: Client, practitioner: User
) -> None:
    world = make_world(practitioner, status=BookingStatus.BOOKED)
    onset = timezone.localtime() - timedelta(minutes=5)
    events = [
        {
            "effect": "bruising",
            "severity": "mild",
            "onset": onset.strftime("%Y-%m-%dT%H:%M"),
            "resolved_on": "",
            "follow_up_needed": "on",
            "notes": "Small bruise on the left cheek",
        }
    ]
    response = client.post(url(world.booking), session_post(world.batches, events=events))
    assert response.status_code == 302, response.content.decode()[:3000]
    assert response["Location"] == url(world.booking)

    world.booking.refresh_from_db()
    assert world.booking.status == BookingStatus.COMPLETED
    kinds = list(BookingEvent.objects.filter(booking=world.booking).values_list("kind", flat=True))
    assert kinds == ["arrived", "completed"]
    record = SessionRecord.objects.get(booking=world.booking)
    assert record.numbing_cream is True
    assert record.completed_by == practitioner
    lines = list(record.lines.order_by("id"))
    assert [line.batch for line in lines] == world.batches
    assert lines[0].amount == Decimal("2.50")
    assert lines[0].technique == "nappage"
    assert lines[0].device == "meso_gun"
    [event] = record.adverse_events.all()
    assert (event.effect, event.severity, event.follow_up_needed) == ("bruising", "mild", True)

    page = client.get(url(world.booking)).content.decode()
    assert "Session record" in page
    assert "Small bruise on the left cheek" in page
    assert "Complete the session" not in page


def test_completing_the_last_session_of_a_course_closes_the_course(
    client: Client, practitioner: User
) -> None:
    world = make_world(practitioner)
    course = TreatmentCourse.objects.create(
        patient=world.patient,
        protocol=world.protocol,
        planned_sessions=1,
        interval="fortnightly",
        created_by=practitioner,
    )
    Booking.objects.filter(pk=world.booking.pk).update(course=course)
    response = client.post(url(world.booking), session_post(world.batches))
    assert response.status_code == 302
    course.refresh_from_db()
    assert course.status == CourseStatus.COMPLETED
    assert course.maintenance_due_on is not None


def test_a_session_needs_at_least_one_cocktail_line(client: Client, practitioner: User) -> None:
    world = make_world(practitioner)
    response = client.post(url(world.booking), session_post([]))
    assert response.status_code == 400
    assert "Record at least one cocktail line." in response.content.decode()
    assert not SessionRecord.objects.exists()


def test_out_of_range_values_are_refused_and_kept(client: Client, practitioner: User) -> None:
    world = make_world(practitioner)
    data = session_post(world.batches)
    data["lines-0-needle_gauge"] = "50"
    data["lines-1-depth_mm"] = "20"
    response = client.post(url(world.booking), data)
    page = response.content.decode()
    assert response.status_code == 400
    assert 'value="50"' in page
    assert 'value="20"' in page
    assert "Tolerated well, typed by hand" in page
    assert not SessionRecord.objects.exists()


def test_a_batch_id_that_does_not_exist_is_refused_not_an_error(
    client: Client, practitioner: User
) -> None:
    world = make_world(practitioner)
    data = session_post(world.batches)
    data["lines-0-batch"] = "00000000-0000-4000-8000-00000000dead"
    response = client.post(url(world.booking), data)
    assert response.status_code == 400
    assert not SessionRecord.objects.exists()


def test_form_is_prefilled_from_the_protocols_default_cocktail_with_the_nearest_expiry(
    client: Client, practitioner: User
) -> None:
    world = make_world(practitioner)
    today = timezone.localdate()
    sooner = BatchFactory(
        product=world.batches[0].product,
        received_on=today - timedelta(days=10),
        expiry_date=today + timedelta(days=30),
    )
    page = client.get(url(world.booking)).content.decode()
    assert f'value="{sooner.uuid}" selected' in page
    assert f'value="{world.batches[1].uuid}" selected' in page
    assert 'value="1.50"' in page
    assert "The record's checks pass for the products chosen." in page
    assert "Before completing, answer today's questions below." in page


def test_form_is_prefilled_from_the_previous_session_of_the_course(
    client: Client, practitioner: User
) -> None:
    world = make_world(practitioner)
    course = TreatmentCourse.objects.create(
        patient=world.patient,
        protocol=world.protocol,
        planned_sessions=6,
        interval="fortnightly",
        created_by=practitioner,
    )
    Booking.objects.filter(pk=world.booking.pk).update(course=course)
    data = session_post(world.batches[:1])
    data["lines-0-technique"] = "papule"
    data["lines-0-needle_gauge"] = "30"
    assert client.post(url(world.booking), data).status_code == 302
    later = make_booking(
        patient=world.patient,
        practitioner=practitioner,
        protocol=world.protocol,
        course=course,
        room=world.room,
        starts_at=timezone.now().replace(microsecond=0) + timedelta(days=14),
        status=BookingStatus.BOOKED,
    )
    page = client.get(url(later)).content.decode()
    assert 'value="papule" selected' in page
    assert 'value="30"' in page
    assert page.count('data-testid="cocktail-line"') == 1  # the previous line, no empty one


def test_gates_panel_shows_what_blocks_before_anything_is_typed(
    client: Client, practitioner: User
) -> None:
    world = make_world(practitioner, consent=False)
    response = client.get(url(world.booking))
    assert response.status_code == 200
    assert "The patient has not signed the consent form" in response.content.decode()


# --- Who and which booking ----------------------------------------------------------


def test_another_bookings_id_that_does_not_exist_gives_404(client: Client) -> None:
    response = client.get(
        reverse(
            "treatments:session_record",
            kwargs={"booking": "00000000-0000-4000-8000-0000000000ff"},
        )
    )
    assert response.status_code == 404


@pytest.mark.parametrize("status", [BookingStatus.CANCELLED, BookingStatus.NO_SHOW])
def test_cancelled_or_no_show_booking_cannot_be_recorded(
    client: Client, practitioner: User, status: str
) -> None:
    world = make_world(practitioner, status=status)
    response = client.get(url(world.booking))
    assert response.status_code == 409
    assert "cannot be recorded against it" in response.content.decode()
    response = client.post(url(world.booking), session_post(world.batches))
    assert response.status_code == 409
    assert not SessionRecord.objects.exists()


@pytest.mark.parametrize("persona", ["receptionist", "manager"], indirect=True)
def test_reception_and_manager_are_refused(persona: User, practitioner: User) -> None:
    world = make_world(practitioner)
    client = sign_in(Client(), persona)
    assert client.get(url(world.booking)).status_code == 403
    assert client.post(url(world.booking), session_post(world.batches)).status_code == 403
    assert not SessionRecord.objects.exists()


# --- After completion ---------------------------------------------------------------


@pytest.fixture
def completed(client: Client, practitioner: User) -> SessionRecord:
    world = make_world(practitioner)
    assert client.post(url(world.booking), session_post(world.batches)).status_code == 302
    return SessionRecord.objects.get(booking=world.booking)


def test_database_refuses_to_change_a_session_record_or_cocktail_line(
    completed: SessionRecord,
) -> None:
    with pytest.raises(DatabaseError), transaction.atomic():
        SessionRecord.objects.filter(pk=completed.pk).update(notes="rewritten")
    with pytest.raises(DatabaseError), transaction.atomic():
        CocktailLine.objects.filter(session=completed).update(amount=Decimal("9"))
    with pytest.raises(DatabaseError), transaction.atomic():
        CocktailLine.objects.filter(session=completed).delete()
    completed.refresh_from_db()
    assert completed.notes == "Tolerated well, typed by hand"


def test_posting_the_form_again_to_a_completed_session_changes_nothing(
    client: Client, completed: SessionRecord
) -> None:
    response = client.post(url(completed.booking), session_post([completed.lines.first().batch]))  # type: ignore[union-attr]
    assert response.status_code == 409
    assert "already completed" in response.content.decode()
    assert CocktailLine.objects.filter(session=completed).count() == 2


def test_amendment_is_added_and_shown_with_who_and_when(
    client: Client, completed: SessionRecord, practitioner: User
) -> None:
    amend = reverse("treatments:session_amend", kwargs={"session": completed.uuid})
    with time_machine.travel(timezone.now() + timedelta(minutes=3), tick=False):
        moment = timezone.localtime()
        response = client.post(amend, {"text": "Depth on the neck was 1.0 mm, not 1.5 mm."})
    assert response.status_code == 302
    amendment = SessionAmendment.objects.get(session=completed)
    assert amendment.by == practitioner
    page = client.get(url(completed.booking)).content.decode()
    assert "Depth on the neck was 1.0 mm, not 1.5 mm." in page
    assert f"Added by Priya {practitioner.last_name} on {dates.day_time(moment)}" in page
    completed.refresh_from_db()
    assert completed.notes == "Tolerated well, typed by hand"


def test_empty_amendment_is_refused(client: Client, completed: SessionRecord) -> None:
    amend = reverse("treatments:session_amend", kwargs={"session": completed.uuid})
    response = client.post(amend, {"text": "   "})
    assert response.status_code == 400
    assert not SessionAmendment.objects.exists()


def test_later_adverse_event_is_linked_to_the_session(
    client: Client, completed: SessionRecord
) -> None:
    new = reverse("treatments:adverse_event_new", kwargs={"session": completed.uuid})
    onset = timezone.localtime() + timedelta(minutes=1)
    with time_machine.travel(timezone.now() + timedelta(minutes=5), tick=False):
        response = client.post(
            new,
            {
                "later-effect": "swelling",
                "later-severity": "moderate",
                "later-onset": onset.strftime("%Y-%m-%dT%H:%M"),
                "later-notes": "Called the next morning",
            },
        )
    assert response.status_code == 302, response.content.decode()[:2000]
    event = AdverseEvent.objects.get(session=completed)
    assert event.effect == "swelling"
    assert "Called the next morning" in client.get(url(completed.booking)).content.decode()


def test_later_adverse_event_in_the_future_is_refused_and_kept(
    client: Client, completed: SessionRecord
) -> None:
    new = reverse("treatments:adverse_event_new", kwargs={"session": completed.uuid})
    onset = timezone.localtime() + timedelta(days=3)
    response = client.post(
        new,
        {
            "later-effect": "swelling",
            "later-severity": "moderate",
            "later-onset": onset.strftime("%Y-%m-%dT%H:%M"),
            "later-notes": "Typed note kept",
        },
    )
    assert response.status_code == 400
    page = response.content.decode()
    assert "cannot be in the future" in page
    assert "Typed note kept" in page
    assert not AdverseEvent.objects.exists()


# --- Query budgets --------------------------------------------------------------------


@pytest.mark.parametrize("products", [1, 8])
def test_session_page_query_budget(
    client: Client, practitioner: User, products: int, django_assert_max_num_queries: object
) -> None:
    world = make_world(practitioner, products=products)
    with django_assert_max_num_queries(20):  # type: ignore[operator]
        response = client.get(url(world.booking))
    assert response.status_code == 200
    # The protocol's lines, and no empty one to scroll past.
    assert response.content.decode().count('data-testid="cocktail-line"') == products


@pytest.mark.parametrize("products", [1, 8])
def test_completed_record_query_budget(
    client: Client, practitioner: User, products: int, django_assert_max_num_queries: object
) -> None:
    world = make_world(practitioner, products=products)
    assert client.post(url(world.booking), session_post(world.batches)).status_code == 302
    record = SessionRecord.objects.get(booking=world.booking)
    for n in range(products):
        SessionAmendment.objects.create(session=record, text=f"Note {n}", by=practitioner)
    # The record, its lines and their injection points, events, cautions
    # acknowledged, amendments, the aftercare sheet's status and the session's
    # own reads: fixed, whatever the lines.
    # 15: the clinic's settings (its name in the header, the validity windows) read once.
    with django_assert_max_num_queries(15):  # type: ignore[operator]
        response = client.get(url(world.booking))
    assert response.content.decode().count('class="mb-2 amendment"') == products


# --- The course page's clinical summary ----------------------------------------------


def test_course_clinical_summary_lists_sessions_done_and_adverse_events(
    client: Client, practitioner: User, django_assert_max_num_queries: object
) -> None:
    from django.template.loader import render_to_string

    from treatments.selectors.session import course_clinical_summary

    world = make_world(practitioner)
    course = TreatmentCourse.objects.create(
        patient=world.patient,
        protocol=world.protocol,
        planned_sessions=6,
        interval="fortnightly",
        created_by=practitioner,
    )
    Booking.objects.filter(pk=world.booking.pk).update(course=course)
    onset = (timezone.localtime() - timedelta(minutes=2)).strftime("%Y-%m-%dT%H:%M")
    events = [{"effect": "redness", "severity": "mild", "onset": onset}]
    assert (
        client.post(url(world.booking), session_post(world.batches, events=events)).status_code
        == 302
    )
    with django_assert_max_num_queries(2):  # type: ignore[operator]
        summary = course_clinical_summary(course=course)
    assert summary.done == 1
    assert summary.planned == 6
    assert [e.effect for e in summary.adverse_events] == ["redness"]
    html = render_to_string("treatments/session_course_summary.html", {"clinical": summary})
    assert "1 of 6 sessions done." in html
    assert "Redness · Mild" in html
    assert url(world.booking) in html
