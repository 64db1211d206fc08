"""Serving a stored file (a photo, a drawn signature, a consent PDF, an
aftercare sheet, a subject-access ZIP) to someone the view has let in.

A file can be gone from storage while its row still names it: the record was
anonymised (or the export withdrawn) after the view read the row, and the
file was deleted once that change committed. That is a 404 (the standard
"not found" page), never a server error.
"""

from __future__ import annotations

import logging

from django.db.models.fields.files import FieldFile
from django.http import FileResponse, Http404

logger = logging.getLogger(__name__)


def stored_file_response(
    field: FieldFile, *, content_type: str, filename: str, as_attachment: bool = False
) -> FileResponse:
    """The file of `field` as a streamed response, shown in the browser or
    (`as_attachment`) downloaded as `filename`. Open it before auditing the
    download: raises `Http404` when the field is empty or its file is gone
    from storage (logged with the row's key only, never its path or data)."""
    try:
        handle = field.open("rb")
    except (FileNotFoundError, ValueError):
        instance = field.instance
        logger.info(
            "stored file of %s %s not found: answered 404", instance._meta.label, instance.pk
        )
        raise Http404("The file is not available.") from None
    return FileResponse(
        handle, content_type=content_type, as_attachment=as_attachment, filename=filename
    )
