"""The patient import against hostile and careless files: NUL characters
anywhere, workbooks that unpack to gigabytes or claim a million rows, the
same file sent twice at once after a discarded copy, a byte-order mark before
Windows-1252 text, Excel's "sep=" line, dates with a midnight time or written
month first, and a password-protected workbook."""

from __future__ import annotations

import io
import re
import tracemalloc
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import openpyxl
import pytest
import time_machine
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from openpyxl.worksheet._read_only import ReadOnlyWorksheet

from clinic.models import User
from clinic.roles import Role
from patients.imports import (
    IMPORT_MAX_CELL,
    IMPORT_MAX_ROWS,
    ImportRefusedError,
    patient_import_cancel,
    patient_import_upload,
    table_read,
)
from patients.models import PatientImport, PatientImportStatus
from tests.conftest import sign_in
from tests.patients.test_import import csv_bytes, good_rows, mapped, problems_of, upload
from tests.races import post_at_once

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
UPLOAD = reverse("patients:import_list")


@pytest.fixture(autouse=True)
def frozen_clock() -> Iterator[None]:
    with time_machine.travel(NOW, tick=False):
        yield


def post_file(client: Client, data: bytes, name: str = "patients.csv") -> tuple[int, str]:
    answer = client.post(UPLOAD, {"file": SimpleUploadedFile(name, data, "text/csv")})
    return answer.status_code, answer.content.decode()


def workbook(rows: list[list[str]], far_cell: str | None = None) -> bytes:
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    for row in rows:
        sheet.append(row)
    if far_cell:
        sheet[far_cell] = "x"
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def rezipped(data: bytes, old: bytes, new: bytes) -> bytes:
    """The workbook `data` with the text `old` replaced wherever it is held
    (a cell's text, or the sheet's dimension)."""
    source = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    replaced = 0
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as target:
        for item in source.infolist():
            body = source.read(item.filename)
            replaced += body.count(old)
            target.writestr(item.filename, body.replace(old, new))
    assert replaced == 1
    return out.getvalue()


HEADER_ROWS = [["First name", "Surname", "DOB"], ["Ana", "Lee", "01/01/1990"]]


# --- NUL characters ------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    "bad_row",
    ["Ana\x00,Lee,01/01/1990,,,", "Ana,Lee\x00\x00,01/01/1990,,,"],
    ids=["first", "second"],
)
def test_a_nul_past_the_first_4kb_is_a_400_not_a_text_file(manager: User, bad_row: str) -> None:
    data = csv_bytes([*good_rows(60), bad_row])
    assert len(data) > 4096
    assert b"\x00" not in data[:4096]
    client = sign_in(Client(raise_request_exception=False), manager)
    status, page = post_file(client, data)
    assert status == 400
    assert "holds characters that are not text" in page
    assert not PatientImport.objects.exists()


@pytest.mark.django_db
def test_a_utf16_file_is_read_and_a_nul_in_its_cell_is_a_400(manager: User) -> None:
    good = csv_bytes(good_rows(2), encoding="utf-16")
    assert table_read(data=good, file_name="u16.csv").rows[0][:2] == ["Anna0", "Patient0"]
    bad = csv_bytes(["Ana\x00,Lee,01/01/1990,,,", *good_rows(2)], encoding="utf-16")
    client = sign_in(Client(raise_request_exception=False), manager)
    status, page = post_file(client, bad)
    assert status == 400
    assert "holds characters that are not text" in page


def test_a_utf32_file_with_its_mark_is_read() -> None:
    table = table_read(data=csv_bytes(good_rows(1), encoding="utf-32"), file_name="u32.csv")
    assert table.rows[0][:2] == ["Anna0", "Patient0"]


# --- Workbooks that would tie up a web worker ------------------------------------------


@dataclass
class Work:
    """What reading a file cost, counted rather than timed: the workbooks
    openpyxl opened and the sheet rows it handed over; Python's allocations
    are traced meanwhile (tracemalloc)."""

    workbooks_opened: int = 0
    rows_read: int = 0


@pytest.fixture
def work(monkeypatch: pytest.MonkeyPatch) -> Iterator[Work]:
    counted = Work()
    real_load = openpyxl.load_workbook
    real_iter_rows = ReadOnlyWorksheet.iter_rows

    def load_counted(*args: Any, **kwargs: Any) -> Any:
        counted.workbooks_opened += 1
        return real_load(*args, **kwargs)

    def iter_rows_counted(sheet: ReadOnlyWorksheet, *args: Any, **kwargs: Any) -> Iterator[Any]:
        for row in real_iter_rows(sheet, *args, **kwargs):
            counted.rows_read += 1
            yield row

    monkeypatch.setattr(openpyxl, "load_workbook", load_counted)
    monkeypatch.setattr(ReadOnlyWorksheet, "iter_rows", iter_rows_counted)
    tracemalloc.start()
    try:
        yield counted
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("far_cell", ["C1048576", "CV1048576"])
def test_a_tiny_workbook_claiming_a_million_rows_is_refused_at_once(
    far_cell: str, work: Work
) -> None:
    data = workbook(HEADER_ROWS, far_cell)
    assert len(data) < 6000
    with pytest.raises(ImportRefusedError) as refused:
        table_read(data=data, file_name="tiny.xlsx")
    # Refused on the sheet's declared size, before a single row is read.
    assert work.rows_read == 0
    assert "reaches down to row 1,048,576" in refused.value.message
    assert "at most 20,000 rows" in refused.value.message


def test_a_workbook_hiding_its_far_row_from_the_dimension_stops_past_the_limit(
    work: Work,
) -> None:
    """The declared dimension is a claim: without it openpyxl fills the gap
    before a far cell with empty rows, and the reading stops one row past
    the limit instead of going through a million of them."""
    data = workbook(HEADER_ROWS, "C1048576")
    data = rezipped(data, b'<dimension ref="A1:C1048576" />', b"")
    with pytest.raises(ImportRefusedError) as refused:
        table_read(data=data, file_name="tiny.xlsx")
    assert work.rows_read == IMPORT_MAX_ROWS + 2
    assert "goes on below row 20,001" in refused.value.message
    assert "at most 20,000 rows" in refused.value.message


def test_a_far_cell_within_the_limit_is_a_row_of_its_own(work: Work) -> None:
    data = workbook(HEADER_ROWS, "C500")
    data = rezipped(data, b'<dimension ref="A1:C500" />', b"")
    table = table_read(data=data, file_name="tiny.xlsx")
    # Not lost, and the empty rows before it are not rows of the list.
    assert table.rows == [["Ana", "Lee", "01/01/1990"], ["", "", "x"]]
    assert work.rows_read == 500


def test_a_zip_bomb_workbook_is_refused_before_it_is_unpacked(work: Work) -> None:
    data = rezipped(
        workbook([["First name", "Surname", "DOB"], ["BIGSTRING", "Lee", "01/01/1990"]]),
        b"BIGSTRING",
        b"A" * (60 * 1024 * 1024),
    )
    assert len(data) < 200_000
    tracemalloc.reset_peak()
    with pytest.raises(ImportRefusedError) as refused:
        table_read(data=data, file_name="bomb.xlsx")
    assert work.workbooks_opened == 0
    assert tracemalloc.get_traced_memory()[1] < 5 * 1024 * 1024  # bytes, at the peak
    assert "unpacks to more than 50 MB" in refused.value.message


@pytest.mark.django_db
def test_a_cell_over_1000_characters_is_cut_and_its_row_named(manager: User) -> None:
    long_name = "A" * 5_000_000
    data = rezipped(
        workbook([["First name", "Surname", "DOB"], ["BIGSTRING", "Lee", "01/01/1990"]]),
        b"BIGSTRING",
        long_name.encode(),
    )
    assert table_read(data=data, file_name="long.xlsx").rows[0][0] == "A" * (IMPORT_MAX_CELL + 1)
    long_csv = csv_bytes([f"{'B' * 20_000},Lee,01/01/1990,,,"])
    job = mapped(manager, long_csv)
    assert len(job.rows[0][0]) == IMPORT_MAX_CELL + 1
    assert problems_of(job) == {2: "First name is longer than 1,000 characters."}


def test_a_password_protected_workbook_is_called_that() -> None:
    # The start of an encrypted OOXML package: an OLE compound file whose
    # directory names the EncryptionInfo and EncryptedPackage streams.
    header = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 504
    directory = b"".join(
        name.encode("utf-16-le").ljust(64, b"\x00") + b"\x00" * 64
        for name in ("Root Entry", "EncryptionInfo", "EncryptedPackage")
    )
    with pytest.raises(ImportRefusedError) as refused:
        table_read(data=header + directory, file_name="locked.xlsx")
    assert "protected with a password" in refused.value.message
    with pytest.raises(ImportRefusedError) as old:
        table_read(data=header + b"\x00" * 512, file_name="old.xls")
    assert "old Excel file (.xls)" in old.value.message


# --- The same file twice at once --------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_same_file_sent_twice_at_once_after_a_discarded_one(
    manager: User, make_staff: object
) -> None:
    """Both posts pass the "same file" check while reading the file; the
    loser's insert is refused by the unique index and it names the winner,
    not the discarded copy."""
    data = csv_bytes(good_rows(8000))
    first = patient_import_upload(created_by=manager, data=data, file_name="p.csv")
    patient_import_cancel(job=first, user=manager, expected_version=first.version)
    other = make_staff("second_manager", Role.MANAGER)  # type: ignore[operator]
    clients = [sign_in(Client(), manager), sign_in(Client(), other)]
    payloads = [{"file": SimpleUploadedFile("p.csv", data, "text/csv")} for _ in clients]
    answers = post_at_once(clients, UPLOAD, payloads)
    assert sorted(answer.status for answer in answers) == [302, 409], [
        (answer.status, answer.body[:300]) for answer in answers
    ]
    winner = PatientImport.objects.exclude(status=PatientImportStatus.CANCELLED).get()
    loser = next(answer for answer in answers if answer.status == 409)
    assert "already uploaded on Mon 23 Nov" in loser.body
    assert winner.get_absolute_url() in loser.body


# --- Careless files ---------------------------------------------------------------------


@pytest.mark.django_db
def test_a_utf8_mark_before_windows_1252_text_reads_the_accents(manager: User) -> None:
    data = b"\xef\xbb\xbfFirst name,Surname,DOB\r\nJos\xe9,M\xfcller,01/01/1990\r\n"
    table = table_read(data=data, file_name="bom.csv")
    assert table.headers == ["First name", "Surname", "DOB"]
    assert table.rows == [["José", "Müller", "01/01/1990"]]
    assert "\ufffd" not in str(upload(manager, data).rows)


def test_excels_sep_line_names_the_separator() -> None:
    table = table_read(
        data=b"sep=;\r\nFirst name;Surname;DOB\r\nAna;Lee;01/01/1990\r\n", file_name="x.csv"
    )
    assert table.headers == ["First name", "Surname", "DOB"]
    assert table.rows == [["Ana", "Lee", "01/01/1990"]]
    table = table_read(data=b"sep=|\nA|B\n1,5|2\n", file_name="x.csv")
    assert table.rows == [["1,5", "2"]]


@pytest.mark.django_db
def test_a_date_with_a_midnight_time_is_a_date(manager: User) -> None:
    job = mapped(
        manager,
        csv_bytes(
            [
                "Ana,Lee,14/02/1990 00:00,,,",
                "Bo,Ray,1990-02-15 00:00:00,,,",
                "Cy,Fox,16/02/1990 09:30,,,",
            ]
        ),
    )
    assert set(problems_of(job)) == {4}
    assert "“16/02/1990 09:30” is not a date" in problems_of(job)[4]


@pytest.mark.django_db
def test_dates_are_read_day_first_and_a_month_first_column_is_flagged(manager: User) -> None:
    job = mapped(manager, csv_bytes(["Ana,Lee,03/04/1990,,,", "Bo,Ray,13/04/1990,,,"]))
    assert job.problems == {}
    us = mapped(
        manager,
        csv_bytes(["Ana,Lee,03/04/1990,,,", "Bo,Ray,12/31/1990 00:00,,,", "Cy,Fox,13/04/1990,,,"]),
    )
    found = problems_of(us)
    assert set(found) == {2, 3}
    assert "looks written month first" in found[3]
    assert "“03/04/1990” may be written month first, as row 3 (“12/31/1990 00:00”) is" in found[2]
    assert "read day first it is 3 April 1990" in found[2]


@pytest.mark.django_db
def test_the_column_page_says_dates_are_read_day_first(client: Client, manager: User) -> None:
    job = upload(manager, csv_bytes(good_rows(2)))
    sign_in(client, manager)
    page = client.get(reverse("patients:import_columns", args=[job.uuid])).content.decode()
    text = re.sub(r"\s+", " ", page)
    assert "Dates are read day first: 03/04/1990 is 3 April 1990." in text
    assert "A value longer than 1,000 characters cannot be imported" in text
