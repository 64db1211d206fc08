"""Importing a patient list in a real browser, at 1366x768 and 768x1024: a
manager uploads a 200-row CSV from another system with three bad rows (a
date that does not exist, a phone number that cannot be read, someone
already registered); the preview names the three, she corrects two and
leaves the third out, imports, sees the progress and the result."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
import time_machine
from playwright.sync_api import Page, expect

from clinic.models import AuditEvent, User
from patients.imports import patient_import_run
from patients.models import Patient, PatientImport, PatientImportStatus
from patients.services import patient_create
from tests.browser.axe import axe_violations, describe
from tests.browser.conftest import BrowserPage, screenshot
from tests.browser.test_journeys import (
    NewPage,
    assert_styled,
    open_manage_menu,
    open_navigation,
    sign_in,
)

pytestmark = pytest.mark.browser

SIZES = {"desktop": {"width": 1366, "height": 768}, "tablet": {"width": 768, "height": 1024}}
NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)


def _tab(new_page: NewPage, viewport: str) -> BrowserPage:
    tab = new_page(viewport)
    tab.page.set_viewport_size(SIZES[viewport])  # type: ignore[arg-type]
    return tab


def _the_file(path: Path) -> Path:
    """200 patients as another system exports them (Windows-1252, as Excel
    saves CSV on Windows), three of them bad: line 11's date does not
    exist, line 51's phone cannot be read, line 151 is Zoë Müller, already
    registered."""
    lines = ["Forename,Surname,Date of Birth,E-mail,Mobile,Post code"]
    for n in range(200):
        lines.append(
            f"Ana{n},Søren{n},{1 + n % 28:02d}/{1 + n % 12:02d}/{1950 + n % 50},"
            f"ana{n}@example.org,07911 1{n:05d},LS1 {n % 9}AB"
        )
    lines[10] = "Bea,Lopez,31/02/1990,bea@example.org,07911 200001,LS2 1AB"
    lines[50] = "Cai,Chen,12/12/1980,cai@example.org,+1 234,LS3 1AB"
    lines[150] = "Zoe,Muller,02/07/1991,zoe.new@example.org,07911 200003,LS4 1AB"
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode("cp1252"))
    return path


def _no_horizontal_scroll(page: Page) -> None:
    widths = page.evaluate(
        "() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    )
    assert widths[0] <= widths[1], widths


def _check(page: Page, name: str) -> None:
    """Styled, no sideways scrolling, no axe violation; then the screenshot."""
    assert_styled(page)
    _no_horizontal_scroll(page)
    violations = axe_violations(page)
    assert not violations, "\n".join(describe(name, violations))
    screenshot(page, name)


@pytest.mark.parametrize("viewport", ["desktop", "tablet"])
def test_a_manager_imports_200_patients_fixing_three_bad_rows(
    live_server, new_page: NewPage, manager: User, receptionist: User, viewport: str, tmp_path: Path
) -> None:
    with time_machine.travel(NOW, tick=True):
        patient_create(
            created_by=receptionist,
            first_name="Zoë",
            last_name="Müller",
            date_of_birth=date(1991, 7, 2),
            reminder_channel="none",
        )
        base = live_server.url
        tab = _tab(new_page, viewport)
        page = tab.page
        sign_in(tab, base, manager)

        # From the main navigation to the upload page (the stylesheet loaded
        # first: without it the narrow screen's toggler shows everywhere).
        page.wait_for_load_state("load")
        open_navigation(page)
        open_manage_menu(page)
        page.get_by_test_id("main-nav").get_by_role("link", name="Import patients").click()
        expect(page.get_by_role("heading", level=1)).to_have_text(
            "Import patients from another system"
        )
        expect(page.get_by_text("At most 20,000 patients and 10 MB per file.")).to_be_visible()
        page.get_by_label("Patient list").set_input_files(_the_file(tmp_path / "export.csv"))
        _check(page, f"import-upload-{viewport}.png")
        page.get_by_test_id("import-upload").click()

        # The columns, guessed from the headers.
        expect(page.get_by_role("heading", level=1)).to_have_text("Match the columns")
        expect(page.get_by_label("First name")).to_have_value("0")
        expect(page.get_by_label("Last name")).to_have_value("1")
        expect(page.get_by_label("Date of birth")).to_have_value("2")
        expect(page.get_by_label("Mobile phone")).to_have_value("4")
        expect(page.get_by_label("Postcode")).to_have_value("5")
        # Windows-1252 read as such: the ø is whole.
        expect(page.get_by_test_id("import-sample")).to_contain_text("Søren0")
        _check(page, f"import-columns-{viewport}.png")
        page.get_by_test_id("import-check").click()

        # The preview names the three bad rows and nothing else.
        expect(page.get_by_test_id("import-problem-count")).to_have_text("3")
        expect(page.get_by_test_id("import-ready")).to_have_text("197")
        rows = page.get_by_test_id("import-problem-row")
        expect(rows).to_have_count(3)
        expect(rows.nth(0)).to_contain_text("Line 11")
        expect(rows.nth(0)).to_contain_text("“31/02/1990” is not a date")
        expect(rows.nth(1)).to_contain_text("Line 51")
        expect(rows.nth(1)).to_contain_text("“+1 234” is not a phone number")
        expect(rows.nth(2)).to_contain_text("Line 151")
        expect(rows.nth(2)).to_contain_text("May already be registered as Zoë Müller")
        expect(page.get_by_test_id("import-confirm")).to_have_count(0)
        expect(page.get_by_test_id("import-blocked")).to_be_visible()
        _check(page, f"import-preview-{viewport}.png")

        # Line 11: the date corrected.
        rows.nth(0).get_by_test_id("import-fix").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Correct line 11")
        expect(page.get_by_label("Date of birth")).to_have_value("31/02/1990")
        page.get_by_label("Date of birth").fill("28/02/1990")
        _check(page, f"import-row-{viewport}.png")
        page.get_by_test_id("import-row-save").click()
        expect(page.get_by_text("Line 11 is corrected.")).to_be_visible()
        expect(page.get_by_test_id("import-problem-row")).to_have_count(2)

        # Line 51: the number that cannot be read taken off.
        page.get_by_test_id("import-problem-row").nth(0).get_by_test_id("import-fix").click()
        page.get_by_label("Mobile phone").fill("")
        page.get_by_test_id("import-row-save").click()
        expect(page.get_by_text("Line 51 is corrected.")).to_be_visible()

        # Line 151, Zoë already registered: left out.
        page.get_by_test_id("import-problem-row").get_by_test_id("import-leave-out").click()
        expect(page.get_by_text("Line 151 is left out of the import.")).to_be_visible()
        expect(page.get_by_test_id("import-dropped")).to_contain_text("Line 151: Zoe Muller")
        expect(page.get_by_test_id("import-ready")).to_have_text("199")
        expect(page.get_by_test_id("import-confirm")).to_have_text("Import 199 patients")
        _check(page, f"import-ready-{viewport}.png")
        page.get_by_test_id("import-confirm").click()

        # Queued: the page shows the progress and asks for it every second.
        expect(page.get_by_text("The import has started.")).to_be_visible()
        expect(page.get_by_test_id("import-progress-bar")).to_be_visible()
        expect(page.get_by_test_id("import-progress")).to_contain_text("Waiting to start")
        expect(page.get_by_test_id("import-progress")).to_contain_text("0 patients added so far")
        _check(page, f"import-progress-{viewport}.png")
        job = PatientImport.objects.get()
        assert job.status == PatientImportStatus.QUEUED
        patient_import_run(job_id=job.pk)  # what the worker runs

        # The poll sees it finish and the page shows the result.
        expect(page.get_by_test_id("import-result")).to_have_text(
            "199 patients were imported.", timeout=15_000
        )
        expect(page.get_by_test_id("import-status")).to_have_text("Imported")
        expect(page.get_by_test_id("import-progress")).to_contain_text(
            "1 row of the file was left out."
        )
        _check(page, f"import-done-{viewport}.png")

    assert Patient.objects.count() == 200  # Zoë, and 199 from the file
    assert Patient.objects.get(first_name="Bea").date_of_birth == date(1990, 2, 28)
    assert Patient.objects.get(first_name="Cai").phone == ""
    assert not Patient.objects.filter(email="zoe.new@example.org").exists()
    assert Patient.objects.get(first_name="Ana0").last_name == "Søren0"
    assert AuditEvent.objects.filter(changed_fields=["patients:199"]).count() == 1
    assert not tab.errors_except()


@pytest.mark.parametrize("viewport", ["desktop", "tablet"])
def test_an_import_whose_worker_died_says_it_stopped_and_starts_again(
    live_server: Any,
    new_page: NewPage,
    manager: User,
    viewport: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import patients.imports
    from patients.imports import (
        patient_import_confirm,
        patient_import_leave_out_problems,
        patient_import_map,
        patient_import_upload,
    )

    published: list[int] = []

    def enqueue(task: object, job_id: int, label: str) -> bool:
        published.append(job_id)
        return True

    def worker_killed(*args: object, **kwargs: object) -> None:
        raise SystemExit(1)  # the process ends mid-import: nothing after runs

    monkeypatch.setattr(patients.imports, "enqueue", enqueue)
    with time_machine.travel(NOW.replace(hour=9), tick=False):
        data = _the_file(tmp_path / "export.csv").read_bytes()
        job = patient_import_upload(created_by=manager, data=data, file_name="export.csv")
        job = patient_import_map(
            job=job, user=manager, mapping=job.mapping, expected_version=job.version
        )
        job = patient_import_leave_out_problems(job=job, user=manager, expected_version=job.version)
        job = patient_import_confirm(job=job, user=manager, expected_version=job.version)
        with monkeypatch.context() as patch:
            patch.setattr(patients.imports.Patient.objects, "bulk_create", worker_killed)
            with pytest.raises(SystemExit):
                patient_import_run(job_id=job.pk)
    with time_machine.travel(NOW, tick=True):
        base = live_server.url
        tab = _tab(new_page, viewport)
        page = tab.page
        sign_in(tab, base, manager)
        page.goto(f"{base}/patients/import/")
        expect(page.get_by_test_id("import-lost")).to_have_text("Stopped, start it again")
        _check(page, f"import-lost-list-{viewport}.png")
        page.get_by_role("link", name="export.csv").click()
        expect(page.get_by_test_id("import-progress")).to_contain_text("The import stopped")
        expect(page.get_by_test_id("import-lost")).to_contain_text("Nothing was imported.")
        expect(page.get_by_test_id("import-status")).to_have_text("Stopped, start it again")
        expect(page.get_by_test_id("import-progress-bar")).to_have_count(0)
        _check(page, f"import-lost-{viewport}.png")
        page.get_by_test_id("import-start-again").click()
        expect(page.get_by_text("The import was asked to start again.")).to_be_visible()
        assert published == [job.pk, job.pk]  # when confirmed, and now again
        patient_import_run(job_id=job.pk)  # what the worker runs
        expect(page.get_by_test_id("import-result")).to_have_text(
            "198 patients were imported.", timeout=15_000
        )
    assert Patient.objects.count() == 198
    assert not tab.errors_except()
