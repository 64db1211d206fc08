"""The search box finds a patient however her name is typed: case, accents,
German and Nordic spellings, apostrophes, decomposed Unicode."""

from __future__ import annotations

import importlib
import unicodedata
from collections.abc import Iterator
from datetime import UTC, date, datetime

import pytest
import time_machine
from django.apps import apps
from django.db import connection, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from clinic.dbroles import connected_as_owner
from clinic.models import User
from patients.folding import name_key, search_foldings
from patients.models import Patient
from patients.selectors import patient_search
from patients.services import PossibleDuplicateError, patient_create
from tests.conftest import sign_in
from tests.factories import PatientFactory

pytestmark = pytest.mark.django_db

LIST = reverse("patients:list")
NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
BORN = date(1984, 3, 9)


@pytest.fixture(autouse=True)
def frozen_clock() -> Iterator[None]:
    with time_machine.travel(NOW, tick=False):
        yield


def register(
    user: User,
    first_name: str,
    last_name: str,
    *,
    confirmed_different_person: bool = False,
    **extra: object,
) -> Patient:
    fields: dict[str, object] = {
        "date_of_birth": BORN,
        "email": "",
        "reminder_channel": "none",
        **extra,
    }
    return patient_create(
        created_by=user,
        first_name=first_name,
        last_name=last_name,
        confirmed_different_person=confirmed_different_person,
        **fields,
    )


def found_by_search_page(client: Client, query: str) -> list[Patient]:
    response = client.get(LIST, {"q": query}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    return list(response.context["results"])


# --- Every input from the reports --------------------------------------------------------

DECOMPOSED_HELENE = "He\u0301le\u0300ne"  # e + U+0301 combining acute, e + U+0300 grave


@pytest.mark.parametrize(
    ("first_name", "last_name", "query"),
    [
        ("Zoë", "Müller", "muller"),
        ("Zoë", "Müller", "Mueller"),
        ("Zoë", "Müller", "zoe"),
        ("Zoë", "Müller", "zoe muller"),
        ("Zoë", "Müller", "ZOË MÜLLER"),
        ("Zoë", "Müller", "Zoe\u0308 Mu\u0308ller"),
        ("Zoë", "Mueller", "Müller"),
        ("Hélène", "Bélanger", "belanger"),
        ("Hélène", "Bélanger", "helene belanger"),
        ("Hélène", "Bélanger", DECOMPOSED_HELENE),
        (DECOMPOSED_HELENE, "Be\u0301langer", "Hélène Bélanger"),
        (DECOMPOSED_HELENE, "Be\u0301langer", "helene"),
        ("Siobhán", "O'Grady", "O\u2019Grady"),
        ("Siobhán", "O'Grady", "O'Grady"),
        ("Siobhán", "O'Grady", "ogrady"),
        ("Siobhán", "O'Grady", "siobhan o grady"),
        ("Siobhán", "O\u2019Grady", "O'Grady"),
        ("Siobhán", "O\u2019Grady", "ogrady"),
        ("Siobhán", "O\u02bcGrady", "ogrady"),
        ("Siobhán", "OGrady", "O'Grady"),
        ("Siobhán", "O Grady", "O\u2019Grady"),
        ("Bjørn", "Ødegård", "bjorn odegard"),
        ("Bjørn", "Ødegård", "bjoern oedegaard"),
        ("Jürgen", "Straße", "juergen strasse"),
        ("Łucja", "Đurić", "lucja duric"),
        ("Anne-Sophie", "Lefèvre", "annesophie"),
        ("Anne-Sophie", "Lefèvre", "anne sophie lefevre"),
    ],
)
def test_search_ignores_case_accents_and_apostrophes(
    receptionist: User, client: Client, first_name: str, last_name: str, query: str
) -> None:
    patient = register(receptionist, first_name, last_name)
    PatientFactory(first_name="Bob", last_name="Stone", date_of_birth=date(1970, 1, 1))
    sign_in(client, receptionist)
    assert [p.uuid for p in found_by_search_page(client, query)] == [patient.uuid]


def test_folding_does_not_make_different_names_match(receptionist: User, client: Client) -> None:
    register(receptionist, "Zoë", "Müller")
    sign_in(client, receptionist)
    assert found_by_search_page(client, "miller") == []
    assert found_by_search_page(client, "zoe moller") == []


@pytest.mark.parametrize("query", ["ü%", "ö(", "å[", "ü\\", "ø*+?", "ä|.", "Ü'_"])
def test_odd_input_with_two_spellings_is_searched_literally(
    receptionist: User, client: Client, query: str
) -> None:
    register(receptionist, "Zoë", "Müller")
    sign_in(client, receptionist)
    assert found_by_search_page(client, query) == []


def test_dates_phones_and_emails_are_still_found_as_typed(
    receptionist: User, client: Client
) -> None:
    patient = register(
        receptionist,
        "Zoë",
        "Müller",
        email="Zoe.Mueller@Example.org",
        phone="+447911123456",
        reminder_channel="email",
    )
    sign_in(client, receptionist)
    for query in ("09/03/1984", "1984-03-09", "07911 123", "zoe.mueller@", "ZOE.MUELLER"):
        assert [p.uuid for p in found_by_search_page(client, query)] == [patient.uuid], query


# --- The general rule --------------------------------------------------------------------

# The plain-ASCII spellings of each letter, short and transliterated, written
# out by hand: what a receptionist would type for it.
SPELLINGS: dict[str, tuple[str, str]] = {
    "à": ("a", "a"),
    "á": ("a", "a"),
    "â": ("a", "a"),
    "ã": ("a", "a"),
    "ä": ("a", "ae"),
    "å": ("a", "aa"),
    "æ": ("ae", "ae"),
    "ç": ("c", "c"),
    "č": ("c", "c"),
    "ď": ("d", "d"),
    "đ": ("d", "d"),
    "è": ("e", "e"),
    "é": ("e", "e"),
    "ê": ("e", "e"),
    "ë": ("e", "e"),
    "ě": ("e", "e"),
    "í": ("i", "i"),
    "ì": ("i", "i"),
    "î": ("i", "i"),
    "ï": ("i", "i"),
    "ł": ("l", "l"),
    "ñ": ("n", "n"),
    "ń": ("n", "n"),
    "ò": ("o", "o"),
    "ó": ("o", "o"),
    "ô": ("o", "o"),
    "õ": ("o", "o"),
    "ö": ("o", "oe"),
    "ø": ("o", "oe"),
    "ő": ("o", "o"),
    "ř": ("r", "r"),
    "ś": ("s", "s"),
    "š": ("s", "s"),
    "ß": ("ss", "ss"),
    "ù": ("u", "u"),
    "ú": ("u", "u"),
    "û": ("u", "u"),
    "ü": ("u", "ue"),
    "ů": ("u", "u"),
    "ű": ("u", "u"),
    "ý": ("y", "y"),
    "ÿ": ("y", "y"),
    "ž": ("z", "z"),
    "ź": ("z", "z"),
    "ż": ("z", "z"),
}
SPELLINGS.update({k.upper(): v for k, v in list(SPELLINGS.items()) if k != "ß"})
SPELLINGS.update(
    {c: (c.lower(), c.lower()) for c in "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"}
)
SEPARATORS = {"'": ("", ""), "\u2019": ("", ""), "\u02bc": ("", ""), "`": ("", ""), "-": ("", "")}

letter = st.sampled_from(sorted(SPELLINGS))
name_part = st.lists(
    st.one_of(letter, letter, letter, st.sampled_from(sorted(SEPARATORS))), min_size=1, max_size=12
).filter(lambda chars: any(c in SPELLINGS for c in chars))


def plain_ascii(chars: list[str], *, transliterated: bool) -> str:
    table = {**SPELLINGS, **SEPARATORS}
    return "".join(table[c][1 if transliterated else 0] for c in chars)


@hsettings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    first=name_part,
    last=name_part,
    transliterated=st.booleans(),
    decomposed=st.booleans(),
)
def test_any_accented_name_is_found_and_caught_by_its_plain_ascii_spelling(
    receptionist: User,
    first: list[str],
    last: list[str],
    transliterated: bool,
    decomposed: bool,
) -> None:
    typed_first, typed_last = "".join(first), "".join(last)
    if decomposed:
        typed_first = unicodedata.normalize("NFD", typed_first)
        typed_last = unicodedata.normalize("NFD", typed_last)
    plain_first = plain_ascii(first, transliterated=transliterated)
    plain_last = plain_ascii(last, transliterated=transliterated)
    with transaction.atomic():
        patient = register(receptionist, typed_first, typed_last)
        found = patient_search(user=receptionist, query=f"{plain_first} {plain_last}")
        assert patient.uuid in [p.uuid for p in found]
        # Registering the plain spelling with the same birth date is caught too.
        with pytest.raises(PossibleDuplicateError) as refusal:
            register(receptionist, plain_first.upper(), plain_last)
        assert [p.uuid for p in refusal.value.duplicates] == [patient.uuid]
        transaction.set_rollback(True)  # one patient per example


# Invisible format characters (Unicode category Cf) pasted into names: the
# zero-width space and joiners, the soft hyphen, direction marks, the BOM.
INVISIBLE = ["\u200b", "\u200c", "\u200d", "\u00ad", "\u200e", "\u200f", "\u2060", "\ufeff"]


@hsettings(max_examples=300, deadline=None)
@given(
    chars=name_part,
    inserted=st.lists(
        st.tuples(st.integers(min_value=0, max_value=40), st.sampled_from(INVISIBLE)),
        min_size=1,
        max_size=4,
    ),
)
def test_a_name_with_invisible_characters_folds_as_the_name_without_them(
    chars: list[str], inserted: list[tuple[int, str]]
) -> None:
    plain = "".join(chars)
    pasted = list(plain)
    for position, character in inserted:
        pasted.insert(min(position, len(pasted)), character)
    typed = "".join(pasted)
    assert search_foldings(typed) == search_foldings(plain)
    assert name_key(typed) == name_key(plain)


@pytest.mark.parametrize(
    "first_name",
    ["Zo\u200bë", "Zo\u00adë", "Zo\u200eë", "\ufeffZoë", "Ｚｏë", "Zoë\u2060", "ZOE"],
)
def test_a_name_pasted_with_invisible_or_full_width_characters_is_a_possible_duplicate(
    receptionist: User, client: Client, first_name: str
) -> None:
    zoe = register(receptionist, "Zoë", "Brand")
    with pytest.raises(PossibleDuplicateError) as refusal:
        register(receptionist, first_name, "Bra\u200bnd\u200e")
    assert [p.uuid for p in refusal.value.duplicates] == [zoe.uuid]
    sign_in(client, receptionist)
    assert [p.uuid for p in found_by_search_page(client, f"{first_name} Brand")] == [zoe.uuid]


def test_the_search_finds_every_record_of_names_pasted_with_invisible_characters(
    receptionist: User, client: Client
) -> None:
    """The reported case: six records of "Zoë Brand…" registered anyway (each
    confirmed as a different person) are all found by "zoe brand…"."""
    spellings = ["Zoë", "Zoe", "Zo\u200bë", "Zo\u00adë", "Zo\u200eë", "\ufeffZoë"]
    made = {
        register(receptionist, first, "Brand\u200e", confirmed_different_person=True).uuid
        for first in spellings
    }
    sign_in(client, receptionist)
    assert {p.uuid for p in found_by_search_page(client, "zoe Brand")} == made


# --- The index still serves it -------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_folded_search_is_served_by_the_trigram_index(receptionist: User) -> None:
    register(receptionist, "Zoë", "Müller")
    with CaptureQueriesContext(connection) as queries:
        patient_search(user=receptionist, query="Müller O\u2019Grady")
    # Nobody matches both words: the word index finds nobody, and the trigram
    # index is asked for every match.
    [search_sql] = [q["sql"] for q in queries.captured_queries if "AS MATERIALIZED" in q["sql"]]
    # On a handful of rows the planner rightly reads the table, or another
    # index: as the owner of the table (the application role may not drop an
    # index), in a transaction rolled back, take those away and ask whether the
    # trigram index can answer the search at all. A test on a function of the
    # column, such as unaccent(), could not.
    with connected_as_owner() as owner, transaction.atomic(), owner.cursor() as cursor:
        cursor.execute(
            "SELECT indexname FROM pg_indexes WHERE tablename = 'patients_patient'"
            " AND indexname <> 'patients_patient_search_trgm'"
            " AND indexdef NOT LIKE 'CREATE UNIQUE INDEX%%'"
        )
        for (index,) in cursor.fetchall():
            cursor.execute(f'DROP INDEX "{index}"')
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute(f"EXPLAIN {search_sql}")
        plan = "\n".join(row[0] for row in cursor.fetchall())
        transaction.set_rollback(True)  # the indexes stay
    assert "Bitmap Index Scan on patients_patient_search_trgm" in plan, plan
    assert "muller|mueller" in plan  # both spellings, in one indexable test
    assert "ogrady" in plan


# --- Existing patients ----------------------------------------------------------------------


def test_migration_refolds_the_search_text_of_patients_already_registered(
    receptionist: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    zoe = PatientFactory(first_name="Zoë", last_name="Müller", email="zoe@example.org")
    siobhan = PatientFactory(first_name="Siobhán", last_name="O'Grady", email="sio@example.org")
    helene = PatientFactory(first_name="Hélène", last_name="Bélanger", email="hb@example.org")
    for patient in (zoe, siobhan, helene):
        # What 0001-0006 stored: the name merely lower-cased.
        old = f"{patient.first_name} {patient.last_name} {patient.email}".lower()
        Patient.objects.filter(pk=patient.pk).update(search_text=old)
    assert patient_search(user=receptionist, query="mueller") == []

    migration = importlib.import_module("patients.migrations.0007_search_folded")
    monkeypatch.setattr(migration, "BATCH", 2)  # several batches on three rows
    migration.recompute_search_text(apps, None)

    for query, patient in (("mueller", zoe), ("ogrady", siobhan), ("belanger", helene)):
        assert [p.uuid for p in patient_search(user=receptionist, query=query)] == [patient.uuid]


def test_the_migration_of_invisible_characters_refolds_existing_records(
    receptionist: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    zoe = PatientFactory(first_name="Zo\u200bë", last_name="Brand\u00ad")
    # What was stored before format characters were dropped: the name with them.
    Patient.objects.filter(pk=zoe.pk).update(search_text="zo\u200be brand\u00ad")
    assert patient_search(user=receptionist, query="zoe brand") == []

    migration = importlib.import_module("consent.migrations.0006_patient_link_follows_merge")
    monkeypatch.setattr(migration, "BATCH", 1)
    migration.recompute_search_text(apps, None)

    assert [p.uuid for p in patient_search(user=receptionist, query="zoe brand")] == [zoe.uuid]
