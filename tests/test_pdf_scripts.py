"""Every name prints: the aftercare sheet and the signed-consent PDF show a
patient's name in any script a UK clinic's patients write it in, with a real
glyph for every letter (never the empty box of a missing glyph); right-to-left
names keep their order; long words and web addresses wrap inside their column;
and the demo sheets fit the one A4 page the user guide promises.

The PDFs are made by the real services and read back as a reader's software
would: the fonts embedded in the file (through fontTools, which WeasyPrint
already needs) and poppler's pdftotext and pdfinfo.
"""

from __future__ import annotations

import re
import subprocess
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from io import BytesIO
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.conf import settings
from django.test import override_settings
from fontTools.pens.boundsPen import BoundsPen
from fontTools.ttLib import TTFont

from clinic.models import User
from consent.services import consent_pdf_render_now
from tests.clinic_settings_support import settings_saved
from tests.consent.helpers import signed_consent_for
from tests.factories import (
    AftercareSheetFactory,
    ConsentFormVersionFactory,
    PatientFactory,
    ProtocolFactory,
)
from tests.treatments.test_aftercare import (
    book_next,
    completed_session,
    file_bytes,
    ready_document,
)
from treatments.demo import catalogue as demo_catalogue
from treatments.models import PatientDocumentStatus, Protocol

pytestmark = pytest.mark.django_db

BASE_DIR = Path(settings.BASE_DIR)
LONDON = ZoneInfo("Europe/London")
MM = 72 / 25.4  # PDF points in a millimetre

# (script, first name, last name): a name in each script the clinic's patients write in.
NAMES = (
    ("latin", "Zoë", "Müller-Ó Súilleabháin"),
    ("greek", "Ελένη", "Παπαδοπούλου"),
    ("cyrillic", "Анна", "Иванова"),
    ("arabic", "فاطمة", "الزهراء"),
    ("hebrew", "שרה", "כהן"),
    ("chinese", "王", "秀英"),
    ("japanese", "山田", "花子"),
    ("korean", "김", "민지"),
    ("devanagari", "प्रिया", "शर्मा"),
)
# Scripts whose letters pdftotext gives back in typed order; the others are
# reordered (right to left) or shaped into clusters (Devanagari conjuncts).
SIMPLE_ORDER = {"latin", "greek", "cyrillic", "chinese", "japanese", "korean"}


@pytest.fixture(autouse=True)
def media_root(tmp_path: Path) -> Iterator[Path]:
    storages = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path / "media")},
        },
    }
    with override_settings(STORAGES=storages, MEDIA_ROOT=str(tmp_path / "media")):
        yield tmp_path / "media"


@pytest.fixture(autouse=True)
def frozen_clock() -> Iterator[None]:
    with time_machine.travel(datetime(2026, 3, 12, 16, 30, tzinfo=LONDON), tick=False):
        yield


# --- Reading a PDF back ---------------------------------------------------------------


def _pdf_objects(data: bytes) -> dict[int, tuple[bytes, bytes | None]]:
    """Each indirect object of a PDF: its dictionary text and its decoded
    stream. Objects packed in object streams are unpacked too. Enough of PDF
    for what WeasyPrint writes (Flate streams with direct lengths)."""
    objects: dict[int, tuple[bytes, bytes | None]] = {}
    header = re.compile(rb"(\d+)\s+\d+\s+obj\b")
    position = 0
    while match := header.search(data, position):
        start = match.end()
        end = data.index(b"endobj", start)
        stream_at = data.find(b"stream", start, end)
        if stream_at == -1:
            objects[int(match.group(1))] = (data[start:end], None)
            position = end + len(b"endobj")
            continue
        head = data[start:stream_at]
        length = re.search(rb"/Length\s+(\d+)\b", head)
        assert length is not None, head
        body_start = stream_at + len(b"stream")
        body_start += 2 if data[body_start : body_start + 2] == b"\r\n" else 1
        raw = data[body_start : body_start + int(length.group(1))]
        body = zlib.decompress(raw) if b"/FlateDecode" in head else raw
        objects[int(match.group(1))] = (head, body)
        # Skip the stream's bytes: they may hold anything, "obj" included.
        position = data.index(b"endobj", body_start + len(raw)) + len(b"endobj")
    for head, packed in list(objects.values()):
        if b"/ObjStm" not in head or packed is None:
            continue
        count, first = (_number(head, key) for key in (b"N", b"First"))
        numbers = [int(n) for n in packed[:first].split()]
        pairs = list(zip(numbers[0::2], numbers[1::2], strict=True))[:count]
        for index, (number, offset) in enumerate(pairs):
            stop = first + pairs[index + 1][1] if index + 1 < len(pairs) else len(packed)
            objects[number] = (packed[first + offset : stop], None)
    return objects


def _number(head: bytes, key: bytes) -> int:
    match = re.search(rb"/" + key + rb"\s+(\d+)", head)
    assert match is not None, (key, head)
    return int(match.group(1))


def _ref(head: bytes, key: bytes) -> int | None:
    match = re.search(rb"/" + key + rb"\s+(\d+)\s+\d+\s+R", head)
    return int(match.group(1)) if match else None


def _hex_text(hex_digits: bytes) -> str:
    return bytes.fromhex(hex_digits.decode()).decode("utf-16-be")


def _to_unicode(cmap: bytes) -> dict[int, str]:
    """Character code -> the text it stands for (a ToUnicode CMap)."""
    texts: dict[int, str] = {}
    for block in re.findall(rb"beginbfchar(.*?)endbfchar", cmap, re.S):
        for code, text in re.findall(rb"<([0-9a-fA-F]+)>\s*<([0-9a-fA-F]*)>", block):
            texts[int(code, 16)] = _hex_text(text)
    for block in re.findall(rb"beginbfrange(.*?)endbfrange", cmap, re.S):
        for low, high, text in re.findall(
            rb"<([0-9a-fA-F]+)>\s*<([0-9a-fA-F]+)>\s*<([0-9a-fA-F]+)>", block
        ):
            start = _hex_text(text)
            for step, code in enumerate(range(int(low, 16), int(high, 16) + 1)):
                texts[code] = start[:-1] + chr(ord(start[-1]) + step)
    return texts


def _code_to_cid(cmap: bytes) -> dict[int, int]:
    """Character code -> CID (an Encoding CMap); codes it leaves out are CID 0."""
    cids: dict[int, int] = {}
    for block in re.findall(rb"begincidchar(.*?)endcidchar", cmap, re.S):
        for code, cid in re.findall(rb"<([0-9a-fA-F]+)>\s*(\d+)", block):
            cids[int(code, 16)] = int(cid)
    for block in re.findall(rb"begincidrange(.*?)endcidrange", cmap, re.S):
        for low, high, cid in re.findall(rb"<([0-9a-fA-F]+)>\s*<([0-9a-fA-F]+)>\s*(\d+)", block):
            for step, code in enumerate(range(int(low, 16), int(high, 16) + 1)):
                cids[code] = int(cid) + step
    return cids


@dataclass
class PrintedText:
    """What the fonts embedded in a PDF really draw."""

    drawn: set[str]  # characters drawn with a real glyph of an embedded font
    boxes: list[str]  # texts drawn with .notdef or an empty glyph: the empty box
    fonts: list[str]


def printed_text(data: bytes) -> PrintedText:
    """Follow every composite (Type 0) font of the PDF from the codes it shows
    to the glyph in the embedded font file: a code whose CID is 0 (.notdef),
    whose glyph is outside the font, or whose glyph has no outline (for
    anything but white space) prints as an empty box."""
    objects = _pdf_objects(data)
    result = PrintedText(drawn=set(), boxes=[], fonts=[])
    for head, _body in objects.values():
        if not re.search(rb"/Subtype\s*/Type0\b", head):
            continue
        descendant = re.search(rb"/DescendantFonts\s*\[\s*(\d+)\s+\d+\s+R", head)
        to_unicode_ref = _ref(head, b"ToUnicode")
        assert descendant is not None, head
        assert to_unicode_ref is not None, head
        texts = _to_unicode(objects[to_unicode_ref][1] or b"")
        encoding_ref = _ref(head, b"Encoding")
        if encoding_ref is None:
            assert b"/Identity-H" in head, head
            cids = {code: code for code in texts}
        else:
            cids = _code_to_cid(objects[encoding_ref][1] or b"")
        cid_font = objects[int(descendant.group(1))][0]
        descriptor_ref = _ref(cid_font, b"FontDescriptor")
        assert descriptor_ref is not None, cid_font
        descriptor = objects[descriptor_ref][0]
        font_file = next(
            ref for key in (b"FontFile2", b"FontFile3") if (ref := _ref(descriptor, key))
        )
        font = TTFont(BytesIO(objects[font_file][1] or b""), lazy=False)
        name = re.search(rb"/BaseFont\s*/([^\s/<>\[\]]+)", head)
        result.fonts.append(name.group(1).decode() if name else "?")
        glyph_set = font.getGlyphSet()
        order = font.getGlyphOrder()
        cid_keyed = "CFF " in font and font["CFF "].cff.topDictIndex[0].ROS is not None
        if "glyf" in font:
            # TrueType: glyphs indexed by CID through the identity map.
            assert b"/CIDFontType2" in cid_font, cid_font
            assert b"/CIDToGIDMap /Identity" in cid_font, cid_font
        else:
            # CFF (CID-keyed or not): a Type 0 CID font, no map to give.
            assert b"/CIDFontType0" in cid_font, cid_font
        for code, text in texts.items():
            cid = cids.get(code, 0)
            # A CID-keyed CFF font names its glyphs by CID; a TrueType one
            # is indexed by glyph id, which is the CID (CIDToGIDMap Identity).
            glyph = f"cid{cid:05d}" if cid_keyed else (order[cid] if cid < len(order) else None)
            real = cid != 0 and glyph is not None and glyph in glyph_set
            if real and not text.isspace():
                pen = BoundsPen(glyph_set)
                glyph_set[glyph].draw(pen)
                real = pen.bounds is not None
            if real:
                result.drawn.update(text)
            else:
                result.boxes.append(text)
    return result


def pdftotext(data: bytes, tmp_path: Path, *options: str) -> str:
    path = tmp_path / "read.pdf"
    path.write_bytes(data)
    return subprocess.run(
        ["pdftotext", *options, str(path), "-"],
        capture_output=True,
        check=True,
        text=True,
        timeout=60,
    ).stdout


def page_count(data: bytes, tmp_path: Path) -> int:
    path = tmp_path / "count.pdf"
    path.write_bytes(data)
    info = subprocess.run(
        ["pdfinfo", str(path)], capture_output=True, check=True, text=True, timeout=60
    ).stdout
    match = re.search(r"^Pages:\s+(\d+)$", info, re.M)
    assert match is not None, info
    return int(match.group(1))


@dataclass(frozen=True)
class Word:
    text: str
    x_min: float
    y_min: float
    x_max: float
    y_max: float


def words_and_page_width(data: bytes, tmp_path: Path) -> tuple[list[Word], float]:
    """Each word pdftotext finds, with its box in points, and the page width."""
    html = pdftotext(data, tmp_path, "-bbox")
    page = re.search(r'<page width="([\d.]+)"', html)
    assert page is not None, html[:500]
    width = float(page.group(1))
    words = [
        Word(
            text=text,
            x_min=float(x_min),
            y_min=float(y_min),
            x_max=float(x_max),
            y_max=float(y_max),
        )
        for x_min, y_min, x_max, y_max, text in re.findall(
            r'<word xMin="([\d.]+)" yMin="([\d.]+)" xMax="([\d.]+)" yMax="([\d.]+)">(.*?)</word>',
            html,
        )
    ]
    return words, width


def squeezed(text: str) -> str:
    """The text without white space: lines wrapped anywhere compare equal."""
    return re.sub(r"\s+", "", text)


def _patient(first: str, last: str) -> Any:
    return PatientFactory(first_name=first, last_name=last, email="patient@example.org")


# --- Every name prints ----------------------------------------------------------------------


def _assert_name_printed(data: bytes, tmp_path: Path, script: str, name: str) -> None:
    printed = printed_text(data)
    assert printed.boxes == [], (
        f"printed as empty boxes: {printed.boxes!r} (fonts embedded: {printed.fonts})"
    )
    missing = set(name) - {" "} - printed.drawn
    assert not missing, f"no glyph for {sorted(missing)!r} (fonts embedded: {printed.fonts})"
    text = pdftotext(data, tmp_path)
    if script in SIMPLE_ORDER:
        assert name in text
    else:
        assert set(name) - {" "} <= set(text)


@pytest.mark.parametrize(("script", "first", "last"), NAMES, ids=[n[0] for n in NAMES])
def test_the_aftercare_sheet_prints_the_patient_name_in_every_script(
    tmp_path: Path, script: str, first: str, last: str
) -> None:
    patient = _patient(first, last)

    document = ready_document(completed_session(patient=patient))

    assert document.status == PatientDocumentStatus.READY
    _assert_name_printed(file_bytes(document), tmp_path, script, patient.full_name)


@pytest.mark.parametrize(("script", "first", "last"), NAMES, ids=[n[0] for n in NAMES])
def test_the_signed_consent_prints_the_patient_name_in_every_script(
    tmp_path: Path, practitioner: User, script: str, first: str, last: str
) -> None:
    patient = _patient(first, last)
    signed = signed_consent_for(
        patient=patient, version=ConsentFormVersionFactory(), witness=practitioner
    )

    row = consent_pdf_render_now(signed_consent_id=signed.pk)

    assert row.file
    _assert_name_printed(row.file.read(), tmp_path, script, patient.full_name)


@pytest.mark.parametrize(
    ("script", "first", "last"),
    [n for n in NAMES if n[0] in ("arabic", "hebrew")],
    ids=["arabic", "hebrew"],
)
@pytest.mark.parametrize("document", ["aftercare sheet", "signed consent"])
def test_a_right_to_left_name_prints_right_to_left(
    tmp_path: Path, practitioner: User, document: str, script: str, first: str, last: str
) -> None:
    patient = _patient(first, last)
    if document == "aftercare sheet":
        data = file_bytes(ready_document(completed_session(patient=patient)))
    else:
        signed = signed_consent_for(
            patient=patient, version=ConsentFormVersionFactory(), witness=practitioner
        )
        row = consent_pdf_render_now(signed_consent_id=signed.pk)
        data = row.file.read()

    words, _width = words_and_page_width(data, tmp_path)
    # With -bbox pdftotext lists each word's letters in the order they were
    # drawn, left to right: a word written right to left comes out reversed.
    # The first name is read first, so it stands to the right of the last name.
    firsts = [w for w in words if w.text == first[::-1]]
    lasts = [w for w in words if w.text == last[::-1]]
    assert firsts, [w.text for w in words]
    for first_word in firsts:
        beside = [w for w in lasts if abs(w.y_min - first_word.y_min) < 2]
        assert beside, f"{first} and {last} are not on one line"
        assert all(w.x_max <= first_word.x_min + 0.5 for w in beside)


# --- Long words wrap inside their column ----------------------------------------------------

LONG_ADDRESS = (
    "https://www.example-clinic.co.uk/aftercare/mesotherapy/face-neck-and-hands"
    "/sun-protection-advice.htm"
)
LONG_WORD = "Photoprotectionandhydrationrecommendationsforthedelicateskin"


def test_a_long_web_address_and_word_in_the_advice_wrap_inside_their_columns(
    tmp_path: Path,
) -> None:
    assert (len(LONG_ADDRESS), len(LONG_WORD)) == (100, 60)
    sheet = AftercareSheetFactory(
        introduction="Some redness is normal after mesotherapy.",
        do_advice=f"Read our sun advice at {LONG_ADDRESS}\nAsk about {LONG_WORD}\nDrink water",
        avoid_advice=f"Sun beds: see {LONG_ADDRESS}\n{LONG_WORD}: for a week\nMake-up: 12 hours",
        warning_signs="Spreading redness or heat\nDifficulty breathing: call 999",
    )
    record = completed_session(protocol=ProtocolFactory(aftercare_sheet=sheet))

    data = file_bytes(ready_document(record))

    # Every section is printed in full: its text, wrapped anywhere, reads back whole.
    printed = squeezed(pdftotext(data, tmp_path, "-raw"))
    for line in [
        sheet.introduction,
        "What to do",
        *sheet.do_lines,
        "What to avoid, and for how long",
        *sheet.avoid_lines,
        "When to contact us",
        *sheet.warning_lines,
        "Your next session",
    ]:
        assert squeezed(line) in printed, line
    # Nothing is printed beyond the page's margins (14 mm each side).
    words, width = words_and_page_width(data, tmp_path)
    outside = [w.text for w in words if w.x_min < 14 * MM - 1 or w.x_max > width - 14 * MM + 1]
    assert outside == []
    # Each column keeps to its own half: what to do never runs into what to avoid.
    headings = [w for w in words if w.text == "What"]
    do_heading, avoid_heading = sorted(headings[:2], key=lambda w: w.x_min)
    assert abs(do_heading.y_min - avoid_heading.y_min) < 1
    contact = next(w for w in words if w.text == "When" and w.y_min > do_heading.y_min)
    in_columns = [w for w in words if do_heading.y_min <= w.y_min < contact.y_min]
    assert any(LONG_WORD[:10] in w.text for w in in_columns)
    crossing = [
        w.text
        for w in in_columns
        if w.x_min < avoid_heading.x_min < w.x_max or w.x_max > width - 14 * MM + 1
    ]
    assert crossing == []


# --- The demo sheets fit the page count the user guide promises ---------------------------


def promised_pages() -> int:
    """How many A4 pages the user guide says an aftercare sheet is."""
    guide = (BASE_DIR / "docs" / "user-guide.md").read_text()
    match = re.search(r"\*\*Aftercare sheet\*\*.*?\((one|two|three) A4 pages?\b", guide, re.S)
    assert match is not None, "the user guide no longer says how long an aftercare sheet is"
    return {"one": 1, "two": 2, "three": 3}[match.group(1)]


def test_every_demo_aftercare_sheet_fits_the_pages_the_user_guide_promises(
    tmp_path: Path, settings: Any, practitioner: User, receptionist: User
) -> None:
    # As `make run` shows the demo: the clinic's phone and address in the header.
    settings_saved(clinic_phone="+442079460000", clinic_address="1 High Street, London")
    demo_catalogue.seed(practitioner=practitioner, reception=receptionist)
    protocols = list(Protocol.objects.select_related("aftercare_sheet").order_by("name"))
    assert {p.aftercare_sheet.title for p in protocols} == set(demo_catalogue.SHEETS)

    pages = {}
    for protocol in protocols:
        # Every area the protocol treats, and the next session booked: the
        # longest sheet the demo can make for it.
        record = completed_session(
            patient=_patient("Zoë", "Müller-Ó Súilleabháin"),
            protocol=protocol,
            areas=tuple(protocol.default_areas),
        )
        book_next(record)
        pages[protocol.name] = page_count(file_bytes(ready_document(record)), tmp_path)

    assert pages == dict.fromkeys(pages, promised_pages())
