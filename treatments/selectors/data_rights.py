"""Reads of patients' data-rights records, each checking access first."""

from __future__ import annotations

import uuid

from django.http import Http404

from clinic.models import User
from patients.selectors import patient_get_for_user
from treatments.models import ErasureRequest, SubjectAccessExport

EXPORTS_SHOWN = 10


def export_get_for_user(
    *, user: User, patient_uuid: uuid.UUID, export_uuid: uuid.UUID
) -> SubjectAccessExport:
    """One subject-access export of a patient `user` may see (the patient's
    access is checked by `patient_get_for_user`, which raises Http404 or
    PermissionDenied). Raises Http404 for an export of another patient."""
    record = patient_get_for_user(user=user, patient_uuid=patient_uuid)
    try:
        export = SubjectAccessExport.objects.select_related("requested_by").get(
            uuid=export_uuid, patient=record
        )
    except SubjectAccessExport.DoesNotExist:
        raise Http404 from None
    export.patient = record
    return export


def exports_of(*, patient_id: int) -> list[SubjectAccessExport]:
    """The patient's latest EXPORTS_SHOWN exports, newest first (one query)."""
    return list(
        SubjectAccessExport.objects.filter(patient_id=patient_id)
        .select_related("requested_by")
        .order_by("-queued_at", "-id")[:EXPORTS_SHOWN]
    )


def erasure_requests_of(*, patient_id: int) -> list[ErasureRequest]:
    """The patient's erasure requests, newest first (one query)."""
    return list(
        ErasureRequest.objects.filter(patient_id=patient_id)
        .select_related("recorded_by")
        .order_by("-recorded_at", "-id")
    )
