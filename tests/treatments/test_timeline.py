"""The patient's story on one page: the timeline of sessions and records,
newest first, clinical for practitioners and bookings alone for reception,
paged with a fixed number of queries, open adverse events above it."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import time_machine
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from clinic.models import AuditEvent, User
from consent.models import ConsentFormVersion
from patients.models import Consultation, Patient, Photo
from tests.conftest import frozen_at, sign_in
from tests.consent.helpers import signed_consent_for
from tests.factories import (
    BatchFactory,
    ConsentFormVersionFactory,
    IngredientFactory,
    PatientFactory,
    ProtocolFactory,
    make_history,
)
from tests.treatments.test_session_helpers import make_booking, other_practitioner
from tests.treatments.timeline_story import LONDON, RECALLED_LOT, SESSION_AT, returning_patient
from treatments.models import (
    AdverseEvent,
    AdverseEventFollowUp,
    BookingStatus,
    CautionAcknowledgement,
    CocktailLine,
    SessionRecord,
)
from treatments.selectors.timeline import (
    PAGE_SIZE,
    Cursor,
    TimelineCursorError,
    cursor_parse,
    patient_timeline,
)
from treatments.services.allergy import allergy_test_give
from treatments.services.session import adverse_event_follow_up

pytestmark = pytest.mark.django_db
# Tuesday 24 November 2026, three weeks after the session of 1 November.
NOW = datetime(2026, 11, 24, 10, 0, tzinfo=LONDON)
frozen = frozen_at(NOW)


def timeline_url(patient: Patient, older: str = "") -> str:
    url = reverse("treatments:patient_timeline", kwargs={"patient": patient.uuid})
    return f"{url}?older={older}" if older else url


def htmx_get(client: Client, url: str) -> Any:
    return client.get(url, headers={"HX-Request": "true"})


def entry_with(page: str, text: str) -> str:
    """The one timeline entry of `page` that contains `text`."""
    found = [e for e in page.split('<li class="timeline-entry')[1:] if text in e]
    assert len(found) == 1, found
    return found[0]


def entries_of(page: str) -> list[str]:
    """The kinds of the entries of a timeline, in the order shown."""
    return re.findall(r'data-testid="timeline-entry" data-kind="([a-z_]+)"', page)


# --- The returning patient -------------------------------------------------------------


def test_the_patient_page_loads_the_timeline_showing_the_session_of_a_recalled_batch(
    client: Client, practitioner: User, manager: User
) -> None:
    """The recall's case: the page showed no past session at all; now the
    session of 1 Nov is there with what was injected, from which batch."""
    story = returning_patient(practitioner, recall_by=manager)
    sign_in(client, practitioner)
    detail = client.get(story.patient.get_absolute_url()).content.decode()
    assert f'hx-get="{timeline_url(story.patient)}"' in detail

    response = htmx_get(client, timeline_url(story.patient))
    page = response.content.decode()
    assert response.status_code == 200
    record_url = reverse(
        "treatments:session_record", kwargs={"booking": story.session.booking.uuid}
    )
    session = entry_with(page, record_url)
    assert "Sun 1 Nov" in session
    for shown in (
        "Facial revitalisation",
        "Completed",
        "Polyrevitalising solution",
        RECALLED_LOT,
        "2.00 mL",
        "Face",
        "Nappage",
        "1.0 mm",
        "Vitamin C booster",
        "VC-2291",
        "Papule",
        "2.5 mm",
        "Cautions acknowledged",
        "History of cold sores",
        "Bruising",
        "Photos that day",
        "Face, before",
        "Face, after",
    ):
        assert shown in session, shown
    # The rest of the story up to now, newest first; the session booked for
    # 1 Dec is listed once on the page, under Sessions, not here.
    assert entries_of(page) == [
        "booking",  # the session of 1 Nov
        "allergy_test",  # 25 Oct
        "consent",  # 18 Oct
        "history",  # 18 Oct, signed at the same moment
        "consultation",  # 11 Oct
    ]
    assert "Tue 1 Dec" not in page
    assert AuditEvent.objects.filter(
        actor=practitioner, object_id="timeline", patient_ref=story.patient.uuid
    ).exists()


def test_entries_at_the_same_moment_keep_a_fixed_order(practitioner: User) -> None:
    """The history and the consent were signed at the same instant: the
    consent first (its rank), the same on every reading."""
    story = returning_patient(practitioner)
    page = patient_timeline(patient=story.patient, clinical=True, now=timezone.now())
    kinds = [entry.kind for entry in page.entries]
    assert kinds == ["booking", "allergy_test", "consent", "history", "consultation"]


def test_reception_sees_dates_protocol_and_status_only(
    client: Client, practitioner: User, receptionist: User, manager: User
) -> None:
    story = returning_patient(practitioner)
    for reader in (receptionist, manager):
        page = htmx_get(sign_in(Client(), reader), timeline_url(story.patient)).content.decode()
        assert entries_of(page) == ["booking"]
        assert "Sun 1 Nov" in page
        assert "Tue 1 Dec" not in page  # to come: under Sessions, once
        assert page.count("Facial revitalisation") == 1
        assert "Completed" in page
        # Each links to the booking, which reception may open; never to the record.
        assert story.session.booking.get_absolute_url() in page
        assert "/record/" not in page
        for clinical in (
            RECALLED_LOT,
            "Polyrevitalising solution",
            "Nappage",
            "Bruising",
            "adverse event",
            "cold sores",
            "Photos",
            "Consultation",
            "Medical history",
            "Allergy test",
            "Consent signed",
            practitioner.get_full_name(),
        ):
            assert clinical not in page, clinical
        assert AuditEvent.objects.filter(
            actor=reader, object_type="treatments.booking", object_id="timeline"
        ).exists()


def test_strangers_are_sent_to_sign_in_and_an_unknown_patient_is_not_found(
    client: Client, practitioner: User
) -> None:
    story = returning_patient(practitioner)
    response = client.get(timeline_url(story.patient))
    assert response.status_code == 302  # to the sign-in page
    sign_in(client, practitioner)
    assert client.get(timeline_url(PatientFactory.build())).status_code == 404


def test_opened_directly_the_timeline_is_a_page_of_its_own(
    client: Client, practitioner: User
) -> None:
    story = returning_patient(practitioner)
    page = sign_in(client, practitioner).get(timeline_url(story.patient)).content.decode()
    assert "<html" in page
    assert "css/timeline.css" in page
    assert story.patient.get_absolute_url() in page
    assert RECALLED_LOT in page


# --- Open adverse events ------------------------------------------------------------------


def test_open_adverse_events_stand_above_the_timeline_until_resolved(
    client: Client, practitioner: User
) -> None:
    story = returning_patient(practitioner)
    sign_in(client, practitioner)
    page = htmx_get(client, timeline_url(story.patient)).content.decode()
    strip = page[page.index('data-testid="open-adverse-events"') :]
    assert page.index('data-testid="open-adverse-events"') < page.index("timeline-entries")
    assert "One adverse event still open" in strip
    assert "After the session of Sun 1 Nov (Facial revitalisation)" in strip
    assert "not followed up yet" in strip
    assert f"#event-{story.bruise.uuid}" in strip

    with time_machine.travel(datetime(2026, 11, 3, 9, 0, tzinfo=LONDON), tick=False):
        adverse_event_follow_up(
            event=story.bruise,
            recorded_by=practitioner,
            note="Fading; arnica advised",
            resolved=False,
            at=timezone.now(),
        )
    page = htmx_get(client, timeline_url(story.patient)).content.decode()
    assert "last followed up Tue 3 Nov: Fading; arnica advised" in page

    with time_machine.travel(datetime(2026, 11, 8, 9, 0, tzinfo=LONDON), tick=False):
        adverse_event_follow_up(
            event=story.bruise,
            recorded_by=practitioner,
            note="Gone",
            resolved=True,
            at=timezone.now(),
        )
    page = htmx_get(client, timeline_url(story.patient)).content.decode()
    assert 'data-testid="open-adverse-events"' not in page
    assert "resolved Sun 8 Nov" in page
    assert f"by {practitioner.get_full_name()}" in page
    assert "2 follow-ups" in page


def test_an_event_recorded_as_resolved_is_not_open(practitioner: User) -> None:
    story = returning_patient(practitioner)
    AdverseEvent.objects.create(
        session=story.session,
        effect="redness",
        severity="mild",
        onset=story.session.booking.starts_at + timedelta(minutes=20),
        resolved_on=SESSION_AT.date() + timedelta(days=1),
        recorded_by=practitioner,
    )
    page = patient_timeline(patient=story.patient, clinical=True, now=timezone.now())
    assert [shown.event for shown in page.open_events] == [story.bruise]
    session = next(entry for entry in page.entries if entry.record is not None)
    open_by_effect = {shown.event.effect: shown.resolution is None for shown in session.events}
    assert open_by_effect == {"redness": False, "bruising": True}


# --- Paging -------------------------------------------------------------------------------


def _many(patient: Patient, count: int) -> None:
    """`count` entries of every kind, a day apart going back from yesterday:
    sessions (each with a line, a caution, an adverse event and a follow-up),
    bookings to come, consultations, histories, allergy tests, consents and
    photos on days without a session; by a practitioner of their own."""
    practitioner = other_practitioner()
    version: ConsentFormVersion = ConsentFormVersionFactory()
    protocol = ProtocolFactory(consent_form=version.form)
    batch = BatchFactory()
    ingredient = IngredientFactory()
    yesterday = timezone.now().replace(microsecond=0) - timedelta(days=1)
    for n in range(count):
        at = yesterday - timedelta(days=n)
        booking = make_booking(
            patient=patient,
            practitioner=practitioner,
            protocol=protocol,
            starts_at=at,
            status=BookingStatus.COMPLETED,
        )
        record = SessionRecord.objects.create(
            booking=booking,
            numbing_cream=False,
            completed_at=booking.ends_at,
            completed_by=practitioner,
        )
        CocktailLine.objects.create(
            session=record,
            batch=batch,
            amount=Decimal("1.50"),
            unit="ml",
            area="face",
            technique="nappage",
            depth_mm=Decimal("1.0"),
            needle_gauge=32,
            device="syringe",
        )
        CautionAcknowledgement.objects.create(
            session=record,
            code="cold_sores",
            wording="History of cold sores",
            areas=["face"],
            acknowledged_by=practitioner,
            acknowledged_at=booking.starts_at,
        )
        event = AdverseEvent.objects.create(
            session=record,
            effect="swelling",
            severity="mild",
            onset=booking.starts_at + timedelta(minutes=30),
            recorded_by=practitioner,
        )
        AdverseEventFollowUp.objects.create(
            event=event, note="Settling", recorded_at=booking.ends_at, recorded_by=practitioner
        )
        Photo.objects.create(
            patient=patient,
            area="face",
            kind="after",
            taken_on=timezone.localdate(at),
            image=f"photos/sample-{n}.jpg",
            width=10,
            height=10,
            sha256="0" * 64,
            uploaded_by=practitioner,
        )
        Photo.objects.create(
            patient=patient,
            area="neck",
            kind="before",
            taken_on=timezone.localdate(at) - timedelta(days=count + 1),
            image=f"photos/other-day-{n}.jpg",
            width=10,
            height=10,
            sha256="1" * 64,
            uploaded_by=practitioner,
        )
        make_booking(
            patient=patient,
            practitioner=practitioner,
            protocol=protocol,
            starts_at=timezone.now().replace(microsecond=0) + timedelta(days=n + 1),
            status=BookingStatus.BOOKED,
        )
        with time_machine.travel(at - timedelta(hours=3), tick=False):
            Consultation.objects.create(
                patient=patient,
                recorded_by=practitioner,
                skin_type="III",
                concerns=["lines"],
                areas=["face"],
                goals="Fresher skin",
                expectations_discussed=True,
                risks_discussed=True,
                alternatives_discussed="None",
                recommended_protocol="Revitalising",
            )
            make_history(patient, practitioner)
            signed_consent_for(patient=patient, version=version, signed_at=at - timedelta(hours=2))
            allergy_test_give(
                patient=patient,
                given_by=practitioner,
                ingredients=[ingredient],
                products=[],
                site="Inner left forearm",
                given_at=at - timedelta(hours=3),
            )


def _queries(client: Client, url: str) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert htmx_get(client, url).status_code == 200
    return len(queries)


@pytest.mark.parametrize("role", ["practitioner", "receptionist"])
def test_a_page_costs_the_same_queries_with_1_and_with_40_entries_of_each_kind(
    client: Client, practitioner: User, role: str, request: pytest.FixtureRequest
) -> None:
    reader = request.getfixturevalue(role)
    few, many = PatientFactory(), PatientFactory()
    _many(few, 1)
    _many(many, 40)
    sign_in(client, reader)
    _queries(client, timeline_url(few))  # the session's first reads are not the page's
    one = _queries(client, timeline_url(few))
    forty = _queries(client, timeline_url(many))
    assert forty == one
    assert one <= (25 if role == "practitioner" else 12)
    page = htmx_get(client, timeline_url(many)).content.decode()
    # A page of the past: the bookings to come are under Sessions.
    assert len(entries_of(page)) == PAGE_SIZE
    older = re.search(r"\?older=([0-9.]+)", page)
    assert older is not None
    # The next page costs no more than the first, and is only entries.
    assert _queries(client, timeline_url(many, older.group(1))) <= forty
    next_page = htmx_get(client, timeline_url(many, older.group(1))).content.decode()
    # Reception reads the 40 past bookings alone: 10 are left for the next page.
    assert len(entries_of(next_page)) == (PAGE_SIZE if role == "practitioner" else 40 - PAGE_SIZE)
    assert "<html" not in next_page
    assert 'data-testid="open-adverse-events"' not in next_page


def test_paging_shows_every_entry_once_newest_first(practitioner: User) -> None:
    patient = PatientFactory()
    _many(patient, 4)
    # Two entries at exactly the same moment as a session, of other kinds.
    booking = patient.bookings.filter(status=BookingStatus.COMPLETED).order_by("starts_at").first()
    assert booking is not None
    with time_machine.travel(booking.starts_at, tick=False):
        make_history(patient, practitioner)
        signed_consent_for(
            patient=patient, version=ConsentFormVersionFactory(), signed_at=booking.starts_at
        )
    everything = patient_timeline(patient=patient, clinical=True, now=timezone.now(), size=500)
    assert everything.older is None
    for size in (1, 2, 3, 7):
        seen = []
        before = None
        while True:
            page = patient_timeline(
                patient=patient, clinical=True, now=timezone.now(), before=before, size=size
            )
            seen.extend((entry.kind, entry.pk) for entry in page.entries)
            if page.older is None:
                break
            before = cursor_parse(page.older.token())
        assert seen == [(entry.kind, entry.pk) for entry in everything.entries], size
    keys = [entry.sort_key for entry in everything.entries]
    assert keys == sorted(keys, reverse=True)
    # 4 sessions, 4 photo days (the sessions' own days show in the sessions),
    # 5 of each signed record, 4 consultations and tests; 4 bookings to come.
    kinds = [entry.kind for entry in everything.entries]
    assert (kinds.count("booking"), kinds.count("photos"), kinds.count("consent")) == (4, 4, 5)
    # The 4 bookings to come are left to the sessions panel.
    assert all(entry.at <= timezone.now() for entry in everything.entries)


@pytest.mark.parametrize(
    "older",
    [
        "x",
        "1.2",
        "1.2.3.4",
        "-5.6.1",
        "1.99.1",
        "99999999999999999999.6.1",
        "1.6.99999999999999999999",
        "\uff11.6.1",  # a full-width digit one
    ],
)
def test_a_damaged_older_link_is_a_400_with_a_plain_sentence(
    client: Client, practitioner: User, older: str
) -> None:
    patient = PatientFactory()
    response = sign_in(client, practitioner).get(timeline_url(patient, older))
    assert response.status_code == 400
    assert "This link to older entries is damaged" in response.content.decode()


def test_a_cursor_reads_back_as_written() -> None:
    cursor = Cursor(at=datetime(2026, 11, 1, 10, 0, 0, 123456, tzinfo=LONDON), rank=6, pk=42)
    assert cursor_parse(cursor.token()) == cursor
    with pytest.raises(TimelineCursorError):
        cursor_parse(cursor.token() + "0" * 30)
