"""A form field says "for example" once: its hint under it gives the
example, and an error shown with that hint names what is wrong without
repeating it (a date typed wrong read "..., for example 17/05/2026." above
"For example, 17/05/2026.")."""

from __future__ import annotations

import importlib
import pkgutil
import re
from datetime import datetime
from html import unescape
from zoneinfo import ZoneInfo

import pytest
from django import forms
from django.test import Client
from django.urls import reverse

from clinic.models import User
from tests.conftest import frozen_at, sign_in

APPS = ("clinic", "patients", "consent", "treatments")
EXAMPLE = re.compile(r"\bfor example\b|\be\.g\.", re.IGNORECASE)


def _form_classes() -> list[type[forms.BaseForm]]:
    found: dict[str, type[forms.BaseForm]] = {}
    for app in APPS:
        package = importlib.import_module(app)
        for module in pkgutil.walk_packages(package.__path__, app + "."):
            if ".migrations" in module.name or ".management" in module.name:
                continue
            loaded = importlib.import_module(module.name)
            for value in vars(loaded).values():
                if (
                    isinstance(value, type)
                    and issubclass(value, forms.BaseForm)
                    and value.__module__.split(".")[0] in APPS
                ):
                    found[f"{value.__module__}.{value.__qualname__}"] = value
    return [found[name] for name in sorted(found)]


def test_no_field_gives_its_example_twice() -> None:
    classes = _form_classes()
    assert len(classes) > 40  # the walk found the project's forms
    twice = []
    for form_class in classes:
        for name, field in getattr(form_class, "base_fields", {}).items():
            hint = str(field.help_text or "")
            for code, message in field.error_messages.items():
                if len(EXAMPLE.findall(f"{hint} {message}")) > 1:
                    twice.append(f"{form_class.__qualname__}.{name} ({code})")
    assert twice == []


NOW = datetime(2026, 11, 24, 10, 0, tzinfo=ZoneInfo("Europe/London"))
frozen = frozen_at(NOW)


@pytest.mark.django_db
def test_a_date_and_a_phone_typed_wrong_give_the_example_once(receptionist: User) -> None:
    client = sign_in(Client(), receptionist)
    response = client.post(
        reverse("patients:create"),
        {
            "first_name": "Amelia",
            "last_name": "Hart",
            "date_of_birth": "31/02/1990",
            "phone": "12",
        },
    )
    assert response.status_code == 400
    page = response.content.decode()
    for field in ("date_of_birth", "phone"):
        block = page[page.index(f'id="div_id_{field}"') :]
        block = unescape(re.sub(r"<[^>]+>", " ", block[: block.index('<div id="div_id_', 1)]))
        assert "for example" in block.lower(), field
        assert len(EXAMPLE.findall(block)) == 1, (field, " ".join(block.split()))
