"""Dates and times people read are written by clinic/dates.py alone (its
template filters `day`, `day_time`, `clock`, ...), and every date or time
input is in the clinic's format (clinic/widgets.py), not the browser's.
Machine formats (ISO in value attributes, URLs, CSV cells, file names, logs)
stay allowed."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from django.conf import settings

BASE_DIR = Path(settings.BASE_DIR)
OUR_APPS = ("clinic", "patients", "consent", "treatments")

# Django `date` formats that are machine formats: ISO days, ISO instants, sortable stamps.
MACHINE_TEMPLATE_FORMATS = {"Y-m-d", "c", "Ymd"}
TEMPLATE_DATE = re.compile(r"""\|\s*date\s*(?::\s*(["'])(?P<fmt>[^"']*)\1|:\s*(?P<var>[\w.]+))?""")
TEMPLATE_TIME = re.compile(r"\|\s*time\b")
BROWSER_INPUT = re.compile(r"""type=["'](date|time|datetime-local)["']""")

PY_CALL = re.compile(
    r"""(?:\.strftime|\bdate_format|\btime_format|\bdateformat\.format)\((?P<args>.*)"""
)
PY_FSTRING = re.compile(r"""\{[^{}'"]+?:(?P<fmt>%[^{}]*)\}""")
PY_BROWSER_INPUT = re.compile(r"""["']type["']\s*:\s*["'](date|time|datetime-local)["']""")
# ISO and sortable stamps: year first, then month, day, hours... (strftime or Django).
ISO = re.compile(r"^(%Y|Y)([-:T \w%]|%[mdHMSZz]|UTC)*$")

# Machine formats that are not ISO, each with why.
ALLOWED = {
    # The search text matches a date of birth typed as the clinic's inputs take it.
    ("patients/services.py", 'patient.date_of_birth.strftime("%d/%m/%Y")'),
    # The demo data's benchmark types a birth date the way reception would.
    ("patients/management/commands/benchmark_search.py", '.strftime("%d/%m/%Y")'),
    # Backup archives' names: a sortable UTC stamp (STAMP_FORMAT, year first).
    ("clinic/backup.py", ".strftime(STAMP_FORMAT)"),
}
SKIPPED_PARTS = {"migrations", "tests"}


def _tracked() -> set[str] | None:
    # Files in the repository: work not added yet is checked once it is.
    try:
        listed = subprocess.run(
            ["git", "ls-files"], cwd=BASE_DIR, capture_output=True, text=True, check=True
        )
    except (OSError, subprocess.CalledProcessError):
        return None  # an exported tree: check everything
    return set(listed.stdout.splitlines())


TRACKED = _tracked()


def _checked(path: Path) -> bool:
    return TRACKED is None or str(path.relative_to(BASE_DIR)) in TRACKED


def _python_files() -> list[Path]:
    found = []
    for app in OUR_APPS:
        for path in sorted((BASE_DIR / app).rglob("*.py")):
            rel = path.relative_to(BASE_DIR)
            if SKIPPED_PARTS & set(rel.parts) or rel.name.startswith("benchmark_"):
                continue
            if str(rel) == "clinic/dates.py" or not _checked(path):
                continue
            found.append(path)
    return found


def template_offences(text: str) -> list[str]:
    """Display formats written in a template rather than by clinic/dates.py."""
    offences = []
    for match in TEMPLATE_DATE.finditer(text):
        if match.group("fmt") not in MACHINE_TEMPLATE_FORMATS:
            offences.append(match.group(0))
    offences += [m.group(0) for m in TEMPLATE_TIME.finditer(text)]
    offences += [m.group(0) for m in BROWSER_INPUT.finditer(text)]
    return offences


def python_offences(text: str, rel: str = "") -> list[str]:
    """Dates formatted for reading outside clinic/dates.py, and browser date inputs."""
    offences = []
    for line in text.splitlines():
        for match in PY_CALL.finditer(line):
            if any(rel == path and snippet in line for path, snippet in ALLOWED):
                continue
            fmt = re.search(r"""["']([^"']*)["']""", match.group("args"))
            # A format in a variable counts as written by hand unless allowed above.
            if fmt is None or not ISO.match(fmt.group(1)):
                offences.append(line.strip())
        for match in PY_FSTRING.finditer(line):
            if not ISO.match(match.group("fmt")):
                offences.append(line.strip())
        offences += [line.strip() for _ in PY_BROWSER_INPUT.finditer(line)]
    return offences


def test_the_checks_catch_ad_hoc_formats_and_let_machine_ones_through() -> None:
    # Each way of writing a date by hand is caught...
    assert template_offences('{{ b.starts_at|date:"D j M" }}')
    assert template_offences("{{ b.starts_at|time:'H:i' }}")
    assert template_offences("{{ b.starts_at|date }}")
    assert template_offences("{{ b.starts_at|date:fmt }}")
    assert template_offences('<input type="date" name="d">')
    assert python_offences('x = day.strftime("%d/%m/%Y")')
    assert python_offences('x = formats.date_format(day, "j M Y")')
    assert python_offences('x = dateformat.format(day, "D j M H:i")')
    assert python_offences('x = f"{local:%H:%M} on {day}"')
    assert python_offences('widget=forms.DateInput(attrs={"type": "date"})')
    # ...and machine formats are not.
    assert not template_offences("<a href=\"?date={{ day|date:'Y-m-d' }}\">")
    assert not template_offences("<time datetime=\"{{ at|date:'c' }}\">{{ at|day_time }}</time>")
    assert not python_offences('name = f"{at:%Y%m%dT%H%M%SZ}.tar"')
    assert not python_offences('cell = formats.date_format(at, "Y-m-d H:i")')
    assert not python_offences('return f"{self.at:%Y-%m-%d %H:%M:%S} {who}"')


def test_templates_write_dates_through_the_clinics_filters() -> None:
    found = {}
    for path in sorted((BASE_DIR / "templates").rglob("*")):
        if path.is_file() and path.suffix in {".html", ".txt"} and _checked(path):
            offences = template_offences(path.read_text())
            if offences:
                found[str(path.relative_to(BASE_DIR))] = offences
    assert not found, f"use |day, |day_time, |clock, ... (clinic/dates.py): {found}"


def test_python_writes_dates_for_people_through_clinic_dates() -> None:
    found = {}
    for path in _python_files():
        rel = str(path.relative_to(BASE_DIR))
        offences = python_offences(path.read_text(), rel)
        if offences:
            found[rel] = offences
    assert not found, f"use clinic.dates (day, day_time, clock, ...): {found}"
