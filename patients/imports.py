"""Patients arriving from another system: a CSV or Excel list, read, its
columns matched to the register's fields, each row checked, then imported all
or nothing by a Celery task (patients.tasks.patient_import_run).

Reading: Excel workbooks (.xlsx) with openpyxl in read-only mode, row by row
(values only: a formula's cached result, never the formula run), after the
zip's declared unpacked sizes and the sheet's declared dimension are checked,
so a small file that unpacks to gigabytes or claims a million rows is refused
before it is read; CSV files through the standard `csv` module after our own
decoding (UTF-8 with or without a byte-order mark, UTF-16/32 with one,
otherwise Windows-1252, the encoding of Excel's "CSV" on Windows; Excel's
``sep=;`` first line honoured), because exports pad rows unevenly and a
stricter reader (tablib's) refuses a short row. A NUL character anywhere is refused (the
database cannot store it). Every cell is kept as text: a cell
such as ``=HYPERLINK(...)`` or ``+1 234`` is stored as typed and never
evaluated (clinic.spreadsheets quotes it again when a CSV is written).

Checking: each row is made into a `Patient` with the registration's own
normalisation (`Patient.full_clean`: names in NFC, phone numbers parsed to
E.164 with the clinic's default region, the email checked; the search text
from `patients.services.patient_search_text`) and the registration form's
birth-date rules; likely duplicates are found with the registration's
matching (`patients.selectors.patient_possible_duplicates`: the same folded
names in either order with the same birth date, the same email in any case,
or the same phone), against the register and between the file's own rows,
for every row at once in three indexed queries; a row with other problems is
matched by what could be read, so all its problems are named together. Each
check for the preview is audited as a search of the register naming the
import. The run checks again holding registration's own guard alone
(`patients.services.patient_register_lock_all`), so a registration at the
desk and the import never both pass their checks.
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
import re
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import openpyxl
import phonenumbers
from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.db.models import F, Q, TextField
from django.db.models.functions import Cast, Upper
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from phonenumber_field.phonenumber import PhoneNumber

from clinic import dates
from clinic.audit import audit_log
from clinic.background import enqueue
from clinic.models import AuditAction, User
from clinic.refusals import RefusalKind, RefusedError
from patients.folding import name_key
from patients.models import (
    PATIENT_IMPORT_MOVES,
    ContactChange,
    ContactField,
    ContactNoticeStatus,
    Patient,
    PatientImport,
    PatientImportStatus,
    ReminderChannel,
)
from patients.search_audit import SEARCH_OBJECT_TYPE
from patients.selectors import patients_visible_to
from patients.services import patient_register_lock_all, patient_search_text

logger = logging.getLogger(__name__)

# The most rows one import takes: a small clinic's whole register is a few
# thousand, and 10,000 take about 15 s of CPU (docs/benchmarks.md), so
# 20,000 finish well inside the task's time limit (CELERY_TASK_SOFT_TIME_LIMIT,
# 300 s) even on a busy machine. Then the most columns, and the largest file
# (the upload route's body limit, UPLOAD_BODY_MAX_BYTES, is above it so the
# page answers in words).
IMPORT_MAX_ROWS = 20_000
IMPORT_MAX_COLUMNS = 100
IMPORT_MAX_BYTES = 10 * 1024 * 1024
# A cell longer than this is not a value of any field we import: longer
# cells are kept cut to one character more, so a mapped one is named as too long.
IMPORT_MAX_CELL = 1000
# The most a workbook may unpack to (the zip's declared sizes, read before
# anything is unpacked): a 20,000-row list of ten columns unpacks to about
# 13 MB (measured, cells written inline), so a larger one is a damaged file or a zip bomb.
IMPORT_MAX_UNPACKED = 50 * 1024 * 1024
# Patients inserted per statement: the search-word triggers run once each.
IMPORT_BATCH = 1000
# The rows' problems a page of the preview lists.
PROBLEMS_PER_PAGE = 50

# The register's fields an import may fill, in the order the mapping form shows them.
IMPORT_FIELDS: tuple[tuple[str, Any], ...] = (
    ("first_name", gettext_lazy("First name")),
    ("last_name", gettext_lazy("Last name")),
    ("date_of_birth", gettext_lazy("Date of birth")),
    ("email", gettext_lazy("Email")),
    ("phone", gettext_lazy("Mobile phone")),
    ("address", gettext_lazy("Address")),
    ("postcode", gettext_lazy("Postcode")),
    ("emergency_contact_name", gettext_lazy("Emergency contact")),
    ("emergency_contact_phone", gettext_lazy("Emergency contact phone")),
    ("gp_details", gettext_lazy("GP (doctor) and practice")),
)
IMPORT_FIELD_NAMES = tuple(name for name, _label in IMPORT_FIELDS)
REQUIRED_FIELDS = ("first_name", "last_name", "date_of_birth")

# Header words (folded: lower case, letters and digits only) that name each field.
_HEADER_GUESSES: dict[str, tuple[str, ...]] = {
    "first_name": ("firstname", "forename", "forenames", "givenname", "first", "prenom", "name1"),
    "last_name": ("lastname", "surname", "familyname", "last", "nom", "name2"),
    "date_of_birth": ("dateofbirth", "dob", "birthdate", "born", "birthday", "datenaissance"),
    "email": ("email", "emailaddress", "mail"),
    "phone": (
        "mobile",
        "mobilephone",
        "mobilenumber",
        "phone",
        "phonenumber",
        "telephone",
        "tel",
        "cell",
        "cellphone",
    ),
    "address": ("address", "streetaddress", "address1", "addressline1", "street"),
    "postcode": ("postcode", "postalcode", "zip", "zipcode", "postcodezip"),
    "emergency_contact_name": ("emergencycontact", "emergencycontactname", "nextofkin", "kin"),
    "emergency_contact_phone": (
        "emergencycontactphone",
        "emergencyphone",
        "nextofkinphone",
        "emergencycontactnumber",
        "emergencynumber",
    ),
    "gp_details": ("gp", "gpdetails", "gppractice", "doctor", "gpname", "practice"),
}

_DATE_FORMATS = ("%d/%m/%Y", "%Y-%m-%d", "%d-%m-%Y", "%d.%m.%Y", "%Y/%m/%d")
_XLSX_MAGIC = b"PK\x03\x04"
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # the old .xls format
# A password-protected .xlsx is an OLE file holding these streams ([MS-OFFCRYPTO] 2.3.4).
_ENCRYPTED_MARKS = ("EncryptionInfo".encode("utf-16-le"), "EncryptedPackage".encode("utf-16-le"))
# "sep=;" on a CSV's first line: Excel's way of naming the separator.
_SEP_LINE = re.compile(r"sep=(.)[ \t]*\r?\n?")
# A date followed by a midnight time, as some systems export a date column.
_MIDNIGHT = re.compile(r"(.+?)[ T]0?0:00(?::00(?:\.0+)?)?")
_DAY_MONTH_YEAR = re.compile(r"(\d{1,2})[/.-](\d{1,2})[/.-](\d{4})")


class _CheckedPhoneNumber(PhoneNumber):
    """A phone number that works out once whether it is valid: the field's
    validator, its text for the database and the search text each ask, and
    with 10,000 rows the library's checks were most of an import's time."""

    _valid: bool | None = None

    def is_valid(self) -> bool:
        if self._valid is None:
            self._valid = bool(super().is_valid())
        return self._valid


def _phone(text: str) -> PhoneNumber | str:
    """`text` parsed as registration parses it (the clinic's default region),
    or the text itself when it is no number at all (the field then says so)."""
    try:
        return _CheckedPhoneNumber.from_string(text)
    except phonenumbers.NumberParseException:
        return text


class ImportRefusedError(RefusedError):
    """An import refused: the file cannot be read, the columns do not match,
    or the import's state forbids the step. `message` says what to do."""

    code = "import_refused"
    kind = RefusalKind.INVALID


@dataclass
class Table:
    """A file's header row and its other rows, every cell as text."""

    headers: list[str]
    rows: list[list[str]]


@dataclass
class RowCheck:
    """What checking the rows found: each row's problems by position, and the
    patients ready to create (position -> unsaved Patient) for rows without."""

    problems: dict[int, list[str]] = field(default_factory=dict)
    patients: dict[int, Patient] = field(default_factory=dict)

    def add(self, row: int, problem: str) -> None:
        self.problems.setdefault(row, []).append(problem)


# --- Reading a file ------------------------------------------------------------------


def _cell_text(value: Any) -> str:
    """A spreadsheet value as the text it shows: dates as ISO dates, whole
    numbers without ".0", None as empty. Never a formula's evaluation."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        if value.time() == datetime.min.time():
            return value.date().isoformat()
        return value.isoformat(sep=" ")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, bool):
        return _("yes") if value else _("no")
    return str(value)


def _decode(data: bytes) -> str:
    """CSV bytes as text: UTF-8 (a byte-order mark dropped), UTF-16 or UTF-32
    with their mark, otherwise Windows-1252 (Excel's CSV on Windows), whose few
    unused bytes are read as Latin-1 rather than refused. A UTF-8 mark before
    a body that is not UTF-8 (some tools write one before Windows-1252 text)
    reads the whole body as Windows-1252, never with replacement marks."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    elif data.startswith((b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff")):
        return _decode_wide(data, "utf-32")
    elif data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return _decode_wide(data, "utf-16")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("cp1252")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _decode_wide(data: bytes, encoding: str) -> str:
    try:
        return data.decode(encoding)
    except UnicodeDecodeError:
        raise ImportRefusedError(
            _(
                "The file could not be read as text: it starts as %(encoding)s text but is "
                "damaged. Export the list again as CSV (UTF-8) or .xlsx."
            )
            % {"encoding": encoding.upper()}
        ) from None


def _csv_rows(text: str) -> Iterable[list[str]]:
    sep = _SEP_LINE.match(text)
    if sep is not None:
        delimiter = sep.group(1)
        text = text[sep.end() :]
    else:
        try:
            delimiter = csv.Sniffer().sniff(text[:20_000], delimiters=",;\t|").delimiter
        except csv.Error:
            delimiter = ","
    try:
        return list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=False))
    except csv.Error:
        raise ImportRefusedError(
            _("The file could not be read as CSV: check it was saved as CSV or Excel.")
        ) from None


def _workbook_damaged() -> ImportRefusedError:
    return ImportRefusedError(
        _(
            "The file looks like an Excel workbook but could not be opened. Open it in "
            "Excel or LibreOffice and save it again as .xlsx or CSV."
        )
    )


def _workbook_rows(data: bytes) -> Iterable[list[str]]:
    """The first sheet's rows, read lazily with openpyxl's read-only mode.

    Before anything is unpacked the zip's declared sizes are added up
    (refused over IMPORT_MAX_UNPACKED: a zip bomb) and the sheet's declared
    dimension is read (refused beyond IMPORT_MAX_ROWS + 1 rows); then rows
    are read one at a time, stopping one row past the limit, so neither a
    forged dimension nor a million empty rows is ever held in memory."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        unpacked = sum(member.file_size for member in archive.infolist())
    except (zipfile.BadZipFile, ValueError, OSError):
        raise _workbook_damaged() from None
    if unpacked > IMPORT_MAX_UNPACKED:
        raise ImportRefusedError(
            _(
                "The workbook unpacks to more than %(mb)s MB, far more than a patient list "
                "needs: it may be damaged. Open it in Excel or LibreOffice, save the list "
                "alone as .xlsx or CSV and upload that."
            )
            % {"mb": IMPORT_MAX_UNPACKED // (1024 * 1024)}
        )
    try:
        book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
        sheet = book.active or book.worksheets[0]
    except Exception:  # openpyxl raises many kinds on a damaged or foreign zip
        raise _workbook_damaged() from None
    declared = getattr(sheet, "max_row", None)
    if isinstance(declared, int) and declared > IMPORT_MAX_ROWS + 1:
        raise _sheet_too_long(
            _("The sheet reaches down to row %(last)s.") % {"last": f"{declared:,}"}
        )
    # The declared dimension is only a claim: read every row the sheet holds.
    sheet.reset_dimensions()
    return _workbook_row_cells(sheet)


def _sheet_too_long(where: str) -> ImportRefusedError:
    return ImportRefusedError(
        _(
            "%(where)s One import takes at most %(max)s rows. If the list is shorter, "
            "something is typed far below it: delete the rows under the list in Excel, "
            "save and upload again; otherwise split the list."
        )
        % {"where": where, "max": f"{IMPORT_MAX_ROWS:,}"}
    )


def _workbook_row_cells(sheet: Any) -> Iterable[list[str]]:
    """The sheet's rows in order, the empty rows openpyxl fills gaps with
    included: the reading stops at the first row past IMPORT_MAX_ROWS + 1,
    whatever it holds, so a lone cell a million rows down costs 20,001 rows
    of reading, not a million."""
    try:
        for number, row in enumerate(sheet.iter_rows(values_only=True), start=1):
            if number > IMPORT_MAX_ROWS + 1:
                raise _sheet_too_long(
                    _("The sheet goes on below row %(last)s.")
                    % {"last": f"{IMPORT_MAX_ROWS + 1:,}"}
                )
            yield [_cell_text(value)[: IMPORT_MAX_CELL + 1] for value in row]
    except ImportRefusedError:
        raise
    except Exception:  # a sheet damaged part way through
        raise _workbook_damaged() from None


def _not_text() -> ImportRefusedError:
    return ImportRefusedError(
        _(
            "This file is not a CSV file or an Excel workbook: it holds characters that are "
            "not text. Export the patient list from the other system as CSV or .xlsx."
        )
    )


def _encrypted(data: bytes) -> bool:
    return any(mark in data for mark in _ENCRYPTED_MARKS)


def table_read(*, data: bytes, file_name: str) -> Table:
    """The header row and rows of an uploaded patient list.

    `data` is the file's bytes, `file_name` its name as uploaded (only for
    messages: the format is told from the content, so an Excel workbook
    renamed .csv is read as the workbook it is). Empty rows are skipped;
    short rows padded with empty cells; header cells left empty are named
    "Column N". Every cell is text, stripped of surrounding spaces.

    Rows are read one at a time and reading stops one row past
    IMPORT_MAX_ROWS; a cell longer than IMPORT_MAX_CELL characters is kept
    cut to IMPORT_MAX_CELL + 1, so a mapped one is named as too long.

    Raises `ImportRefusedError` for an empty file, one over IMPORT_MAX_BYTES,
    the old .xls format, a password-protected workbook, a binary file that is
    not a workbook, text holding a NUL character anywhere (PostgreSQL cannot
    store it), a damaged workbook, one unpacking to more than
    IMPORT_MAX_UNPACKED bytes or whose sheet declares more rows than
    IMPORT_MAX_ROWS + 1, fewer than two columns or more than IMPORT_MAX_COLUMNS, a header
    without rows, more than IMPORT_MAX_ROWS rows, two columns with the same
    name, or a row with values beyond the last named column.
    """
    if not data:
        raise ImportRefusedError(_("The file is empty."))
    if len(data) > IMPORT_MAX_BYTES:
        raise ImportRefusedError(
            _("The file is larger than %(mb)s MB: split the list into smaller files.")
            % {"mb": IMPORT_MAX_BYTES // (1024 * 1024)}
        )
    if data.startswith(_OLE_MAGIC):
        if _encrypted(data):
            raise ImportRefusedError(
                _(
                    "This Excel workbook is protected with a password, so it cannot be read. "
                    "Open it in Excel, remove the password (File, Info, Protect Workbook), "
                    "save it and upload it again."
                )
            )
        raise ImportRefusedError(
            _("This is an old Excel file (.xls). Open it in Excel and save it as .xlsx or CSV.")
        )
    if data.startswith(_XLSX_MAGIC) and zipfile.is_zipfile(io.BytesIO(data)):
        raw = _workbook_rows(data)
    else:
        if b"\x00" in data[:4096] and not data.startswith((b"\xff\xfe", b"\xfe\xff")):
            raise _not_text()
        text = _decode(data)
        if "\x00" in text:  # anywhere, not only near the start: the database refuses it
            raise _not_text()
        raw = _csv_rows(text)
    rows: list[list[str]] = []
    for cells in raw:
        row = [str(cell).strip()[: IMPORT_MAX_CELL + 1] for cell in cells]
        if not any(row):
            continue
        if any("\x00" in cell for cell in row):
            raise _not_text()
        rows.append(row)
        if len(rows) > IMPORT_MAX_ROWS + 1:
            # Stop reading: the count below says the limit, not the file's size.
            break
    if not rows:
        raise ImportRefusedError(_("The file has no rows."))
    header = rows[0]
    while header and not header[-1]:
        header.pop()
    if len(header) < 2:
        raise ImportRefusedError(
            _(
                "The file has only one column. A patient list needs at least first name, last "
                "name and date of birth in columns of their own: if they are there, the file "
                "may use a separator other than commas or semicolons."
            )
        )
    if len(header) > IMPORT_MAX_COLUMNS:
        raise ImportRefusedError(
            _("The file has %(count)s columns; at most %(max)s can be read. Remove the others.")
            % {"count": len(header), "max": IMPORT_MAX_COLUMNS}
        )
    body = rows[1:]
    if not body:
        raise ImportRefusedError(_("The file has a header row but no patients."))
    if len(body) > IMPORT_MAX_ROWS:
        raise ImportRefusedError(
            _(
                "The file has more than %(max)s rows; one import takes at most %(max)s. "
                "Split the list."
            )
            % {"max": f"{IMPORT_MAX_ROWS:,}"}
        )
    headers = [text[:100] or _("Column %(n)s") % {"n": n} for n, text in enumerate(header, 1)]
    seen: dict[str, int] = {}
    for position, name in enumerate(headers, 1):
        folded = name.casefold()
        if folded in seen:
            raise ImportRefusedError(
                _(
                    "Columns %(first)s and %(second)s are both called “%(name)s”. Rename one "
                    "of them in the file and upload it again."
                )
                % {"first": seen[folded], "second": position, "name": name}
            )
        seen[folded] = position
    width = len(headers)
    table_rows = []
    for number, row in enumerate(body, 2):
        if any(row[width:]):
            raise ImportRefusedError(
                _(
                    "Line %(line)s has more values than the header has columns. Check the "
                    "file's separators, or give the extra column a name."
                )
                % {"line": number}
            )
        table_rows.append((row + [""] * width)[:width])
    return Table(headers=headers, rows=table_rows)


def _fold_header(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name_key(text))


def mapping_guess(headers: Sequence[str]) -> dict[str, int]:
    """Register field -> column position, guessed from the header's words
    ("Surname", "DOB", "E-mail", "Mobile"...); a field at most once, a
    column at most once, the first column that fits."""
    guessed: dict[str, int] = {}
    taken: set[int] = set()
    folded = [_fold_header(text) for text in headers]
    for name in IMPORT_FIELD_NAMES:
        for position, words in enumerate(folded):
            if position not in taken and words in _HEADER_GUESSES[name]:
                guessed[name] = position
                taken.add(position)
                break
    return guessed


# --- Checking rows -------------------------------------------------------------------


def _date_text(text: str) -> str:
    """`text` without a midnight time after its date ("14/02/1990 00:00",
    as some systems export a date column)."""
    midnight = _MIDNIGHT.fullmatch(text)
    return midnight.group(1) if midnight is not None else text


def _parse_date(text: str) -> date | None:
    text = _date_text(text)
    for pattern in _DATE_FORMATS:
        try:
            return datetime.strptime(text, pattern).date()  # noqa: DTZ007 (a calendar date)
        except ValueError:
            continue
    return None


def _date_problem(text: str) -> tuple[date | None, str]:
    """The birth date in `text` and "" or None and a sentence saying what is wrong.
    The rules are the registration form's (patients.forms.PatientForm)."""
    born = _parse_date(text)
    if born is None:
        if _month_first_only(text):
            return None, _(
                "“%(text)s” is not a date read day first, as this clinic writes dates: it "
                "looks written month first, as US systems do. Write it as day/month/year."
            ) % {"text": text}
        if re.fullmatch(r"\d{1,2}[/.-]\d{1,2}[/.-]\d{2}", text):
            return None, _("“%(text)s” has a two-digit year: write the year in full.") % {
                "text": text
            }
        return None, _(
            "“%(text)s” is not a date. Write it as day/month/year, for example 14/02/1985."
        ) % {"text": text}
    if born > timezone.localdate():
        return None, _("The date of birth %(date)s is in the future.") % {
            "date": dates.birth_date(born)
        }
    if born < date(1900, 1, 1):
        return None, _("Check the year: the date of birth %(date)s is before 1900.") % {
            "date": dates.birth_date(born)
        }
    return born, ""


def _month_first_only(text: str) -> bool:
    """Whether `text` is a date only when read month first (12/31/1990)."""
    found = _DAY_MONTH_YEAR.fullmatch(_date_text(text))
    if found is None:
        return False
    first, second, year = (int(part) for part in found.groups())
    if not (first <= 12 < second):
        return False
    try:
        date(year, first, second)
    except ValueError:
        return False
    return True


def _day_month_ambiguous(text: str) -> bool:
    """Whether `text` is a date either way round (03/04/1990: 3 April or 4 March)."""
    found = _DAY_MONTH_YEAR.fullmatch(_date_text(text))
    if found is None:
        return False
    first, second, _year = (int(part) for part in found.groups())
    return first != second and 1 <= first <= 12 and 1 <= second <= 12


def _dates_month_first(check: RowCheck, rows: dict[int, str]) -> None:
    """When the date-of-birth column holds a date that is one only read
    month first (12/31/1990), flag every date in it that reads both ways
    (03/04/1990), since the column is then likely written month first and
    those dates would be read wrongly (`rows`: position -> the cell)."""
    evidence = next(
        ((position, text) for position, text in sorted(rows.items()) if _month_first_only(text)),
        None,
    )
    if evidence is None:
        return
    for position, text in sorted(rows.items()):
        if _day_month_ambiguous(text):
            check.add(
                position,
                _(
                    "“%(text)s” may be written month first, as row %(row)s (“%(example)s”) "
                    "is: read day first it is %(date)s. Write it as day/month/year."
                )
                % {
                    "text": text,
                    "row": evidence[0] + 2,
                    "example": evidence[1],
                    "date": dates.birth_date(_parse_date(text)),  # type: ignore[arg-type]
                },
            )
            check.patients.pop(position, None)


def _row_values(row: Sequence[str], mapping: dict[str, int]) -> dict[str, str]:
    return {name: row[position] for name, position in mapping.items() if position < len(row)}


def _row_patient(
    values: dict[str, str], created_by: User, labels: dict[str, str], *, search_text: bool
) -> tuple[Patient | None, list[str]]:
    """One row as an unsaved Patient normalised as registration does, or the
    sentences naming what is wrong with it."""
    patient, problems = _row_read(values, created_by, labels, search_text=search_text)
    return (None, problems) if problems else (patient, [])


def _row_read(
    values: dict[str, str], created_by: User, labels: dict[str, str], *, search_text: bool
) -> tuple[Patient, list[str]]:
    """One row as an unsaved Patient normalised as registration does, and
    the sentences naming what is wrong with it. With problems, the patient
    holds only what could be read (a field that is wrong is left empty), so
    the row is still compared with the register by what it holds."""
    problems: list[str] = []
    fields: dict[str, Any] = {name: values.get(name, "") for name in IMPORT_FIELD_NAMES}
    for name in REQUIRED_FIELDS:
        if not fields[name]:
            problems.append(_("%(field)s is empty.") % {"field": labels[name]})
    for name, text in fields.items():
        if len(text) > IMPORT_MAX_CELL:
            problems.append(
                _("%(field)s is longer than %(max)s characters.")
                % {"field": labels[name], "max": f"{IMPORT_MAX_CELL:,}"}
            )
            fields[name] = ""
    if fields["date_of_birth"]:
        born, problem = _date_problem(fields["date_of_birth"])
        if problem:
            problems.append(problem)
        fields["date_of_birth"] = born
    else:
        fields["date_of_birth"] = None
    for name in ("phone", "emergency_contact_phone"):
        if fields[name]:
            fields[name] = _phone(fields[name])
    if fields["email"]:
        channel = ReminderChannel.EMAIL
    elif fields["phone"]:
        channel = ReminderChannel.SMS
    else:
        channel = ReminderChannel.NONE
    patient = Patient(
        created_by=created_by,
        reminder_channel=channel,
        consents_to_messages=False,
        **fields,
    )
    try:
        # The registration's own checks and normalisation; the database's
        # constraints are the reminder channel's, chosen to fit above.
        patient.full_clean(
            exclude=["created_by", *(REQUIRED_FIELDS if problems else ())],
            validate_unique=False,
            validate_constraints=False,
        )
    except ValidationError as error:
        for name, messages in error.message_dict.items():
            if name in {"first_name", "last_name", "email", "phone"}:
                setattr(patient, name, "")  # not compared with the register
            if name in REQUIRED_FIELDS and not values.get(name):
                continue  # already said: empty
            label = labels.get(name, "")
            if name in {"phone", "emergency_contact_phone"}:
                # The registration form's words, with what the file holds.
                messages = [
                    _("“%(text)s” is not a phone number we can use, for example 07911 123456.")
                    % {"text": values.get(name, "")}
                ]
            for message in messages:
                problems.append(f"{label}: {message}" if label else message)
    if problems:
        return patient, problems
    if search_text:
        patient.search_text = patient_search_text(patient)
    return patient, []


def _describe(patient: Patient) -> str:
    return _("%(name)s, born %(date)s") % {
        "name": patient.full_name,
        "date": dates.birth_date(patient.date_of_birth),
    }


def _person_key(patient: Patient) -> tuple[date, tuple[str, ...]] | None:
    """The folded names (either order) with the birth date, or None when the
    row does not hold all three (a date that could not be read, say)."""
    if not (patient.first_name and patient.last_name and patient.date_of_birth):
        return None
    pair = tuple(sorted((name_key(patient.first_name), name_key(patient.last_name))))
    return (patient.date_of_birth, pair)


def _duplicates_in_register(
    check: RowCheck, patients: dict[int, Patient], user: User, chunk: int = 5000
) -> None:
    """Mark each row whose patient may already be registered, with the
    matching of `patients.selectors.patient_possible_duplicates` run for
    every row at once: the patients born on the rows' birth dates compared by
    folded names (either order), then the same emails (any case) and phones.
    `patients` are every row's patients, those with other problems too (with
    what could be read): a row's problems are all named at once."""
    if not patients:
        return
    visible = patients_visible_to(user)
    by_key: dict[tuple[date, tuple[str, ...]], list[int]] = {}
    by_email: dict[str, list[int]] = {}
    by_phone: dict[str, list[int]] = {}
    for position, patient in patients.items():
        person = _person_key(patient)
        if person is not None:
            by_key.setdefault(person, []).append(position)
        if patient.email:
            by_email.setdefault(patient.email.strip().upper(), []).append(position)
        if patient.phone:
            by_phone.setdefault(patient.phone.as_e164, []).append(position)
    found: dict[int, dict[int, tuple[Patient, str]]] = {}

    def note(positions: Iterable[int], other: Patient, why: str) -> None:
        for position in positions:
            found.setdefault(position, {}).setdefault(other.pk, (other, why))

    births = sorted({born for born, _pair in by_key})
    for start in range(0, len(births), chunk):
        for other in visible.filter(date_of_birth__in=births[start : start + chunk]).only(
            "id", "first_name", "last_name", "date_of_birth"
        ):
            positions = by_key.get(_person_key(other), [])  # type: ignore[arg-type]
            note(positions, other, _("same name and date of birth"))
    emails = sorted(by_email)
    for start in range(0, len(emails), chunk):
        for other in (
            visible.annotate(email_upper=Upper("email"))
            .filter(email_upper__in=emails[start : start + chunk])
            .only("id", "first_name", "last_name", "date_of_birth", "email")
        ):
            note(by_email.get(other.email.strip().upper(), []), other, _("same email"))
    phones = sorted(by_phone)
    for start in range(0, len(phones), chunk):
        # Compared as text: the field would parse each number again (and the
        # index on the column still answers: varchar is compared as text).
        in_chunk = phones[start : start + chunk]
        for other in (
            visible.alias(phone_text=Cast("phone", TextField()))
            .filter(phone_text__in=in_chunk)
            .only("id", "first_name", "last_name", "date_of_birth", "phone")
        ):
            note(by_phone.get(other.phone.as_e164, []), other, _("same mobile number"))
    for position in sorted(found):
        matches = sorted(found[position].values(), key=lambda m: (m[0].last_name, m[0].pk))
        for other, why in matches[:3]:
            check.add(
                position,
                _("May already be registered as %(who)s (%(why)s).")
                % {"who": _describe(other), "why": why},
            )
        check.patients.pop(position, None)


def _duplicates_in_file(check: RowCheck, patients: dict[int, Patient]) -> None:
    """Mark each row that is the same person as an earlier row of the file,
    by the registration's matching (see `_duplicates_in_register`; rows with
    other problems are compared by what could be read)."""
    first_of: dict[tuple[str, Any], int] = {}
    for position in sorted(patients):
        patient = patients[position]
        keys: list[tuple[str, Any, str]] = []
        person = _person_key(patient)
        if person is not None:
            keys.append(("person", person, _("same name and date of birth")))
        if patient.email:
            keys.append(("email", patient.email.strip().upper(), _("same email")))
        if patient.phone:
            keys.append(("phone", patient.phone.as_e164, _("same mobile number")))
        for kind, value, why in keys:
            earlier = first_of.get((kind, value))
            if earlier is not None:
                check.add(
                    position,
                    _("The same person as row %(row)s (%(why)s): leave one of them out.")
                    % {"row": earlier + 2, "why": why},
                )
                break
        for kind, value, _why in keys:
            first_of.setdefault((kind, value), position)
    for position in check.problems:
        check.patients.pop(position, None)


def rows_check(*, job: PatientImport, user: User, search_text: bool = False) -> RowCheck:
    """Check every row of `job` that is not left out, with its mapping.

    Returns a `RowCheck`: the problems of each row (position 0 is the file's
    second line) and the rows' unsaved patients, normalised as registration
    does, with their search text when `search_text` (the import needs it,
    the preview does not). Reads the register in at most three queries per
    5,000 distinct birth dates, emails or phones; writes nothing."""
    labels = {name: str(label) for name, label in IMPORT_FIELDS}
    check = RowCheck()
    dropped = set(job.dropped)
    mapping = {name: int(position) for name, position in job.mapping.items()}
    # Every row's patient, with problems or not: each is matched with the
    # register and the file by what it holds, so a row's likely duplicate is
    # named with its other problems, not only once they are corrected.
    read: dict[int, Patient] = {}
    for position, row in enumerate(job.rows):
        if position in dropped:
            continue
        patient, problems = _row_read(
            _row_values(row, mapping), job.created_by, labels, search_text=search_text
        )
        read[position] = patient
        if problems:
            check.problems[position] = problems
        else:
            check.patients[position] = patient
    born_column = mapping.get("date_of_birth")
    if born_column is not None:
        _dates_month_first(
            check,
            {
                position: row[born_column].strip()
                for position, row in enumerate(job.rows)
                if position not in dropped and born_column < len(row)
            },
        )
    _duplicates_in_file(check, read)
    _duplicates_in_register(check, read, user)
    return check


# --- The import's steps --------------------------------------------------------------


def _move(job: PatientImport, status: str) -> None:
    if status not in PATIENT_IMPORT_MOVES[job.status]:
        raise ImportRefusedError(
            _("This import is “%(status)s”: it cannot be changed now.")
            % {"status": PatientImportStatus(job.status).label},
            code="import_state",
            kind=RefusalKind.CONFLICT,
        )
    job.status = status


def _version_check(job: PatientImport, expected_version: int | None) -> None:
    if expected_version is not None and expected_version != job.version:
        raise ImportRefusedError(
            _(
                "This import was changed in another window or by another page since this one "
                "was opened. Look at it again before going on."
            ),
            code="import_stale",
            kind=RefusalKind.CONFLICT,
        )


def _locked(job: PatientImport) -> PatientImport:
    return PatientImport.objects.select_for_update().select_related("created_by").get(pk=job.pk)


def _save(job: PatientImport, fields: Iterable[str]) -> None:
    job.version += 1
    job.full_clean(validate_unique=False, validate_constraints=False)
    job.save(update_fields=[*fields, "version", "updated_at"])


@transaction.atomic
def patient_import_upload(*, created_by: User, data: bytes, file_name: str) -> PatientImport:
    """Read an uploaded patient list (`table_read`) and keep it as an import
    waiting for its columns to be matched, with a guess from the headers.

    Raises `ImportRefusedError` when the file cannot be read (see
    `table_read`) or when the same file (the same bytes) was uploaded before
    and not discarded (code "import_same_file", 409; `.job` is the earlier
    import when this user may open it)."""
    digest = hashlib.sha256(data).hexdigest()
    earlier = (
        PatientImport.objects.filter(file_sha256=digest)
        .exclude(status=PatientImportStatus.CANCELLED)
        .first()
    )
    if earlier is not None:
        raise _same_file(earlier)
    table = table_read(data=data, file_name=file_name)
    job = PatientImport(
        created_by=created_by,
        file_name=file_name[:200] or "patients.csv",
        file_sha256=digest,
        headers=table.headers,
        rows=table.rows,
        row_count=len(table.rows),
        mapping=mapping_guess(table.headers),
    )
    job.full_clean(exclude=["created_by"], validate_unique=False, validate_constraints=False)
    try:
        with transaction.atomic():
            job.save()
    except IntegrityError:
        # The same file sent twice at the same moment: the other one won
        # (discarded imports of the same file do not count).
        winner = (
            PatientImport.objects.filter(file_sha256=digest)
            .exclude(status=PatientImportStatus.CANCELLED)
            .first()
        )
        if winner is None:  # the winner was discarded meanwhile
            raise ImportRefusedError(
                _("The same file was being uploaded at the same moment. Upload it again."),
                code="import_same_file",
                kind=RefusalKind.CONFLICT,
            ) from None
        raise _same_file(winner) from None
    audit_log(actor=created_by, action=AuditAction.CREATE, obj=job, changed_fields=["file"])
    return job


def _same_file(earlier: PatientImport) -> ImportRefusedError:
    if earlier.status == PatientImportStatus.DONE:
        message = _(
            "This file was already imported on %(date)s (%(count)s patients). Nothing was "
            "imported twice."
        ) % {
            "date": dates.day(earlier.finished_at or earlier.created_at),
            "count": earlier.imported_count,
        }
    else:
        message = _(
            "This file was already uploaded on %(date)s and is waiting to be imported. Carry "
            "on with that import, or discard it first."
        ) % {"date": dates.day(earlier.created_at)}
    error = ImportRefusedError(message, code="import_same_file", kind=RefusalKind.CONFLICT)
    error.job = earlier  # type: ignore[attr-defined]
    return error


def _preview_check(job: PatientImport, user: User) -> None:
    """Check every row (`rows_check`) for the preview and keep its problems.
    The check reads the register (names, birth dates, emails and phones of
    the patients it compares the rows with), so it is recorded as a search
    of the register is (patients.search_audit): one `view` event of
    `patients.patient_search` naming the import, whatever the rows' number."""
    check = rows_check(job=job, user=user)
    audit_log(
        actor=user,
        action=AuditAction.VIEW,
        object_type=SEARCH_OBJECT_TYPE,
        object_id=str(job.uuid),
    )
    job.problems = {str(position): problems for position, problems in check.problems.items()}


@transaction.atomic
def patient_import_map(
    *, job: PatientImport, user: User, mapping: dict[str, int], expected_version: int | None
) -> PatientImport:
    """Set which column fills which register field (`mapping`: field name ->
    column position, 0-based; fields left out stay empty) and check every row
    with it (`rows_check`), the import then waiting for confirmation.

    Raises `ImportRefusedError` when a required field (first name, last
    name, date of birth) has no column, a column is used twice, a position
    is not a column, the import has run or was discarded, or it changed
    since `expected_version`."""
    job = _locked(job)
    _version_check(job, expected_version)
    _move(job, PatientImportStatus.PREVIEW)
    labels = dict(IMPORT_FIELDS)
    for name in REQUIRED_FIELDS:
        if name not in mapping:
            raise ImportRefusedError(
                _("Choose the column that holds the %(field)s.")
                % {"field": str(labels[name]).lower()},
                field=name,
            )
    positions = list(mapping.values())
    if any(name not in labels for name in mapping) or any(
        not 0 <= position < len(job.headers) for position in positions
    ):
        raise ImportRefusedError(_("Choose the columns from the list."))
    if len(set(positions)) != len(positions):
        raise ImportRefusedError(
            _("A column can fill only one field: each field needs a column of its own.")
        )
    job.mapping = dict(mapping)
    job.error = ""
    _preview_check(job, user)
    _save(job, ["mapping", "problems", "status", "error"])
    return job


@transaction.atomic
def patient_import_row_fix(
    *,
    job: PatientImport,
    user: User,
    row: int,
    values: dict[str, str],
    expected_version: int | None,
) -> PatientImport:
    """Correct one row before importing: `values` maps mapped field names
    to new text (the cell of the field's column is replaced); `row` is the
    row's position (0: the file's second line). Every row is checked again,
    since a change may make or end a duplicate between rows.

    Raises `ImportRefusedError` for a row or field the import does not
    have, a value longer than IMPORT_MAX_CELL, an import that has run or is
    running, or one changed since `expected_version`."""
    job = _locked(job)
    _version_check(job, expected_version)
    _move(job, PatientImportStatus.PREVIEW)
    if not 0 <= row < len(job.rows):
        raise ImportRefusedError(_("This import has no such row."), kind=RefusalKind.GONE)
    cells = list(job.rows[row])
    for name, text in values.items():
        if name not in job.mapping:
            raise ImportRefusedError(_("This field is not imported."))
        if len(text) > IMPORT_MAX_CELL:
            raise ImportRefusedError(_("That value is too long."), field=name)
        cells[int(job.mapping[name])] = text.strip()
    job.rows[row] = cells
    _preview_check(job, user)
    _save(job, ["rows", "problems", "status"])
    return job


@transaction.atomic
def patient_import_row_leave_out(
    *, job: PatientImport, user: User, row: int, leave_out: bool, expected_version: int | None
) -> PatientImport:
    """Leave row `row` (0: the file's second line) out of the import, or
    (`leave_out` False) take it back, and check every row again.

    Raises `ImportRefusedError` as `patient_import_row_fix` does."""
    job = _locked(job)
    _version_check(job, expected_version)
    _move(job, PatientImportStatus.PREVIEW)
    if not 0 <= row < len(job.rows):
        raise ImportRefusedError(_("This import has no such row."), kind=RefusalKind.GONE)
    dropped = set(job.dropped)
    if leave_out:
        dropped.add(row)
    else:
        dropped.discard(row)
    if len(dropped) >= len(job.rows):
        raise ImportRefusedError(
            _("At least one row must be imported: discard the import instead.")
        )
    job.dropped = sorted(dropped)
    _preview_check(job, user)
    _save(job, ["dropped", "problems", "status"])
    return job


@transaction.atomic
def patient_import_leave_out_problems(
    *, job: PatientImport, user: User, expected_version: int | None
) -> PatientImport:
    """Leave out every row that has a problem now, and check the rest again
    (leaving a row out may end another's "same person as row N").

    Raises `ImportRefusedError` as `patient_import_row_fix` does, and when
    no row would be left to import."""
    job = _locked(job)
    _version_check(job, expected_version)
    _move(job, PatientImportStatus.PREVIEW)
    dropped = set(job.dropped) | {int(position) for position in job.problems}
    if len(dropped) >= len(job.rows):
        raise ImportRefusedError(
            _("Every row has a problem: correct some, or discard the import instead.")
        )
    job.dropped = sorted(dropped)
    _preview_check(job, user)
    _save(job, ["dropped", "problems", "status"])
    return job


@transaction.atomic
def patient_import_confirm(
    *, job: PatientImport, user: User, expected_version: int | None
) -> PatientImport:
    """Queue the import of every row not left out, once the preview lists no
    problems; the Celery task `patients.import_run` is published after
    commit (clinic.background.enqueue: a broker that is down leaves it
    waiting, and the page offers to start it again).

    An import that stopped without a row to blame (a time limit, say) is
    confirmed again the same way.

    Raises `ImportRefusedError` when rows still have problems (409), the
    import is not waiting for confirmation (already queued, run or
    discarded: 409), or it changed since `expected_version` (409)."""
    job = _locked(job)
    _version_check(job, expected_version)
    if job.status not in {PatientImportStatus.PREVIEW, PatientImportStatus.FAILED}:
        if job.status in {PatientImportStatus.QUEUED, PatientImportStatus.RUNNING}:
            message = _("This import has already started.")
        elif job.status == PatientImportStatus.DONE:
            message = _("This import has already run: its patients are in the register.")
        else:
            message = _("Match the columns and check the rows before importing.")
        raise ImportRefusedError(message, code="import_state", kind=RefusalKind.CONFLICT)
    if job.problems:
        raise ImportRefusedError(
            _("%(count)s rows still have problems: fix them or leave them out first.")
            % {"count": len(job.problems)},
            code="import_problems",
            kind=RefusalKind.CONFLICT,
        )
    _move(job, PatientImportStatus.QUEUED)
    _save(job, ["status"])
    transaction.on_commit(lambda: patient_import_enqueue(job_id=job.pk))
    return job


# A queued import not started after this long is offered to be started again.
QUEUED_STALLED = timedelta(minutes=1)


def run_lost_before() -> datetime:
    """A run that started before this moment and is still "importing" lost
    its worker (killed, or its machine stopped): the task's hard time limit
    (CELERY_TASK_TIME_LIMIT) ends any run sooner, and a minute more covers
    the commit. Its transaction was rolled back with its connection, so
    nothing of it was imported."""
    return timezone.now() - timedelta(seconds=int(settings.CELERY_TASK_TIME_LIMIT) + 60)


def patient_import_stalled(*, job: PatientImport) -> bool:
    """Whether `job` has waited for a worker longer than QUEUED_STALLED (its
    message lost: the broker was down when it was confirmed, say), or has
    been "importing" since before `run_lost_before()` (its worker died; the
    broker would deliver it again only after its visibility timeout, an hour)."""
    if job.status == PatientImportStatus.QUEUED:
        return job.updated_at < timezone.now() - QUEUED_STALLED
    if job.status == PatientImportStatus.RUNNING:
        return job.started_at is not None and job.started_at < run_lost_before()
    return False


def patient_import_start_again(*, job: PatientImport, user: User) -> bool:
    """Publish the task again for an import still waiting for a worker, or
    one whose run stopped with its worker (`patient_import_stalled`); the
    task's claim makes a second message harmless. False when the broker did
    not take it. Raises `ImportRefusedError` (409) unless the import is
    queued or its run was lost."""
    if not (job.status == PatientImportStatus.QUEUED or patient_import_stalled(job=job)):
        raise ImportRefusedError(
            _("This import is not waiting to start."),
            code="import_state",
            kind=RefusalKind.CONFLICT,
        )
    return patient_import_enqueue(job_id=job.pk)


def patient_import_enqueue(*, job_id: int) -> bool:
    """Publish the import task for the import with id `job_id`; False if the
    broker could not take it (the import stays queued)."""
    from patients.tasks import patient_import_run as task

    return enqueue(task, job_id, label=f"patient import {job_id}")


@transaction.atomic
def patient_import_cancel(
    *, job: PatientImport, user: User, expected_version: int | None
) -> PatientImport:
    """Discard an import that has not run: its rows are deleted, and the same
    file may be uploaded again. Raises `ImportRefusedError` (409) once it is
    queued, running or done, or when it changed since `expected_version`."""
    job = _locked(job)
    _version_check(job, expected_version)
    _move(job, PatientImportStatus.CANCELLED)
    job.rows, job.problems = [], {}
    _save(job, ["status", "rows", "problems"])
    audit_log(actor=user, action=AuditAction.DELETE, obj=job, changed_fields=["file"])
    return job


# --- Running it ----------------------------------------------------------------------


def progress_key(job: PatientImport) -> str:
    # By uuid: a database restored or rebuilt reuses ids, never uuids.
    return f"patients:import:{job.uuid}:progress"


def import_progress(*, job: PatientImport) -> int:
    """Rows created so far by the running import (0 when unknown): kept in
    the cache, since the import's own transaction shows nothing until it
    commits."""
    if job.status == PatientImportStatus.DONE:
        return job.imported_count
    try:
        return int(cache.get(progress_key(job)) or 0)
    except Exception:  # a cache that is down only hides the progress
        return 0


def _progress(job: PatientImport, done: int) -> None:
    try:
        cache.set(progress_key(job), done, timeout=3600)
    except Exception:  # a cache that is down only hides the progress
        logger.warning("Could not record the progress of patient import %s", job.pk)


class _AbortError(Exception):
    def __init__(self, reason: str, problems: dict[int, list[str]] | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.problems = problems or {}


def _claim(job_id: int) -> PatientImport | None:
    """Take the queued import (or one whose worker died mid-run: started
    longer ago than the task's hard time limit), or None when another run has
    it or it is finished."""
    now = timezone.now()
    claimed = PatientImport.objects.filter(
        Q(status=PatientImportStatus.QUEUED)
        | Q(status=PatientImportStatus.RUNNING, started_at__lt=run_lost_before()),
        pk=job_id,
    ).update(status=PatientImportStatus.RUNNING, started_at=now, version=F("version") + 1)
    if not claimed:
        return None
    return PatientImport.objects.select_related("created_by").get(pk=job_id)


def _create_all(job: PatientImport) -> int:
    """Inside the caller's transaction: check every row again and create
    every patient, or raise `_AbortError` having written nothing."""
    # No registration checks or inserts a patient while the rows are compared
    # with the register and added to it: registration's own guard, taken
    # alone (a registration under way finishes first; one that starts waits
    # for the import's commit, a minute at most, and then sees its patients).
    patient_register_lock_all()
    with connection.cursor() as cursor:
        # Nor does an edit change a patient's name or contact meanwhile.
        cursor.execute("LOCK TABLE patients_patient IN SHARE ROW EXCLUSIVE MODE")
    user = job.created_by
    check = rows_check(job=job, user=user, search_text=True)
    if check.problems:
        raise _AbortError(
            _(
                "Nothing was imported: %(count)s rows have problems found when importing (a "
                "patient registered meanwhile, or a date that has become wrong). Fix them or "
                "leave them out, then import again."
            )
            % {"count": len(check.problems)},
            check.problems,
        )
    patients = [check.patients[position] for position in sorted(check.patients)]
    done = 0
    for start in range(0, len(patients), IMPORT_BATCH):
        batch = patients[start : start + IMPORT_BATCH]
        Patient.objects.bulk_create(batch)
        done += len(batch)
        _progress(job, done)
    # Addresses set by a role that cannot open clinical documents are held as
    # registration holds them (patients.contact_changes): a manager's import
    # routes no clinical document to a new address for 24 hours.
    if not user.has_any_role(_clinical_roles()):
        now = timezone.now()
        changes = [
            ContactChange(
                patient=patient,
                field=kind,
                previous="",
                changed_at=now,
                changed_by=user,
                by_clinical_role=False,
                notice_status=ContactNoticeStatus.NONE,
            )
            for patient in patients
            for kind, value in (
                (ContactField.EMAIL, patient.email),
                (ContactField.PHONE, patient.phone),
            )
            if value
        ]
        ContactChange.objects.bulk_create(changes, batch_size=IMPORT_BATCH)
    return len(patients)


def _clinical_roles() -> Any:
    from clinic.roles import CLINICAL_DOCUMENT_ROLES

    return CLINICAL_DOCUMENT_ROLES


def patient_import_run(*, job_id: int) -> PatientImport | None:
    """Run a confirmed import (the Celery task's body): check every row again
    against the register as it is now, then create every patient in one
    transaction, with the search text and search words (kept by the
    database's triggers) and one audit event carrying the row count.

    Any row that has become wrong (a duplicate registered since the preview,
    say) stops the import with nothing created: status "failed", the reason
    in `error` and the rows' problems listed again for the manager to fix.
    Safe to run twice: an import already claimed, done or stopped is left
    alone (returns None). Progress (rows created) is kept in the cache
    (`import_progress`)."""
    job = _claim(job_id)
    if job is None:
        return None
    _progress(job, 0)
    try:
        with transaction.atomic():
            count = _create_all(job)
            job.status = PatientImportStatus.DONE
            job.imported_count = count
            job.finished_at = timezone.now()
            job.error = ""
            job.problems = {}
            job.rows = []  # the register now holds them; no second copy is kept
            _save(job, ["status", "imported_count", "finished_at", "error", "problems", "rows"])
            audit_log(
                actor=job.created_by,
                action=AuditAction.CREATE,
                obj=job,
                changed_fields=[f"patients:{count}"],
                actor_label=job.created_by.get_username(),
            )
    except _AbortError as abort:
        _stop(job, abort.reason, abort.problems)
        if abort.problems:
            # Its rows' problems name the patients they match: a preview again.
            audit_log(
                actor=job.created_by,
                action=AuditAction.VIEW,
                object_type=SEARCH_OBJECT_TYPE,
                object_id=str(job.uuid),
                actor_label=job.created_by.get_username(),
            )
    except (IntegrityError, ValidationError) as error:
        _stop(
            job,
            _("Nothing was imported: the register refused a row (%(why)s).")
            % {"why": str(error)[:300]},
            None,
        )
    except Exception:
        # A time limit reached, the database gone away...: the transaction
        # rolled back, so the import says it stopped rather than staying
        # "importing" for ever.
        logger.exception("Patient import %s stopped", job.pk)
        _stop(
            job,
            _(
                "Nothing was imported: the import stopped before the end. Import again; if it "
                "stops again, split the file into smaller ones."
            ),
            None,
        )
    return job


def _stop(job: PatientImport, reason: str, problems: dict[int, list[str]] | None) -> None:
    job.refresh_from_db()
    job.status = PatientImportStatus.FAILED
    job.error = reason
    job.finished_at = timezone.now()
    if problems:
        job.problems = {str(position): found for position, found in problems.items()}
    _save(job, ["status", "error", "finished_at", "problems"])


# --- Reading for the pages -----------------------------------------------------------


@dataclass(frozen=True)
class ProblemRow:
    position: int
    line: int
    cells: list[tuple[str, str]]
    problems: list[str]


def problem_rows(*, job: PatientImport, page: int) -> tuple[list[ProblemRow], int]:
    """A page (1-based, PROBLEMS_PER_PAGE rows) of the rows with problems, in
    file order, each with its mapped fields' values; and the number of pages.
    Reads nothing beyond the import itself."""
    positions = sorted(int(key) for key in job.problems)
    pages = max(1, -(-len(positions) // PROBLEMS_PER_PAGE))
    page = min(max(page, 1), pages)
    labels = dict(IMPORT_FIELDS)
    rows = []
    for position in positions[(page - 1) * PROBLEMS_PER_PAGE : page * PROBLEMS_PER_PAGE]:
        cells = job.rows[position] if position < len(job.rows) else []
        values = _row_values(cells, {k: int(v) for k, v in job.mapping.items()})
        rows.append(
            ProblemRow(
                position=position,
                line=position + 2,
                cells=[
                    (str(labels[name]), values.get(name, ""))
                    for name in IMPORT_FIELD_NAMES
                    if name in job.mapping
                ],
                problems=job.problems[str(position)],
            )
        )
    return rows, pages


def sample_rows(*, job: PatientImport, count: int = 5) -> list[list[str]]:
    """The first rows of the file, to show next to the column choices."""
    return [list(row) for row in job.rows[:count]]
