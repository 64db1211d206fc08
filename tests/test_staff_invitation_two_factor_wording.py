"""The invitation (the manager's page, the email) and the join page tell the
newcomer what comes after the link as the clinic has it: two-factor
authentication to set up where the clinic requires it (REQUIRE_STAFF_2FA),
offered, with a way on without it, where it does not; as the staff page
already words it."""

from __future__ import annotations

from datetime import UTC, datetime
from html import unescape

import pytest
from django.core import mail
from django.test import Client

from clinic.models import User
from tests.conftest import frozen_at, sign_in
from tests.test_staff_invitations import INVITE, invite_form, join, link_in_mail

pytestmark = pytest.mark.django_db
frozen = frozen_at(datetime(2026, 11, 24, 9, 30, tzinfo=UTC))

REQUIRED = "then set up two-factor authentication"
NOT_REQUIRED = "does not require"


def _text(response: object) -> str:
    return " ".join(unescape(response.content.decode()).split())  # type: ignore[attr-defined]


@pytest.mark.parametrize("required", [True, False])
def test_the_invitation_and_join_pages_follow_the_clinics_two_factor_setting(
    manager: User, settings: object, required: bool
) -> None:
    settings.REQUIRE_STAFF_2FA = required  # type: ignore[attr-defined]
    boss = sign_in(Client(), manager)
    invite_page = _text(boss.get(INVITE))
    assert (REQUIRED in invite_page) is required
    assert (NOT_REQUIRED in invite_page) is not required

    assert boss.post(INVITE, invite_form(boss)).status_code == 302
    body = " ".join(mail.outbox[-1].body.split())
    assert (REQUIRED in body) is required
    assert ("the clinic does not require it" in body) is not required

    newcomer = Client()
    path = link_in_mail()
    join_page = _text(newcomer.get(path))
    assert ("Next you set up two-factor authentication" in join_page) is required
    assert (NOT_REQUIRED in join_page) is not required

    joined = join(newcomer, path)
    assert joined.status_code == 302
    setup = _text(newcomer.get(joined["Location"]))
    assert ("One more step: set up two-factor authentication" in setup) is required
    assert (NOT_REQUIRED in setup) is not required
    # Offered, not required: the newcomer can go on without it.
    assert ('data-testid="setup-not-now"' in newcomer.get(joined["Location"]).content.decode()) is (
        not required
    )
