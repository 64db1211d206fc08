"""The aftercare email tells the patient which number to call when anything
worries them: the clinic's phone from its settings, as the contact-change
email does; with no number set it still says to call."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
import time_machine
from django.core import mail

from tests.clinic_settings_support import settings_saved
from tests.treatments.test_aftercare import completed_session, queued_document
from tests.treatments.test_aftercare_email import media_root  # noqa: F401 (fixture)
from tests.treatments.timeline_story import LONDON
from treatments.services import aftercare as service

pytestmark = pytest.mark.django_db
NOW = datetime(2026, 11, 24, 11, 0, tzinfo=LONDON)


@pytest.fixture(autouse=True)
def frozen() -> Iterator[None]:
    with time_machine.travel(NOW, tick=False):
        yield


def _sent() -> tuple[str, str]:
    service.aftercare_render(document_id=queued_document(completed_session()).pk)
    [message] = mail.outbox
    html = str(message.alternatives[0][0])  # type: ignore[attr-defined]
    return " ".join(message.body.split()), " ".join(html.split())


def test_the_aftercare_email_gives_the_clinics_phone_number(media_root: Path) -> None:  # noqa: F811
    settings_saved(clinic_phone="+442079460000")
    text, html = _sent()
    for body in (text, html):
        assert "please call us on 020 7946 0000." in body
        assert "call 999 straight away" in body


def test_with_no_phone_set_the_email_still_says_to_call(media_root: Path) -> None:  # noqa: F811
    settings_saved(clinic_phone="")
    text, html = _sent()
    for body in (text, html):
        assert "please call us. For difficulty breathing" in body
        assert "call us on" not in body
