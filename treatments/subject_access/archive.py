"""The ZIP of a subject-access export: the summary PDF, the FHIR bundle, the
photographs and the documents, with a short note on what is where."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable
from typing import Any

from clinic.clinic_settings import current
from treatments.subject_access.collect import SubjectAccessData
from treatments.subject_access.fhir import bundle_json
from treatments.subject_access.pdf import document_entries, prepare, summary_pdf

Progress = Callable[[int], None]

README = """{clinic}: the information we hold about {name}
Made on {made} (UTC).

summary.pdf        Everything, written out to read.
record.fhir.json   The same, as an HL7 FHIR bundle (R4 family, version 4.3.0)
                   that another clinic's system can import.
photos/            Your clinical photographs, as stored.
documents/         Aftercare sheets and signed consents, as PDFs.
"""


def _read(field: Any) -> bytes | None:
    """A stored file's bytes, or None where it is missing on disk."""
    try:
        with field.open("rb") as handle:
            return bytes(handle.read())
    except (FileNotFoundError, ValueError):
        return None


def build_zip(data: SubjectAccessData, progress: Progress) -> bytes:
    """The export's ZIP bytes. `progress(percent)` is called as parts are
    done (summary 45, photos and documents 80, bundle 95). Photos are
    stored as they are (already compressed), text deflated."""
    prepare(data)
    files: dict[str, str] = {}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(
            "README.txt",
            README.format(
                clinic=current().clinic_name,
                name=data.patient.full_name,
                made=data.made_at.strftime("%Y-%m-%d %H:%M"),
            ),
        )
        zf.writestr("summary.pdf", summary_pdf(data))
        progress(45)
        for photo in data.photos:
            content = _read(photo.image)
            if content is not None:
                path = f"photos/{photo.uuid}.jpg"
                zf.writestr(zipfile.ZipInfo(path), content, compress_type=zipfile.ZIP_STORED)
                files[f"photo:{photo.uuid}"] = path
        by_path = {e.path: e for e in document_entries(data)}
        for document in data.documents:
            for path in by_path:
                if str(document.uuid) in path and (content := _read(document.file)) is not None:
                    zf.writestr(path, content)
                    files[f"document:{document.uuid}"] = path
        for signed in data.consents:
            pdf = getattr(signed, "pdf_row", None)
            for path in by_path:
                if pdf is not None and str(signed.uuid) in path and (content := _read(pdf.file)):
                    zf.writestr(path, content)
                    files[f"consent:{signed.uuid}"] = path
        progress(80)
        zf.writestr("record.fhir.json", bundle_json(data, files))
        progress(95)
    return buffer.getvalue()
