"""Two managers edit the draft of a consent form from pages opened at the same
time: the second save is refused with a 409 naming the section the first
changed, its text, who and when; what the second typed is shown again and none
of it is saved (clinic.concurrency). Also when the page had no draft yet and
when the draft was published in between."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.test import Client
from django.urls import reverse

from clinic.models import User
from clinic.roles import Role
from consent.models import CONSENT_SECTION_NAMES, ConsentForm, ConsentFormVersion
from tests.conftest import sign_in
from tests.factories import ConsentFormFactory, ConsentFormVersionFactory
from tests.races import hidden_value

pytestmark = pytest.mark.django_db

OPENED = datetime(2026, 3, 2, 10, 0, tzinfo=ZoneInfo("Europe/London"))
SAVED = OPENED + timedelta(minutes=2)


@pytest.fixture
def clock() -> Iterator[time_machine.Coordinates]:
    with time_machine.travel(OPENED, tick=False) as traveller:
        yield traveller


@pytest.fixture
def other_manager(make_staff: Callable[..., User]) -> User:
    return make_staff("manager-2", Role.MANAGER, first_name="Mina", last_name="Patel")


@pytest.fixture
def form(clock: time_machine.Coordinates) -> ConsentForm:
    return ConsentFormVersionFactory(form=ConsentFormFactory(title="Face and neck")).form


def texts_of(version: ConsentFormVersion, **changes: str) -> dict[str, str]:
    texts = {
        name: getattr(version, name) for name in (*CONSENT_SECTION_NAMES, "photo_consent_text")
    }
    return {**texts, **changes}


def open_both(url: str, first: User, second: User) -> tuple[Client, str, Client, str]:
    a, b = sign_in(Client(), first), sign_in(Client(), second)
    return a, a.get(url).content.decode(), b, b.get(url).content.decode()


def test_a_stale_draft_save_is_refused_naming_the_section_changed(
    form: ConsentForm, manager: User, other_manager: User, clock: time_machine.Coordinates
) -> None:
    current = form.versions.get()
    draft = ConsentFormVersionFactory(form=form, published_at=None, published_by=None)
    url = reverse("consent:draft_edit", kwargs={"form": form.uuid})
    a, page_a, b, page_b = open_both(url, manager, other_manager)

    clock.move_to(SAVED)
    mine: dict[str, Any] = texts_of(draft, aftercare="No sauna for 48 hours.")
    saved = a.post(url, {**mine, "version": hidden_value(page_a, "version")})
    assert saved.status_code == 302
    theirs = texts_of(draft, benefits="Brighter skin, typed by B.")
    refused = b.post(url, {**theirs, "version": hidden_value(page_b, "version")})

    assert refused.status_code == 409
    body = refused.content.decode()
    changes = body[body.index('data-testid="stale-changes"') :]
    assert "Aftercare" in changes
    assert "No sauna for 48 hours." in changes
    assert "Max" in changes
    assert "10:02" in changes
    assert "Brighter skin, typed by B." in body  # what B typed is kept
    draft.refresh_from_db()
    assert draft.aftercare == "No sauna for 48 hours."
    assert draft.benefits == current.benefits
    assert draft.version == 2


def test_two_managers_starting_the_first_draft_make_one_and_the_second_is_refused(
    form: ConsentForm, manager: User, other_manager: User, clock: time_machine.Coordinates
) -> None:
    current = form.versions.get()
    url = reverse("consent:draft_edit", kwargs={"form": form.uuid})
    a, page_a, b, page_b = open_both(url, manager, other_manager)
    assert hidden_value(page_a, "version") == "0"  # no draft yet

    clock.move_to(SAVED)
    saved = a.post(url, {**texts_of(current, procedure="Words of A."), "version": "0"})
    assert saved.status_code == 302
    words_of_b = texts_of(current, procedure="Words of B.")
    refused = b.post(url, {**words_of_b, "version": hidden_value(page_b, "version")})

    assert refused.status_code == 409
    assert "Words of A." in refused.content.decode()
    draft = form.versions.get(published_at__isnull=True)
    assert draft.procedure == "Words of A."


def test_saving_a_draft_published_since_the_page_was_opened_is_refused(
    form: ConsentForm, manager: User, other_manager: User, clock: time_machine.Coordinates
) -> None:
    draft = ConsentFormVersionFactory(form=form, published_at=None, published_by=None)
    url = reverse("consent:draft_edit", kwargs={"form": form.uuid})
    a, _page_a, b, page_b = open_both(url, manager, other_manager)

    clock.move_to(SAVED)
    publish = reverse("consent:version_publish", kwargs={"form": form.uuid, "version": draft.uuid})
    assert a.post(publish, {"version": str(draft.version)}).status_code == 302
    refused = b.post(
        url,
        {**texts_of(draft, aftercare="Late words."), "version": hidden_value(page_b, "version")},
    )

    assert refused.status_code == 409
    body = refused.content.decode()
    assert "Published" in body
    assert "as version 2" in body
    assert not form.versions.filter(published_at__isnull=True).exists()  # no new draft made
    draft.refresh_from_db()
    assert draft.aftercare != "Late words."
