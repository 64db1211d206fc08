"""A withdrawal sent several times at once (a double click, two tabs, a retry):
exactly one is recorded, every other request is told it was already withdrawn,
and nobody sees a server error. Each thread has its own database connection."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.core.exceptions import ValidationError
from django.db import connection, connections, transaction
from django.test import Client
from django.urls import reverse

from clinic.models import User
from consent.models import ConsentWithdrawal, SignedConsent
from consent.services import consent_withdraw
from tests.conftest import sign_in
from tests.consent.helpers import signed_consent_for
from tests.factories import ConsentFormVersionFactory, PatientFactory

ATTEMPTS = 10
NOW = datetime(2026, 3, 2, 10, 0, tzinfo=ZoneInfo("Europe/London"))
ALREADY = "This consent has already been withdrawn: the withdrawal recorded first stands."


@pytest.fixture
def signed(practitioner: User) -> SignedConsent:
    return signed_consent_for(patient=PatientFactory(), version=ConsentFormVersionFactory())


def _in_thread(work: Callable[[], object]) -> tuple[threading.Thread, list[object]]:
    """Run `work` in a thread with its own connection; the list gets its result or error."""
    outcome: list[object] = []

    def run() -> None:
        try:
            outcome.append(work())
        except Exception as error:  # a crash must show up as a failure, not a hang
            outcome.append(error)
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


@pytest.mark.django_db(transaction=True)
def test_ten_simultaneous_withdrawals_record_one_and_refuse_the_rest_with_409(
    practitioner: User, signed: SignedConsent
) -> None:
    url = reverse(
        "consent:withdraw", kwargs={"patient": signed.patient.uuid, "signed": signed.uuid}
    )
    barrier = threading.Barrier(ATTEMPTS)
    results: list[tuple[int, str]] = [(0, "")] * ATTEMPTS

    def attempt(index: int, client: Client) -> None:
        try:
            barrier.wait(timeout=60)
            response = client.post(url, {"reason": f"Withdrawn, attempt {index}."})
            results[index] = (response.status_code, response.content.decode())
        except Exception as error:
            results[index] = (-1, repr(error))
        finally:
            connections.close_all()

    with time_machine.travel(NOW, tick=False):
        clients = [sign_in(Client(), practitioner) for _ in range(ATTEMPTS)]
        threads = [threading.Thread(target=attempt, args=(i, clients[i])) for i in range(ATTEMPTS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)

    statuses = [status for status, _body in results]
    assert statuses.count(302) == 1, results
    assert statuses.count(409) == ATTEMPTS - 1, results
    assert all(ALREADY in body for status, body in results if status == 409)
    [withdrawal] = ConsentWithdrawal.objects.all()
    winner = statuses.index(302)
    assert withdrawal.reason == f"Withdrawn, attempt {winner}."


@pytest.mark.django_db(transaction=True)
def test_a_withdrawal_waits_while_another_transaction_holds_the_signed_consent(
    practitioner: User, signed: SignedConsent
) -> None:
    held = threading.Event()
    release = threading.Event()

    def hold() -> None:
        # A lock that leaves the foreign-key checks of an insert free to go on:
        # only the service's own lock on the signed consent waits for it.
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                "SELECT id FROM consent_signedconsent WHERE id = %s FOR NO KEY UPDATE",
                [signed.pk],
            )
            held.set()
            release.wait(timeout=30)

    holder, _held = _in_thread(hold)
    assert held.wait(timeout=30)
    withdrawing, outcome = _in_thread(
        lambda: consent_withdraw(
            signed=signed, reason="Changed her mind.", recorded_by=practitioner
        )
    )
    withdrawing.join(timeout=1.5)
    try:
        assert withdrawing.is_alive(), outcome  # still waiting for the lock
        assert not ConsentWithdrawal.objects.exists()
    finally:
        release.set()
        holder.join(timeout=30)
        withdrawing.join(timeout=30)
    [withdrawal] = outcome
    assert isinstance(withdrawal, ConsentWithdrawal), withdrawal
    assert ConsentWithdrawal.objects.get().reason == "Changed her mind."


@pytest.mark.django_db(transaction=True)
def test_a_withdrawal_the_first_check_cannot_see_is_refused_by_the_unique_constraint(
    practitioner: User, signed: SignedConsent
) -> None:
    """A transaction whose snapshot predates the first withdrawal (REPEATABLE READ)
    does not see it; the unique constraint refuses the second, with the same
    sentence, and the first stands."""
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        assert not ConsentWithdrawal.objects.exists()  # the snapshot is taken here
        other, outcome = _in_thread(
            lambda: consent_withdraw(signed=signed, reason="First.", recorded_by=practitioner)
        )
        other.join(timeout=30)
        assert isinstance(outcome[0], ConsentWithdrawal), outcome
        with pytest.raises(ValidationError) as caught:
            consent_withdraw(signed=signed, reason="Second.", recorded_by=practitioner)
    assert caught.value.message_dict == {"reason": [ALREADY]}
    assert caught.value.error_dict["reason"][0].code == "already_withdrawn"
    assert list(ConsentWithdrawal.objects.values_list("reason", flat=True)) == ["First."]
