"""The calendar without its script: every free time stays a link in the Tab
order, so a keyboard still books one; the keyboard hint is left hidden, as
the arrow keys it names are the script's (tests/browser/test_calendar_week.py
drives the grid with them)."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from clinic.models import User
from tests.conftest import sign_in
from tests.treatments import test_booking_support as support
from tests.treatments.test_booking_support import Clinic
from tests.treatments.test_calendar import CALENDAR, TUESDAY

frozen = support.frozen
clinic = support.clinic
pytestmark = pytest.mark.usefixtures("frozen")


@pytest.mark.parametrize("view", ["day", "week"])
def test_without_the_script_every_free_time_is_a_link_in_the_tab_order(
    client: Client, clinic: Clinic, receptionist: User, view: str
) -> None:
    sign_in(client, receptionist)
    page = client.get(CALENDAR, {"view": view, "date": TUESDAY.isoformat()}).content.decode()
    slots = re.findall(r'<a class="cal-free"[^>]*>', page)
    assert len(slots) > 20
    assert all("href=" in slot and "tabindex" not in slot for slot in slots)
    hint = re.search(r'<span id="cal-keys"[^>]*>', page)
    assert hint is not None
    assert " hidden" in hint.group(0)
    assert "/static/js/calendar.js" in page
