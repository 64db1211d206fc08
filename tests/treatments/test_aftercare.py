"""Aftercare sheets: queueing, rendering to PDF, idempotency, escaping, the
stale sweep, and the staff status block and actions."""

from __future__ import annotations

import subprocess
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import time_machine
from django.core import mail
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from clinic.documents import MAX_ATTEMPTS
from clinic.models import AuditAction, AuditEvent, User
from clinic.roles import Role
from patients.models import Patient
from tests.clinic_settings_support import settings_saved
from tests.conftest import sign_in
from tests.factories import BatchFactory, PatientFactory, ProtocolFactory, UserFactory
from treatments.models import (
    Booking,
    BookingStatus,
    CocktailLine,
    DownloadLink,
    PatientDocument,
    PatientDocumentStatus,
    Protocol,
    Room,
    SessionRecord,
    TreatmentCourse,
)
from treatments.services import aftercare as service

pytestmark = pytest.mark.django_db


# --- Helpers shared by the aftercare, link and portal tests ---------------------------


def completed_session(
    *,
    patient: Patient | None = None,
    protocol: Protocol | None = None,
    areas: tuple[str, ...] = ("face", "neck"),
    starts_at: Any = None,
    course: TreatmentCourse | None = None,
    notes: str = "",
) -> SessionRecord:
    """A completed booking with its session record and one cocktail line per area."""
    patient = patient or PatientFactory()
    protocol = protocol or ProtocolFactory()
    practitioner = UserFactory(roles=[Role.PRACTITIONER])
    room = Room.objects.create(name=f"Room {Room.objects.count() + 1}")
    starts_at = starts_at or timezone.now().replace(microsecond=0) - timedelta(hours=2)
    booking = Booking.objects.create(
        patient=patient,
        practitioner=practitioner,
        room=room,
        protocol=protocol,
        course=course,
        starts_at=starts_at,
        ends_at=starts_at + timedelta(minutes=45),
        status=BookingStatus.COMPLETED,
        created_by=practitioner,
    )
    record = SessionRecord.objects.create(
        booking=booking,
        numbing_cream=True,
        notes=notes,
        completed_at=booking.ends_at,
        completed_by=practitioner,
    )
    batch = BatchFactory()
    for area in areas:
        CocktailLine.objects.create(
            session=record,
            batch=batch,
            amount=Decimal("1.00"),
            unit="ml",
            area=area,
            technique="nappage",
            depth_mm=Decimal("1.0"),
            needle_gauge=32,
            device="syringe",
        )
    return record


def book_next(record: SessionRecord, *, days: int = 14) -> Booking:
    previous = record.booking
    starts_at = previous.starts_at + timedelta(days=days)
    return Booking.objects.create(
        patient=previous.patient,
        practitioner=previous.practitioner,
        room=previous.room,
        protocol=previous.protocol,
        course=previous.course,
        starts_at=starts_at,
        ends_at=starts_at + timedelta(minutes=45),
        status=BookingStatus.BOOKED,
        created_by=previous.practitioner,
    )


def queued_document(record: SessionRecord) -> PatientDocument:
    with mock.patch.object(service, "aftercare_enqueue", return_value=True):
        return service.aftercare_queue(session=record)


def ready_document(record: SessionRecord | None = None, **kwargs: Any) -> PatientDocument:
    record = record or completed_session(**kwargs)
    document = queued_document(record)
    return service.aftercare_render(document_id=document.pk)


def pdf_text(data: bytes, tmp_path: Path, *, layout: bool = True) -> str:
    path = tmp_path / "sheet.pdf"
    path.write_bytes(data)
    result = subprocess.run(
        ["pdftotext", *(["-layout"] if layout else []), str(path), "-"],
        capture_output=True,
        check=True,
        text=True,
    )
    return result.stdout


def file_bytes(document: PatientDocument) -> bytes:
    with document.file.open("rb") as handle:
        return handle.read()


# --- Queueing -------------------------------------------------------------------------


def test_queueing_twice_makes_one_document_and_queues_the_render_once(
    django_capture_on_commit_callbacks: Any,
) -> None:
    record = completed_session()
    with (
        mock.patch.object(service, "aftercare_enqueue", return_value=True) as enqueue,
        django_capture_on_commit_callbacks(execute=True),
    ):
        first = service.aftercare_queue(session=record)
        second = service.aftercare_queue(session=record)
    assert first.pk == second.pk
    assert PatientDocument.objects.filter(session=record).count() == 1
    assert first.status == PatientDocumentStatus.QUEUED
    enqueue.assert_called_once_with(document_id=first.pk)


def test_a_broker_that_is_down_leaves_the_document_queued_and_the_caller_unharmed(
    django_capture_on_commit_callbacks: Any, caplog: pytest.LogCaptureFixture
) -> None:
    from treatments.tasks.aftercare import aftercare_render as task

    record = completed_session()
    with (
        mock.patch.object(task, "apply_async", side_effect=ConnectionError("refused")),
        django_capture_on_commit_callbacks(execute=True),
    ):
        document = service.aftercare_queue(session=record)
    document.refresh_from_db()
    assert document.status == PatientDocumentStatus.QUEUED
    assert "Could not queue aftercare document" in caplog.text


def test_stale_queued_documents_are_queued_again_after_two_minutes_only() -> None:
    start = timezone.now()
    stale = queued_document(completed_session())
    with time_machine.travel(start + timedelta(minutes=1), tick=False):
        fresh = queued_document(completed_session())
    with (
        time_machine.travel(start + timedelta(minutes=2, seconds=30), tick=False),
        mock.patch.object(service, "aftercare_enqueue", return_value=True) as enqueue,
    ):
        assert service.aftercare_requeue_stale() == 1
        enqueue.assert_called_once_with(document_id=stale.pk)
        # The clock restarted: the next sweep leaves it alone.
        assert service.aftercare_requeue_stale() == 0
    assert fresh.pk != stale.pk


def test_a_document_that_keeps_failing_to_queue_is_given_up_as_failed() -> None:
    document = queued_document(completed_session())
    PatientDocument.objects.filter(pk=document.pk).update(attempts=MAX_ATTEMPTS)
    with time_machine.travel(timezone.now() + timedelta(minutes=3), tick=False):
        service.aftercare_requeue_stale()
    document.refresh_from_db()
    assert document.status == PatientDocumentStatus.FAILED


# --- Rendering ------------------------------------------------------------------------


def test_the_sheet_names_the_patient_date_areas_advice_warnings_and_next_session(
    tmp_path: Path,
) -> None:
    patient = PatientFactory(first_name="Imogen", last_name="Hartley-Sykes")
    starts_at = timezone.make_aware(timezone.datetime(2026, 11, 10, 10, 0))
    record = completed_session(patient=patient, areas=("face", "scalp"), starts_at=starts_at)
    book_next(record, days=14)
    document = ready_document(record)
    assert document.status == PatientDocumentStatus.READY
    text = pdf_text(file_bytes(document), tmp_path)
    assert "Imogen Hartley-Sykes" in text
    assert "48 hours" in text
    assert "Face" in text
    assert "Scalp" in text
    # A sheet is kept for years: its dates always carry the year.
    assert "Tue 10 Nov 2026" in text
    assert "Tue 24 Nov 2026, 10:00" in text  # the next session
    assert "Spreading redness" in text  # the sheet's warning signs
    assert "999" in text
    assert "Meso Clinic" in text or "Clinic" in text


def test_the_sheet_gives_the_clinic_name_phone_address_and_email_from_its_settings(
    tmp_path: Path,
) -> None:
    settings_saved(
        clinic_name="Harley Row Aesthetics",
        clinic_phone="+442079460123",
        clinic_address="12 Harley Row, London",
        clinic_email="desk@harleyrow.example",
    )
    text = pdf_text(file_bytes(ready_document()), tmp_path)
    assert "Harley Row Aesthetics" in text
    assert "020 7946 0123" in text
    assert "12 Harley Row, London" in text
    assert "desk@harleyrow.example" in text


def test_the_sheet_says_when_no_next_session_is_booked(tmp_path: Path) -> None:
    text = pdf_text(file_bytes(ready_document()), tmp_path)
    assert "No further session is booked" in text


def test_the_sheet_is_a4(tmp_path: Path) -> None:
    path = tmp_path / "sheet.pdf"
    path.write_bytes(file_bytes(ready_document()))
    info = subprocess.run(["pdfinfo", str(path)], capture_output=True, text=True, check=True)
    assert "595.28 x 841.89 pts (A4)" in info.stdout or "(A4)" in info.stdout


def test_patient_text_with_an_img_tag_prints_as_text_and_nothing_outside_static_is_fetched(
    tmp_path: Path,
) -> None:
    from clinic import pdf as pdf_module

    hostile = '<img src="file:///etc/passwd">'
    patient = PatientFactory(first_name=hostile, last_name="Doe", email="hostile@example.org")
    record = completed_session(patient=patient, notes=hostile)
    document = queued_document(record)
    asked: list[str] = []
    original = pdf_module.StaticOnlyFetcher.fetch

    def spy(self: Any, url: str, headers: Any = None) -> Any:
        asked.append(url)
        return original(self, url, headers)

    with mock.patch.object(pdf_module.StaticOnlyFetcher, "fetch", spy):
        document = service.aftercare_render(document_id=document.pk)
    assert document.status == PatientDocumentStatus.READY
    text = pdf_text(file_bytes(document), tmp_path, layout=False)
    # The name is printed as typed, angle brackets and all (wrapped in its cell).
    assert '<imgsrc="file:///etc/passwd">Doe' in "".join(text.split())
    assert asked, "the stylesheet goes through the fetcher"
    assert not [u for u in asked if u.startswith("file:") or "passwd" in u]


def test_rendering_twice_keeps_one_file_and_one_row_and_the_same_checksum() -> None:
    document = ready_document()
    first_name, first_sum = document.file.name, document.sha256
    again = service.aftercare_render(document_id=document.pk)
    assert again.pk == document.pk
    assert again.file.name == first_name
    assert again.sha256 == first_sum
    assert PatientDocument.objects.filter(session=document.session).count() == 1
    folder = Path(again.file.path).parent
    assert sorted(p.name for p in folder.glob(f"{again.uuid}*")) == [f"{again.uuid}.pdf"]


def test_the_checksum_changes_when_the_content_does_and_the_file_is_replaced() -> None:
    document = ready_document()
    before = document.sha256
    sheet = document.session.booking.protocol.aftercare_sheet
    sheet.do_advice += "\nDrink plenty of water."
    sheet.save()
    again = service.aftercare_render(document_id=document.pk)
    assert again.sha256 != before
    assert again.file.name == document.file.name
    assert service.sha256_hex(file_bytes(again)) == again.sha256


def test_a_render_error_is_recorded_and_tried_again_with_no_patient_data_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    patient = PatientFactory(first_name="Secretname")
    document = queued_document(completed_session(patient=patient))
    with mock.patch("clinic.pdf.render_pdf", side_effect=ValueError("Secretname broke it")):
        failed = service.aftercare_render(document_id=document.pk)
    assert failed.status == PatientDocumentStatus.QUEUED  # tried again after a wait
    assert failed.is_retrying
    assert failed.error == "ValueError"
    assert "Secretname" not in caplog.text
    assert mail.outbox == []


def test_the_first_render_emails_the_patient_a_link_and_a_retry_does_not_email_again() -> None:
    document = ready_document()
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == [document.patient.email]
    assert "/treatments/d/" in message.body
    assert DownloadLink.objects.filter(document=document).count() == 1
    service.aftercare_render(document_id=document.pk)
    assert len(mail.outbox) == 1


def test_a_patient_without_email_gets_the_sheet_made_but_no_email() -> None:
    document = ready_document(patient=PatientFactory(email="", reminder_channel="none"))
    assert document.status == PatientDocumentStatus.READY
    assert mail.outbox == []


def test_the_task_renders_by_id_and_ignores_a_document_that_no_longer_exists() -> None:
    from treatments.tasks.aftercare import aftercare_render as task

    document = queued_document(completed_session())
    task(document.pk)
    document.refresh_from_db()
    assert document.status == PatientDocumentStatus.READY
    task(999_999_999)  # no error


# --- Staff: status block and actions ----------------------------------------------------


@pytest.fixture
def practitioner_client(practitioner: User) -> Client:
    return sign_in(Client(), practitioner)


def _url(name: str, document: PatientDocument) -> str:
    return reverse(
        f"treatments:{name}",
        kwargs={"patient": document.patient.uuid, "document": document.uuid},
    )


def test_the_status_block_polls_while_queued_and_stops_when_ready(
    practitioner_client: Client, django_assert_max_num_queries: Any
) -> None:
    document = queued_document(completed_session())
    with django_assert_max_num_queries(12):
        response = practitioner_client.get(_url("document_status", document))
    body = response.content.decode()
    assert response.status_code == 200
    assert 'hx-trigger="every 2s"' in body
    assert "Being prepared" in body
    document = service.aftercare_render(document_id=document.pk)
    for _ in range(5):
        service.aftercare_send(document=document, sent_by=None)
    with django_assert_max_num_queries(12):
        response = practitioner_client.get(_url("document_status", document))
    body = response.content.decode()
    assert "hx-trigger" not in body
    assert "Ready" in body
    assert "6 emailed links still open" in body


def test_the_status_block_shows_a_failure(practitioner_client: Client) -> None:
    document = queued_document(completed_session())
    PatientDocument.objects.filter(pk=document.pk).update(
        status="failed", error="OSError", next_attempt_at=None
    )
    body = practitioner_client.get(_url("document_status", document)).content.decode()
    assert "PDF could not be made" in body
    assert _url("document_regenerate", document) in body
    assert "hx-trigger" not in body


def test_staff_download_is_audited_and_private(practitioner_client: Client) -> None:
    document = ready_document()
    response = practitioner_client.get(_url("document_download", document))
    assert response.status_code == 200
    assert b"".join(response.streaming_content).startswith(b"%PDF")
    assert "no-store" in response["Cache-Control"]
    assert response["X-Content-Type-Options"] == "nosniff"
    assert AuditEvent.objects.filter(
        action=AuditAction.DOWNLOAD, patient_ref=document.patient.uuid
    ).exists()


def test_another_patients_document_id_is_404_for_staff(practitioner_client: Client) -> None:
    document = ready_document()
    other = PatientFactory()
    url = reverse(
        "treatments:document_download",
        kwargs={"patient": other.uuid, "document": document.uuid},
    )
    assert practitioner_client.get(url).status_code == 404


def test_reception_cannot_download_the_sheet(receptionist: User) -> None:
    document = ready_document()
    client = sign_in(Client(), receptionist)
    assert client.get(_url("document_download", document)).status_code == 403


def test_send_again_emails_a_new_link_and_keeps_the_old_one(receptionist: User) -> None:
    document = ready_document()
    client = sign_in(Client(), receptionist)
    response = client.post(_url("document_send", document))
    assert response.status_code == 302
    assert len(mail.outbox) == 2
    links = DownloadLink.objects.filter(document=document)
    assert links.count() == 2
    assert not links.filter(revoked_at__isnull=False).exists()


def test_revoke_stops_every_live_link(receptionist: User) -> None:
    document = ready_document()
    service.aftercare_send(document=document, sent_by=None)
    client = sign_in(Client(), receptionist)
    client.post(_url("document_revoke", document))
    assert not DownloadLink.objects.filter(document=document, revoked_at__isnull=True).exists()


def test_regenerate_requeues_and_replaces_the_file_at_the_same_path(
    practitioner_client: Client, django_capture_on_commit_callbacks: Any
) -> None:
    document = ready_document()
    name = document.file.name
    with (
        mock.patch.object(service, "aftercare_enqueue", return_value=True) as enqueue,
        django_capture_on_commit_callbacks(execute=True),
    ):
        response = practitioner_client.post(_url("document_regenerate", document))
    assert response.status_code == 302
    enqueue.assert_called_once_with(document_id=document.pk)
    document.refresh_from_db()
    assert document.status == PatientDocumentStatus.QUEUED
    again = service.aftercare_render(document_id=document.pk)
    assert again.status == PatientDocumentStatus.READY
    assert again.file.name == name
    assert len(mail.outbox) == 1  # no second email for a remake


def test_sending_for_a_patient_without_email_says_so() -> None:
    document = ready_document(patient=PatientFactory(email="", reminder_channel="none"))
    with pytest.raises(Exception, match="no email address"):
        service.aftercare_send(document=document, sent_by=None)


def test_time_passes_and_links_expire_after_the_configured_days() -> None:
    document = ready_document()
    link = DownloadLink.objects.get(document=document)
    assert abs(link.expires_at - link.created_at - timedelta(days=7)) < timedelta(seconds=1)
    with time_machine.travel(link.expires_at + timedelta(seconds=1), tick=False):
        assert not DownloadLink.objects.filter(pk=link.pk, expires_at__gt=timezone.now()).exists()


def test_the_session_page_context_for_the_status_block_renders_in_two_queries(
    django_assert_num_queries: Any,
) -> None:
    from django.template.loader import render_to_string

    from treatments.selectors.portal import document_status_context

    record = completed_session()
    assert document_status_context(session=record) == {"document": None, "live_links": []}
    document = ready_document(record)
    with django_assert_num_queries(2):
        context = document_status_context(session=record)
        html = render_to_string(
            "treatments/document_status.html", {"patient": document.patient, **context}
        )
    assert context["document"] == document
    assert "1 emailed link still opens" in html
