"""The readable summary of a subject-access export: a PDF for the patient."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from clinic.clinic_settings import current
from patients.selectors import history_answer_names, history_answer_text, history_question
from treatments.models import DAY_OF_QUESTIONS
from treatments.selectors.session import adverse_event_resolution
from treatments.subject_access.collect import SubjectAccessData

PDF_TEMPLATE = "pdf/subject_access.html"


@dataclass(frozen=True)
class FileEntry:
    """A file of the ZIP as the summary lists it."""

    label: str
    path: str


def document_entries(data: SubjectAccessData) -> list[FileEntry]:
    """The documents of the ZIP (aftercare sheets, signed consents), by path."""
    entries = []
    for document in data.documents:
        if document.file and document.status == "ready":
            when = document.session.booking.starts_at.date().isoformat()
            entries.append(
                FileEntry(
                    f"Aftercare sheet, {when}", f"documents/aftercare-{when}-{document.uuid}.pdf"
                )
            )
    for signed in data.consents:
        pdf = getattr(signed, "pdf_row", None)
        if pdf is not None and pdf.file and pdf.status == "ready":
            when = signed.signed_at.date().isoformat()
            entries.append(
                FileEntry(f"Signed consent, {when}", f"documents/consent-{when}-{signed.uuid}.pdf")
            )
    return entries


def _one(obj: Any, name: str) -> Any:
    """A reverse one-to-one read with the row (None where there is none)."""
    try:
        return getattr(obj, name)
    except Exception:  # RelatedObjectDoesNotExist of each model
        return None


def prepare(data: SubjectAccessData) -> None:
    """Attach what the summary and the bundle read besides the rows
    themselves (the withdrawal and PDF of each consent, the day-of-treatment
    answers), without further queries."""
    for s in data.consents:
        s.withdrawal_row = _one(s, "withdrawal")  # type: ignore[attr-defined]
        s.pdf_row = _one(s, "pdf")  # type: ignore[attr-defined]
    for b in data.sessions:
        record = b.session_record  # type: ignore[attr-defined]
        check = record.day_check = _one(record, "day_of_check")
        record.day_of_answers = (
            [(str(label), getattr(check, name)) for name, label in DAY_OF_QUESTIONS]
            if check is not None
            else []
        )


def summary_context(data: SubjectAccessData) -> dict[str, Any]:
    """Everything the summary shows; text typed by people goes to the
    template as plain strings, which the template escapes."""
    names = history_answer_names()
    return {
        "clinic_name": current().clinic_name,
        "patient": data.patient,
        "data": data,
        "made_at": data.made_at,
        "sessions": data.sessions,
        # Each event with how it cleared (None: still open): the day given when
        # it was recorded, or its resolving follow-up, as the session page says.
        "adverse_events": [(e, adverse_event_resolution(e)) for e in data.adverse_events],
        "adverse_count": len(data.adverse_events),
        "documents": document_entries(data),
        "histories": [
            {
                "row": h,
                "answers": [(history_question(n), history_answer_text(h, n)) for n in names],
            }
            for h in data.histories
        ],
    }


def summary_pdf(data: SubjectAccessData) -> bytes:
    """The summary's PDF bytes (`prepare` must have run on `data`)."""
    from clinic.pdf import render_pdf

    return render_pdf(PDF_TEMPLATE, summary_context(data))
