"""Objects the URL walk needs: one for each sample id in tests.test_urlwalk.SAMPLE_KWARGS
that this part of the app takes in its routes, created with exactly that uuid."""

from __future__ import annotations


def create_samples(kwargs: dict[str, str]) -> None:
    """A ready subject-access export of the sample patient, with its file on disk."""
    from datetime import timedelta

    from django.core.files.base import ContentFile
    from django.utils import timezone

    from clinic.documents import DocumentStatus
    from clinic.roles import Role
    from patients.models import Patient
    from tests.factories import UserFactory
    from treatments.models import SubjectAccessExport

    patient = Patient.objects.get(uuid=kwargs["patient"])
    requester = UserFactory(username="sample-export-practitioner", roles=[Role.PRACTITIONER])
    now = timezone.now()
    export = SubjectAccessExport(
        uuid=kwargs["export"],
        patient=patient,
        requested_by=requester,
        status=DocumentStatus.READY,
        sha256="0" * 64,
        progress=100,
        generated_at=now,
        expires_at=now + timedelta(days=7),
        next_attempt_at=None,
    )
    export.file.save(export.file_name(), ContentFile(b"PK\x05\x06" + b"\0" * 18), save=False)
    export.save()
