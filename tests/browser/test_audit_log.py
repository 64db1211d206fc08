"""The manager's audit log in a real browser: paging back through a busy
trail, and one patient's trail across a merged duplicate, on a desktop and a
tablet."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.urls import reverse
from playwright.sync_api import expect

from clinic.audit import audit_log
from clinic.models import AuditAction, User
from tests.browser.conftest import screenshot
from tests.browser.test_journeys import NewPage, assert_styled, sign_in
from tests.factories import PatientFactory
from treatments.services.merge import patient_merge

pytestmark = pytest.mark.browser

MORNING = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize("viewport", ["desktop", "tablet"])
def test_the_manager_pages_back_through_the_trail_and_reads_one_patients(
    live_server, new_page: NewPage, manager: User, practitioner: User, viewport: str
) -> None:
    survivor = PatientFactory(first_name="Oliver", last_name="Twist")
    duplicate = PatientFactory(first_name="Oliver", last_name="Twist")
    others = [PatientFactory(first_name="Nancy", last_name=f"Sikes{i}") for i in range(3)]
    with time_machine.travel(MORNING, tick=False) as clock:
        for minute in range(70):
            record = [*others, survivor, duplicate][minute % 5]
            audit_log(
                actor=practitioner, action=AuditAction.VIEW, obj=record, patient_ref=record.uuid
            )
            clock.shift(timedelta(minutes=1))
        patient_merge(duplicate=duplicate, survivor=survivor, merged_by=practitioner)

    tab = new_page(viewport)
    page = tab.page
    sign_in(tab, live_server.url, manager)
    page.goto(live_server.url + reverse("audit_log"))
    table = page.get_by_test_id("audit-table")
    expect(table.locator("tbody tr")).to_have_count(50)
    assert_styled(page)
    screenshot(page, f"audit-log-{viewport}.png")

    # Older, then Newer: back where it started, nothing skipped.
    first_row = table.locator("tbody tr").first.inner_text()
    page.get_by_test_id("audit-older").click()
    expect(table.locator("tbody tr")).not_to_have_count(50)
    page.get_by_test_id("audit-newer").click()
    expect(table.locator("tbody tr").first).to_have_text(first_row)

    # One person's trail covers the duplicate merged into their record.
    page.goto(live_server.url + reverse("audit_log") + f"?patient={survivor.uuid}")
    expect(page.get_by_test_id("audit-merged-records")).to_contain_text(
        "1 duplicate record merged into this one"
    )
    # 14 reads of each record, and the merge.
    expect(page.get_by_test_id("audit-count")).to_contain_text("entries match")
    rows = table.locator("tbody tr")
    assert rows.count() >= 28
    assert_styled(page)
    screenshot(page, f"audit-log-one-patient-{viewport}.png")

    # A damaged link is refused with its reason, and a way back.
    page.goto(live_server.url + reverse("audit_log") + "?before=damaged")
    expect(page.get_by_test_id("audit-page-error")).to_be_visible()
    assert tab.errors_except(live_server.url + reverse("audit_log") + "?before=damaged") == []
