"""Odd and hostile input against the pages issue 14 reworked: the audit log's
cursor and filters, the patient search's word-start regular expression and
its once-per-search audit, and the week view's hand-built cards."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils.html import escape

from clinic.models import AuditAction, AuditEvent, User
from patients.selectors import patient_search
from tests.conftest import sign_in
from tests.factories import PatientFactory
from tests.treatments import test_booking_support as support
from tests.treatments.test_booking_support import MONDAY, Clinic, at, book

pytestmark = pytest.mark.django_db

AUDIT = reverse("audit_log")
LIST = reverse("patients:list")
START = datetime(2026, 11, 10, 9, 0, tzinfo=UTC)
# Digits Python's \d and int() accept, as a pasted link might carry them.
ARABIC_DIGITS = str.maketrans("0123456789", "".join(chr(0x660 + d) for d in range(10)))
clinic = support.clinic
frozen = support.frozen


@pytest.fixture
def frozen_clock() -> Iterator[object]:
    with time_machine.travel(datetime(2026, 11, 23, 9, 0, tzinfo=UTC), tick=False) as t:
        yield t


def _events(manager: User, n: int, *, same_time: bool = False) -> list[int]:
    ids = []
    for i in range(n):
        with time_machine.travel(START if same_time else START + timedelta(seconds=i), tick=False):
            ids.append(
                AuditEvent.objects.create(
                    actor=manager, actor_label="manager", action=AuditAction.VIEW
                ).pk
            )
    return ids


# --- The audit log's cursor and filters ------------------------------------------------------


@pytest.mark.parametrize(
    "params",
    [
        {"before": "99999999999999999_1"},  # the year 5138
        {"after": "99999999999999999_9223372036854775807"},
        {"before": "0_0"},
        {"after": "0_0"},
        {"before": "00000000000000001_01"},
        {"before": "1764000000000000_1".translate(ARABIC_DIGITS)},
        {"before": "1764000000000000_1\n"},
        {"before": "1764000000000000_1 "},
        {"before": "1764000000000000-1"},
        {"before": "2026-11-10T09:00:00_1"},
        {"before": "x" * 10_000},
        {"before": "1_1\x00"},
        {"user": "\x00"},
        {"user": "manager\x00"},
        {"user": "ñ" * 151},
        {"user": "%_%"},
        {"per_page": "1e2"},
        {"per_page": "-10"},
        {"per_page": "50.0"},
        {"per_page": "50".translate(ARABIC_DIGITS)},
        {"since": "2026-03-29", "until": "2026-03-29"},
        {"since": "2026-10-25", "until": "2026-10-25"},
        {"since": "0001-01-01", "until": "9999-12-31"},
        {"since": "10000-01-01"},
        {"patient": "00000000-0000-0000-0000-000000000000"},
        {"patient": "{" + str(uuid.UUID(int=1)) + "}"},
        {"patient": "urn:uuid:" + str(uuid.UUID(int=1))},
        {"action": "VIEW"},
        {"action": ["view", "login"]},
        {"before": ["1764000000000000_1", "abc"]},
        {"page": "abc"},
    ],
)
def test_odd_audit_log_parameters_answer_200_or_400_never_500(
    manager: User, client: Client, params: dict[str, str | list[str]], frozen_clock: object
) -> None:
    _events(manager, 3)
    sign_in(client, manager)
    response = client.get(AUDIT, params)
    assert response.status_code in (200, 400), response.status_code


@pytest.mark.parametrize("size", [10, 11, 13])
def test_paging_events_that_share_one_instant_neither_skips_nor_repeats(
    manager: User, client: Client, size: int, frozen_clock: object
) -> None:
    ids = _events(manager, 37, same_time=True)
    sign_in(client, manager)
    seen: list[int] = []
    response = client.get(AUDIT, {"per_page": size})
    while True:
        seen += [e.pk for e in response.context["page"].events]
        if not response.context["older"]:
            break
        response = client.get(AUDIT, {"per_page": size, "before": response.context["older"]})
    assert seen == ids[::-1]
    # And back up again, newer after newer.
    back: list[int] = []
    while True:
        back = [e.pk for e in response.context["page"].events] + back
        if not response.context["newer"]:
            break
        response = client.get(AUDIT, {"per_page": size, "after": response.context["newer"]})
    assert sorted(set(back), reverse=True) == ids[::-1]


def test_the_estimate_never_reads_below_the_exact_bound_on_a_never_analysed_table(
    manager: User, client: Client, frozen_clock: object
) -> None:
    AuditEvent.objects.bulk_create(
        [AuditEvent(actor=manager, actor_label="manager", action=AuditAction.VIEW)] * 1500
    )
    with connection.cursor() as cursor:
        cursor.execute("SELECT reltuples FROM pg_class WHERE relname = 'clinic_auditevent'")
        (reltuples,) = cursor.fetchone()
    sign_in(client, manager)
    response = client.get(AUDIT)
    page = response.context["page"]
    assert page.count_is_estimate
    assert page.count > 1000, (reltuples, page.count)
    assert "About" in response.content.decode()


@pytest.mark.parametrize("persona", ["receptionist", "practitioner"])
def test_other_roles_cannot_reach_the_audit_log_even_with_a_cursor(
    persona: str,
    manager: User,
    client: Client,
    request: pytest.FixtureRequest,
    frozen_clock: object,
) -> None:
    _events(manager, 3)
    sign_in(client, request.getfixturevalue(persona))
    response = client.get(AUDIT, {"before": "99999999999999999_1", "per_page": "200"})
    assert response.status_code in (302, 403, 404)
    assert b"audit-table" not in response.content


# --- Patient search: terms that reach a regular expression -----------------------------------


@pytest.mark.parametrize(
    "term",
    [
        ".*",
        "(",
        ")",
        "\\",
        "[a",
        "a[",
        "|",
        "^",
        "$",
        "a|",
        "|a",
        "(?",
        "{1",
        "a{",
        "\\d",
        "s.",
        ".s",
        "s*",
        "+",
        "?",
        "ǆ",
        "ß",
        "İ",
        "Æ",
        "ﬁ",
        "\x00",
        "a\x00",
        "s",
        "é",
        "x" * 100,
        "'",
        "''",
        "--",
        "%",
        "_",
        "%%",
        "\u202e",
        "\u200b",
        "🙂",
        "🙂a",
        "a b c d e f g h",
    ],
)
def test_a_search_term_of_any_characters_answers_without_error(
    receptionist: User, client: Client, term: str, frozen_clock: object
) -> None:
    PatientFactory(first_name="Amelia", last_name="Smith")
    sign_in(client, receptionist)
    response = client.get(LIST, {"q": term}, HTTP_HX_REQUEST="true")
    assert response.status_code in (200, 400), response.status_code
    # A term of metacharacters is not a pattern that finds everyone.
    if term in {".*", ".", "s.", "s*", "|", "a|", "|a", "^", "$", "\\d"}:
        assert "Smith" not in response.content.decode() or term.startswith("s")


def test_a_ten_thousand_character_query_counts_its_first_six_words(
    receptionist: User, frozen_clock: object
) -> None:
    abbott = PatientFactory(first_name="Ada", last_name="Abbott")
    assert patient_search(user=receptionist, query="ab " * 3400) == [abbott]


# --- The week view's cards --------------------------------------------------------------------

NASTY = [
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    '&amp; O\'Brien "q"',
    "\u202eevil\u202c",
    "{patient}{0}%s",
]


@pytest.mark.usefixtures("frozen")
@pytest.mark.parametrize("nasty", NASTY)
def test_names_on_the_week_views_cards_are_escaped(
    clinic: Clinic, client: Client, receptionist: User, nasty: str
) -> None:
    c = clinic
    c.patient.first_name = nasty
    c.patient.last_name = nasty
    c.patient.save()
    c.protocol.name = nasty
    c.protocol.save()
    c.room.name = nasty
    c.room.save()
    c.practitioner.first_name = nasty
    c.practitioner.last_name = nasty
    c.practitioner.save()
    book(
        patient=c.patient,
        practitioner=c.practitioner,
        room=c.room,
        protocol=c.protocol,
        starts_at=at(MONDAY, 10),
    )
    sign_in(client, receptionist)
    response = client.get(reverse("treatments:calendar"), {"view": "week"})
    assert response.status_code == 200
    html = response.content.decode()
    assert 'data-testid="booking"' in html
    if "<" in nasty or '"' in nasty:
        assert nasty not in html
    assert "<script>alert(1)" not in html
    assert "<img src=x" not in html
    assert escape(nasty) in html


@pytest.mark.usefixtures("frozen")
@pytest.mark.parametrize(
    ("week_of", "starts"),
    [
        # Sunday 25 October 2026, London: 01:30 happens twice (BST, then GMT).
        (
            "2026-10-21",
            [datetime(2026, 10, 25, 0, 30, tzinfo=UTC), datetime(2026, 10, 25, 1, 30, tzinfo=UTC)],
        ),
        # Sunday 29 March 2026, London: 00:30 GMT, then 02:30 BST an hour later.
        (
            "2026-03-25",
            [datetime(2026, 3, 29, 0, 30, tzinfo=UTC), datetime(2026, 3, 29, 1, 30, tzinfo=UTC)],
        ),
        # Friday 23:30 to Saturday 00:15, across midnight (GMT).
        ("2026-11-25", [datetime(2026, 11, 27, 23, 30, tzinfo=UTC)]),
        # Across midnight on the night the clocks go back.
        ("2026-10-21", [datetime(2026, 10, 24, 22, 45, tzinfo=UTC)]),
    ],
)
def test_a_week_with_bookings_across_midnight_or_a_clock_change_shows_each_once(
    clinic: Clinic, client: Client, receptionist: User, week_of: str, starts: list[datetime]
) -> None:
    c = clinic
    made = [
        book(
            patient=c.patient if i == 0 else c.other_patient,
            practitioner=c.practitioner,
            room=c.room if i == 0 else c.other_room,
            protocol=c.protocol,
            starts_at=s,
        )
        for i, s in enumerate(starts)
    ]
    sign_in(client, receptionist)
    response = client.get(reverse("treatments:calendar"), {"view": "week", "date": week_of})
    assert response.status_code == 200
    html = response.content.decode()
    for booking in made:
        assert html.count(f'data-booking="{booking.uuid}"') == 1, booking.starts_at
