"""Reception's reminder pages in a real browser: a booking's delivery log and
the follow-up list, on a tablet."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.db import transaction
from django.urls import reverse
from django.utils import timezone
from playwright.sync_api import expect

from clinic.models import User
from tests.browser.conftest import screenshot
from tests.browser.test_journeys import NewPage, assert_styled, sign_in
from tests.factories import PatientFactory
from tests.treatments import test_reminders_support as support
from tests.treatments.test_reminders_support import Clinic, RecordingBackend, book
from treatments.models import Reminder, ReminderStatus
from treatments.services.reminders import reminders_dispatch_batch
from treatments.sms import PermanentSMSError

clinic = support.clinic
pytestmark = pytest.mark.browser


# A weekday morning, outside the quiet hours in which no text is sent; the
# clock ticks on from there for the browser's sign-in and pages.
@time_machine.travel(datetime(2026, 12, 1, 10, 30, tzinfo=UTC), tick=True)
def test_reception_reads_the_delivery_log_and_the_follow_up_list(
    live_server, new_page: NewPage, receptionist: User, clinic: Clinic
) -> None:
    patient = PatientFactory(first_name="Nora", last_name="Quill", reminder_channel="sms")
    start = timezone.localtime().replace(hour=10, minute=0, second=0, microsecond=0)
    booking = book(clinic, start + timedelta(days=3), patient=patient)
    earlier = book(clinic, start + timedelta(days=10), patient=patient)
    with transaction.atomic():
        Reminder.objects.filter(booking=earlier, lead_minutes=48 * 60).update(
            due_at=timezone.now() - timedelta(minutes=1)
        )
    reminders_dispatch_batch(
        backend=RecordingBackend(
            [PermanentSMSError("provider refused (400): invalid number", status=400)]
        )
    )
    assert Reminder.objects.filter(status=ReminderStatus.FAILED).count() == 1

    tab = new_page("tablet")
    page = tab.page
    sign_in(tab, live_server.url, receptionist)
    page.goto(
        live_server.url + reverse("treatments:reminder_log", kwargs={"booking": booking.uuid})
    )
    log = page.get_by_test_id("reminder-log")
    expect(log.locator("tbody tr")).to_have_count(2)
    expect(log).to_contain_text("Text message")
    assert_styled(page)
    screenshot(page, "reminder-log-booking-tablet.png")

    page.goto(
        live_server.url + reverse("treatments:reminder_log", kwargs={"patient": patient.uuid})
    )
    expect(page.get_by_test_id("reminder-log").locator("tbody tr")).to_have_count(4)
    screenshot(page, "reminder-log-patient-tablet.png")

    page.goto(live_server.url + reverse("treatments:reminder_followups"))
    failed = page.get_by_test_id("followup-failed")
    expect(failed).to_contain_text("Nora Quill")
    expect(failed).to_contain_text("Refused by the SMS provider (400)")
    screenshot(page, "reminder-followups-tablet.png")
    assert not tab.errors
