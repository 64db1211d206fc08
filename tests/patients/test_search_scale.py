"""The search box on a large register (issue 14): a page of the patients whose
words start with what was typed is read from the word index and the reading
stops with the page; every other match (inside a word, several words) is
gathered through the trigram index, whatever the planner would otherwise
prefer; the page says when more patients match; and one search writes one
audit event, not one per keystroke."""

from __future__ import annotations

import importlib
import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
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
from patients.models import Patient, PatientSearchWord
from patients.search_audit import SEARCH_CONTINUES_SECONDS, SEARCH_OBJECT_TYPE
from patients.selectors import SEARCH_LIMIT, patient_search
from patients.services import patient_create, patient_update
from tests.conftest import sign_in
from tests.factories import PatientFactory, UserFactory

pytestmark = pytest.mark.django_db

LIST = reverse("patients:list")
NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
FIRST_NAMES = ["Ava", "Ben", "Cara", "Dan", "Eve", "Finn", "Gus", "Hana", "Ida", "Jon"]
WORD_INDEX = "patients_patientsearchword_pkey"
search_words_migration = importlib.import_module("patients.migrations.0014_patient_search_words")


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


def plan_of_sql(sql: str, *, keep: str = "", switch_off: tuple[str, ...]) -> dict[str, Any]:
    """EXPLAIN ANALYZE (JSON) of `sql`, one of the selector's own queries,
    with the planner switches `switch_off` off and, in a transaction rolled
    back, no index on the table but the trigram one, the unique ones and `keep`.

    On a handful of rows the planner rightly reads the table, or any small
    index: taking those away asks what the trigram index can do for the query.
    Only the owner role may drop an index (the application role may not).
    """
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


def test_word_starts_come_first_by_word_then_those_found_inside_a_word(
    register: dict[str, list[Patient]], receptionist: User
) -> None:
    # What staff expect of "smo": Smolen before Osmond, though O comes first.
    smolen = patient("Zak", "Smolen")
    smilla = patient("Smilla", "Dixon")  # a first name is a word too
    found = patient_search(user=receptionist, query="smo")
    assert [p.last_name for p in found] == ["Smolen"] + ["Osmond"] * len(FIRST_NAMES)
    assert found[0] == smolen
    # The inner matches by name, as before.
    assert [p.first_name for p in found[1:]] == sorted(FIRST_NAMES)
    # Each word starting with "sm" is a group, in alphabetical order, by name within.
    found = patient_search(user=receptionist, query="sm")
    assert [(p.last_name, p.first_name) for p in found] == [
        ("Dixon", "Smilla"),
        *(("Smith", first) for first in sorted(FIRST_NAMES)),
        ("Smolen", "Zak"),
    ]
    assert smilla in found


def test_a_page_says_whether_more_patients_match_without_counting_them(
    register: dict[str, list[Patient]], receptionist: User
) -> None:
    smiths = len(register["smith"])
    found = patient_search(user=receptionist, query="smith", limit=smiths)
    assert len(found) == smiths
    assert not found.more
    found = patient_search(user=receptionist, query="smith", limit=smiths - 1)
    assert len(found) == smiths - 1
    assert found.more
    # The same when the matches are gathered through the trigram index.
    found = patient_search(user=receptionist, query="mond", limit=len(register["inside"]))
    assert len(found) == len(register["inside"])
    assert not found.more
    found = patient_search(user=receptionist, query="mond", limit=3)
    assert len(found) == 3
    assert found.more
    assert not patient_search(user=receptionist, query="zzqx").more


def test_a_word_matching_more_than_a_page_shows_those_registered_first_by_name(
    receptionist: User,
) -> None:
    made = [patient(first, "Hart") for first in ("Zoe", "Yan", "Xia", "Abe", "Bea")]
    found = patient_search(user=receptionist, query="har", limit=3)
    assert [p.first_name for p in found] == ["Xia", "Yan", "Zoe"]
    assert found.more
    assert {p.pk for p in found} == {p.pk for p in made[:3]}


def test_a_birth_date_is_matched_from_its_start(receptionist: User) -> None:
    born_14th = PatientFactory(date_of_birth=date(1999, 7, 14))
    born_4th = PatientFactory(date_of_birth=date(1999, 7, 4))
    assert list(patient_search(user=receptionist, query="14/07/1999")) == [born_14th]
    assert list(patient_search(user=receptionist, query="04/07/1999")) == [born_4th]
    # Not the 14th, 24th or 4th of some other month: the date typed is one date.
    assert list(patient_search(user=receptionist, query="4/07/1999")) == []
    assert list(patient_search(user=receptionist, query="1999-07-1")) == [born_14th]


def test_several_words_are_found_when_the_first_rows_of_the_word_index_do_not_answer(
    receptionist: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    # "amelia" is the longest word, so its rows lead; here none of the first
    # ones is a Zorro, and the trigram index answers instead.
    for last in ("Adams", "Baker", "Carter", "Dixon"):
        patient("Amelia", last)
    zorro = patient("Amelia", "Zorro")
    monkeypatch.setattr("patients.selectors.WORDS_READ_MAX", 2)
    assert list(patient_search(user=receptionist, query="amelia zo")) == [zorro]
    assert list(patient_search(user=receptionist, query="zo amelia")) == [zorro]
    # The word index was left after two rows, not read to its end.
    words, _trigrams = search_sql(receptionist, "amelia zo")
    plan = explained(words, switch_off=ORDERED)
    [scan] = [n for n in nodes(plan) if n.get("Index Name") == WORD_INDEX]
    assert scan["Actual Rows"] == 2


def test_a_short_word_is_complete_from_the_word_index_unless_merged_records_fill_it(
    register: dict[str, list[Patient]], receptionist: User
) -> None:
    # "sm" starts a word only: what the word index holds is every match, so
    # a search with fewer matches than a page asks no trigram index.
    queries = search_sql(receptionist, "sm")
    assert len(queries) == 2  # the page, then how many rows the index holds
    assert not any("AS MATERIALIZED" in sql for sql in queries)
    # A page of one reads 8 rows of the index; when all 8 are records merged
    # into another, the rest is gathered through the trigram index instead.
    survivor = register["smith"][-1]
    Patient.objects.filter(pk__in=[p.pk for p in register["smith"][:8]]).update(
        merged_into=survivor, merged_at=NOW, merged_by=receptionist
    )
    found = patient_search(user=receptionist, query="sm", limit=1)
    assert [p.pk for p in found] == [register["smith"][8].pk]
    assert found.more


def test_merged_records_and_other_users_find_nothing(
    register: dict[str, list[Patient]], receptionist: User
) -> None:
    survivor, merged = register["smith"][:2]
    Patient.objects.filter(pk=merged.pk).update(
        merged_into=survivor, merged_at=NOW, merged_by=receptionist
    )
    for query in ("smith", "mith", "sm", "ava smith"):
        found = patient_search(user=receptionist, query=query)
        assert merged.pk not in {p.pk for p in found}, query
    assert survivor.pk in {p.pk for p in patient_search(user=receptionist, query="smith")}
    assert patient_search(user=UserFactory(username="nobody"), query="smith") == []


def test_the_results_page_and_the_booking_form_say_when_more_patients_match(
    register: dict[str, list[Patient]], receptionist: User, client: Client
) -> None:
    for i in range(SEARCH_LIMIT + 1):
        patient(f"Ann{i}", "Hart")
    sign_in(client, receptionist)
    page = client.get(LIST, {"q": "hart"}, HTTP_HX_REQUEST="true").content.decode()
    assert page.count("list-group-item list-group-item-action") == SEARCH_LIMIT
    assert 'data-testid="more-results"' in page
    page = client.get(LIST, {"q": "smith"}, HTTP_HX_REQUEST="true").content.decode()
    assert 'data-testid="more-results"' not in page
    booking = reverse("treatments:booking_patient_search")
    page = client.get(booking, {"q": "hart"}, HTTP_HX_REQUEST="true").content.decode()
    assert 'data-testid="more-patients"' in page
    page = client.get(booking, {"q": "smith ava"}, HTTP_HX_REQUEST="true").content.decode()
    assert 'data-testid="more-patients"' not in page


# --- The word index follows the register ----------------------------------------------------------


def words_of(patient: Patient) -> set[str]:
    return set(
        PatientSearchWord.objects.filter(patient_id=patient.pk).values_list("word", flat=True)
    )


def test_the_word_index_follows_every_change_of_the_search_text(receptionist: User) -> None:
    amelia = patient_create(
        created_by=receptionist,
        first_name="Amélie",
        last_name="O'Neil",
        date_of_birth=date(1990, 5, 17),
        email="amelie@example.org",
        phone="07911 123456",
        reminder_channel="email",
    )
    assert words_of(amelia) == set(amelia.search_text.split()) >= {"amelie", "oneil", "neil"}
    amelia = patient_update(patient=amelia, updated_by=receptionist, last_name="Brook")
    assert words_of(amelia) == set(amelia.search_text.split())
    assert "oneil" not in words_of(amelia)
    assert [p.pk for p in patient_search(user=receptionist, query="bro")] == [amelia.pk]
    assert list(patient_search(user=receptionist, query="onei")) == []
    # Rows written in one statement (as a migration or an import would).
    made = Patient.objects.bulk_create(
        [
            Patient(first_name=f"Kim{i}", last_name="Lowe", date_of_birth=date(1980, 1, i + 1),
                    reminder_channel="none", search_text=f"kim{i} lowe 1980-01-0{i + 1}")
            for i in range(3)
        ]
    )  # fmt: skip
    assert [words_of(p) for p in made] == [set(p.search_text.split()) for p in made]
    Patient.objects.filter(pk__in=[p.pk for p in made]).delete()
    assert not PatientSearchWord.objects.filter(patient_id__in=[p.pk for p in made]).exists()
    assert words_of(amelia)


def test_the_migration_indexes_the_patients_already_registered(
    register: dict[str, list[Patient]],
) -> None:
    patients = [p for made in register.values() for p in made]
    expected = {(word, p.pk) for p in patients for word in p.search_text.split()}
    PatientSearchWord.objects.all().delete()
    with connection.cursor() as cursor:
        cursor.execute(search_words_migration.BACKFILL)
    assert set(PatientSearchWord.objects.values_list("word", "patient_id")) == expected


# --- Served by the indexes -----------------------------------------------------------------------


def explained(sql: str, *, switch_off: tuple[str, ...] = ()) -> dict[str, Any]:
    """EXPLAIN ANALYZE (JSON) of `sql` with the planner switches `switch_off`
    off: on a handful of rows the planner rightly reads whole tables and
    sorts, so the switches ask what the indexes can do for the query."""
    with transaction.atomic(), connection.cursor() as cursor:
        for setting in switch_off:
            cursor.execute(f"SET LOCAL {setting} = off")
        cursor.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}")
        [[document]] = cursor.fetchall()
    return (json.loads(document) if isinstance(document, str) else document)[0]["Plan"]


def search_sql(user: User, query: str, limit: int = SEARCH_LIMIT) -> list[str]:
    """The SQL of each query the search ran, in order."""
    with CaptureQueriesContext(connection) as queries:
        patient_search(user=user, query=query, limit=limit)
    return [
        q["sql"]
        for q in queries.captured_queries
        if "search_text" in q["sql"] or "patientsearchword" in q["sql"]
    ]


ORDERED = ("enable_seqscan", "enable_sort", "enable_bitmapscan", "enable_hashjoin")


@pytest.mark.django_db(transaction=True)
def test_a_page_of_word_starts_reads_a_page_of_the_word_index(
    register: dict[str, list[Patient]], receptionist: User
) -> None:
    # Ten Smiths, a page of three: the index is read in order and left after
    # four rows (the page and one to know there is more), for a late name,
    # a two-letter term and a phone number's start alike.
    for query in ("smi", "sm", "0791"):
        [sql] = search_sql(receptionist, query, limit=3)
        plan = explained(sql, switch_off=ORDERED)
        [scan] = [n for n in nodes(plan) if n.get("Index Name") == WORD_INDEX]
        assert scan["Node Type"] == "Index Only Scan", query
        assert scan["Actual Rows"] == 4, query
        assert {n["Node Type"] for n in nodes(plan)}.isdisjoint({"Sort", "Seq Scan"}), query
        used = {n.get("Index Name") for n in nodes(plan)}
        assert "patients_patient_search_trgm" not in used
        assert "patient_name_idx" not in used


@pytest.mark.django_db(transaction=True)
def test_terms_found_inside_words_are_gathered_through_the_trigram_index(
    register: dict[str, list[Patient]], receptionist: User
) -> None:
    # Nobody's word starts with "mond" or "mit": the word index answers
    # nothing, and every match comes from the trigram index, narrowed exactly.
    for query, matches in (("mond", "inside"), ("mit", "smith")):
        words, trigrams = search_sql(receptionist, query)
        assert WORD_INDEX.removesuffix("_pkey") in words
        plan = plan_of_sql(trigrams, switch_off=("enable_seqscan",))
        [read] = [n for n in nodes(plan) if n["Node Type"] == "Bitmap Heap Scan"]
        [scan] = [n for n in read["Plans"] if n["Node Type"] == "Bitmap Index Scan"]
        assert scan["Index Name"] == "patients_patient_search_trgm"
        assert read["Actual Rows"] == len(register[matches])
        assert read["Rows Removed by Index Recheck"] == 0


@pytest.mark.django_db(transaction=True)
def test_a_two_letter_term_among_others_narrows_the_trigram_index(
    register: dict[str, list[Patient]], receptionist: User
) -> None:
    # "ava sm" has one match, fewer than a page: the trigram index then
    # gathers every match, and the two-letter word start narrows it too
    # ("%sm%" would hold no trigram).
    _words, trigrams = search_sql(receptionist, "ava sm")
    plan = plan_of_sql(trigrams, switch_off=("enable_seqscan",))
    [read] = [n for n in nodes(plan) if n["Node Type"] == "Bitmap Heap Scan"]
    [scan] = [n for n in read["Plans"] if n["Node Type"] == "Bitmap Index Scan"]
    assert scan["Index Name"] == "patients_patient_search_trgm"
    assert read["Actual Rows"] == 1
    assert read["Rows Removed by Index Recheck"] == 0


@pytest.mark.django_db(transaction=True)
def test_a_late_alphabet_name_part_never_walks_the_name_index(
    register: dict[str, list[Patient]], receptionist: User
) -> None:
    # Without sorting, the name index's order is the planner's only way to
    # sort every match by name: the matches must still be gathered through
    # the trigram index first (at 50,000 patients the walk read 31,000 to
    # 43,000 rows for "smi").
    _words, trigrams = search_sql(receptionist, "mit")
    plan = plan_of_sql(
        trigrams, keep="patient_name_idx", switch_off=("enable_seqscan", "enable_sort")
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
