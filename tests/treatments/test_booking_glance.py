"""Booking with the facts in view: the booking's page says safe-to-treat in
the calendar card's own words with the earliest safe date, and shows its
status legibly; the booking form warns before saving when the patient
cannot be treated then; a clash names what holds the time; "next free
slot" says what it still needs; "Book a course" opens on an empty form."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from html import unescape
from pathlib import Path

import pytest
import time_machine
from django.conf import settings as django_settings
from django.test import Client
from django.urls import reverse

from clinic.models import AuditAction, AuditEvent, User
from tests.conftest import sign_in
from tests.consent.helpers import signed_consent_for
from tests.factories import (
    ConsentFormVersionFactory,
    IngredientFactory,
    ProductFactory,
    make_history,
)
from tests.treatments import test_booking_support as support
from tests.treatments.test_booking_support import MONDAY, NOW, Clinic, at, book, booking_post
from treatments.gates import ingredients_of
from treatments.models import Booking, BookingStatus, ProtocolCocktailLine, TreatmentCourse
from treatments.services.allergy import allergy_test_give
from treatments.services.booking import SlotTakenError, booking_create, booking_move
from treatments.services.course import CourseRefusedError, course_book

clinic = support.clinic
frozen = support.frozen
pytestmark = pytest.mark.usefixtures("frozen", "media")
TUESDAY = MONDAY + timedelta(days=1)
WEDNESDAY = MONDAY + timedelta(days=2)
CALENDAR = reverse("treatments:calendar")
NEW = reverse("treatments:booking_new")
CHECK = reverse("treatments:booking_check")
NEXT_FREE = reverse("treatments:next_free_slot")
COURSE = reverse("treatments:course_new")


@pytest.fixture
def media(settings: object, tmp_path: Path) -> None:
    settings.MEDIA_ROOT = tmp_path  # type: ignore[attr-defined]


def _records(c: Clinic, practitioner: User, *, consent: bool) -> None:
    """The protocol gets a cocktail; Amelia has a history, a consent if
    `consent`, and an allergy test given now, read from Tuesday 08:00."""
    product = ProductFactory(ingredients=[IngredientFactory(name="Vitamin C")])
    ProtocolCocktailLine.objects.create(protocol=c.protocol, product=product, amount="2.00")
    make_history(c.patient, practitioner)
    if consent:
        version = ConsentFormVersionFactory(form=c.protocol.consent_form)
        signed_consent_for(patient=c.patient, version=version)
    allergy_test_give(
        patient=c.patient,
        given_by=practitioner,
        ingredients=ingredients_of([product]),
        products=[],
        site="inner left forearm",
        given_at=NOW,
    )


def _wednesday_booking(c: Clinic) -> Booking:
    """Amelia booked through the service on Wednesday at 10:00."""
    return book(
        patient=c.patient,
        practitioner=c.practitioner,
        room=c.room,
        protocol=c.protocol,
        starts_at=at(WEDNESDAY, 10),
    )


def _card_sentence(client: Client, booking: Booking) -> str:
    body = client.get(CALENDAR, {"view": "week", "date": MONDAY.isoformat()}).content.decode()
    card = body[body.index(f'data-booking="{booking.uuid}"') :]
    card = card[: card.index("</a>")]
    found = re.search(r'data-testid="safe-to-treat">([^<]*)<', card)
    assert found, card
    return unescape(found[1])


def _page_sentence(client: Client, booking: Booking) -> str:
    body = client.get(booking.get_absolute_url()).content.decode()
    found = re.search(r'data-testid="safe-to-treat">(.*?)</dd>', body, re.S)
    assert found, "no safe-to-treat on the booking's page"
    return unescape(re.sub(r"<[^>]+>", "", found[1])).strip()


# --- The booking's page -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("consent", "sentence"),
    [
        (
            True,
            # The moment is in the note already: said once.
            "allergy reading due Tue 24 Nov, 08:00",
        ),
        (
            False,
            "consent needed; allergy reading due Tue 24 Nov, 08:00",
        ),
    ],
)
def test_the_booking_page_says_safe_to_treat_as_the_calendar_card_does(
    client: Client,
    clinic: Clinic,
    receptionist: User,
    practitioner: User,
    consent: bool,
    sentence: str,
) -> None:
    _records(clinic, practitioner, consent=consent)
    booking = _wednesday_booking(clinic)
    sign_in(client, receptionist)
    assert _card_sentence(client, booking) == sentence
    assert _page_sentence(client, booking) == f"Not ready {sentence}"


def test_a_ready_booking_says_so_and_a_cancelled_one_says_nothing(
    client: Client, clinic: Clinic, receptionist: User, practitioner: User
) -> None:
    make_history(clinic.patient, practitioner)
    signed_consent_for(
        patient=clinic.patient, version=ConsentFormVersionFactory(form=clinic.protocol.consent_form)
    )
    booking = _wednesday_booking(clinic)
    sign_in(client, receptionist)
    assert _page_sentence(client, booking) == "Ready to treat"
    Booking.objects.filter(pk=booking.pk).update(
        status=BookingStatus.CANCELLED, cancel_reason="Flu"
    )
    assert (
        'data-testid="safe-to-treat"' not in client.get(booking.get_absolute_url()).content.decode()
    )


def test_the_booking_page_judges_its_booking_in_a_fixed_number_of_queries(
    client: Client,
    clinic: Clinic,
    receptionist: User,
    practitioner: User,
    django_assert_max_num_queries: object,
) -> None:
    _records(clinic, practitioner, consent=True)
    booking = _wednesday_booking(clinic)
    sign_in(client, receptionist)
    client.get(booking.get_absolute_url())
    # The page's budget (tests/treatments/test_booking.py), safe-to-treat's
    # facts included: a cocktail, a history, a consent and a test to read.
    with django_assert_max_num_queries(14):  # type: ignore[operator]
        response = client.get(booking.get_absolute_url())
    assert response.status_code == 200


def _contrast(foreground: str, background: str) -> float:
    def luminance(colour: str) -> float:
        channels = [int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
        linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]

    high, low = sorted((luminance(foreground), luminance(background)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def test_every_status_badge_reads_at_least_4_5_to_1(
    client: Client, clinic: Clinic, receptionist: User
) -> None:
    """The booking's page loads the stylesheet that colours its status badge
    (white on a colour of at least 4.5:1 contrast, WCAG AA), for every status."""
    css = (Path(django_settings.BASE_DIR) / "static/css/calendar.css").read_text()
    for status in BookingStatus.values:
        rule = re.search(
            rf"\.badge\.cal-status-{status}\b[^{{]*\{{ "
            r"background: (#[0-9a-f]{6}); color: (#[0-9a-f]{3,6}); \}",
            css,
        )
        assert rule, status
        foreground = "#ffffff" if rule[2] == "#fff" else rule[2]
        assert _contrast(foreground, rule[1]) >= 4.5, status
    booking = _wednesday_booking(clinic)
    sign_in(client, receptionist)
    body = client.get(booking.get_absolute_url()).content.decode()
    assert "css/calendar" in body
    assert 'class="badge fs-6 cal-status-booked" data-testid="booking-status">Booked<' in body


# --- The booking form's warning -----------------------------------------------------------


def _check(client: Client, **overrides: str) -> tuple[int, str]:
    values = {
        "patient": "",
        "protocol": "",
        "date": WEDNESDAY.isoformat(),
        "start_time": "10:00",
    }
    values.update(overrides)
    response = client.get(CHECK, values)
    text = re.sub(r"<[^>]+>", "", response.content.decode())
    return response.status_code, unescape(re.sub(r"\s+", " ", text)).strip()


def test_the_booking_form_warns_before_saving_what_is_missing_and_from_when(
    client: Client, clinic: Clinic, receptionist: User, practitioner: User
) -> None:
    _records(clinic, practitioner, consent=False)
    sign_in(client, receptionist)
    # Nothing to say until the patient, protocol, date and start are chosen.
    assert _check(client, patient=str(clinic.patient.uuid)) == (200, "")
    status, warning = _check(
        client, patient=str(clinic.patient.uuid), protocol=str(clinic.protocol.uuid)
    )
    assert status == 200
    assert (
        "Amelia Hart is not ready to treat at that time: consent needed; allergy reading due"
        " Tue 24 Nov, 08:00." in warning
    )
    assert "You can still book" in warning
    event = AuditEvent.objects.filter(action=AuditAction.VIEW, actor=receptionist).last()
    assert event is not None
    assert event.patient_ref == clinic.patient.uuid
    # Booking is still allowed: reception books ahead.
    response = client.post(NEW, booking_post(clinic, WEDNESDAY, "10:00"))
    assert response.status_code == 302
    assert Booking.objects.filter(patient=clinic.patient).count() == 1


def test_the_warning_says_when_the_patient_is_safe_to_treat(
    client: Client, clinic: Clinic, receptionist: User, practitioner: User
) -> None:
    make_history(clinic.patient, practitioner)
    signed_consent_for(
        patient=clinic.patient, version=ConsentFormVersionFactory(form=clinic.protocol.consent_form)
    )
    sign_in(client, receptionist)
    status, said = _check(
        client, patient=str(clinic.patient.uuid), protocol=str(clinic.protocol.uuid)
    )
    assert status == 200
    assert "Amelia Hart is ready to treat at that time, as the records stand today." in said


def test_the_warning_is_on_the_form_opened_from_the_calendar_and_after_a_refusal(
    client: Client, clinic: Clinic, receptionist: User, practitioner: User
) -> None:
    _records(clinic, practitioner, consent=True)
    sign_in(client, receptionist)
    opened = client.get(
        NEW,
        {
            "patient": str(clinic.patient.uuid),
            "protocol": str(clinic.protocol.uuid),
            "date": WEDNESDAY.isoformat(),
            "time": "10:00",
        },
    ).content.decode()
    assert "allergy reading due Tue 24 Nov, 08:00" in unescape(opened)
    assert "ready to treat from Tue 24 Nov" not in unescape(opened)
    refused = client.post(NEW, booking_post(clinic, WEDNESDAY, "10:00", room=""))
    assert refused.status_code == 400
    assert "allergy reading due Tue 24 Nov, 08:00" in unescape(refused.content.decode())


def _refusal_on_submit(client: Client, c: Clinic, day: str, start: str) -> str:
    """The words the booking form gives on submit for `day` at `start`."""
    response = client.post(NEW, {**booking_post(c, MONDAY, start), "date": day})
    assert response.status_code == 400
    assert not Booking.objects.exists()
    found = re.findall(
        r'class="invalid-feedback"[^>]*>.*?<strong>(.*?)</strong>', response.content.decode(), re.S
    )
    assert found, "the form gave no reason"
    return unescape(" ".join(found))


@pytest.mark.parametrize(
    ("moment", "day", "start"),
    [
        (NOW, (MONDAY - timedelta(days=1)).isoformat(), "10:00"),  # yesterday
        (NOW + timedelta(hours=2), MONDAY.isoformat(), "09:45"),  # earlier today
        (NOW, "tomorrow", "10:00"),  # not a date
        # The night the clocks go back in London: 01:30 happens twice.
        (datetime(2026, 10, 20, 8, tzinfo=UTC), "2026-10-25", "01:30"),
        # The night they go forward: 01:30 does not happen.
        (datetime(2027, 3, 22, 8, tzinfo=UTC), "2027-03-28", "01:30"),
    ],
)
def test_the_warning_says_why_a_date_or_time_cannot_be_booked_in_the_forms_words(
    client: Client, clinic: Clinic, receptionist: User, moment: datetime, day: str, start: str
) -> None:
    with time_machine.travel(moment, tick=False):
        sign_in(client, receptionist)
        response = client.get(
            CHECK,
            {
                "patient": str(clinic.patient.uuid),
                "protocol": str(clinic.protocol.uuid),
                "date": day,
                "start_time": start,
            },
            headers={"HX-Request": "true"},
        )
        on_submit = _refusal_on_submit(client, clinic, day, start)
    # htmx swaps a 2xx only: the receptionist reads the sentence as they type.
    assert response.status_code == 200
    body = response.content.decode()
    assert 'data-testid="booking-check-problem"' in body
    said = unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", body))).strip()
    assert said == on_submit
    assert "ready to treat" not in said


def test_the_warning_for_the_clocks_going_back_names_the_night(
    client: Client, clinic: Clinic, receptionist: User
) -> None:
    with time_machine.travel(datetime(2026, 10, 20, 8, tzinfo=UTC), tick=False):
        sign_in(client, receptionist)
        status, said = _check(
            client,
            patient=str(clinic.patient.uuid),
            protocol=str(clinic.protocol.uuid),
            date="2026-10-25",
            start_time="01:30",
        )
    assert status == 200
    assert said.startswith("01:30 on ")
    assert "25 Oct" in said
    assert said.endswith(
        " happens twice: the clocks go back an hour that night."
        " Choose whether you mean the first or the second time."
    )


@pytest.mark.parametrize(
    ("values", "reason"),
    [
        ({"protocol": "00000000-0000-4000-8000-0000000000aa"}, "Select a valid choice."),
        ({"patient": "00000000-0000-4000-8000-0000000000aa"}, "Search for the patient"),
    ],
)
def test_a_check_of_a_patient_or_protocol_the_form_never_offers_is_400(
    client: Client, clinic: Clinic, receptionist: User, values: dict[str, str], reason: str
) -> None:
    sign_in(client, receptionist)
    base = {"patient": str(clinic.patient.uuid), "protocol": str(clinic.protocol.uuid)}
    status, said = _check(client, **{**base, **values})
    assert status == 400
    assert said.startswith(reason)


def test_the_check_is_for_those_who_book(client: Client, clinic: Clinic, manager: User) -> None:
    sign_in(client, manager)
    assert client.get(CHECK).status_code == 403


# --- Clashes ------------------------------------------------------------------------------


def test_a_course_session_refused_names_what_holds_its_time(
    clinic: Clinic, receptionist: User
) -> None:
    book(
        patient=clinic.other_patient,
        practitioner=clinic.other_practitioner,
        room=clinic.room,
        protocol=clinic.protocol,
        starts_at=at(TUESDAY + timedelta(days=14), 10),
    )
    with pytest.raises(CourseRefusedError) as raised:
        course_book(
            patient=clinic.patient,
            protocol=clinic.protocol,
            practitioner=clinic.practitioner,
            room=clinic.room,
            starts=[at(TUESDAY, 10), at(TUESDAY + timedelta(days=14), 10)],
            interval="fortnightly",
            created_by=receptionist,
        )
    assert raised.value.message == (
        "Session 2 (Tue 8 Dec, 10:00): This slot was just taken: Room 1 is in use"
        " from 10:00 to 10:45 on Tue 8 Dec. Choose another time."
    )
    assert not TreatmentCourse.objects.exists()


def test_a_clash_in_another_year_gives_its_year_and_a_move_names_the_practitioner_and_room(
    clinic: Clinic, receptionist: User
) -> None:
    january = at(MONDAY + timedelta(days=43), 10)  # Tuesday 5 January 2027
    taken = book(
        patient=clinic.other_patient,
        practitioner=clinic.practitioner,
        room=clinic.room,
        protocol=clinic.protocol,
        starts_at=january,
    )
    mine = booking_create(
        patient=clinic.patient,
        practitioner=clinic.other_practitioner,
        room=clinic.other_room,
        protocol=clinic.protocol,
        starts_at=at(TUESDAY, 10),
        ends_at=at(TUESDAY, 10, 45),
        created_by=receptionist,
    )
    with pytest.raises(SlotTakenError) as raised:
        booking_move(
            booking=mine,
            starts_at=january + timedelta(minutes=15),
            ends_at=january + timedelta(minutes=60),
            practitioner=clinic.practitioner,
            room=clinic.room,
            moved_by=receptionist,
            expected_version=mine.version,
        )
    name = clinic.practitioner.get_full_name()
    assert raised.value.message == (
        f"This slot was just taken: {name} and Room 1 are booked from 10:00 to 10:45"
        " on Tue 5 Jan 2027. Choose another time."
    )
    assert taken.starts_at == january


# --- Next free slot -------------------------------------------------------------------------


def test_next_free_slot_says_what_it_still_needs(
    client: Client, clinic: Clinic, receptionist: User
) -> None:
    sign_in(client, receptionist)
    opened = client.get(NEXT_FREE)
    assert opened.status_code == 200
    assert 'data-testid="next-free-needs"' not in opened.content.decode()
    response = client.get(NEXT_FREE, {"practitioner": str(clinic.practitioner.uuid)})
    assert response.status_code == 400
    assert (
        "To find the next free slot, choose a room and a length between 10 and 240 minutes."
        in response.content.decode()
    )
    response = client.get(
        NEXT_FREE,
        {"practitioner": str(clinic.practitioner.uuid), "room": "", "duration": "45"},
    )
    assert "To find the next free slot, choose a room." in response.content.decode()
    response = client.get(NEXT_FREE, {"duration": "45"}, headers={"HX-Request": "true"})
    assert response.status_code == 400
    assert "choose a practitioner and a room." in response.content.decode()


# --- Book a course --------------------------------------------------------------------------


def test_book_a_course_opens_on_an_empty_form_without_errors(
    client: Client, clinic: Clinic, receptionist: User
) -> None:
    sign_in(client, receptionist)
    response = client.get(COURSE)
    body = response.content.decode()
    assert response.status_code == 200
    assert 'data-testid="course-start-form"' in body
    assert "invalid-feedback" not in body
    assert 'data-testid="form-error"' not in body
    chosen = client.get(COURSE, {"patient": str(clinic.patient.uuid)}).content.decode()
    assert f'value="{clinic.patient.uuid}" checked' in chosen
    assert "invalid-feedback" not in chosen


def test_a_course_asked_for_without_its_first_session_names_what_is_missing(
    client: Client, clinic: Clinic, receptionist: User
) -> None:
    sign_in(client, receptionist)
    response = client.get(
        COURSE, {"patient": str(clinic.patient.uuid), "protocol": str(clinic.protocol.uuid)}
    )
    assert response.status_code == 400
    body = response.content.decode()
    assert "The course cannot be proposed yet:" in body
    assert "Practitioner: This field is required." in body
    assert "Date: This field is required." in body
    assert f'value="{clinic.patient.uuid}" checked' in body
