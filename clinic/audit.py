"""Writing the audit trail: one helper for changes, one for reads.

Services call `audit_log` inside their transaction, so the event and the
change commit (or roll back) together. Views call `audit_read` when they show
a patient's record or a document. The request's IP address and id are taken
from the request context set by `RequestContextMiddleware`, so services need
no request object.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from django.db import models

from clinic.context import get_request_context
from clinic.models import AuditAction, AuditEvent


def _object_type(obj: models.Model | None, object_type: str) -> str:
    if obj is not None:
        return obj._meta.label_lower
    return object_type


def _event(
    *,
    actor: Any,
    action: AuditAction | str,
    obj: models.Model | None = None,
    object_type: str = "",
    object_id: str = "",
    patient_ref: uuid.UUID | None = None,
    changed_fields: Iterable[str] = (),
    actor_label: str = "",
) -> AuditEvent:
    ctx = get_request_context()
    user = actor if actor is not None and getattr(actor, "is_authenticated", False) else None
    if obj is not None and not object_id:
        # Prefer the public UUID over the sequential key where the model has one.
        object_id = str(getattr(obj, "uuid", None) or obj.pk)
    event = AuditEvent(
        actor=user,
        actor_label=(user.get_username() if user else actor_label)[:150],
        roles=",".join(sorted(r.value for r in user.roles)) if user else "",
        action=str(action),
        object_type=_object_type(obj, object_type),
        object_id=object_id[:64],
        patient_ref=patient_ref,
        changed_fields=sorted(changed_fields),
        ip=ctx.ip if ctx else None,
        request_id=ctx.request_id if ctx else "",
    )
    return event


def audit_log(
    *,
    actor: Any,
    action: AuditAction | str,
    obj: models.Model | None = None,
    object_type: str = "",
    object_id: str = "",
    patient_ref: uuid.UUID | None = None,
    changed_fields: Iterable[str] = (),
    actor_label: str = "",
) -> AuditEvent:
    """Append one event. `actor` may be None (anonymous) or a user."""
    event = _event(
        actor=actor,
        action=action,
        obj=obj,
        object_type=object_type,
        object_id=object_id,
        patient_ref=patient_ref,
        changed_fields=changed_fields,
        actor_label=actor_label,
    )
    event.save(force_insert=True)
    return event


def audit_read(
    request: Any,
    obj: models.Model,
    *,
    patient_ref: uuid.UUID | None = None,
    action: AuditAction = AuditAction.VIEW,
) -> AuditEvent:
    """Record that the signed-in user saw (or downloaded) `obj`."""
    return audit_log(actor=request.user, action=action, obj=obj, patient_ref=patient_ref)


def audit_read_patients(
    request: Any,
    obj: models.Model | None,
    *,
    patient_refs: Iterable[uuid.UUID],
    action: AuditAction = AuditAction.VIEW,
    object_type: str = "",
    object_id: str = "",
) -> int:
    """Record that a list naming several patients (a recall list, say) was
    seen: one event per patient, so "whose records did this user see" stays
    answerable, written in one statement. `obj` is what the list is of (a
    batch); for a list of no one object, None with `object_type` (a model
    label) and `object_id` (the list's name, "tasks")."""
    events = [
        _event(
            actor=request.user,
            action=action,
            obj=obj,
            object_type=object_type,
            object_id=object_id,
            patient_ref=ref,
        )
        for ref in dict.fromkeys(patient_refs)
    ]
    AuditEvent.objects.bulk_create(events)
    return len(events)
