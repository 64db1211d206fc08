"""Booking a session, moving, cancelling and marking it: the services and the pages."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
import time_machine
from django.test import Client
from django.urls import reverse

from clinic.models import AuditAction, AuditEvent, User
from tests.conftest import sign_in
from tests.factories import PatientFactory
from tests.treatments import test_booking_support as support
from tests.treatments.test_booking_support import (
    MONDAY,
    NOW,
    Clinic,
    at,
    book,
    booking_post,
)
from treatments.models import Booking, BookingEvent, BookingStatus, ClinicClosure
from treatments.services.booking import (
    BookingRefusedError,
    BookingStateError,
    SlotTakenError,
    booking_cancel,
    booking_create,
    booking_mark,
    booking_move,
)

clinic = support.clinic
frozen = support.frozen
pytestmark = pytest.mark.usefixtures("frozen")
TUESDAY = MONDAY + timedelta(days=1)
NEW = reverse("treatments:booking_new")


def _create(c: Clinic, user: User, **overrides: object) -> Booking:
    fields: dict[str, object] = {
        "patient": c.patient,
        "practitioner": c.practitioner,
        "room": c.room,
        "protocol": c.protocol,
        "starts_at": at(TUESDAY, 10),
        "ends_at": at(TUESDAY, 10, 45),
        "created_by": user,
    }
    fields.update(overrides)
    return booking_create(**fields)  # type: ignore[arg-type]


# --- Service ---------------------------------------------------------------------------


def test_booking_is_created_with_its_history_and_audit(clinic: Clinic, receptionist: User) -> None:
    booking = _create(clinic, receptionist)
    assert booking.status == BookingStatus.BOOKED
    assert list(booking.events.values_list("kind", flat=True)) == ["created"]
    event = AuditEvent.objects.get(action=AuditAction.CREATE, object_id=str(booking.uuid))
    assert event.patient_ref == clinic.patient.uuid


@pytest.mark.parametrize(
    ("what", "overrides", "clash"),
    [
        (
            "practitioner",
            {"room": "other_room", "patient": "other_patient"},
            "{practitioner} is booked from 10:00 to 10:45 on Tue 24 Nov",
        ),
        (
            "room",
            {"practitioner": "other_practitioner", "patient": "other_patient"},
            "Room 1 is in use from 10:00 to 10:45 on Tue 24 Nov",
        ),
        (
            "patient",
            {"practitioner": "other_practitioner", "room": "other_room"},
            "Amelia Hart already has a session from 10:00 to 10:45 on Tue 24 Nov,"
            " with {practitioner} in Room 1",
        ),
    ],
)
def test_booking_rejects_an_overlap_naming_the_practitioner_room_or_patient_and_its_time(
    clinic: Clinic, receptionist: User, what: str, overrides: dict[str, str], clash: str
) -> None:
    _create(clinic, receptionist)
    with pytest.raises(SlotTakenError) as raised:
        _create(
            clinic,
            receptionist,
            starts_at=at(TUESDAY, 10, 30),
            ends_at=at(TUESDAY, 11, 15),
            **{k: getattr(clinic, v) for k, v in overrides.items()},
        )
    named = clash.format(practitioner=clinic.practitioner.get_full_name())
    assert raised.value.message == f"This slot was just taken: {named}. Choose another time."
    assert Booking.objects.count() == 1


def test_the_database_refuses_an_overlap_even_when_the_check_is_skipped(
    clinic: Clinic, receptionist: User
) -> None:
    """Two requests that both passed their checks: PostgreSQL still says no."""
    book(
        patient=clinic.patient,
        practitioner=clinic.practitioner,
        room=clinic.room,
        protocol=clinic.protocol,
        starts_at=at(TUESDAY, 10),
    )
    from django.db import IntegrityError, transaction

    with pytest.raises(IntegrityError) as raised, transaction.atomic():
        book(
            patient=clinic.other_patient,
            practitioner=clinic.practitioner,
            room=clinic.other_room,
            protocol=clinic.protocol,
            starts_at=at(TUESDAY, 10, 15),
        )
    assert "booking_no_overlap_practitioner" in str(raised.value)


def test_a_cancelled_booking_frees_its_slot(clinic: Clinic, receptionist: User) -> None:
    first = _create(clinic, receptionist)
    booking_cancel(booking=first, reason="Patient unwell", cancelled_by=receptionist)
    second = _create(clinic, receptionist)
    assert second.status == BookingStatus.BOOKED


def test_booking_ending_before_it_starts_is_refused(clinic: Clinic, receptionist: User) -> None:
    with pytest.raises(BookingRefusedError, match="The end must be after the start"):
        _create(clinic, receptionist, ends_at=at(TUESDAY, 9, 30))


def test_booking_in_the_past_is_refused(clinic: Clinic, receptionist: User) -> None:
    with pytest.raises(BookingRefusedError, match="already passed"):
        _create(
            clinic,
            receptionist,
            starts_at=NOW - timedelta(hours=1),
            ends_at=NOW - timedelta(minutes=15),
        )


def test_booking_outside_working_hours_is_refused(clinic: Clinic, receptionist: User) -> None:
    with pytest.raises(BookingRefusedError, match="does not work at that time"):
        _create(clinic, receptionist, starts_at=at(TUESDAY, 17), ends_at=at(TUESDAY, 17, 45))
    saturday = MONDAY + timedelta(days=5)
    with pytest.raises(BookingRefusedError, match="does not work at that time"):
        _create(clinic, receptionist, starts_at=at(saturday, 10), ends_at=at(saturday, 10, 45))


def test_booking_on_a_closure_day_is_refused(clinic: Clinic, receptionist: User) -> None:
    ClinicClosure.objects.create(starts_on=TUESDAY, ends_on=TUESDAY, reason="Staff training")
    with pytest.raises(BookingRefusedError, match=r"closed .*Staff training"):
        _create(clinic, receptionist)


def test_move_keeps_the_previous_time_practitioner_and_room_in_the_history(
    clinic: Clinic, receptionist: User
) -> None:
    booking = _create(clinic, receptionist)
    booking_move(
        booking=booking,
        starts_at=at(TUESDAY, 14),
        ends_at=at(TUESDAY, 14, 45),
        practitioner=clinic.other_practitioner,
        room=clinic.other_room,
        moved_by=receptionist,
        expected_version=None,
    )
    booking.refresh_from_db()
    assert booking.starts_at == at(TUESDAY, 14)
    moved = booking.events.get(kind="moved")
    assert moved.previous_starts_at == at(TUESDAY, 10)
    assert moved.previous_practitioner == clinic.practitioner
    assert moved.previous_room == clinic.room
    assert AuditEvent.objects.filter(
        action=AuditAction.UPDATE, object_id=str(booking.uuid)
    ).exists()


def test_move_onto_a_taken_slot_is_refused_and_changes_nothing(
    clinic: Clinic, receptionist: User
) -> None:
    booking = _create(clinic, receptionist)
    _create(
        clinic,
        receptionist,
        patient=clinic.other_patient,
        starts_at=at(TUESDAY, 14),
        ends_at=at(TUESDAY, 14, 45),
    )
    with pytest.raises(SlotTakenError):
        booking_move(
            booking=booking,
            starts_at=at(TUESDAY, 14, 15),
            ends_at=at(TUESDAY, 15),
            practitioner=clinic.practitioner,
            room=clinic.room,
            moved_by=receptionist,
            expected_version=None,
        )
    booking.refresh_from_db()
    assert booking.starts_at == at(TUESDAY, 10)
    assert not booking.events.filter(kind="moved").exists()


def test_cancel_needs_a_reason_and_records_it(clinic: Clinic, receptionist: User) -> None:
    booking = _create(clinic, receptionist)
    with pytest.raises(BookingRefusedError, match="Say why"):
        booking_cancel(booking=booking, reason="  ", cancelled_by=receptionist)
    booking_cancel(booking=booking, reason="Moved away", cancelled_by=receptionist)
    booking.refresh_from_db()
    assert booking.status == BookingStatus.CANCELLED
    assert booking.events.get(kind="cancelled").detail == "Moved away"


def test_transitions_follow_the_table(clinic: Clinic, receptionist: User) -> None:
    booking = _create(clinic, receptionist)
    booking_mark(booking=booking, status="arrived", marked_by=receptionist)
    booking_mark(booking=booking, status="booked", marked_by=receptionist)
    booking_cancel(booking=booking, reason="Changed her mind", cancelled_by=receptionist)
    with pytest.raises(BookingStateError, match="cannot become"):
        booking_mark(booking=booking, status="arrived", marked_by=receptionist)
    kinds = list(booking.events.order_by("id").values_list("kind", flat=True))
    assert kinds == ["created", "arrived", "reopened", "cancelled"]


def test_no_show_before_the_start_is_refused(clinic: Clinic, receptionist: User) -> None:
    booking = _create(clinic, receptionist)
    with pytest.raises(BookingStateError, match="before its start"):
        booking_mark(booking=booking, status="no_show", marked_by=receptionist)
    with time_machine.travel(at(TUESDAY, 11), tick=False):
        booking_mark(booking=booking, status="no_show", marked_by=receptionist)
    booking.refresh_from_db()
    assert booking.status == BookingStatus.NO_SHOW


# --- Pages -----------------------------------------------------------------------------


def test_reception_books_through_the_form_with_the_protocol_length(
    client: Client, clinic: Clinic, receptionist: User
) -> None:
    sign_in(client, receptionist)
    response = client.post(NEW, booking_post(clinic, TUESDAY, "10:00"))
    booking = Booking.objects.get()
    assert response.status_code == 302
    assert response["Location"] == booking.get_absolute_url()
    assert booking.starts_at == at(TUESDAY, 10)
    assert booking.ends_at == at(TUESDAY, 10, 45)


def test_a_taken_slot_answers_409_with_the_message_and_keeps_the_form(
    client: Client, clinic: Clinic, receptionist: User
) -> None:
    book(
        patient=clinic.other_patient,
        practitioner=clinic.practitioner,
        room=clinic.other_room,
        protocol=clinic.protocol,
        starts_at=at(TUESDAY, 10),
    )
    sign_in(client, receptionist)
    response = client.post(NEW, booking_post(clinic, TUESDAY, "10:30", duration="30"))
    assert response.status_code == 409
    body = response.content.decode()
    name = clinic.practitioner.get_full_name()
    assert (
        f"This slot was just taken: {name} is booked from 10:00 to 10:45 on Tue 24 Nov."
        " Choose another time." in body
    )
    assert 'value="30"' in body
    assert f'value="{clinic.patient.uuid}"' in body
    assert Booking.objects.count() == 1


@pytest.mark.parametrize(
    ("day", "start", "extra", "message"),
    [
        (TUESDAY, "10:00", {"duration": "-30"}, "The end must be after the start"),
        (MONDAY - timedelta(days=7), "10:00", {}, "already passed"),
        (TUESDAY, "19:00", {}, "does not work at that time"),
        (date(2027, 3, 28), "01:30", {}, "does not exist"),
        (date(2026, 10, 25), "01:30", {}, "happens twice"),
        (
            TUESDAY,
            "10:00",
            {"patient": "00000000-0000-4000-8000-00000000dead"},
            "Search for the patient",
        ),
    ],
)
def test_bad_booking_input_is_refused_with_a_message_and_400(
    client: Client,
    clinic: Clinic,
    receptionist: User,
    day: date,
    start: str,
    extra: dict[str, str],
    message: str,
) -> None:
    sign_in(client, receptionist)
    response = client.post(NEW, booking_post(clinic, day, start, **extra))
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not Booking.objects.exists()


def test_an_ambiguous_time_offers_the_choice_and_the_time_check_comes_first(
    client: Client, clinic: Clinic, receptionist: User
) -> None:
    sign_in(client, receptionist)
    response = client.post(NEW, booking_post(clinic, date(2026, 10, 25), "01:30"))
    body = response.content.decode()
    assert 'data-testid="fold-choice"' in body
    assert "the first time (BST" in body
    assert "the second time (GMT" in body
    # With the occurrence chosen the time is understood; the next check (the day
    # has passed) answers instead.
    response = client.post(NEW, booking_post(clinic, date(2026, 10, 25), "01:30", fold="1"))
    assert response.status_code == 400
    body = response.content.decode()
    assert "the clocks go back an hour" not in body
    assert "already passed" in body


def test_the_form_without_an_ambiguous_time_shows_no_occurrence_choice(
    client: Client, clinic: Clinic, receptionist: User
) -> None:
    sign_in(client, receptionist)
    response = client.get(
        NEW + f"?date={TUESDAY}&time=10:00&practitioner={clinic.practitioner.uuid}"
    )
    assert response.status_code == 200
    assert 'data-testid="fold-choice"' not in response.content.decode()
    assert 'value="10:00"' in response.content.decode()


def test_patient_search_offers_matching_patients_as_choices(
    client: Client, clinic: Clinic, receptionist: User
) -> None:
    sign_in(client, receptionist)
    response = client.get(reverse("treatments:booking_patient_search"), {"q": "amelia"})
    body = response.content.decode()
    assert str(clinic.patient.uuid) in body
    assert str(clinic.other_patient.uuid) not in body


def test_booking_page_shows_the_history_with_who_and_from_where(
    client: Client, clinic: Clinic, receptionist: User, django_assert_max_num_queries: object
) -> None:
    booking = _create(clinic, receptionist)
    booking_move(
        booking=booking,
        starts_at=at(TUESDAY, 14),
        ends_at=at(TUESDAY, 14, 45),
        practitioner=clinic.practitioner,
        room=clinic.other_room,
        moved_by=receptionist,
        expected_version=None,
    )
    sign_in(client, receptionist)
    # 15: the history is one query whatever its length; the clinic's settings
    # (its name in the header) are read once a page.
    with django_assert_max_num_queries(15):  # type: ignore[operator]
        response = client.get(booking.get_absolute_url())
    body = response.content.decode()
    assert "moved" in body
    assert "Room 1" in body  # where it was
    assert "from Tue 24 Nov, 10:00" in body


def test_moving_through_the_page_onto_a_taken_slot_is_409(
    client: Client, clinic: Clinic, receptionist: User
) -> None:
    booking = _create(clinic, receptionist)
    _create(
        clinic,
        receptionist,
        patient=clinic.other_patient,
        room=clinic.other_room,
        practitioner=clinic.other_practitioner,
        starts_at=at(TUESDAY, 14),
        ends_at=at(TUESDAY, 14, 45),
    )
    sign_in(client, receptionist)
    url = reverse("treatments:booking_move", kwargs={"booking": booking.uuid})
    data = {
        "date": TUESDAY.isoformat(),
        "start_time": "14:00",
        "practitioner": str(clinic.other_practitioner.uuid),
        "room": str(clinic.room.uuid),
        "version": str(booking.version),
    }
    response = client.post(url, data)
    assert response.status_code == 409
    assert "This slot was just taken" in response.content.decode()
    data["practitioner"] = str(clinic.practitioner.uuid)
    data["start_time"] = "15:00"
    assert client.post(url, data).status_code == 302


def test_cancel_without_a_reason_is_400_and_an_illegal_mark_is_409(
    client: Client, clinic: Clinic, receptionist: User
) -> None:
    booking = _create(clinic, receptionist)
    sign_in(client, receptionist)
    cancel = reverse("treatments:booking_cancel", kwargs={"booking": booking.uuid})
    response = client.post(cancel, {"reason": "", "version": "1"})
    assert response.status_code == 400
    assert "Say why the booking is cancelled." in response.content.decode()
    assert client.post(cancel, {"reason": "Flu", "version": "1"}).status_code == 302
    mark = reverse("treatments:booking_mark", kwargs={"booking": booking.uuid})
    response = client.post(mark, {"status": "arrived", "version": "2"})
    assert response.status_code == 409
    assert "cannot become" in response.content.decode()


def test_a_tampered_or_unknown_booking_id_is_404(
    client: Client, clinic: Clinic, receptionist: User
) -> None:
    sign_in(client, receptionist)
    assert client.get("/treatments/calendar/bookings/not-a-uuid/").status_code == 404
    unknown = reverse(
        "treatments:booking_detail", kwargs={"booking": "00000000-0000-4000-8000-0000000000ff"}
    )
    assert client.get(unknown).status_code == 404


def test_manager_reads_bookings_but_cannot_change_them(
    client: Client, clinic: Clinic, receptionist: User, manager: User
) -> None:
    booking = _create(clinic, receptionist)
    sign_in(client, manager)
    assert client.get(booking.get_absolute_url()).status_code == 200
    assert client.post(NEW, booking_post(clinic, TUESDAY, "14:00")).status_code == 403
    cancel = reverse("treatments:booking_cancel", kwargs={"booking": booking.uuid})
    assert client.post(cancel, {"reason": "x"}).status_code == 403
    assert Booking.objects.count() == 1


def test_practitioner_books_too_and_anonymous_goes_to_login(
    client: Client, clinic: Clinic, practitioner: User
) -> None:
    response = client.get(NEW)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))
    sign_in(client, practitioner)
    assert client.post(NEW, booking_post(clinic, TUESDAY, "11:00")).status_code == 302


def test_every_change_is_in_the_audit_trail(clinic: Clinic, receptionist: User) -> None:
    booking = _create(clinic, receptionist)
    booking_mark(booking=booking, status="arrived", marked_by=receptionist)
    booking_cancel(booking=booking, reason="Felt faint", cancelled_by=receptionist)
    actions = list(
        AuditEvent.objects.filter(object_id=str(booking.uuid)).values_list("action", flat=True)
    )
    assert actions.count("create") == 1
    assert actions.count("update") == 2
    assert BookingEvent.objects.filter(booking=booking).count() == 3


def test_the_form_books_the_patient_it_names_and_refuses_an_unknown_one(
    client: Client, clinic: Clinic, receptionist: User
) -> None:
    """The patient is named by their id in the form: a registered one is
    booked (whoever the clinic's fixtures put first), an id of nobody is a 400
    that books nothing."""
    other = PatientFactory()
    sign_in(client, receptionist)
    unknown = "00000000-0000-4000-8000-00000000dead"
    refused = client.post(NEW, booking_post(clinic, TUESDAY, "10:00", patient=unknown))
    assert refused.status_code == 400
    assert not Booking.objects.exists()
    response = client.post(NEW, booking_post(clinic, TUESDAY, "10:00", patient=str(other.uuid)))
    assert response.status_code == 302
    booking = Booking.objects.get()
    assert booking.patient == other
    assert response["Location"] == reverse(
        "treatments:booking_detail", kwargs={"booking": booking.uuid}
    )


def test_booking_page_query_count_is_the_same_with_one_change_or_many(
    client: Client, clinic: Clinic, receptionist: User
) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    booking = _create(clinic, receptionist)
    sign_in(client, receptionist)
    client.get(booking.get_absolute_url())
    with CaptureQueriesContext(connection) as one:
        client.get(booking.get_absolute_url())
    rooms = [clinic.other_room, clinic.room]
    for hour in range(11, 16):
        booking_move(
            booking=booking,
            starts_at=at(TUESDAY, hour),
            ends_at=at(TUESDAY, hour, 45),
            practitioner=clinic.practitioner,
            room=rooms[hour % 2],
            moved_by=receptionist,
            expected_version=None,
        )
    booking_mark(booking=booking, status="arrived", marked_by=receptionist)
    with CaptureQueriesContext(connection) as many:
        response = client.get(booking.get_absolute_url())
    assert response.content.decode().count("moved") >= 5
    assert len(one) == len(many) <= 14


def test_reminders_follow_the_booking_when_it_is_made_moved_and_cancelled(
    clinic: Clinic, receptionist: User
) -> None:
    from treatments.models import Reminder, ReminderStatus

    booking = _create(
        clinic,
        receptionist,
        starts_at=at(MONDAY + timedelta(days=3), 10),
        ends_at=at(MONDAY + timedelta(days=3), 10, 45),
    )
    planned = Reminder.objects.filter(booking=booking, status=ReminderStatus.PLANNED)
    assert planned.count() >= 1
    assert set(planned.values_list("slot_starts_at", flat=True)) == {booking.starts_at}
    booking_move(
        booking=booking,
        starts_at=at(MONDAY + timedelta(days=4), 11),
        ends_at=at(MONDAY + timedelta(days=4), 11, 45),
        practitioner=clinic.practitioner,
        room=clinic.room,
        moved_by=receptionist,
        expected_version=None,
    )
    assert set(planned.values_list("slot_starts_at", flat=True)) == {
        at(MONDAY + timedelta(days=4), 11)
    }
    booking_cancel(booking=booking, reason="Holiday", cancelled_by=receptionist)
    assert not planned.exists()
