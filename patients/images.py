"""Checking and cleaning uploaded photographs.

An upload is trusted for nothing: its name and declared type are ignored,
Pillow must recognise the content as JPEG or PNG, the pixel count is capped
(decompression bombs), and the picture is re-encoded as a fresh JPEG, which
drops every piece of metadata (EXIF, GPS position, camera, comments).
"""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass
from typing import IO

from django.utils.translation import gettext as _
from PIL import Image, ImageOps, UnidentifiedImageError

MAX_UPLOAD_BYTES = 15 * 1024 * 1024
MAX_PIXELS = 40_000_000  # a 40-megapixel camera is plenty for a clinic
ACCEPTED_FORMATS = {"JPEG", "PNG"}


class ImageRejectedError(ValueError):
    """The upload is not a photograph we accept; the message says why, plainly."""


@dataclass(frozen=True)
class CleanImage:
    content: bytes
    width: int
    height: int
    sha256: str


def clean_photo(upload: IO[bytes], *, size: int) -> CleanImage:
    if size > MAX_UPLOAD_BYTES:
        raise ImageRejectedError(_("The photo is larger than 15 MB. Send a smaller one."))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(upload) as probe:
                fmt = probe.format
                if fmt not in ACCEPTED_FORMATS:
                    raise ImageRejectedError(_("Only JPEG and PNG photos are accepted."))
                if probe.width * probe.height > MAX_PIXELS:
                    raise ImageRejectedError(
                        _("The photo has too many pixels (over 40 megapixels).")
                    )
                probe.verify()
            upload.seek(0)
            with Image.open(upload) as image:
                image.load()
                # Turn the picture the way the camera meant, then forget the metadata.
                upright = ImageOps.exif_transpose(image)
                rgb = upright.convert("RGB")
    except ImageRejectedError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        # Pillow's own guard trips while opening, before our pixel check.
        raise ImageRejectedError(_("The photo has too many pixels (over 40 megapixels).")) from None
    except UnidentifiedImageError:
        raise ImageRejectedError(_("This file is not a JPEG or PNG photo.")) from None
    except (OSError, SyntaxError, ValueError):
        raise ImageRejectedError(_("This photo is damaged and cannot be read.")) from None
    buffer = io.BytesIO()
    rgb.save(buffer, format="JPEG", quality=90, optimize=True)
    content = buffer.getvalue()
    return CleanImage(content, rgb.width, rgb.height, hashlib.sha256(content).hexdigest())
