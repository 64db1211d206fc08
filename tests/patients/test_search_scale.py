"""The search box on a large register (issue 14): every term of two or more
characters is answered through the trigram index, whatever the planner would
otherwise prefer, and one search writes one audit event, not one per keystroke."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis
import time_machine
from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction
from django.test import Client, override_settings
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from clinic.dbroles import connected_as_owner
from clinic.models import AuditEvent, User
from patients.models import Patient
from patients.search_audit import SEARCH_CONTINUES_SECONDS, SEARCH_OBJECT_TYPE
from patients.selectors import patient_search
from tests.conftest import sign_in
from tests.factories import PatientFactory, UserFactory

pytestmark = pytest.mark.django_db

LIST = reverse("patients:list")
NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
FIRST_NAMES = ["Ava", "Ben", "Cara", "Dan", "Eve", "Finn", "Gus", "Hana", "Ida", "Jon"]


@pytest.fixture(autouse=True)
def frozen_clock() -> Iterator[time_machine.Coordinates]:
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


def patient(first: str, last: str) -> Patient:
    slug = f"{first}.{last}".lower().replace("'", "")
    return PatientFactory(first_name=first, last_name=last, email=f"{slug}@example.org")


@pytest.fixture
def register() -> dict[str, list[Patient]]:
    """Smiths late in the alphabet, behind many names that do not match, and
    names that hold "sm" inside a word."""
    made: dict[str, list[Patient]] = {"smith": [], "inside": [], "other": []}
    for first in FIRST_NAMES:
        made["smith"].append(patient(first, "Smith"))
        made["inside"].append(patient(first, "Osmond"))
        for last in ("Adams", "Baker", "Carter", "Dixon"):
            made["other"].append(patient(first, last))
    return made


def plan_of(
    user: User, query: str, *, keep: str = "", switch_off: tuple[str, ...]
) -> dict[str, Any]:
    """EXPLAIN ANALYZE (JSON) of the selector's own query, with the planner
    switches `switch_off` off and, in a transaction rolled back, no index on
    the table but the trigram one, the unique ones and `keep`.

    On a handful of rows the planner rightly reads the table, or any small
    index: taking those away asks what the trigram index can do for the query.
    Only the owner role may drop an index (the application role may not).
    """
    with CaptureQueriesContext(connection) as queries:
        patient_search(user=user, query=query)
    [sql] = [q["sql"] for q in queries.captured_queries if "search_text" in q["sql"]]
    with connected_as_owner() as owner, transaction.atomic(), owner.cursor() as cursor:
        cursor.execute(
            "SELECT indexname FROM pg_indexes WHERE tablename = 'patients_patient'"
            " AND indexname NOT IN ('patients_patient_search_trgm', %s)"
            " AND indexdef NOT LIKE 'CREATE UNIQUE INDEX%%'",
            [keep],
        )
        for (index,) in cursor.fetchall():
            cursor.execute(f'DROP INDEX "{index}"')
        for setting in switch_off:
            cursor.execute(f"SET LOCAL {setting} = off")
        cursor.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}")
        [[document]] = cursor.fetchall()
        transaction.set_rollback(True)  # the indexes stay
    return (json.loads(document) if isinstance(document, str) else document)[0]["Plan"]


def nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from nodes(child)


# --- What is found, in which order -------------------------------------------------------------


def test_a_two_letter_term_finds_the_start_of_a_word(
    register: dict[str, list[Patient]], receptionist: User
) -> None:
    found = patient_search(user=receptionist, query="sm")
    assert {p.pk for p in found} == {p.pk for p in register["smith"]}
    # Inside a word, three letters are needed: "smo" finds Osmond.
    found = patient_search(user=receptionist, query="smo")
    assert {p.pk for p in found} == {p.pk for p in register["inside"]}


def test_a_two_letter_term_with_another_word(
    register: dict[str, list[Patient]], receptionist: User
) -> None:
    found = patient_search(user=receptionist, query="ava sm")
    assert [p.last_name for p in found] == ["Smith"]
    assert patient_search(user=receptionist, query="07") != []  # national phone numbers


def test_the_first_matches_by_name_are_returned_in_order(
    register: dict[str, list[Patient]], receptionist: User
) -> None:
    for first in FIRST_NAMES:
        patient(first, "Smithers")
    expected = sorted(
        (p for p in Patient.objects.all() if "smi" in p.last_name.lower()),
        key=lambda p: (p.last_name, p.first_name, p.pk),
    )
    found = patient_search(user=receptionist, query="smi", limit=15)
    assert [p.pk for p in found] == [p.pk for p in expected[:15]]


def test_merged_records_and_other_users_find_nothing(
    register: dict[str, list[Patient]], receptionist: User
) -> None:
    survivor, merged = register["smith"][:2]
    Patient.objects.filter(pk=merged.pk).update(
        merged_into=survivor, merged_at=NOW, merged_by=receptionist
    )
    found = patient_search(user=receptionist, query="smith")
    assert merged.pk not in {p.pk for p in found}
    assert survivor.pk in {p.pk for p in found}
    assert patient_search(user=UserFactory(username="nobody"), query="smith") == []


# --- Served by the trigram index -----------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_two_letter_term_narrows_the_trigram_index(
    register: dict[str, list[Patient]], receptionist: User
) -> None:
    # The trigram index must narrow the search to the Smiths rather than
    # hand back every row to be tested ("%sm%" holds no trigram).
    # (Rows other tests inserted and rolled back may still be in the index,
    # so the rows read from the table are counted, not the index's entries.)
    plan = plan_of(receptionist, "sm", switch_off=("enable_seqscan",))
    [read] = [n for n in nodes(plan) if n["Node Type"] == "Bitmap Heap Scan"]
    [scan] = read["Plans"]
    assert scan["Index Name"] == "patients_patient_search_trgm"
    assert read["Actual Rows"] == len(register["smith"])
    assert read["Rows Removed by Index Recheck"] == 0


@pytest.mark.django_db(transaction=True)
def test_a_late_alphabet_name_part_never_walks_the_name_index(
    register: dict[str, list[Patient]], receptionist: User
) -> None:
    # Without sorting, the name index's order is the planner's only way: the
    # selector must still gather the matches through the trigram index first
    # (at 50,000 patients the walk read 31,000 to 43,000 rows for "smi").
    plan = plan_of(
        receptionist, "smi", keep="patient_name_idx", switch_off=("enable_seqscan", "enable_sort")
    )
    used = {n.get("Index Name") for n in nodes(plan)}
    assert "patients_patient_search_trgm" in used
    assert "patient_name_idx" not in used


# --- One audit event per search ------------------------------------------------------------------


def searches_recorded() -> int:
    return AuditEvent.objects.filter(object_type=SEARCH_OBJECT_TYPE).count()


def type_in(client: Client, *queries: str) -> None:
    for query in queries:
        response = client.get(LIST, {"q": query}, HTTP_HX_REQUEST="true")
        assert response.status_code == 200


def test_typing_a_name_is_one_search(
    register: dict[str, list[Patient]], receptionist: User, client: Client
) -> None:
    sign_in(client, receptionist)
    type_in(client, "s", "sm", "smi", "Smith", "smith a", "smith av")
    assert searches_recorded() == 1
    # Deleting back and typing on is the same search.
    type_in(client, "smith a", "smit", "smith av", "smith ava")
    assert searches_recorded() == 1
    # The results page sent with the button, too.
    assert client.get(LIST, {"q": "smith ava"}).status_code == 200
    assert searches_recorded() == 1
    # Deleting back, then on to another name, is another search.
    type_in(client, "smit", "smith b", "smith ben")
    assert searches_recorded() == 2


def test_deleting_back_to_a_shared_letter_then_another_name_is_another_search(
    register: dict[str, list[Patient]], receptionist: User, client: Client
) -> None:
    sign_in(client, receptionist)
    type_in(client, "s", "sm", "smi", "smith", "smi", "sm", "s")
    assert searches_recorded() == 1
    type_in(client, "sa", "san", "sanders")
    assert searches_recorded() == 2


def test_a_search_kept_going_is_recorded_again_after_ten_minutes(
    register: dict[str, list[Patient]],
    receptionist: User,
    client: Client,
    frozen_clock: time_machine.Coordinates,
) -> None:
    sign_in(client, receptionist)
    for minute in range(21):
        type_in(client, "sm" if minute % 2 else "s")
        frozen_clock.shift(timedelta(minutes=1))
    # Minutes 0, 10 and 20 (each 600 s after the last recorded start) begin a search.
    assert searches_recorded() == 3


def test_another_name_is_another_search(
    register: dict[str, list[Patient]], receptionist: User, client: Client
) -> None:
    sign_in(client, receptionist)
    type_in(client, "smi", "smith", "os", "osm")
    assert searches_recorded() == 2
    event = AuditEvent.objects.filter(object_type=SEARCH_OBJECT_TYPE).latest("id")
    assert event.actor == receptionist
    assert "osm" not in str(event.__dict__).lower()


def test_the_same_name_after_a_pause_is_another_search(
    register: dict[str, list[Patient]],
    receptionist: User,
    client: Client,
    frozen_clock: time_machine.Coordinates,
) -> None:
    sign_in(client, receptionist)
    type_in(client, "smi")
    frozen_clock.shift(timedelta(seconds=SEARCH_CONTINUES_SECONDS))
    type_in(client, "smith")  # within the pause: the same search
    assert searches_recorded() == 1
    frozen_clock.shift(timedelta(seconds=SEARCH_CONTINUES_SECONDS + 1))
    type_in(client, "smith")
    assert searches_recorded() == 2


def test_each_person_and_each_session_searches_for_itself(
    register: dict[str, list[Patient]], receptionist: User, practitioner: User
) -> None:
    type_in(sign_in(Client(), receptionist), "smi")
    type_in(sign_in(Client(), practitioner), "smi", "smith")
    type_in(sign_in(Client(), receptionist), "smith")  # another browser
    assert sorted(
        AuditEvent.objects.filter(object_type=SEARCH_OBJECT_TYPE).values_list(
            "actor__username", flat=True
        )
    ) == ["practitioner", "reception", "reception"]


def test_what_was_typed_is_not_kept_in_the_cache(
    register: dict[str, list[Patient]], receptionist: User, client: Client
) -> None:
    sign_in(client, receptionist)
    type_in(client, "smith")
    store = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=1)
    pattern = cache.make_key(f"patients:search-audit:{receptionist.pk}:*")
    kept = [store.get(key) for key in store.scan_iter(match=pattern)]
    assert kept
    assert not any(b"smi" in (value or b"").lower() for value in kept)


@override_settings(
    CACHES={
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:9/0",
            "OPTIONS": {"socket_connect_timeout": 0.2, "socket_timeout": 0.2},
        }
    }
)
def test_without_the_cache_every_query_is_recorded(
    register: dict[str, list[Patient]], receptionist: User, client: Client
) -> None:
    sign_in(client, receptionist)
    type_in(client, "smi", "smit")
    assert searches_recorded() == 2


def test_the_booking_forms_patient_search_is_one_search_too(
    register: dict[str, list[Patient]], receptionist: User, client: Client
) -> None:
    sign_in(client, receptionist)
    url = reverse("treatments:booking_patient_search")
    for query in ("s", "sm", "smi", "smith"):
        assert client.get(url, {"q": query}, HTTP_HX_REQUEST="true").status_code == 200
    assert searches_recorded() == 1


def test_the_merge_pages_search_for_the_other_record_is_one_search_too(
    register: dict[str, list[Patient]], practitioner: User, client: Client
) -> None:
    sign_in(client, practitioner)
    url = reverse("treatments:patient_merge_compare", kwargs={"patient": register["smith"][0].uuid})
    for query in ("s", "sm", "smi", "smith"):
        assert client.get(url, {"q": query}).status_code == 200
    assert searches_recorded() == 1
