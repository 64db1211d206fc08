"""Consent in a real browser: the manager publishes version 2, then the patient
reads and signs it on a tablet, drawing the signature, and the PDF is made."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings
from django.test import override_settings
from playwright.sync_api import expect

from clinic.models import User
from consent.models import CONSENT_SECTION_NAMES, DocumentStatus, SignedConsent
from consent.services import consent_pdf_render_now
from tests.browser.conftest import SCREENSHOTS, screenshot
from tests.browser.test_journeys import NewPage, sign_in
from tests.factories import ConsentFormFactory, ConsentFormVersionFactory, PatientFactory

pytestmark = pytest.mark.browser


@pytest.fixture
def media_root(tmp_path: Path) -> Iterator[Path]:
    storages = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path)},
        },
    }
    with override_settings(STORAGES=storages, MEDIA_ROOT=str(tmp_path)):
        yield tmp_path


def test_manager_publishes_version_2_and_the_patient_signs_it_on_a_tablet(
    live_server, new_page: NewPage, manager: User, practitioner: User, media_root: Path
) -> None:
    form = ConsentFormFactory(title="Mesotherapy of the face, neck and hands")
    ConsentFormVersionFactory(form=form)
    patient = PatientFactory(first_name="Amelia", last_name="Hart")

    # The manager writes version 2 from the current text, previews and publishes it.
    tab = new_page("desktop")
    page = tab.page
    sign_in(tab, live_server.url, manager)
    page.goto(live_server.url + form.get_absolute_url())
    page.get_by_test_id("new-draft").click()
    page.get_by_label("Aftercare").fill(
        "No make-up for 12 hours. No sauna, pool or sport for 48 hours. No alcohol for 24 hours."
    )
    page.get_by_test_id("save-draft").click()
    expect(page.get_by_test_id("version-status")).to_contain_text("Preview of the draft")
    screenshot(page, "consent-preview-desktop.png")
    page.get_by_test_id("publish-version").click()
    expect(page.get_by_text("Version 2 is published")).to_be_visible()
    screenshot(page, "consent-form-desktop.png")
    assert tab.errors == []

    # On the tablet: the patient reads and confirms each section, then signs.
    tab = new_page("tablet")
    page = tab.page
    sign_in(tab, live_server.url, practitioner)
    page.goto(live_server.url + f"/consent/patients/{patient.uuid}/")
    page.get_by_test_id("take-consent").click()
    expect(page.get_by_test_id("sign-title")).to_have_text(form.title)
    expect(page.get_by_text("No alcohol for 24 hours.")).to_be_visible()
    for name in CONSENT_SECTION_NAMES:
        page.locator(f"#id_confirm_{name}").check()
    page.get_by_label("Yes, I agree to photographs").check()
    page.get_by_label("Your full name").fill("Amelia Hart")
    page.locator("#id_witnessed").check()

    # Signing without drawing is refused, and nothing typed is lost.
    page.get_by_test_id("sign-consent").click()
    expect(page.get_by_test_id("signature-error")).to_contain_text("draw the signature")
    expect(page.get_by_label("Your full name")).to_have_value("Amelia Hart")
    expect(page.locator("#id_confirm_aftercare")).to_be_checked()
    screenshot(page, "consent-sign-refused-tablet.png")
    assert SignedConsent.objects.count() == 0

    canvas = page.get_by_test_id("signature-canvas")
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    assert box is not None
    x, y = box["x"] + 30, box["y"] + box["height"] * 0.6
    page.mouse.move(x, y)
    page.mouse.down()
    for step in range(1, 40):
        dy = (-1) ** step * box["height"] * 0.25
        page.mouse.move(x + step * box["width"] / 50, y + dy, steps=3)
    page.mouse.up()
    assert page.locator("#id_signature").input_value().startswith("data:image/png;base64,")
    screenshot(page, "consent-sign-tablet.png")
    page.get_by_test_id("sign-consent").click()

    expect(page.get_by_test_id("signed-title")).to_have_text(form.title)
    expect(page.get_by_test_id("hash-check")).to_contain_text("matches its fingerprint")
    expect(page.get_by_test_id("pdf-status")).to_contain_text("being prepared")
    signature = page.get_by_test_id("signature-image")
    expect(signature).to_be_visible()
    page.wait_for_function(
        "img => img.complete && img.naturalWidth > 0", arg=signature.element_handle()
    )
    screenshot(page, "consent-signed-tablet.png")

    signed = SignedConsent.objects.get(patient=patient)
    assert signed.version.number == 2
    assert signed.photo_consent is True
    # No worker runs here: make the PDF through the service; the page picks it up.
    row = consent_pdf_render_now(signed_consent_id=signed.pk)
    assert row.status == DocumentStatus.READY
    expect(page.get_by_test_id("download-pdf")).to_be_visible(timeout=10_000)
    screenshot(page, "consent-signed-pdf-ready-tablet.png")

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    pdf_path = SCREENSHOTS / "consent-signed.pdf"
    pdf_path.write_bytes(row.file.read())
    subprocess.run(
        ["pdftoppm", "-png", "-r", "60", str(pdf_path), str(SCREENSHOTS / "consent-pdf")],
        check=True,
        timeout=60,
    )
    assert (SCREENSHOTS / "consent-pdf-1.png").exists()
    # The refused post answered 400 on purpose; nothing else may fail.
    assert [e for e in tab.errors if "status of 400" not in e] == []
