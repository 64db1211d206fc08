"""The batch recall list includes every session that used the batch."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from clinic.models import User
from clinic.roles import Role
from tests.conftest import frozen_at, sign_in
from tests.factories import BatchFactory, PatientFactory, ProtocolFactory, UserFactory
from tests.treatments.test_session_helpers import make_booking
from treatments.models import Batch, BookingStatus, CocktailLine, SessionRecord
from treatments.selectors.catalogue import batch_recipients

pytestmark = pytest.mark.django_db
# A Tuesday morning in London, whatever the wall clock says.
NOW = datetime(2026, 11, 24, 10, 0, tzinfo=ZoneInfo("Europe/London"))
frozen = frozen_at(NOW)


def session_with(
    batch: Batch, *, days_ago: int, practitioner: User, area: str = "neck"
) -> SessionRecord:
    booking = make_booking(
        patient=PatientFactory(),
        practitioner=practitioner,
        protocol=ProtocolFactory(),
        starts_at=timezone.now().replace(microsecond=0) - timedelta(days=days_ago),
        status=BookingStatus.COMPLETED,
    )
    session = SessionRecord.objects.create(
        booking=booking, numbing_cream=True, completed_at=booking.ends_at, completed_by=practitioner
    )
    CocktailLine.objects.create(
        session=session,
        batch=batch,
        amount=Decimal("2.50"),
        unit="ml",
        area=area,
        technique="papule",
        depth_mm=Decimal("2.0"),
        needle_gauge=30,
        device="syringe",
    )
    return session


@pytest.fixture
def batch() -> Batch:
    return BatchFactory(received_on=date(2026, 1, 5))


@pytest.fixture
def nurse() -> User:
    return UserFactory(first_name="Nadia", last_name="Okafor", roles=[Role.PRACTITIONER])


def test_recall_selector_lists_each_session_with_date_area_amount_and_practitioner(
    batch: Batch, nurse: User
) -> None:
    old = session_with(batch, days_ago=20, practitioner=nurse)
    recent = session_with(batch, days_ago=2, practitioner=nurse, area="face")
    session_with(BatchFactory(), days_ago=3, practitioner=nurse)  # another batch: not listed
    recipients = batch_recipients(batch=batch)
    assert [r.patient for r in recipients] == [old.booking.patient, recent.booking.patient]
    assert recipients[0].received_at == old.completed_at
    assert recipients[0].what.endswith("2.50 mL, Neck, by Nadia Okafor")
    assert recipients[0].what.startswith("Session")
    assert recipients[1].what.endswith("2.50 mL, Face, by Nadia Okafor")


def test_recall_page_and_csv_include_sessions(batch: Batch, nurse: User, manager: User) -> None:
    session = session_with(batch, days_ago=5, practitioner=nurse)
    patient = session.booking.patient
    client = sign_in(Client(), manager)
    page = client.get(batch.get_absolute_url()).content.decode()
    assert patient.full_name in page
    assert patient.email in page
    assert "2.50 mL, Neck, by Nadia Okafor" in page
    csv = client.get(
        reverse("treatments:batch_recall_csv", kwargs={"batch": batch.uuid})
    ).content.decode()
    assert patient.last_name in csv
    assert patient.email in csv
    assert "2.50 mL, Neck, by Nadia Okafor" in csv
    assert timezone.localtime(session.completed_at).date().isoformat() in csv


@pytest.mark.parametrize("sessions", [1, 25])
def test_recall_page_query_budget_with_one_session_or_many(
    batch: Batch,
    nurse: User,
    manager: User,
    sessions: int,
    django_assert_max_num_queries: object,
) -> None:
    for n in range(sessions):
        session_with(batch, days_ago=n + 1, practitioner=nurse)
    client = sign_in(Client(), manager)
    # 13: the clinic's settings (its name in the header) are read once a page.
    with django_assert_max_num_queries(13):  # type: ignore[operator]
        page = client.get(batch.get_absolute_url()).content.decode()
    assert page.count("by Nadia Okafor") == sessions
