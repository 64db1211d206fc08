"""Importing a patient list from another system: reading awkward files,
matching columns, each row's problems, all-or-nothing import, and the pages'
access, refusals and query budgets."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import openpyxl
import pytest
import time_machine
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from hypothesis import given
from hypothesis import settings as fuzzing
from hypothesis import strategies as st

from clinic.models import AuditEvent, User
from clinic.spreadsheets import spreadsheet_cell
from patients.imports import (
    IMPORT_MAX_ROWS,
    ImportRefusedError,
    mapping_guess,
    patient_import_cancel,
    patient_import_confirm,
    patient_import_map,
    patient_import_row_fix,
    patient_import_row_leave_out,
    patient_import_run,
    patient_import_upload,
    rows_check,
    table_read,
)
from patients.models import (
    ContactChange,
    Patient,
    PatientImport,
    PatientImportStatus,
    PatientSearchWord,
)
from patients.selectors import patient_possible_duplicates, patient_search
from patients.services import patient_create
from tests.conftest import sign_in

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
UPLOAD = reverse("patients:import_list")
HEADER = "First name,Surname,DOB,Email,Mobile,Address"


@pytest.fixture(autouse=True)
def frozen_clock() -> Iterator[None]:
    with time_machine.travel(NOW, tick=False):
        yield


def csv_bytes(rows: list[str], header: str = HEADER, encoding: str = "utf-8") -> bytes:
    return ("\r\n".join([header, *rows]) + "\r\n").encode(encoding)


def good_rows(count: int, start: int = 0) -> list[str]:
    return [
        f"Anna{n},Patient{n},{1 + n % 28:02d}/{1 + n % 12:02d}/{1950 + n % 50},"
        f"anna{n}@example.org,07911 1{n:05d},{n} High Street"
        for n in range(start, start + count)
    ]


def upload(user: User, data: bytes, name: str = "patients.csv") -> PatientImport:
    return patient_import_upload(created_by=user, data=data, file_name=name)


def mapped(user: User, data: bytes) -> PatientImport:
    job = upload(user, data)
    return patient_import_map(job=job, user=user, mapping=job.mapping, expected_version=job.version)


def run(user: User, job: PatientImport) -> PatientImport:
    patient_import_confirm(job=job, user=user, expected_version=job.version)
    result = patient_import_run(job_id=job.pk)
    assert result is not None
    return result


def problems_of(job: PatientImport) -> dict[int, str]:
    return {int(k) + 2: " ".join(v) for k, v in job.problems.items()}


# --- Reading files -------------------------------------------------------------------


def test_headers_guess_the_register_fields() -> None:
    guess = mapping_guess(["Forename", "SURNAME", "Date of Birth", "E-mail", "Tel", "Notes"])
    assert guess == {
        "first_name": 0,
        "last_name": 1,
        "date_of_birth": 2,
        "email": 3,
        "phone": 4,
    }


@pytest.mark.parametrize("encoding", ["utf-8-sig", "cp1252"])
def test_windows_1252_and_utf8_with_bom_read_accents_and_the_pound_sign(encoding: str) -> None:
    data = csv_bytes(["Renée Zoë,Müller,02/07/1991,,,Flat 2 £ Søndergade"], encoding=encoding)
    table = table_read(data=data, file_name="x.csv")
    assert table.headers[0] == "First name"  # no BOM left in the first header
    assert table.rows[0][:2] == ["Renée Zoë", "Müller"]
    assert table.rows[0][5] == "Flat 2 £ Søndergade"


def test_semicolon_separated_files_are_read() -> None:
    table = table_read(data=b"First name;Surname;DOB\nAna;Lee;01/01/1990\n", file_name="x.csv")
    assert table.rows == [["Ana", "Lee", "01/01/1990"]]


def xlsx_bytes(rows: list[list[Any]]) -> bytes:
    book = openpyxl.Workbook()
    sheet = book.active
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def test_an_excel_workbook_renamed_csv_is_read_as_a_workbook_with_dates_as_dates() -> None:
    data = xlsx_bytes(
        [
            ["First name", "Surname", "DOB", "Mobile"],
            ["Ana", "Lee", datetime(1990, 2, 14), 7700900123],  # noqa: DTZ001
        ]
    )
    table = table_read(data=data, file_name="renamed.csv")
    assert table.rows == [["Ana", "Lee", "1990-02-14", "7700900123"]]


def test_a_formula_in_a_workbook_is_never_run() -> None:
    data = xlsx_bytes([["First name", "Surname", "DOB"], ["=1+1", "Lee", "01/01/1990"]])
    table = table_read(data=data, file_name="x.xlsx")
    # openpyxl reads the formula's cached result (none: never calculated), never runs it.
    assert table.rows[0][0] in {"", "=1+1"}


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"", "The file is empty"),
        (b"\x00\x01\x02\xff" * 100, "not a CSV file or an Excel workbook"),
        (b"PK\x03\x04" + b"\x00" * 200, "not a CSV file or an Excel workbook"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 100, "old Excel file"),
        (b"Name\nAna\nBen\n", "only one column"),
        (("," * 499 + "x\n" + "a," * 499 + "b\n").encode(), "at most 100"),
        (HEADER.encode() + b"\r\n", "header row but no patients"),
        (b"Name,DOB,Name\nA,01/01/1990,B\n", "Columns 1 and 3 are both called"),
        (b"A,B\n1,2,3\n", "more values than the header"),
    ],
    ids=[
        "empty", "binary", "broken-zip", "old-xls", "one-column", "500-columns",
        "header-only", "duplicate-headers", "ragged",
    ],
)  # fmt: skip
def test_unreadable_files_are_refused_in_words(data: bytes, words: str) -> None:
    with pytest.raises(ImportRefusedError) as refused:
        table_read(data=data, file_name="x.csv")
    assert words in refused.value.message


def test_more_rows_than_the_limit_are_refused() -> None:
    assert IMPORT_MAX_ROWS == 20_000
    data = b"A,B\n" + b"x,y\n" * 200_001
    with pytest.raises(ImportRefusedError) as refused:
        table_read(data=data, file_name="x.csv")
    assert "at most 20,000" in refused.value.message


@fuzzing(max_examples=300, deadline=None)
@given(st.binary(max_size=2000))
def test_any_bytes_are_read_or_refused_in_words(data: bytes) -> None:
    try:
        table = table_read(data=data, file_name="fuzz.csv")
    except ImportRefusedError as refused:
        message = refused.message
    else:
        message = "read"
        assert all(len(row) == len(table.headers) for row in table.rows)
    assert message


# --- Checking rows -------------------------------------------------------------------


@fuzzing(max_examples=300, deadline=None)
@given(st.lists(st.text(max_size=40), min_size=6, max_size=6))
def test_any_cells_make_a_patient_or_name_their_problems(cells: list[str]) -> None:
    from patients.imports import IMPORT_FIELDS, _row_patient

    values = dict(zip(["first_name", "last_name", "date_of_birth", "email", "phone",
                       "address"], cells, strict=True))  # fmt: skip
    with time_machine.travel(NOW, tick=False):
        patient, problems = _row_patient(
            values, User(), {n: str(label) for n, label in IMPORT_FIELDS}, search_text=True
        )
    assert (patient is None) == bool(problems)


def test_each_rows_problem_is_named(manager: User, receptionist: User) -> None:
    patient_create(
        created_by=receptionist,
        first_name="Zoë",
        last_name="Müller",
        date_of_birth=date(1991, 7, 2),
        reminder_channel="none",
    )
    rows = [
        "Ana,Lee,31/02/1990,,,",  # line 2: no such date
        "Ben,Ode,01/01/2030,,,",  # line 3: future
        "Cy,Ray,01/01/1990,,+1 234,",  # line 4: not a phone number
        "Zoe,Muller,02/07/1991,,,",  # line 5: already registered
        "Dee,Fox,03/03/1980,dee@example.org,,",  # line 6
        "DEE,FOX,03/03/1980,,,",  # line 7: same person as line 6
        ",Lee,01/01/1990,,,",  # line 8: no first name
        "Eve,Ng,1/1/90,,,",  # line 9: two-digit year
        "Fay,Oz,01/01/1990,not-an-email,,",  # line 10
        'Gus,Ho,01/01/1990,,,=HYPERLINK("http://x")',  # line 11: fine, text
    ]
    job = mapped(manager, csv_bytes(rows))
    found = problems_of(job)
    assert "“31/02/1990” is not a date" in found[2]
    assert "in the future" in found[3]
    assert "Mobile phone: “+1 234” is not a phone number" in found[4]
    assert "May already be registered as Zoë Müller, born 2 July 1991" in found[5]
    assert "The same person as row 6" in found[7]
    assert "First name is empty" in found[8]
    assert "two-digit year" in found[9]
    assert "Email" in found[10]
    assert set(found) == {2, 3, 4, 5, 7, 8, 9, 10}


def test_a_rows_likely_duplicate_is_named_with_its_other_problems(
    manager: User, receptionist: User
) -> None:
    patient_create(
        created_by=receptionist,
        first_name="Zoë",
        last_name="Müller",
        date_of_birth=date(1991, 7, 2),
        email="zoe@example.org",
        reminder_channel="email",
    )
    rows = [
        "Zoe,Muller,02/07/1991,,+1 234,",  # line 2: bad phone; same name and birth date
        "Zed,Other,31/02/1990,ZOE@example.org,,",  # line 3: no such date; same email
        "Cy,Ray,01/01/1990,not-an-email,,",  # line 4: bad email
        "Cy,Ray,01/01/1990,,07911 999999,",  # line 5: same person as line 4
        "Zoe,Muller,2/7/91,,,",  # line 6: date unreadable, so no match by name
    ]
    job = mapped(manager, csv_bytes(rows))
    found = problems_of(job)
    assert "is not a phone number" in found[2]
    assert "May already be registered as Zoë Müller, born 2 July 1991 (same name" in found[2]
    assert "“31/02/1990” is not a date" in found[3]
    assert "May already be registered as Zoë Müller, born 2 July 1991 (same email)" in found[3]
    assert "Email" in found[4]
    assert "The same person as row 4" in found[5]
    assert "two-digit year" in found[6]
    assert "May already be registered" not in found[6]
    # Corrected, a row keeps only the duplicate: nothing new appears later.
    job = patient_import_row_fix(
        job=job, user=manager, row=1, values={"date_of_birth": "28/02/1990"},
        expected_version=job.version,
    )  # fmt: skip
    assert problems_of(job)[3] == (
        "May already be registered as Zoë Müller, born 2 July 1991 (same email)."
    )


def test_each_preview_reading_the_register_is_audited_once_naming_the_import(
    manager: User, receptionist: User
) -> None:
    def previews() -> list[str]:
        return [
            event.object_id
            for event in AuditEvent.objects.filter(
                actor=manager, action="view", object_type="patients.patient_search"
            )
        ]

    job = mapped(manager, csv_bytes(good_rows(40)))
    assert previews() == [str(job.uuid)]  # one for the whole file, not one per row
    job = patient_import_row_leave_out(
        job=job, user=manager, row=0, leave_out=True, expected_version=job.version
    )
    assert previews() == [str(job.uuid)] * 2
    # A duplicate registered meanwhile stops the run, whose listed problems
    # name the patient found in the register: read for the manager too.
    patient_create(
        created_by=receptionist, first_name="Anna3", last_name="Patient3",
        date_of_birth=date(1953, 4, 4), reminder_channel="none",
    )  # fmt: skip
    job = run(manager, job)
    assert job.status == PatientImportStatus.FAILED
    assert previews() == [str(job.uuid)] * 3


def test_the_batch_matching_agrees_with_registrations(manager: User, receptionist: User) -> None:
    existing = [
        ("Siobhán", "O'Grady", date(1980, 1, 1), "", ""),
        ("Jo", "Smith", date(1990, 5, 5), "JO@EXAMPLE.ORG", ""),
        ("Al", "Bee", date(1970, 3, 3), "", "+447911100111"),
    ]
    for first, last, born, email, phone in existing:
        patient_create(
            created_by=receptionist, first_name=first, last_name=last, date_of_birth=born,
            email=email, phone=phone, reminder_channel="none",
        )  # fmt: skip
    rows = [
        "Ogrady,Siobhan,01/01/1980,,,",  # swapped and folded
        "Joanne,Smyth,01/01/1991,jo@example.org,,",  # email, any case
        "Alan,B,02/02/1972,,07911 100111,",  # phone in national form
        "Siobhan,OGrady,02/01/1980,,,",  # another birth date: not a match
    ]
    job = mapped(manager, csv_bytes(rows))
    check = rows_check(job=job, user=manager)
    flagged = set(check.problems)
    for position, row in enumerate(rows):
        first, last, typed_birth, email, phone = row.split(",")[:5]
        day, month, year = typed_birth.split("/")
        single = patient_possible_duplicates(
            user=manager,
            first_name=first,
            last_name=last,
            date_of_birth=date(int(year), int(month), int(day)),
            email=email,
            phone="+44" + phone.replace(" ", "")[1:] if phone else "",
        )
        assert (position in flagged) == bool(single), row
    assert flagged == {0, 1, 2}


# --- All or nothing ------------------------------------------------------------------


def test_an_import_creates_every_patient_normalised_as_registration(manager: User) -> None:
    rows = [
        'Zoe\u0308,Mu\u0308ller,02/07/1991,zoe@example.org,07911 123456,=HYPERLINK("x")',
        "Ana,Lee,1990-02-14,,+33 6 12 34 56 78,",
    ]
    job = run(manager, mapped(manager, csv_bytes(rows)))
    assert job.status == PatientImportStatus.DONE
    assert job.imported_count == 2
    assert job.rows == []  # no second copy of the list is kept
    zoe = Patient.objects.get(last_name="Müller")
    assert zoe.first_name == "Zoë"  # NFC, as registration stores it
    assert zoe.phone.as_e164 == "+447911123456"
    assert zoe.reminder_channel == "email"
    assert zoe.address == '=HYPERLINK("x")'  # stored as typed, never evaluated
    assert spreadsheet_cell(zoe.address) == '\'=HYPERLINK("x")'  # quoted when exported
    ana = Patient.objects.get(last_name="Lee")
    assert ana.phone.as_e164 == "+33612345678"
    assert ana.reminder_channel == "sms"
    assert ana.created_by == manager
    # The search finds them, through the word index the triggers keep.
    assert PatientSearchWord.objects.filter(patient_id=zoe.pk, word="muller").exists()
    assert [p.pk for p in patient_search(user=manager, query="mull")] == [zoe.pk]
    # A manager's addresses are held as registration holds reception's.
    assert ContactChange.objects.filter(patient=zoe).count() == 2
    event = AuditEvent.objects.get(object_type="patients.patientimport", action="create",
                                   changed_fields=["patients:2"])  # fmt: skip
    assert event.actor == manager
    assert event.object_id == str(job.uuid)


def test_a_duplicate_registered_after_the_preview_stops_the_whole_import(
    manager: User, receptionist: User
) -> None:
    job = mapped(manager, csv_bytes(good_rows(5)))
    assert job.problems == {}
    patient_create(
        created_by=receptionist, first_name="Anna3", last_name="Patient3",
        date_of_birth=date(1953, 4, 4), reminder_channel="none",
    )  # fmt: skip
    before = Patient.objects.count()
    job = run(manager, job)
    assert job.status == PatientImportStatus.FAILED
    assert "Nothing was imported" in job.error
    assert "May already be registered as Anna3 Patient3" in problems_of(job)[5]
    assert Patient.objects.count() == before
    # Left out, the row no longer stops it; the same import runs again.
    job = patient_import_row_leave_out(
        job=job, user=manager, row=3, leave_out=True, expected_version=job.version
    )
    job = run(manager, job)
    assert job.status == PatientImportStatus.DONE
    assert Patient.objects.count() == before + 4
    # Its page, the rows cleared and one row left out, says what was imported.
    client = sign_in(Client(), manager)
    response = client.get(reverse("patients:import_detail", args=[job.uuid]))
    assert response.status_code == 200
    assert "4 patients were imported." in response.content.decode()


def test_an_import_stopped_by_a_time_limit_says_so_and_runs_again(
    manager: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    from celery.exceptions import SoftTimeLimitExceeded

    import patients.imports

    job = mapped(manager, csv_bytes(good_rows(3)))

    def too_slow(*args: Any, **kwargs: Any) -> None:
        raise SoftTimeLimitExceeded

    with monkeypatch.context() as patch:
        patch.setattr(patients.imports.Patient.objects, "bulk_create", too_slow)
        job = run(manager, job)
    assert job.status == PatientImportStatus.FAILED
    assert "the import stopped before the end" in job.error
    assert Patient.objects.count() == 0
    assert run(manager, job).imported_count == 3


def test_a_run_twice_imports_once(manager: User) -> None:
    job = mapped(manager, csv_bytes(good_rows(3)))
    job = run(manager, job)
    assert patient_import_run(job_id=job.pk) is None
    assert Patient.objects.count() == 3


def test_rows_with_problems_cannot_be_confirmed(manager: User) -> None:
    job = mapped(manager, csv_bytes(["Ana,Lee,31/02/1990,,,", *good_rows(2)]))
    with pytest.raises(ImportRefusedError) as refused:
        patient_import_confirm(job=job, user=manager, expected_version=job.version)
    assert refused.value.code == "import_problems"
    job = patient_import_row_fix(
        job=job, user=manager, row=0, values={"date_of_birth": "28/02/1990"},
        expected_version=job.version,
    )  # fmt: skip
    assert job.problems == {}
    assert run(manager, job).imported_count == 3


def test_the_same_file_twice_is_refused(manager: User) -> None:
    data = csv_bytes(good_rows(2))
    job = run(manager, mapped(manager, data))
    with pytest.raises(ImportRefusedError) as refused:
        upload(manager, data)
    assert refused.value.code == "import_same_file"
    assert "already imported on Mon 23 Nov (2 patients)" in refused.value.message
    assert PatientImport.objects.count() == 1
    assert job.status == PatientImportStatus.DONE


def test_a_discarded_file_may_be_uploaded_again(manager: User) -> None:
    data = csv_bytes(good_rows(2))
    job = upload(manager, data)
    patient_import_cancel(job=job, user=manager, expected_version=job.version)
    assert upload(manager, data).status == PatientImportStatus.UPLOADED


def test_a_stale_page_is_refused(manager: User) -> None:
    job = mapped(manager, csv_bytes(["Ana,Lee,31/02/1990,,,", *good_rows(2)]))
    opened = job.version
    patient_import_row_leave_out(job=job, user=manager, row=0, leave_out=True,
                                 expected_version=opened)  # fmt: skip
    with pytest.raises(ImportRefusedError) as refused:
        patient_import_confirm(job=job, user=manager, expected_version=opened)
    assert refused.value.code == "import_stale"


# --- Pages ---------------------------------------------------------------------------


def post_file(client: Client, data: bytes, name: str = "patients.csv") -> Any:
    return client.post(UPLOAD, {"file": SimpleUploadedFile(name, data, "text/csv")})


@pytest.mark.parametrize("persona", ["receptionist", "practitioner"], indirect=True)
def test_other_roles_are_refused(client: Client, persona: User, manager: User) -> None:
    job = mapped(manager, csv_bytes(good_rows(2)))
    sign_in(client, persona)
    for url in (
        UPLOAD,
        reverse("patients:import_detail", args=[job.uuid]),
        reverse("patients:import_columns", args=[job.uuid]),
        reverse("patients:import_row", args=[job.uuid, 0]),
        reverse("patients:import_progress", args=[job.uuid]),
    ):
        assert client.get(url).status_code == 403, url
    response = client.post(
        reverse("patients:import_detail", args=[job.uuid]),
        {"action": "confirm", "version": job.version},
    )
    assert response.status_code == 403
    job.refresh_from_db()
    assert job.status == PatientImportStatus.PREVIEW


def test_another_manager_sees_an_import_but_cannot_confirm_or_change_it(
    client: Client, manager: User, make_staff: Any
) -> None:
    from clinic.roles import Role

    job = mapped(manager, csv_bytes(["Ana,Lee,31/02/1990,,,", *good_rows(2)]))
    other = make_staff("other_manager", Role.MANAGER)
    sign_in(client, other)
    detail = reverse("patients:import_detail", args=[job.uuid])
    assert client.get(detail).status_code == 200
    for action in ("confirm", "cancel", "leave_out"):
        response = client.post(detail, {"action": action, "version": job.version, "row": 0})
        assert response.status_code == 403, action
        assert "Only Max" in response.content.decode()
    response = client.post(
        reverse("patients:import_row", args=[job.uuid, 0]),
        {"version": job.version, "first_name": "Ana", "last_name": "Lee",
         "date_of_birth": "01/01/1990"},
    )  # fmt: skip
    assert response.status_code == 403
    response = client.post(
        reverse("patients:import_columns", args=[job.uuid]),
        {"version": job.version, "first_name": 0, "last_name": 1, "date_of_birth": 2},
    )
    assert response.status_code == 403
    fresh = PatientImport.objects.get(pk=job.pk)
    assert (fresh.status, fresh.version, fresh.dropped) == (job.status, job.version, [])


def test_an_unknown_import_is_not_found(client: Client, manager: User) -> None:
    sign_in(client, manager)
    url = reverse("patients:import_detail", args=["00000000-0000-4000-8000-00000000abcd"])
    assert client.post(url, {"action": "confirm", "version": 1}).status_code == 404


@pytest.mark.parametrize(
    ("data", "name", "words"),
    [
        (b"", "empty.csv", "The submitted file is empty"),
        (b"\x00\x01\x02" * 50, "binary.csv", "not a CSV file"),
        (b"Name\nAna\n", "one.csv", "only one column"),
        (HEADER.encode(), "header.csv", "header row but no patients"),
    ],
)
def test_bad_files_get_a_400_with_words(
    client: Client, manager: User, data: bytes, name: str, words: str
) -> None:
    sign_in(client, manager)
    response = post_file(client, data, name)
    assert response.status_code == 400
    assert words in response.content.decode()
    assert PatientImport.objects.count() == 0


def test_the_whole_journey_through_the_pages(
    client: Client, manager: User, django_capture_on_commit_callbacks: Any
) -> None:
    sign_in(client, manager)
    rows = good_rows(4)
    rows[1] = "Ben,Ode,31/02/1990,,,"
    response = post_file(client, csv_bytes(rows))
    assert response.status_code == 302
    job = PatientImport.objects.get()
    columns = client.get(response["Location"])
    assert columns.status_code == 200
    body = columns.content.decode()
    assert re.search(r'<option value="1" selected>Surname: “Patient0”</option>', body)
    form = {"version": job.version, "first_name": 0, "last_name": 1, "date_of_birth": 2,
            "email": 3, "phone": 4}  # fmt: skip
    response = client.post(response["Location"], form)
    assert response.status_code == 302
    detail = client.get(response["Location"]).content.decode()
    assert "Line 3" in detail
    assert "“31/02/1990” is not a date" in detail
    assert 'data-testid="import-confirm"' not in detail
    job.refresh_from_db()
    response = client.post(
        reverse("patients:import_row", args=[job.uuid, 1]),
        {"version": job.version, "first_name": "Ben", "last_name": "Ode",
         "date_of_birth": "28/02/1990", "email": "", "phone": ""},
    )  # fmt: skip
    assert response.status_code == 302
    job.refresh_from_db()
    assert job.problems == {}
    with django_capture_on_commit_callbacks() as callbacks:
        response = client.post(
            reverse("patients:import_detail", args=[job.uuid]),
            {"action": "confirm", "version": job.version},
        )
    assert response.status_code == 302
    assert len(callbacks) == 1
    job.refresh_from_db()
    assert job.status == PatientImportStatus.QUEUED
    # The same confirmation posted again: refused, nothing queued twice.
    again = client.post(
        reverse("patients:import_detail", args=[job.uuid]),
        {"action": "confirm", "version": job.version},
    )
    assert again.status_code == 409
    assert "already started" in again.content.decode()
    patient_import_run(job_id=job.pk)
    progress = client.get(reverse("patients:import_progress", args=[job.uuid]),
                          headers={"HX-Request": "true"})  # fmt: skip
    assert progress["HX-Refresh"] == "true"
    assert "4 patients were imported" in progress.content.decode()
    # An import already run, confirmed again: 409, nothing more.
    again = client.post(
        reverse("patients:import_detail", args=[job.uuid]),
        {"action": "confirm", "version": job.version + 1},
    )
    assert again.status_code == 409
    assert Patient.objects.count() == 4


def test_forged_and_mangled_posts_get_4xx(client: Client, manager: User) -> None:
    job = mapped(manager, csv_bytes(good_rows(2)))
    sign_in(client, manager)
    url = reverse("patients:import_detail", args=[job.uuid])
    assert client.post(url, {"action": "explode", "version": job.version}).status_code == 400
    assert client.post(url, {"action": "confirm", "version": "x"}).status_code == 400
    assert client.post(url, {"action": "leave_out", "version": job.version}).status_code == 400
    response = client.post(url, {"action": "leave_out", "row": 99, "version": job.version})
    assert response.status_code == 410
    assert client.get(reverse("patients:import_row", args=[job.uuid, 99])).status_code == 404
    columns = reverse("patients:import_columns", args=[job.uuid])
    response = client.post(columns, {"version": job.version, "first_name": 0, "last_name": 0,
                                     "date_of_birth": 2})  # fmt: skip
    assert response.status_code == 400
    assert "only one field" in response.content.decode()
    response = client.post(columns, {"version": job.version, "first_name": 99})
    assert response.status_code == 400


@pytest.mark.parametrize("rows", [5, 120])
def test_the_pages_query_budget_does_not_grow_with_rows(
    client: Client, manager: User, django_assert_max_num_queries: Any, rows: int
) -> None:
    bad = [f"Bad{n},Row{n},31/02/1990,,," for n in range(rows)]
    job = mapped(manager, csv_bytes(good_rows(rows) + bad))
    sign_in(client, manager)
    # The session's first request records when it started (three queries,
    # once per sign-in): made before measuring, so each page counts its own.
    client.get(reverse("patients:import_progress", args=[job.uuid]))
    for url in (
        UPLOAD,
        reverse("patients:import_detail", args=[job.uuid]),
        reverse("patients:import_columns", args=[job.uuid]),
        reverse("patients:import_row", args=[job.uuid, rows]),
        reverse("patients:import_progress", args=[job.uuid]),
    ):
        with django_assert_max_num_queries(8):
            assert client.get(url).status_code == 200, url


def test_the_import_benchmark_measures_then_rolls_back(manager: User) -> None:
    from io import StringIO

    from django.core.management import call_command

    out = StringIO()
    call_command("benchmark_import", rows=60, existing=30, stdout=out)
    report = out.getvalue()
    assert "60 rows" in report
    assert "| check: match columns, check every row |" in report
    assert "| **upload to imported** |" in report
    assert "Patients created: 60;" in report
    assert "Rolled back" in report
    assert Patient.objects.count() == 0
    assert PatientImport.objects.count() == 0


def test_a_file_over_10_mb_is_refused_in_words_and_over_the_body_limit_with_413(
    client: Client, manager: User, settings: Any
) -> None:
    sign_in(client, manager)
    big = HEADER.encode() + b"\r\n" + b"Ana,Lee,01/01/1990,,,x" * (11 * 1024 * 1024 // 22)
    response = post_file(client, big)
    assert response.status_code == 400
    assert "larger than 10 MB" in response.content.decode()
    settings.UPLOAD_BODY_MAX_BYTES = 5 * 1024 * 1024
    response = post_file(client, big)
    assert response.status_code == 413
    assert PatientImport.objects.count() == 0


def test_an_import_whose_message_was_lost_is_offered_to_start_again(
    client: Client, manager: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    import patients.imports

    job = mapped(manager, csv_bytes(good_rows(2)))
    published: list[int] = []
    monkeypatch.setattr(
        patients.imports, "enqueue", lambda task, job_id, label: published.append(job_id) or True
    )
    job = patient_import_confirm(job=job, user=manager, expected_version=job.version)
    sign_in(client, manager)
    url = reverse("patients:import_detail", args=[job.uuid])
    assert 'data-testid="import-stalled"' not in client.get(url).content.decode()
    with time_machine.travel(NOW + timedelta(minutes=2), tick=False):
        page = client.get(url).content.decode()
        assert "has not started after a minute" in page
        response = client.post(url, {"action": "start_again", "version": job.version})
    assert response.status_code == 302
    assert published == [job.pk]  # on_commit does not run in this test's transaction
    patient_import_run(job_id=job.pk)
    response = client.post(url, {"action": "start_again", "version": job.version + 1})
    assert response.status_code == 409
    assert Patient.objects.count() == 2


def test_every_row_with_a_problem_is_left_out_at_once(client: Client, manager: User) -> None:
    bad = ["Ana,Lee,31/02/1990,,,", "Ben,Ode,01/01/2030,,,"]
    job = mapped(manager, csv_bytes(bad + good_rows(2)))
    sign_in(client, manager)
    url = reverse("patients:import_detail", args=[job.uuid])
    assert "Leave out all 2 rows with a problem" in client.get(url).content.decode()
    response = client.post(url, {"action": "leave_out_problems", "version": job.version})
    assert response.status_code == 302
    job.refresh_from_db()
    assert (job.dropped, job.problems) == ([0, 1], {})
    assert run(manager, job).imported_count == 2
    only_bad = mapped(manager, csv_bytes(bad, header=HEADER + ",Note"))
    response = client.post(
        reverse("patients:import_detail", args=[only_bad.uuid]),
        {"action": "leave_out_problems", "version": only_bad.version},
    )
    assert response.status_code == 400
    assert "Every row has a problem" in response.content.decode()


def test_an_import_whose_worker_died_is_shown_stopped_and_runs_again(
    client: Client, manager: User, monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    import patients.imports

    job = mapped(manager, csv_bytes(good_rows(3)))
    published: list[int] = []

    def enqueue(task: Any, job_id: int, label: str) -> bool:
        published.append(job_id)
        return True

    monkeypatch.setattr(patients.imports, "enqueue", enqueue)
    job = patient_import_confirm(job=job, user=manager, expected_version=job.version)

    def worker_killed(*args: Any, **kwargs: Any) -> None:
        raise SystemExit(1)  # the process ends mid-import: nothing after runs

    with monkeypatch.context() as patch:
        patch.setattr(patients.imports.Patient.objects, "bulk_create", worker_killed)
        with pytest.raises(SystemExit):
            patient_import_run(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == PatientImportStatus.RUNNING
    assert Patient.objects.count() == 0
    sign_in(client, manager)
    url = reverse("patients:import_detail", args=[job.uuid])
    progress = reverse("patients:import_progress", args=[job.uuid])
    # Within the task's hard time limit the run may still be going.
    limit = timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT)
    with time_machine.travel(NOW + limit, tick=False):
        assert 'data-testid="import-lost"' not in client.get(url).content.decode()
        response = client.post(url, {"action": "start_again", "version": job.version})
        assert response.status_code == 409
    with time_machine.travel(NOW + limit + timedelta(minutes=2), tick=False):
        assert "stopped without finishing" in client.get(url).content.decode()
        assert "stopped without finishing" in client.get(progress).content.decode()
        assert "Stopped, start it again" in client.get(UPLOAD).content.decode()
        response = client.post(url, {"action": "start_again", "version": job.version})
        assert response.status_code == 302
        assert published == [job.pk]  # on_commit does not run in this test's transaction
        result = patient_import_run(job_id=job.pk)
    assert result is not None
    assert result.status == PatientImportStatus.DONE
    assert Patient.objects.count() == 3
