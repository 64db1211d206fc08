"""The machine-readable half of a subject-access export: an HL7 FHIR bundle.

Built as plain JSON and validated by parsing it with the R4B models of
`fhir.resources` (8.x) before it is written. Why R4B: fhir.resources 8 (the
maintained line, on pydantic 2) defaults to R5 and ships R4B (4.3.0) as its
R4-family package; plain R4 (4.0.1) is only in 6.1 and older, on pydantic 1
and no longer maintained. R4B changed only medication-definition, evidence
and subscription resources from R4; every resource written here (Patient,
QuestionnaireResponse, ClinicalImpression, Media, Consent, Observation,
AllergyIntolerance, CarePlan, Appointment, Procedure,
MedicationAdministration, AdverseEvent, DocumentReference, Communication,
AuditEvent, Basic) has the same shape in R4, so an R4 system reads it.

Resources refer to each other by `urn:uuid:` full URLs, so the bundle
(type "collection") stands alone. What FHIR has no resource for (a change of
contact details, a booking's history, download links, the portal account,
earlier exports, erasure requests, follow-ups of a side effect) is a `Basic`
resource whose code names it, with its values as extensions.
"""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from clinic.clinic_settings import current
from treatments.selectors.session import adverse_event_resolution
from treatments.subject_access.collect import SubjectAccessData

# Extensions and code systems of this product (a URL it owns by name only).
BASE = "https://meso-clinic.invalid/fhir"
FHIR_VERSION = "4.3.0"

_STATUS_APPOINTMENT = {
    "booked": "booked",
    "arrived": "arrived",
    "completed": "fulfilled",
    "cancelled": "cancelled",
    "no_show": "noshow",
}
_STATUS_COMMUNICATION = {
    "planned": "preparation",
    "sending": "in-progress",
    "sent": "completed",
    "failed": "not-done",
    "cancelled": "stopped",
}
_STATUS_CAREPLAN = {"active": "active", "completed": "completed", "stopped": "revoked"}


def _ref(kind: str, key: Any) -> str:
    """The bundle's full URL of one row: stable for the row across exports."""
    return f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, f'{BASE}/{kind}/{key}')}"


def _when(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat() if value else None


def _day(value: date | None) -> str | None:
    return value.isoformat() if value else None


def _text(value: Any) -> dict[str, str]:
    return {"text": str(value)}


def _who(user: Any) -> dict[str, str] | None:
    if user is None:
        return None
    return {"display": user.get_full_name() or user.get_username()}


def _clean(value: Any) -> Any:
    """Drop empty values (FHIR allows no empty strings, lists or objects)."""
    if isinstance(value, dict):
        cleaned = {k: _clean(v) for k, v in value.items()}
        return {k: v for k, v in cleaned.items() if v not in (None, "", [], {})}
    if isinstance(value, list):
        items = [_clean(v) for v in value]
        return [v for v in items if v not in (None, "", [], {})]
    if isinstance(value, Decimal):
        return float(value)
    return value


def _ext(name: str, value: Any) -> dict[str, Any]:
    key = "valueBoolean" if isinstance(value, bool) else "valueString"
    return {
        "url": f"{BASE}/StructureDefinition/{name}",
        key: value if key == "valueBoolean" else str(value),
    }


def _basic(
    record_kind: str, key: Any, patient_ref: str, created: date | None, author: Any, **values: Any
) -> dict[str, Any]:
    return {
        "resourceType": "Basic",
        "id": _ref(record_kind, key)[9:],
        "code": {
            "coding": [{"system": f"{BASE}/CodeSystem/record-kind", "code": record_kind}],
            "text": record_kind,
        },
        "subject": {"reference": patient_ref},
        "created": _day(created),
        "author": _who(author),
        "extension": [
            _ext(k.replace("_", "-"), v) for k, v in values.items() if v not in (None, "")
        ],
    }


def _patient(data: SubjectAccessData, ref: str) -> dict[str, Any]:
    p = data.patient
    telecom = []
    if p.email:
        telecom.append({"system": "email", "value": p.email})
    if p.phone:
        telecom.append({"system": "phone", "use": "mobile", "value": str(p.phone)})
    return {
        "resourceType": "Patient",
        "id": ref[9:],
        "identifier": [{"system": f"{BASE}/patient", "value": str(p.uuid)}],
        "name": [{"family": p.last_name, "given": [p.first_name], "text": p.full_name}],
        "birthDate": _day(p.date_of_birth),
        "telecom": telecom,
        "address": [{"text": p.address, "postalCode": p.postcode}]
        if p.address or p.postcode
        else [],
        "contact": [
            {
                "relationship": [_text("Emergency contact")],
                "name": {"text": p.emergency_contact_name},
                "telecom": [{"system": "phone", "value": str(p.emergency_contact_phone)}]
                if p.emergency_contact_phone
                else [],
            }
        ]
        if p.emergency_contact_name or p.emergency_contact_phone
        else [],
        "generalPractitioner": [{"display": p.gp_details}] if p.gp_details else [],
        "extension": [
            _ext("reminder-channel", p.get_reminder_channel_display()),
            _ext("consents-to-messages", p.consents_to_messages),
            _ext("registered-at", _when(p.created_at)),
        ],
        "link": [
            {"other": {"display": f"Record {m.uuid}, merged into this one"}, "type": "replaces"}
            for m in data.merged_records
        ],
    }


def _answer(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"valueBoolean": value}
    if isinstance(value, date):
        return {"valueDate": value.isoformat()}
    if isinstance(value, list):
        return {"valueString": ", ".join(str(v) for v in value)}
    return {"valueString": str(value)}


def _questionnaire(
    kind: str,
    key: Any,
    patient_ref: str,
    when: datetime,
    who: Any,
    answers: list[tuple[str, str, Any]],
) -> dict[str, Any]:
    return {
        "resourceType": "QuestionnaireResponse",
        "id": _ref(kind, key)[9:],
        "status": "completed",
        "subject": {"reference": patient_ref},
        "authored": _when(when),
        "author": _who(who),
        "item": [
            {"linkId": name, "text": question, "answer": [_answer(value)]}
            for name, question, value in answers
            if value not in (None, "", [])
        ],
    }


def build_bundle(data: SubjectAccessData, files: dict[str, str]) -> dict[str, Any]:
    """The FHIR bundle (a JSON-ready dict) of everything in `data`.

    `files` maps a row's key ("photo:<uuid>", "document:<uuid>",
    "consent:<uuid>") to its path in the ZIP, which attachments name.
    Raises nothing of its own; `validate_bundle` checks the result."""
    from patients.selectors import history_answer_names, history_question

    p = data.patient
    pref = _ref("patient", p.uuid)
    resources: list[dict[str, Any]] = [_patient(data, pref)]
    add = resources.append

    names = history_answer_names()
    for h in data.histories:
        add(
            _questionnaire(
                "history",
                h.uuid,
                pref,
                h.signed_at,
                h.signed_by,
                [(n, history_question(n), getattr(h, n)) for n in names],
            )
        )
    for c in data.consultations:
        add(
            {
                "resourceType": "ClinicalImpression",
                "id": _ref("consultation", c.uuid)[9:],
                "status": "completed",
                "subject": {"reference": pref},
                "date": _when(c.recorded_at),
                "assessor": _who(c.recorded_by),
                "description": "Consultation: skin type {}; concerns {}; areas {}".format(
                    c.get_skin_type_display(),
                    ", ".join(c.concern_labels),
                    ", ".join(c.area_labels),
                ),
                "summary": c.goals,
                "note": [
                    {"text": t}
                    for t in (
                        f"Expectations discussed: {'yes' if c.expectations_discussed else 'no'}; "
                        f"risks discussed: {'yes' if c.risks_discussed else 'no'}",
                        c.alternatives_discussed
                        and f"Alternatives discussed: {c.alternatives_discussed}",
                        c.recommended_protocol
                        and f"Treatment recommended: {c.recommended_protocol}",
                        c.notes,
                    )
                    if t
                ],
            }
        )
    for photo in data.photos:
        add(
            {
                "resourceType": "Media",
                "id": _ref("photo", photo.uuid)[9:],
                "status": "completed",
                "subject": {"reference": pref},
                "createdDateTime": _day(photo.taken_on),
                "issued": _when(photo.uploaded_at),
                "bodySite": _text(photo.get_area_display()),
                "reasonCode": [_text(photo.get_kind_display())],
                "width": photo.width,
                "height": photo.height,
                "content": {
                    "contentType": "image/jpeg",
                    "url": files.get(f"photo:{photo.uuid}"),
                    "title": f"{photo.get_area_display()}, {photo.taken_on.isoformat()}",
                },
            }
        )
    for change in data.contact_changes:
        add(
            _basic(
                "contact-change",
                change.uuid,
                pref,
                change.changed_at.date(),
                change.changed_by,
                field=change.get_field_display(),
                previous=change.previous,
                changed_at=_when(change.changed_at),
            )
        )
    for s in data.consents:
        withdrawal = s.withdrawal_row  # type: ignore[attr-defined]
        attachments = [
            {
                "contentType": "text/plain; charset=utf-8",
                "data": base64.b64encode(s.text.encode()).decode(),
                "title": f"{s.version.form.title}, version {s.version.number}",
            }
        ]
        if files.get(f"consent:{s.uuid}"):
            attachments.append(
                {
                    "contentType": "application/pdf",
                    "url": files[f"consent:{s.uuid}"],
                    "title": "Signed consent (PDF)",
                }
            )
        add(
            {
                "resourceType": "Consent",
                "id": _ref("consent", s.uuid)[9:],
                "status": "inactive" if withdrawal else "active",
                "scope": {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/consentscope",
                            "code": "treatment",
                        }
                    ]
                },
                "category": [
                    {
                        "coding": [{"system": "http://loinc.org", "code": "59284-0"}],
                        "text": s.version.form.title,
                    }
                ],
                "patient": {"reference": pref},
                "dateTime": _when(s.signed_at),
                "performer": [{"display": s.signer_name}],
                "sourceAttachment": attachments[-1] if len(attachments) > 1 else attachments[0],
                "policyRule": _text(
                    f"{s.version.form.title}, version {s.version.number}; "
                    f"text SHA-256 {s.text_sha256}"
                ),
                "extension": [_ext("photo-consent", s.photo_consent), _ext("consent-text", s.text)],
            }
        )
        if withdrawal:
            add(
                _basic(
                    "consent-withdrawal",
                    withdrawal.uuid,
                    pref,
                    withdrawal.withdrawn_at.date(),
                    withdrawal.recorded_by,
                    consent=_ref("consent", s.uuid),
                    reason=withdrawal.reason,
                    withdrawn_at=_when(withdrawal.withdrawn_at),
                )
            )
    for t in data.allergy_tests:
        tested = [i.name for i in t.ingredients.all()] + [pr.name for pr in t.products.all()]
        add(
            {
                "resourceType": "Observation",
                "id": _ref("allergy-test", t.uuid)[9:],
                "status": "final" if t.read_at else "registered",
                "category": [
                    {
                        "coding": [
                            {
                                "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                "code": "exam",
                            }
                        ]
                    }
                ],
                "code": _text("Allergy (patch) test: " + ", ".join(tested)),
                "subject": {"reference": pref},
                "effectiveDateTime": _when(t.given_at),
                "issued": _when(t.read_at),
                "performer": [x for x in (_who(t.given_by), _who(t.read_by)) if x],
                "valueString": t.get_result_display() if t.result else None,
                "bodySite": _text(t.site) if t.site else None,
                "note": [
                    {"text": x}
                    for x in (
                        t.reaction,
                        t.batch and f"Batch {t.batch.lot_number}",
                        t.late_entry_reason and f"Entered late: {t.late_entry_reason}",
                    )
                    if x
                ],
            }
        )
    for a in data.allergies:
        add(
            {
                "resourceType": "AllergyIntolerance",
                "id": _ref("allergy", a.uuid)[9:],
                "clinicalStatus": {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical",
                            "code": "active",
                        }
                    ]
                },
                "code": _text(a.ingredient.name),
                "patient": {"reference": pref},
                "recordedDate": _when(a.recorded_at),
                "recorder": _who(a.recorded_by),
                "note": [{"text": a.notes}] if a.notes else [],
            }
        )
    for course in data.courses:
        add(
            {
                "resourceType": "CarePlan",
                "id": _ref("course", course.uuid)[9:],
                "status": _STATUS_CAREPLAN.get(course.status, "unknown"),
                "intent": "plan",
                "title": course.protocol.name,
                "description": (
                    f"{course.planned_sessions} sessions, {course.get_interval_display()}"
                ),
                "subject": {"reference": pref},
                "created": _when(course.created_at),
                "author": _who(course.created_by),
            }
        )
    for b in data.bookings:
        bref = _ref("booking", b.uuid)
        add(
            {
                "resourceType": "Appointment",
                "id": bref[9:],
                "status": _STATUS_APPOINTMENT.get(b.status, "booked"),
                "cancelationReason": _text(b.cancel_reason) if b.cancel_reason else None,
                "serviceType": [_text(b.protocol.name)],
                "start": _when(b.starts_at),
                "end": _when(b.ends_at),
                "created": _when(b.created_at),
                "basedOn": [],
                "participant": [
                    {"actor": {"reference": pref}, "status": "accepted"},
                    {"actor": _who(b.practitioner), "status": "accepted"},
                    {"actor": {"display": b.room.name}, "status": "accepted"},
                ],
            }
        )
        for event in b.events.all():
            add(
                _basic(
                    "booking-change",
                    f"{b.uuid}/{event.pk}",
                    pref,
                    event.at.date(),
                    event.by,
                    booking=bref,
                    kind=event.get_kind_display(),
                    at=_when(event.at),
                    previous_start=_when(event.previous_starts_at),
                    detail=event.detail,
                )
            )
        r = b.session_record  # type: ignore[attr-defined]
        if r is None:
            continue
        pr = _ref("session", r.uuid)
        notes = [
            r.notes,
            r.immediate_reactions and f"Reactions at the time: {r.immediate_reactions}",
            f"Numbing cream: {'yes' if r.numbing_cream else 'no'}",
        ]
        notes += [f"Caution noted: {ack.wording}" for ack in r.caution_acknowledgements.all()]
        notes += [
            f"Amended {_when(am.at)} by {am.by.get_full_name()}: {am.text}"
            for am in r.amendments.all()
        ]
        if r.day_check is not None:
            notes.append(
                "Checked on the day: "
                + "; ".join(
                    f"{label}: {'yes' if answer else 'no'}" for label, answer in r.day_of_answers
                )
            )
        add(
            {
                "resourceType": "Procedure",
                "id": pr[9:],
                "status": "completed",
                "code": _text(f"Mesotherapy: {b.protocol.name}"),
                "subject": {"reference": pref},
                "performedDateTime": _when(b.starts_at),
                "recorder": _who(r.completed_by),
                "performer": [{"actor": _who(b.practitioner)}],
                "note": [{"text": t} for t in notes if t],
            }
        )
        for line in r.lines.all():
            points = len(line.points.all())
            add(
                {
                    "resourceType": "MedicationAdministration",
                    "id": _ref("cocktail-line", line.pk)[9:],
                    "status": "completed",
                    "contained": [
                        {
                            "resourceType": "Medication",
                            "id": "product",
                            "code": _text(line.batch.product.name),
                            "batch": {
                                "lotNumber": line.batch.lot_number,
                                "expirationDate": line.batch.expiry_date.isoformat(),
                            },
                        }
                    ],
                    "medicationReference": {"reference": "#product"},
                    "subject": {"reference": pref},
                    "partOf": [{"reference": pr}],
                    "effectiveDateTime": _when(b.starts_at),
                    "performer": [{"actor": _who(b.practitioner)}],
                    "dosage": {
                        "site": _text(line.get_area_display()),
                        "method": _text(
                            f"{line.get_technique_display()}, {line.depth_mm} mm deep, "
                            f"{line.needle_gauge}G, {line.get_device_display()}"
                        ),
                        "dose": {"value": line.amount, "unit": line.get_unit_display()},
                    },
                    "note": [{"text": f"{points} injection points marked on the map"}]
                    if points
                    else [],
                }
            )
        for e in r.adverse_events.all():
            eref = _ref("adverse-event", e.uuid)
            # Resolved when recorded (resolved_on) or by a follow-up, as the
            # session page and the summary PDF say.
            resolution = adverse_event_resolution(e)
            extensions = [_ext("notes", e.notes)] if e.notes else []
            if resolution is not None:
                extensions.append(_ext("resolved-on", _day(resolution.day)))
            add(
                {
                    "resourceType": "AdverseEvent",
                    "id": eref[9:],
                    "actuality": "actual",
                    "event": _text(e.get_effect_display()),
                    "subject": {"reference": pref},
                    "date": _when(e.onset),
                    "recordedDate": _when(e.recorded_at),
                    "recorder": _who(e.recorded_by),
                    "severity": _text(e.get_severity_display()),
                    "outcome": {
                        "coding": [
                            {
                                "system": "http://terminology.hl7.org/CodeSystem/adverse-event-outcome",
                                "code": "resolved" if resolution else "ongoing",
                            }
                        ]
                    },
                    "suspectEntity": [{"instance": {"reference": pr}}],
                    "extension": extensions,
                }
            )
            for f in e.follow_ups.all():
                add(
                    _basic(
                        "adverse-event-follow-up",
                        f.uuid,
                        pref,
                        f.recorded_at.date(),
                        f.recorded_by,
                        adverse_event=eref,
                        note=f.note,
                        resolved=f.resolved,
                    )
                )
    for d in data.documents:
        add(
            {
                "resourceType": "DocumentReference",
                "id": _ref("document", d.uuid)[9:],
                "status": "current",
                "type": _text("Aftercare sheet"),
                "subject": {"reference": pref},
                "date": _when(d.generated_at or d.queued_at),
                "content": [
                    {
                        "attachment": {
                            "contentType": "application/pdf",
                            "url": files.get(f"document:{d.uuid}")
                            or f"not made ({d.get_status_display()})",
                        }
                    }
                ],
                "context": {"related": [{"reference": _ref("session", d.session.uuid)}]},
            }
        )
    for link in data.download_links:
        add(
            _basic(
                "download-link",
                link.uuid,
                pref,
                link.created_at.date(),
                None,
                document=_ref("document", link.document.uuid) if link.document_id else None,
                expires_at=_when(link.expires_at),
                sent_at=_when(link.sent_at),
                revoked_at=_when(link.revoked_at),
                downloads=link.downloads,
            )
        )
    if data.portal_account is not None:
        account = data.portal_account
        add(
            _basic(
                "portal-account",
                account.pk,
                pref,
                account.created_at.date(),
                None,
                active=account.user.is_active,
            )
        )
    for m in data.reminders:
        add(
            {
                "resourceType": "Communication",
                "id": _ref("reminder", m.uuid)[9:],
                "status": _STATUS_COMMUNICATION.get(m.status, "unknown"),
                "subject": {"reference": pref},
                "recipient": [{"reference": pref}],
                "medium": [_text(m.get_channel_display())],
                "topic": _text(m.get_kind_display()),
                "sent": _when(m.sent_at),
                "extension": [_ext("due-at", _when(m.due_at))],
            }
        )
    for x in data.exports:
        add(
            _basic(
                "subject-access-export",
                x.uuid,
                pref,
                x.queued_at.date(),
                x.requested_by,
                status=x.get_status_display(),
            )
        )
    for e in data.erasure_requests:
        add(
            _basic(
                "erasure-request",
                e.uuid,
                pref,
                e.received_on,
                e.recorded_by,
                status=e.get_status_display(),
                erased=", ".join(e.erased_fields),
                retain_until=_day(e.retain_until),
                reason=e.retention_reason,
            )
        )
    for audit in data.access_log:
        add(
            {
                "resourceType": "AuditEvent",
                "id": _ref("audit", audit.pk)[9:],
                "type": {
                    "system": f"{BASE}/CodeSystem/audit-action",
                    "code": audit.action,
                    "display": str(audit.get_action_display()),
                },
                "recorded": _when(audit.at),
                "agent": [
                    {
                        "who": {"display": audit.actor_label or "system"},
                        "requestor": bool(audit.actor_label),
                        "role": [_text(audit.role_labels)] if audit.roles else [],
                    }
                ],
                "source": {"observer": {"display": current().clinic_name}},
                "entity": [{"what": {"reference": pref}}, {"description": audit.object_label}],
            }
        )
    bundle = {
        "resourceType": "Bundle",
        "id": str(uuid.uuid4()),
        "meta": {"profile": [], "tag": [{"system": f"{BASE}/fhir-version", "code": FHIR_VERSION}]},
        "type": "collection",
        "timestamp": _when(data.made_at),
        "entry": [{"fullUrl": f"urn:uuid:{r['id']}", "resource": r} for r in resources],
    }
    return _clean(bundle)


def validate_bundle(bundle: dict[str, Any]) -> Any:
    """Parse `bundle` with fhir.resources' R4B models; raises pydantic's
    ValidationError on anything FHIR does not allow. Returns the model."""
    from fhir.resources.R4B.bundle import Bundle

    return Bundle.model_validate(bundle)


def bundle_json(data: SubjectAccessData, files: dict[str, str]) -> bytes:
    """The bundle, validated, as UTF-8 JSON bytes."""
    bundle = build_bundle(data, files)
    validate_bundle(bundle)
    return json.dumps(bundle, ensure_ascii=False, indent=1).encode("utf-8")
