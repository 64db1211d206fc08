"""The migrations that bring signed-consent PDFs and aftercare sheets into the
one document pipeline keep what each existing row meant: queued rows are
looked at again, rows the old sweeps had given up on are failed for staff to
see, ready sheets already emailed count as emailed, and their links still
open."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.apps.registry import Apps
from django.conf import settings
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.test import override_settings
from django.utils import timezone

from clinic.dbroles import (
    application_privileges_grant,
    application_user,
    connected_as_owner,
    database_functions_harden,
)
from clinic.documents import DocumentStatus
from clinic.models import User
from tests.consent.helpers import signed_consent_for
from tests.factories import ConsentFormVersionFactory, PatientFactory
from tests.treatments.test_aftercare import completed_session, queued_document, ready_document
from treatments.models import DownloadLink, EmailStatus, PatientDocument

pytestmark = pytest.mark.django_db(transaction=True)

SUFFIX = "_documents_pipeline"


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


def _pipeline_migrations(executor: MigrationExecutor) -> list[tuple[str, str]]:
    return sorted(
        key
        for key in executor.loader.graph.nodes
        if key[0] in ("consent", "treatments") and key[1].endswith(SUFFIX)
    )


@pytest.fixture
def migrate_back() -> Iterator[Callable[[], tuple[Apps, list[tuple[str, str]]]]]:
    """Migrates the database to just before the two migrations (the rows
    already there stay) and answers the models as they were, and the two
    migrations; migrates forward again afterwards. Migrations run as the owner."""

    def back() -> tuple[Apps, list[tuple[str, str]]]:
        with connected_as_owner():
            executor = MigrationExecutor(connection)
            ours = _pipeline_migrations(executor)
            assert [app for app, _name in ours] == ["consent", "treatments"]
            targets = [
                parent.key
                for key in ours
                for parent in executor.loader.graph.node_map[key].parents
                if parent.key[0] == key[0]
            ]
            executor.migrate(targets)
            return MigrationExecutor(connection).loader.project_state(targets).apps, ours

    yield back
    with connected_as_owner():
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())
        database_functions_harden(connection)
        application_privileges_grant(connection, application_user())


def test_existing_documents_keep_their_meaning(
    practitioner: User, migrate_back: Callable[[], tuple[Apps, list[tuple[str, str]]]]
) -> None:
    # Rows made by today's code, then set as the code before the pipeline left them.
    version = ConsentFormVersionFactory()
    pdf_given_up = signed_consent_for(patient=PatientFactory(), version=version).pk
    pdf_waiting = signed_consent_for(patient=PatientFactory(), version=version).pk
    pdf_failed = signed_consent_for(patient=PatientFactory(), version=version).pk
    sheet_emailed = ready_document()
    link = DownloadLink.objects.get(document=sheet_emailed)
    sheet_no_email = ready_document(patient=PatientFactory(email="", reminder_channel="none"))
    sheet_waiting = queued_document(completed_session())
    sheet_given_up = queued_document(completed_session())

    old_apps, ours = migrate_back()
    queued_at = timezone.now() - timedelta(hours=3)
    old_pdfs = old_apps.get_model("consent", "SignedConsentPDF").objects
    old_pdfs.filter(pk=pdf_given_up).update(status="queued", attempts=5, queued_at=queued_at)
    old_pdfs.filter(pk=pdf_waiting).update(status="queued", attempts=1, queued_at=queued_at)
    old_pdfs.filter(pk=pdf_failed).update(status="failed", attempts=1, error="OSError")
    old_sheets = old_apps.get_model("treatments", "PatientDocument").objects
    old_sheets.filter(pk=sheet_waiting.pk).update(queued_at=queued_at)
    old_sheets.filter(pk=sheet_given_up.pk).update(attempts=5, queued_at=queued_at)

    with connected_as_owner():
        MigrationExecutor(connection).migrate(ours)
    # Read as the two migrations leave the tables: later ones add columns.
    new_apps = MigrationExecutor(connection).loader.project_state(ours).apps

    def pdf(pk: int) -> Any:
        return new_apps.get_model("consent", "SignedConsentPDF").objects.get(pk=pk)

    def sheet(document: PatientDocument) -> Any:
        return new_apps.get_model("treatments", "PatientDocument").objects.get(pk=document.pk)

    assert (pdf(pdf_given_up).status, pdf(pdf_given_up).error) == ("failed", "interrupted")
    assert pdf(pdf_given_up).next_attempt_at is None
    assert pdf(pdf_waiting).status == DocumentStatus.QUEUED
    assert pdf(pdf_waiting).next_attempt_at == queued_at + timedelta(minutes=2)
    assert (pdf(pdf_failed).status, pdf(pdf_failed).next_attempt_at) == ("failed", None)

    assert sheet(sheet_emailed).status == DocumentStatus.READY
    assert sheet(sheet_emailed).next_attempt_at is None
    assert sheet(sheet_emailed).email_status == EmailStatus.SENT
    assert sheet(sheet_emailed).emailed_at == link.created_at
    assert DownloadLink.objects.get(pk=link.pk).sent_at == link.created_at  # still opens
    assert sheet(sheet_no_email).email_status == EmailStatus.NONE
    assert sheet(sheet_waiting).status == DocumentStatus.QUEUED
    assert sheet(sheet_waiting).next_attempt_at == queued_at + timedelta(minutes=2)
    assert sheet(sheet_waiting).email_status == EmailStatus.PENDING  # the first render emails
    assert (sheet(sheet_given_up).status, sheet(sheet_given_up).error) == ("failed", "interrupted")
