"""Every form that creates a row carries a one-time token, every form that
changes a record or its state carries the version it was opened with, and
every multi-line text is taken as a text block (clinic.forms). A form sent
twice, even at the same instant, saves once, and the second sending leads to
what the first saved with a plain "already saved"."""

from __future__ import annotations

import importlib
import pkgutil
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django import forms
from django.test import Client
from django.urls import reverse

from clinic.forms import SubmissionTokenMixin, TextBlocksMixin, VersionedFormMixin
from clinic.models import User
from tests.conftest import sign_in
from tests.pageforms import form_data
from tests.races import post_at_once
from tests.treatments import test_booking_support as support
from tests.treatments.test_booking_support import MONDAY, Clinic
from tests.treatments.test_session_helpers import make_world, session_post
from treatments.models import (
    AdverseEvent,
    Booking,
    BookingStatus,
    SessionAmendment,
    SessionRecord,
    TreatmentCourse,
)

clinic = support.clinic
frozen = support.frozen
ALREADY = "This was already saved: the form was sent twice, and saved once."
APPS = ("clinic", "patients", "consent", "treatments")

# --- Every form of the application, classified --------------------------------------------

# Forms that create a row: each carries a one-time token (SubmissionTokenMixin).
CREATES = {
    "clinic.admin.StaffCreationForm": "a staff account",
    "clinic.staff_forms.StaffInviteForm": "an invitation to join the staff",
    "patients.forms.PatientRegistrationForm": "a patient (its own registration token)",
    "patients.forms.MedicalHistoryForm": "a signed medical history",
    "patients.forms.ConsultationForm": "a consultation",
    "patients.forms.PhotoForm": "a photo",
    "treatments.forms.data_rights.ErasureRequestForm": "a patient's request to erase",
    "consent.forms.ConsentFormCreateForm": "a consent form",
    "consent.forms.SignForm": "a signed consent",
    "consent.forms.WithdrawForm": "a withdrawal",
    "treatments.forms.allergy.AllergyTestForm": "an allergy test",
    "treatments.forms.allergy.AllergyReadingForm": "a reading (and the allergies found)",
    "treatments.forms.booking.BookingForm": "a booking",
    "treatments.forms.booking.CourseStartForm": "a course's first session (a booking form)",
    "treatments.forms.booking.CourseConfirmForm": "a course and its bookings",
    "treatments.forms.booking.RoomForm": "a room (and edits one)",
    "treatments.forms.booking.WorkingHoursForm": "an interval of working hours",
    "treatments.forms.booking.ClosureForm": "a clinic closure (and edits one)",
    "treatments.forms.catalogue.IngredientForm": "an ingredient (and edits one)",
    "treatments.forms.catalogue.ProductForm": "a product (and edits one)",
    "treatments.forms.catalogue.BatchForm": "a batch",
    "treatments.forms.catalogue.AftercareSheetForm": "an aftercare sheet (and edits one)",
    "treatments.forms.catalogue.ProtocolForm": "a protocol (and edits one)",
    "treatments.forms.session.SessionForm": "a session record (completing the booking)",
    "treatments.forms.session.AmendmentForm": "an amendment",
    "treatments.forms.session.LaterAdverseEventForm": "a later adverse event",
    "treatments.forms.session.AdverseEventFollowUpForm": "a follow-up of an adverse event",
    "treatments.forms.portal.PortalInviteForm": "a portal invitation (and its sign-in link)",
    "treatments.forms.portal.SendLinkForm": "a new aftercare download link",
}
# Forms that change a record or its state: each carries the version it was opened with.
CHANGES = {
    "patients.forms.PatientForm": "a patient's contact details",
    "clinic.clinic_settings_forms.ClinicSettingsForm": "the clinic's settings (a new version)",
    "consent.forms.DraftForm": "a consent form's draft",
    "consent.forms.PublishForm": "publishing a draft",
    "treatments.forms.booking.BookingMoveForm": "a booking's time, practitioner or room",
    "treatments.forms.booking.BookingCancelForm": "cancelling a booking",
    "treatments.forms.booking.BookingMarkForm": "arrived, did not come, back to booked",
    "treatments.forms.booking.WorkingHoursClearForm": "clearing a day of working hours",
    "treatments.forms.booking.ClosureRemoveForm": "removing a closure",
}
# Forms that write nothing themselves, or carry their versions otherwise; and why.
OTHERS = {
    "clinic.forms.TokenForm": "a sign-in code",
    "clinic.views.SignInLockLiftForm": "lifts a sign-in lock: sent again, nothing is left to lift",
    "clinic.staff_forms.SecondFactorForm": "a sign-in code or a backup code",
    "clinic.staff_forms.StepUpForm": "confirms who is there: sent again, its code is refused",
    "clinic.staff_forms.InvitationActionForm": "sends an invitation again or cancels it",
    "clinic.staff_forms.StaffActionForm": "one change to a person: sent again, nothing left to do",
    "clinic.staff_forms.AccountActionForm": "new backup codes or a new phone: each shown at once",
    "clinic.staff_forms.StaffJoinForm": "joining with a link that works once: sent again, refused",
    "clinic.forms.AuditFilterForm": "filters a list",
    "patients.forms.PatientSearchForm": "a search",
    "treatments.forms.reports.ReportFilterForm": "the reports' range and practitioner",
    "patients.forms.PhotoCompareForm": "chooses two photos to show",
    "treatments.forms.booking.CalendarQueryForm": "the calendar's query string",
    "treatments.forms.booking.LocalStartMixin": "part of the booking and move forms",
    "treatments.forms.booking.NextFreeSlotForm": "a search for a free time",
    "treatments.forms.booking.BookingCheckForm": "asks whether the patient can be treated then",
    "treatments.forms.catalogue.RecallForm": "a recall, refused when done (never twice)",
    "treatments.forms.catalogue.CocktailLineForm": "a line of the protocol form",
    "treatments.forms.session.CocktailLineForm": "a line of the session form",
    "treatments.forms.session.AdverseEventForm": "an event of the session form",
    "treatments.forms.session.DayOfCheckForm": "answers of the session form",
    "treatments.forms.merge.MergeChooseForm": "chooses which record stays",
    "treatments.forms.merge.MergeForm": "a merge: both records' versions of its own",
    "patients.import_forms.ImportUploadForm": "a patient import: the same file twice is refused",
    "patients.import_forms.ImportVersionForm": "an import's own version, part of the forms below",
    "patients.import_forms.ImportMappingForm": "an import's columns, with its version",
    "patients.import_forms.ImportRowForm": "one row of an import, with its version",
    "patients.import_forms.ImportActionForm": "an import's step, with its version",
    "treatments.forms.portal.DateOfBirthForm": "the check before a download",
    "treatments.forms.portal.PortalRequestForm": "asks for a sign-in email",
    "treatments.forms.portal.RevokeLinkForm": "revoking links (done once, harmless again)",
}


def _project_forms() -> dict[str, type[forms.BaseForm]]:
    """Every form class defined in the application's modules, by dotted name."""
    for app in APPS:
        package = importlib.import_module(app)
        for module in pkgutil.walk_packages(package.__path__, f"{app}."):
            if ".migrations" not in module.name and ".management" not in module.name:
                importlib.import_module(module.name)
    found: dict[str, type[forms.BaseForm]] = {}
    pending: list[type] = [forms.BaseForm]
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        if cls.__module__.split(".")[0] in APPS:
            found[f"{cls.__module__}.{cls.__name__}"] = cls
    return found


FORMS = _project_forms()


def test_every_form_is_classified_as_creating_changing_or_neither() -> None:
    unclassified = set(FORMS) - set(CREATES) - set(CHANGES) - set(OTHERS)
    assert not unclassified, f"Classify in CREATES, CHANGES or OTHERS: {sorted(unclassified)}"
    assert not set(CREATES) & set(CHANGES)


def test_every_form_that_creates_a_row_carries_a_one_time_token() -> None:
    missing = [
        name
        for name in CREATES
        if name in FORMS
        and not issubclass(FORMS[name], SubmissionTokenMixin)
        and "registration_token" not in FORMS[name].base_fields
    ]
    assert not missing, f"Create forms without SubmissionTokenMixin: {missing}"


def test_every_form_that_changes_a_record_carries_its_version() -> None:
    missing = [
        name
        for name in CHANGES
        if name in FORMS and not issubclass(FORMS[name], VersionedFormMixin)
    ]
    assert not missing, f"Change forms without VersionedFormMixin: {missing}"


def test_every_multi_line_text_is_taken_as_a_text_block() -> None:
    missing = [
        name
        for name, cls in FORMS.items()
        if any(isinstance(f.widget, forms.Textarea) for f in cls.base_fields.values())
        and not issubclass(cls, TextBlocksMixin)
    ]
    assert not missing, f"Forms with text areas but no TextBlocksMixin: {missing}"


# --- Sent twice at the same instant: saved once ---------------------------------------------

NOON = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def _completed_world(practitioner: User) -> Any:
    world = make_world(practitioner)
    client = sign_in(Client(), practitioner)
    url = reverse("treatments:session_record", kwargs={"booking": world.booking.uuid})
    assert client.post(url, session_post(world.batches)).status_code == 302
    return world, client, url


@pytest.mark.django_db(transaction=True)
def test_an_amendment_sent_twice_at_once_is_added_once(practitioner: User) -> None:
    with time_machine.travel(NOON, tick=False):
        world, first, url = _completed_world(practitioner)
        record = SessionRecord.objects.get(booking=world.booking)
        page = first.get(url).content.decode()
        amend = reverse("treatments:session_amend", kwargs={"session": record.uuid})
        data = form_data(page, action=amend, text="Dose on line 2 was 1.5 mL, not 1 mL.")
        second = sign_in(Client(), practitioner)

        answers = post_at_once([first, second], amend, [data, data])

        assert [a.status for a in answers] == [302, 302], answers
        assert {a.location for a in answers} == {url}
        assert SessionAmendment.objects.filter(session=record).count() == 1
        pages = [c.get(url).content.decode() for c in (first, second)]
    assert sum(ALREADY in p for p in pages) == 1


@pytest.mark.django_db(transaction=True)
def test_a_later_adverse_event_sent_twice_at_once_is_recorded_and_counted_once(
    practitioner: User, manager: User
) -> None:
    with time_machine.travel(NOON, tick=False):
        world, first, url = _completed_world(practitioner)
        record = SessionRecord.objects.get(booking=world.booking)
        page = first.get(url).content.decode()
        new = reverse("treatments:adverse_event_new", kwargs={"session": record.uuid})
        onset = (NOON - timedelta(minutes=5)).astimezone(ZoneInfo("Europe/London"))
        data = form_data(
            page,
            action=new,
            **{
                "later-effect": "bruising",
                "later-severity": "mild",
                "later-onset": onset.strftime("%Y-%m-%dT%H:%M"),
            },
        )
        second = sign_in(Client(), practitioner)

        answers = post_at_once([first, second], new, [data, data])

        assert [a.status for a in answers] == [302, 302], answers
        assert AdverseEvent.objects.filter(session=record).count() == 1
        report = sign_in(Client(), manager).get(reverse("treatments:reports")).content.decode()
    assert report.count("Bruising") >= 1
    assert AdverseEvent.objects.count() == 1


# --- The second of two sends leads to what the first saved ----------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_session_completion_sent_twice_leads_both_to_the_completed_record(
    practitioner: User,
) -> None:
    with time_machine.travel(NOON, tick=False):
        world = make_world(practitioner)
        url = reverse("treatments:session_record", kwargs={"booking": world.booking.uuid})
        first, second = sign_in(Client(), practitioner), sign_in(Client(), practitioner)
        page = first.get(url).content.decode()
        data = {
            **session_post(world.batches),
            "submission_token": form_data(page)["submission_token"],
            "version": form_data(page)["version"],
        }

        answers = post_at_once([first, second], url, [data, data])

        assert [a.status for a in answers] == [302, 302], answers
        assert {a.location for a in answers} == {url}
        assert SessionRecord.objects.filter(booking=world.booking).count() == 1
        pages = [c.get(url).content.decode() for c in (first, second)]
        # Sent again later (the browser's resend): the same answer.
        again = first.post(url, data, follow=True)
    assert sum(ALREADY in p for p in pages) == 1
    assert "already completed" not in "".join(pages)
    assert again.redirect_chain[0][0] == url
    assert ALREADY in again.content.decode()
    assert 'data-testid="booking-status">Completed' in again.content.decode()


@pytest.mark.django_db(transaction=True)
def test_a_course_confirmed_twice_is_booked_once_and_both_lead_to_it(
    frozen: None, clinic: Clinic, receptionist: User
) -> None:
    tuesday = MONDAY + timedelta(days=1)
    url = reverse("treatments:course_new")
    start = {
        "patient": str(clinic.patient.uuid),
        "protocol": str(clinic.protocol.uuid),
        "practitioner": str(clinic.practitioner.uuid),
        "room": str(clinic.room.uuid),
        "date": tuesday.isoformat(),
        "start_time": "10:00",
    }
    first, second = sign_in(Client(), receptionist), sign_in(Client(), receptionist)
    page = first.get(url, start).content.decode()
    data = form_data(page)

    answers = post_at_once([first, second], url, [data, data])

    course = TreatmentCourse.objects.get()
    assert [a.status for a in answers] == [302, 302], answers
    assert {a.location for a in answers} == {course.get_absolute_url()}
    assert Booking.objects.filter(course=course).count() == course.planned_sessions
    pages = [c.get(course.get_absolute_url()).content.decode() for c in (first, second)]
    assert sum(ALREADY in p for p in pages) == 1
    assert "This slot was just taken" not in "".join(pages)
    assert Booking.objects.filter(status=BookingStatus.BOOKED).count() == course.planned_sessions


@pytest.mark.django_db
def test_a_staff_account_form_sent_twice_creates_one_account(superuser: User) -> None:
    with time_machine.travel(NOON, tick=False):
        client = sign_in(Client(), superuser)
        url = reverse("admin:clinic_user_add")
        page = client.get(url).content.decode()
        data = form_data(
            page,
            username="nadia.osei",
            usable_password="true",
            password1="a long pass phrase for Nadia",
            password2="a long pass phrase for Nadia",
        )
        data.pop("_addanother", None)

        first = client.post(url, data)
        again = client.post(url, data, follow=True)

    created = User.objects.get(username="nadia.osei")
    assert first.status_code == 302
    assert again.redirect_chain[0][0] == reverse("admin:clinic_user_change", args=[created.pk])
    assert ALREADY in again.content.decode()
    assert "A user with that username already exists" not in again.content.decode()


@pytest.mark.django_db
def test_a_portal_invitation_sent_twice_emails_once(practitioner: User, mailoutbox: Any) -> None:
    from tests.factories import PatientFactory

    with time_machine.travel(NOON, tick=False):
        patient = PatientFactory(email="amelia@example.org")
        client = sign_in(Client(), practitioner)
        panel = reverse("treatments:patient_treatment_panel", kwargs={"patient": patient.uuid})
        invite = reverse("treatments:portal_invite", kwargs={"patient": patient.uuid})
        data = form_data(client.get(panel).content.decode(), action=invite)

        first = client.post(invite, data)
        again = client.post(invite, data, follow=True)

    assert first.status_code == 302
    assert len(mailoutbox) == 1
    assert ALREADY in again.content.decode()


@pytest.mark.django_db
def test_a_new_aftercare_link_sent_twice_emails_once(
    practitioner: User, mailoutbox: Any, tmp_path: Any
) -> None:
    from django.conf import settings
    from django.test import override_settings

    from tests.factories import PatientFactory
    from tests.treatments.test_aftercare import completed_session, ready_document
    from treatments.models import DownloadLink

    storages = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path)},
        },
    }
    with override_settings(STORAGES=storages), time_machine.travel(NOON, tick=False):
        record = completed_session(patient=PatientFactory(email="amelia@example.org"))
        document = ready_document(record)
        mailoutbox.clear()
        client = sign_in(Client(), practitioner)
        url = reverse("treatments:session_record", kwargs={"booking": record.booking.uuid})
        send = reverse(
            "treatments:document_send",
            kwargs={"patient": document.patient.uuid, "document": document.uuid},
        )
        links_before = DownloadLink.objects.count()
        data = form_data(client.get(url).content.decode(), action=send)

        first = client.post(send, data)
        again = client.post(send, data, follow=True)

    assert first.status_code == 302
    assert DownloadLink.objects.count() == links_before + 1
    assert len(mailoutbox) == 1
    assert ALREADY in again.content.decode()
