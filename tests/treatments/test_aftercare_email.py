"""The email of an aftercare sheet's link: one email per sheet even when the
render task and the sweep run at once, a failed email shown to staff and sent
again, a link that opens only once its email is recorded as sent, and the mail
server spoken to with no transaction open and a bounded wait."""

from __future__ import annotations

import logging
import re
import smtplib
import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any, ClassVar
from unittest import mock

import pytest
import time_machine
from django.conf import settings
from django.core import mail
from django.core.mail.backends.base import BaseEmailBackend
from django.core.mail.backends.locmem import EmailBackend as LocmemBackend
from django.db import connection
from django.test import Client, override_settings
from django.urls import reverse
from django.utils import timezone

from clinic.models import User
from tests.conftest import sign_in
from tests.factories import PatientFactory
from tests.treatments.test_aftercare import completed_session, queued_document
from treatments.models import DownloadLink, EmailStatus, PatientDocument, PatientDocumentStatus
from treatments.services import aftercare as service

THIS = "tests.treatments.test_aftercare_email"
TOKEN = re.compile(r"/treatments/d/([A-Za-z0-9_-]+)/")


@pytest.fixture(autouse=True)
def media_root(tmp_path: Path) -> Iterator[Path]:
    storages = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path)},
        },
    }
    with override_settings(STORAGES=storages, MEDIA_ROOT=str(tmp_path)):
        yield tmp_path


class RefusingBackend(BaseEmailBackend):
    """A mail server that refuses the recipient, quoting the address as servers do."""

    def send_messages(self, email_messages: Any) -> int:
        address = email_messages[0].to[0]
        raise smtplib.SMTPRecipientsRefused({address: (550, f"5.1.1 <{address}> unknown".encode())})


class WatchingBackend(LocmemBackend):
    """Delivers to the outbox and notes, at the moment of sending, whether a
    transaction is open, the timeout the connection was given, and whether the
    link in the message already opens."""

    seen: ClassVar[list[dict[str, Any]]] = []

    def __init__(self, *args: Any, timeout: float | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.timeout = timeout

    def send_messages(self, messages: Any) -> int:
        for message in messages:
            token = TOKEN.search(message.body)
            assert token
            try:
                service.download_link_find(token=token.group(1))
                opens = True
            except service.LinkGoneError:
                opens = False
            WatchingBackend.seen.append(
                {"atomic": connection.in_atomic_block, "timeout": self.timeout, "opens": opens}
            )
        return super().send_messages(messages)


class WorkerDied(BaseException):
    """The worker process killed mid-send: nothing after this line runs."""


class DyingBackend(BaseEmailBackend):
    def send_messages(self, email_messages: Any) -> int:
        raise WorkerDied


@pytest.fixture
def watching() -> Iterator[list[dict[str, Any]]]:
    WatchingBackend.seen = []
    with override_settings(EMAIL_BACKEND=f"{THIS}.WatchingBackend"):
        yield WatchingBackend.seen


def _status_url(document: PatientDocument, name: str = "document_status") -> str:
    return reverse(
        f"treatments:{name}",
        kwargs={"patient": document.patient.uuid, "document": document.uuid},
    )


def _session_url(document: PatientDocument) -> str:
    return reverse("treatments:session_record", kwargs={"booking": document.session.booking.uuid})


def _opens(client: Client, token: str, document: PatientDocument) -> bool:
    response = client.post(
        reverse("treatments:link_open", kwargs={"token": token}),
        {"date_of_birth": document.patient.date_of_birth.isoformat()},
    )
    return response.status_code == 200 and response["Content-Type"] == "application/pdf"


@pytest.mark.django_db
def test_a_failed_email_is_shown_on_the_session_page_and_sent_again_from_there(
    practitioner: User, caplog: pytest.LogCaptureFixture
) -> None:
    patient = PatientFactory(email="harriet.private@example.org")
    record = completed_session(patient=patient)
    with override_settings(EMAIL_BACKEND=f"{THIS}.RefusingBackend"):
        document = service.aftercare_render(document_id=queued_document(record).pk)

    assert document.status == PatientDocumentStatus.READY
    assert document.email_status == EmailStatus.FAILED
    assert document.email_error == "SMTPRecipientsRefused"
    assert mail.outbox == []
    # The link made for the failed email never opens.
    failed_link = DownloadLink.objects.get(document=document)
    assert failed_link.sent_at is None
    assert failed_link.revoked_at is not None
    assert "harriet.private" not in caplog.text  # the refusal quoted the address

    client = sign_in(Client(), practitioner)
    page = client.get(_session_url(document)).content.decode()
    assert "Email failed" in page
    assert "The mail server did not accept it." in page
    assert "0 emailed links still open" in page
    assert 'data-testid="document-send"' in page

    response = client.post(_status_url(document, "document_send"), follow=True)
    assert response.status_code == 200
    assert "A new download link was emailed to the patient." in response.content.decode()
    assert len(mail.outbox) == 1
    document.refresh_from_db()
    assert document.email_status == EmailStatus.SENT
    assert document.emailed_at is not None
    token = TOKEN.search(mail.outbox[0].body)
    assert token
    assert _opens(Client(), token.group(1), document)
    page = client.get(_session_url(document)).content.decode()
    assert "Email failed" not in page
    assert "Link emailed to the patient on" in page


@pytest.mark.django_db
def test_sending_again_to_a_server_that_refuses_says_so_and_shows_it_failed(
    practitioner: User,
) -> None:
    document = service.aftercare_render(document_id=queued_document(completed_session()).pk)
    assert document.email_status == EmailStatus.SENT
    client = sign_in(Client(), practitioner)
    with override_settings(EMAIL_BACKEND=f"{THIS}.RefusingBackend"):
        response = client.post(_status_url(document, "document_send"), follow=True)
    assert response.status_code == 200
    assert "The email could not be sent just now" in response.content.decode()
    document.refresh_from_db()
    assert document.email_status == EmailStatus.FAILED
    assert 'data-testid="email-failed"' in client.get(_status_url(document)).content.decode()


@pytest.mark.django_db
def test_the_link_does_not_open_before_its_email_is_recorded_as_sent(
    watching: list[dict[str, Any]],
) -> None:
    document = service.aftercare_render(document_id=queued_document(completed_session()).pk)
    assert [seen["opens"] for seen in watching] == [False]
    token = TOKEN.search(mail.outbox[0].body)
    assert token
    assert service.download_link_find(token=token.group(1)).document == document  # now it does

    service.aftercare_send(document=document, sent_by=None)  # staff sending again
    assert [seen["opens"] for seen in watching] == [False, False]


@pytest.mark.django_db(transaction=True)
def test_the_mail_server_is_spoken_to_with_no_transaction_open_and_a_bounded_wait(
    watching: list[dict[str, Any]], settings: Any
) -> None:
    settings.EMAIL_TIMEOUT = 7
    document = service.aftercare_render(document_id=queued_document(completed_session()).pk)
    service.aftercare_send(document=document, sent_by=None)
    assert watching == [{"atomic": False, "timeout": 7, "opens": False}] * 2

    settings.EMAIL_TIMEOUT = None  # unset: still bounded
    service.aftercare_send(document=document, sent_by=None)
    assert watching[-1]["timeout"] == service.DEFAULT_EMAIL_TIMEOUT


@pytest.mark.django_db
def test_an_email_interrupted_mid_send_is_shown_failed_and_never_sent_again_unasked(
    practitioner: User,
) -> None:
    start = timezone.now()
    document = queued_document(completed_session())
    with override_settings(EMAIL_BACKEND=f"{THIS}.DyingBackend"), pytest.raises(WorkerDied):
        service.aftercare_render(document_id=document.pk)
    document.refresh_from_db()
    assert (document.status, document.email_status) == ("ready", EmailStatus.SENDING)

    with time_machine.travel(start + timedelta(minutes=5), tick=False):
        service.aftercare_requeue_stale()  # may still be under way: left alone
    document.refresh_from_db()
    assert document.email_status == EmailStatus.SENDING
    with time_machine.travel(start + timedelta(minutes=11), tick=False):
        service.aftercare_requeue_stale()
        service.aftercare_requeue_stale()
        page = sign_in(Client(), practitioner).get(_status_url(document)).content.decode()
    document.refresh_from_db()
    assert (document.email_status, document.email_error) == (EmailStatus.FAILED, "interrupted")
    assert mail.outbox == []
    assert not DownloadLink.objects.filter(revoked_at__isnull=True).exists()
    assert "Sending was interrupted: the patient may or may not have received it." in page


@pytest.mark.django_db
def test_an_email_owed_when_its_sender_was_lost_is_sent_once_by_the_sweep(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    document = queued_document(completed_session())
    real = service.aftercare_email_owed_send

    def dies(**kwargs: Any) -> bool:
        raise WorkerDied  # the sheet is recorded ready, then the worker is killed

    monkeypatch.setattr(service, "aftercare_email_owed_send", dies)
    with pytest.raises(WorkerDied):
        service.aftercare_render(document_id=document.pk)
    monkeypatch.setattr(service, "aftercare_email_owed_send", real)
    document.refresh_from_db()
    assert (document.status, document.email_status) == ("ready", EmailStatus.PENDING)

    service.aftercare_requeue_stale()
    service.aftercare_requeue_stale()
    assert len(mail.outbox) == 1
    document.refresh_from_db()
    assert document.email_status == EmailStatus.SENT


@pytest.mark.django_db
def test_a_remake_of_the_sheet_emails_nobody_again(practitioner: User) -> None:
    document = service.aftercare_render(document_id=queued_document(completed_session()).pk)
    assert len(mail.outbox) == 1
    with mock.patch.object(service, "aftercare_enqueue", return_value=True):
        service.aftercare_regenerate(document=document, requested_by=practitioner)
    service.aftercare_render(document_id=document.pk)
    assert len(mail.outbox) == 1


# --- The render task and the sweep at once --------------------------------------------


@pytest.fixture
def eager() -> Iterator[None]:
    from clinic.celery import app

    before = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = before


def _in_thread(work: Callable[[], object], errors: list[BaseException]) -> threading.Thread:
    def run() -> None:
        try:
            work()
        except BaseException as exc:  # reported by the test
            errors.append(exc)
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


@pytest.mark.django_db(transaction=True)
def test_the_render_task_and_the_sweep_at_once_send_one_email(
    monkeypatch: pytest.MonkeyPatch, eager: None
) -> None:
    """The task's message reached a worker late: the sweep found the sheet due
    and queued it again, so two workers render it at the same moment (each
    with its own connection to PostgreSQL). Both finish; one email leaves."""
    from clinic import pdf
    from treatments.tasks.aftercare import aftercare_render as render_task
    from treatments.tasks.aftercare import aftercare_requeue as sweep_task

    logging.getLogger("treatments").setLevel(logging.INFO)
    document = queued_document(completed_session())
    real = pdf.render_pdf
    rendering = threading.Event()
    together = threading.Barrier(2, timeout=30)

    def both_at_once(template: str, context: dict[str, Any]) -> bytes:
        rendering.set()
        together.wait()  # neither finishes before the other has started
        return real(template, context)

    monkeypatch.setattr(pdf, "render_pdf", both_at_once)
    errors: list[BaseException] = []
    with time_machine.travel(timezone.now() + timedelta(minutes=3), tick=True):
        sweep = _in_thread(sweep_task, errors)
        assert rendering.wait(30), "the sweep queued the sheet again and a render began"
        task = _in_thread(lambda: render_task(document.pk), errors)
        sweep.join(90)
        task.join(90)
    assert errors == []
    assert not together.broken
    assert len(mail.outbox) == 1
    document.refresh_from_db()
    assert document.status == PatientDocumentStatus.READY
    assert document.attempts == 2  # two renders really ran
    assert document.email_status == EmailStatus.SENT
    assert DownloadLink.objects.filter(document=document, sent_at__isnull=False).count() == 1
