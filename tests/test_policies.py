"""Code-wide rules checked by reading the code: forms, templates, static assets."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django import forms
from django.apps import apps
from django.conf import settings
from django.contrib.staticfiles import finders
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from hypothesis.extra.django import from_form

from clinic.forms import AuditFilterForm, TokenForm

BASE_DIR = Path(settings.BASE_DIR)
OUR_APPS = ("clinic", "patients", "consent", "treatments")
TEMPLATES = sorted((BASE_DIR / "templates").rglob("*.html"))


def _our_modelforms() -> list[type[forms.ModelForm]]:
    import importlib

    found = []
    for app in OUR_APPS:
        for module in ("forms", "admin"):
            try:
                mod = importlib.import_module(f"{app}.{module}")
            except ModuleNotFoundError:
                continue
            for value in vars(mod).values():
                if isinstance(value, type) and issubclass(value, forms.ModelForm):
                    found.append(value)
    return found


def test_model_forms_list_their_fields_explicitly() -> None:
    for form in _our_modelforms():
        meta = getattr(form, "Meta", None)
        assert getattr(meta, "fields", None) != "__all__", form
        assert not getattr(meta, "exclude", None), form


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda p: str(p.relative_to(BASE_DIR)))
def test_templates_have_no_inline_scripts_or_unsafe_output(template: Path) -> None:
    text = template.read_text()
    # CSP allows scripts from our static files only.
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", text), "inline <script>"
    assert not re.search(r"\son[a-z]+\s*=", text), "inline event handler"
    assert "style=" not in text, "inline style attribute"
    assert "<style" not in text, "inline <style> block"
    assert "|safe" not in text
    assert "autoescape off" not in text
    assert "localStorage" not in text


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda p: str(p.relative_to(BASE_DIR)))
def test_templates_load_nothing_from_other_sites(template: Path) -> None:
    text = template.read_text()
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", text)


def test_no_python_marks_strings_safe() -> None:
    for app in OUR_APPS:
        for path in (BASE_DIR / app).rglob("*.py"):
            assert "mark_safe(" not in path.read_text(), path


def test_every_csv_download_defuses_spreadsheet_formulas() -> None:
    """A CSV the clinic writes goes through clinic.spreadsheets, whose writer
    quotes a cell a spreadsheet would run as a formula; the standard writer is
    used nowhere else."""
    for app in OUR_APPS:
        for path in (BASE_DIR / app).rglob("*.py"):
            if path == BASE_DIR / "clinic" / "spreadsheets.py":
                continue
            text = path.read_text()
            assert "csv.writer(" not in text, path
            assert "DictWriter(" not in text, path


@pytest.mark.parametrize(
    "asset",
    [
        "vendor/bootstrap/css/bootstrap.min.css",
        "vendor/bootstrap/js/bootstrap.bundle.min.js",
        "vendor/htmx/htmx.min.js",
        "css/clinic.css",
    ],
)
def test_front_end_assets_are_installed_and_served_locally(asset: str) -> None:
    assert finders.find(asset), f"{asset} missing: run npm ci (make install does)"


def test_every_app_is_installed() -> None:
    for app in OUR_APPS:
        assert apps.is_installed(app)


FUZZ = hsettings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))


@FUZZ
@given(from_form(TokenForm))
def test_token_form_never_crashes(form: TokenForm) -> None:
    """Any input is answered: six digits and nothing else once valid, or the
    sentence that asks for them."""
    if form.is_valid():
        assert re.fullmatch(r"\d{6}", form.cleaned_data["otp_token"])
    else:
        assert form.errors["otp_token"]
        assert all(str(message).strip() for message in form.errors["otp_token"])


@FUZZ
@given(
    st.fixed_dictionaries(
        {
            "user": st.text(max_size=200),
            "action": st.text(max_size=30),
            "since": st.text(max_size=20) | st.dates().map(str),
            "until": st.text(max_size=20) | st.dates().map(str),
        }
    )
)
def test_audit_filter_form_never_crashes(data: dict[str, str]) -> None:
    form = AuditFilterForm(data)
    if form.is_valid():
        since, until = form.cleaned_data["since"], form.cleaned_data["until"]
        assert not (since and until and until < since)
