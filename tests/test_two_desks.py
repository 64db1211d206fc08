"""Two desks, one record, no lost edits: after a 409 the page carries the
record's version now and what the person typed, so a second, deliberate save
goes through and writes only what they changed (clinic.concurrency,
clinic.forms.VersionedFormMixin). Text sent back with the browser's "\\r\\n"
is no change. A stale cancellation is refused. A form sent to a record merged
meanwhile shows what was typed. Every form is posted as the page gave it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.test import Client
from django.urls import reverse

from clinic.models import AuditAction, AuditEvent, User
from clinic.roles import Role
from consent.models import ConsentForm, ConsentFormVersion
from patients.models import Patient
from tests.conftest import sign_in
from tests.factories import (
    AftercareSheetFactory,
    ConsentFormFactory,
    ConsentFormVersionFactory,
    PatientFactory,
)
from tests.pageforms import form_data
from tests.treatments import test_booking_support as support
from tests.treatments.test_booking_support import MONDAY, NOW, Clinic, at, book
from treatments.models import Booking, BookingStatus
from treatments.services.booking import booking_move

pytestmark = pytest.mark.django_db

LONDON = ZoneInfo("Europe/London")
OPENED = datetime(2026, 5, 14, 10, 0, tzinfo=LONDON)
SAVED = OPENED + timedelta(minutes=2)
clinic = support.clinic


@pytest.fixture
def clock() -> Iterator[time_machine.Coordinates]:
    with time_machine.travel(OPENED, tick=False) as traveller:
        yield traveller


@pytest.fixture
def other_receptionist(make_staff: Callable[..., User]) -> User:
    return make_staff("reception-2", Role.RECEPTIONIST, first_name="Nadia", last_name="Osei")


@pytest.fixture
def other_manager(make_staff: Callable[..., User]) -> User:
    return make_staff("manager-2", Role.MANAGER, first_name="Mina", last_name="Patel")


def open_both(url: str, first: User, second: User) -> tuple[Client, str, Client, str]:
    """Two people signed in on their own browsers, each with the page open."""
    a, b = sign_in(Client(), first), sign_in(Client(), second)
    page_a, page_b = a.get(url), b.get(url)
    assert page_a.status_code == page_b.status_code == 200
    return a, page_a.content.decode(), b, page_b.content.decode()


def updates_of(obj: Any) -> list[list[str]]:
    """The changed fields of each update of `obj` in the audit trail, oldest first."""
    events = AuditEvent.objects.filter(
        object_type=obj._meta.label_lower, object_id=str(obj.uuid), action=AuditAction.UPDATE
    ).order_by("at", "id")
    return [e.changed_fields for e in events]


# --- Item: after a 409, Save succeeds and overwrites only what was typed -------------


@pytest.fixture
def patient(clock: time_machine.Coordinates) -> Patient:
    return PatientFactory(
        first_name="Amelia",
        last_name="Hart",
        date_of_birth=date(1986, 4, 12),
        email="amelia.hart@example.org",
        phone="+447911123456",
        address="1 High Street\nBath",
        reminder_channel="sms",
    )


def test_after_a_409_saving_again_keeps_the_other_desks_change_and_saves_only_what_was_typed(
    clock: time_machine.Coordinates,
    patient: Patient,
    receptionist: User,
    other_receptionist: User,
) -> None:
    url = reverse("patients:edit", kwargs={"patient": patient.uuid})
    a, page_a, b, page_b = open_both(url, receptionist, other_receptionist)

    clock.move_to(SAVED)
    assert a.post(url, form_data(page_a, phone="07912 345678")).status_code == 302
    refused = b.post(url, form_data(page_b, email="amelia@newmail.example"))

    assert refused.status_code == 409
    body = refused.content.decode()
    assert 'data-testid="stale-save-again"' in body
    again = form_data(body)
    assert again["email"] == "amelia@newmail.example"  # what B typed is kept
    assert again["phone"] == "07912 345678"  # B left it: it shows A's number now
    assert "You had not changed it, so it now shows their value." in body
    assert again["version"] == "2"  # the record's version now

    saved = b.post(url, again)

    assert saved.status_code == 302
    patient.refresh_from_db()
    assert patient.phone.as_e164 == "+447912345678"  # A's change survives
    assert patient.email == "amelia@newmail.example"
    assert patient.address == "1 High Street\nBath"  # sent back with "\r\n": no change
    assert updates_of(patient) == [["phone", "version=2"], ["email", "version=3"]]


def test_a_field_both_desks_changed_shows_theirs_beside_it_and_the_second_save_is_deliberate(
    clock: time_machine.Coordinates,
    patient: Patient,
    receptionist: User,
    other_receptionist: User,
) -> None:
    url = reverse("patients:edit", kwargs={"patient": patient.uuid})
    a, page_a, b, page_b = open_both(url, receptionist, other_receptionist)

    clock.move_to(SAVED)
    assert a.post(url, form_data(page_a, postcode="BA1 1AA")).status_code == 302
    refused = b.post(url, form_data(page_b, postcode="BA2 2BB"))

    assert refused.status_code == 409
    body = refused.content.decode()
    assert form_data(body)["postcode"] == "BA2 2BB"
    assert "theirs is BA1 1AA. You changed it too: saving again keeps yours." in body
    assert b.post(url, form_data(body)).status_code == 302
    patient.refresh_from_db()
    assert patient.postcode == "BA2 2BB"


def test_an_aftercare_sheet_sent_back_with_browser_line_endings_changes_only_what_was_typed(
    clock: time_machine.Coordinates, manager: User, other_manager: User
) -> None:
    sheet = AftercareSheetFactory(
        do_advice="Keep the area clean\nDrink water",
        # Saved long ago as a browser sent it.
        avoid_advice="Make-up: for 12 hours\r\nSauna: for 48 hours ",
        warning_signs="Fever\nSpreading redness",
    )
    url = reverse("treatments:sheet_edit", kwargs={"sheet": sheet.uuid})
    a, page_a, b, page_b = open_both(url, manager, other_manager)

    clock.move_to(SAVED)
    do = "Keep the area clean\nDrink water\nSleep on your back"
    assert a.post(url, form_data(page_a, do_advice=do)).status_code == 302
    # The first save names the one section typed, though every text came back "\r\n".
    assert updates_of(sheet) == [["do_advice", "version=2"]]
    refused = b.post(url, form_data(page_b, warning_signs="Fever\nSpreading redness\nPus"))

    assert refused.status_code == 409
    body = refused.content.decode()
    notice = body[body.index('data-testid="stale-changes"') : body.index("</table>")]
    assert notice.count('data-testid="stale-change"') == 1  # only the section A changed
    assert "What to do" in notice
    assert b.post(url, form_data(body)).status_code == 302
    sheet.refresh_from_db()
    assert sheet.do_advice == do
    assert sheet.warning_signs == "Fever\nSpreading redness\nPus"
    assert sheet.avoid_advice == "Make-up: for 12 hours\r\nSauna: for 48 hours "  # untouched
    assert updates_of(sheet)[-1] == ["version=3", "warning_signs"]


def test_a_new_draft_names_only_the_sections_that_differ_and_saves_again_over_it(
    clock: time_machine.Coordinates, manager: User, other_manager: User
) -> None:
    form: ConsentForm = ConsentFormVersionFactory(form=ConsentFormFactory(title="Face")).form
    url = reverse("consent:draft_edit", kwargs={"form": form.uuid})
    a, page_a, b, page_b = open_both(url, manager, other_manager)  # no draft yet

    clock.move_to(SAVED)
    assert a.post(url, form_data(page_a, benefits="Brighter skin. A")).status_code == 302
    draft = form.versions.get(published_at__isnull=True)
    created = AuditEvent.objects.get(object_id=str(draft.uuid), action=AuditAction.CREATE)
    assert created.changed_fields == ["benefits", f"version={draft.version}"]
    refused = b.post(url, form_data(page_b, aftercare="No sauna for 48 hours. B"))

    assert refused.status_code == 409
    body = refused.content.decode()
    notice = body[body.index('data-testid="stale-changes"') : body.index("</table>")]
    assert notice.count('data-testid="stale-change"') == 1
    assert "Expected benefits" in notice
    assert b.post(url, form_data(body)).status_code == 302
    draft = ConsentFormVersion.objects.get(pk=draft.pk)
    assert (draft.benefits, draft.aftercare) == ("Brighter skin. A", "No sauna for 48 hours. B")


def test_a_save_writes_only_the_fields_typed_since_the_form_was_opened(
    clock: time_machine.Coordinates, patient: Patient, receptionist: User
) -> None:
    """Even from a page that still shows an older value in a field the person
    left alone (the values it was opened with travel with it)."""
    url = reverse("patients:edit", kwargs={"patient": patient.uuid})
    desk = sign_in(Client(), receptionist)
    page = desk.get(url).content.decode()
    Patient.objects.filter(pk=patient.pk).update(postcode="BA1 1AA")  # not through a form

    saved = desk.post(url, form_data(page, email="amelia@newmail.example"))

    assert saved.status_code == 302
    patient.refresh_from_db()
    assert (patient.email, patient.postcode) == ("amelia@newmail.example", "BA1 1AA")
    assert updates_of(patient) == [["email", "version=2"]]


# --- Item: a state change carries the version the person saw --------------------------


@pytest.fixture
def thursday_booking(clinic: Clinic, receptionist: User) -> Booking:
    with time_machine.travel(NOW, tick=False):
        return book(
            patient=clinic.patient,
            practitioner=clinic.practitioner,
            room=clinic.room,
            protocol=clinic.protocol,
            starts_at=at(MONDAY + timedelta(days=3), 11),
        )


def test_cancelling_a_booking_moved_since_the_page_was_opened_is_refused_then_deliberate(
    clinic: Clinic,
    thursday_booking: Booking,
    receptionist: User,
    other_receptionist: User,
) -> None:
    booking = thursday_booking
    with time_machine.travel(NOW, tick=False) as clock:
        url = reverse("treatments:booking_detail", kwargs={"booking": booking.uuid})
        cancel = reverse("treatments:booking_cancel", kwargs={"booking": booking.uuid})
        desk_a = sign_in(Client(), receptionist)
        page = desk_a.get(url).content.decode()
        clock.move_to(NOW + timedelta(minutes=2))
        friday = at(MONDAY + timedelta(days=4), 15)
        booking_move(
            booking=booking,
            starts_at=friday,
            ends_at=friday + timedelta(minutes=45),
            practitioner=clinic.practitioner,
            room=clinic.room,
            moved_by=other_receptionist,
            expected_version=1,
        )
        reason = "Patient phoned: cannot come on Thursday morning"
        refused = desk_a.post(cancel, form_data(page, action=cancel, reason=reason))

        assert refused.status_code == 409
        body = refused.content.decode()
        assert "Nadia Osei" in body
        assert "Starts" in body
        booking.refresh_from_db()
        assert (booking.status, booking.starts_at) == (BookingStatus.BOOKED, friday)
        again = form_data(body, action=cancel)
        assert again["reason"] == reason  # what was typed is kept
        assert desk_a.post(cancel, again).status_code == 302
        booking.refresh_from_db()
        assert booking.status == BookingStatus.CANCELLED


def test_marking_arrived_from_a_page_showing_an_older_booking_is_refused(
    clinic: Clinic,
    thursday_booking: Booking,
    receptionist: User,
    other_receptionist: User,
) -> None:
    booking = thursday_booking
    with time_machine.travel(NOW, tick=False):
        url = reverse("treatments:booking_detail", kwargs={"booking": booking.uuid})
        mark = reverse("treatments:booking_mark", kwargs={"booking": booking.uuid})
        desk_a = sign_in(Client(), receptionist)
        page = desk_a.get(url).content.decode()
        other = sign_in(Client(), other_receptionist)
        cancel = reverse("treatments:booking_cancel", kwargs={"booking": booking.uuid})
        other_page = other.get(url).content.decode()
        assert (
            other.post(cancel, form_data(other_page, action=cancel, reason="Ill")).status_code
            == 302
        )

        refused = desk_a.post(mark, form_data(page, action=mark))

        assert refused.status_code == 409
        assert "Cancelled" in refused.content.decode()
        booking.refresh_from_db()
        assert booking.status == BookingStatus.CANCELLED


# --- Item: a form sent to a record merged meanwhile shows what was typed ----------------


def test_a_form_sent_to_a_merged_record_shows_what_was_typed_and_links_to_the_survivor(
    clock: time_machine.Coordinates, patient: Patient, receptionist: User
) -> None:
    survivor = PatientFactory(first_name="Amelia", last_name="Hart")
    url = reverse("patients:edit", kwargs={"patient": patient.uuid})
    desk = sign_in(Client(), receptionist)
    page = desk.get(url).content.decode()
    Patient.objects.filter(pk=patient.pk).update(
        merged_into=survivor, merged_at=SAVED, merged_by=receptionist
    )

    refused = desk.post(
        url,
        form_data(page, gp_details="Dr Jones, typed carefully", address="9 Long Street\nBath"),
    )

    assert refused.status_code == 409
    body = refused.content.decode()
    typed = body[body.index('data-testid="typed-values"') :]
    assert "GP (doctor) and practice" in typed
    assert "Dr Jones, typed carefully" in typed
    assert "9 Long Street<br>Bath" in typed
    assert f"/patients/{survivor.uuid}/edit/" in body
    assert "Go back to copy" not in body
