"""Checking and cleaning uploaded pictures (photographs, drawn signatures).

An upload is trusted for nothing: its name and declared type are ignored,
Pillow must recognise the content, the pixel count is read from the header
and capped before a single pixel is decoded (decompression bombs: Pillow's
own `DecompressionBombError` and `DecompressionBombWarning` are refusals
too), and the picture is re-encoded from its pixels alone, so no metadata
travels to the stored file: EXIF (GPS position, camera), XMP, JPEG comments,
PNG text chunks.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO

from django.utils.translation import gettext as _
from PIL import Image, ImageOps, UnidentifiedImageError

MAX_UPLOAD_BYTES = 15 * 1024 * 1024
MAX_PIXELS = 40_000_000  # a 40-megapixel camera is plenty for a clinic
# MPO is the JPEG many phones write with further pictures after the first
# (a second lens, a depth map): the first picture is the photo, kept as a JPEG.
ACCEPTED_FORMATS = {"JPEG", "MPO", "PNG"}
# Pillow's openers to try, in this order; the JPEG one also opens a
# multi-picture JPEG (MPO has no opener of its own).
OPENERS = ("JPEG", "PNG")


class ImageRejectedError(ValueError):
    """The upload is not a picture we accept; the message says why, plainly.
    `code`: "too_large", "not_image", "wrong_format" or "damaged"."""

    def __init__(self, message: str, *, code: str = "damaged") -> None:
        super().__init__(message)
        self.message = message
        self.code = code


@dataclass(frozen=True)
class CleanImage:
    content: bytes
    width: int
    height: int
    sha256: str


@contextmanager
def untrusted_image(
    data: IO[bytes], *, max_pixels: int, too_large: str, formats: tuple[str, ...] | None = None
) -> Iterator[Image.Image]:
    """Open a picture someone sent, for reading inside the `with` block.

    `max_pixels`: the most pixels (width times height) accepted, checked from
    the header before any pixel is decoded; `too_large`: the sentence of that
    refusal; `formats`: Pillow format names to try (None: any Pillow knows).
    Inside the block, Pillow's decompression-bomb warning is an error too.
    Raises `ImageRejectedError` with code "too_large" (too many pixels,
    Pillow's bomb guard included), "not_image" (not a picture Pillow knows)
    or "damaged" (a picture that cannot be read). Every place that opens
    user data with Pillow goes through here."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(data, formats=list(formats) if formats else None) as image:
                if image.width * image.height > max_pixels:
                    raise ImageRejectedError(too_large, code="too_large")
                yield image
        except ImageRejectedError:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            # Pillow's own guard trips while opening, before our pixel check.
            raise ImageRejectedError(too_large, code="too_large") from None
        except UnidentifiedImageError:
            raise ImageRejectedError(
                _("This file is not a JPEG or PNG photo."), code="not_image"
            ) from None
        except (OSError, SyntaxError, ValueError, EOFError):
            raise ImageRejectedError(
                _("This photo is damaged and cannot be read."), code="damaged"
            ) from None


def without_metadata(image: Image.Image) -> Image.Image:
    """The same pixels with nothing else: Pillow's encoders copy some of an
    image's `info` into the file they write (a JPEG comment, for one), so the
    picture to store carries none."""
    image.info = {}
    return image


def clean_photo(upload: IO[bytes], *, size: int) -> CleanImage:
    """A photograph upload, checked and re-encoded as a fresh JPEG (quality 90)
    with no metadata at all; of a multi-picture JPEG (MPO), the first picture
    only. `size`: the upload's length in bytes. Raises `ImageRejectedError`
    for a file over 15 MB, another format than JPEG or PNG, over 40
    megapixels, or damaged."""
    if size > MAX_UPLOAD_BYTES:
        raise ImageRejectedError(
            _("The photo is larger than 15 MB. Send a smaller one."), code="too_large"
        )
    too_large = _("The photo has too many pixels (over 40 megapixels).")
    with untrusted_image(upload, max_pixels=MAX_PIXELS, too_large=too_large) as probe:
        if probe.format not in ACCEPTED_FORMATS:
            raise ImageRejectedError(
                _("Only JPEG and PNG photos are accepted."), code="wrong_format"
            )
        probe.verify()
    upload.seek(0)
    with untrusted_image(
        upload, max_pixels=MAX_PIXELS, too_large=too_large, formats=OPENERS
    ) as image:
        image.seek(0)  # a multi-picture JPEG: the photo is the first
        image.load()
        # Turn the picture the way the camera meant, then forget the metadata.
        upright = ImageOps.exif_transpose(image)
        rgb = without_metadata(upright.convert("RGB"))
    buffer = io.BytesIO()
    rgb.save(buffer, format="JPEG", quality=90, optimize=True)
    content = buffer.getvalue()
    return CleanImage(content, rgb.width, rgb.height, hashlib.sha256(content).hexdigest())
