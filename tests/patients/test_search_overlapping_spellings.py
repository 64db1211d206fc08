"""A typed letter with two spellings (ü: u and ue, ø: o and oe) reads the word
index once: the longer spelling's range lies inside the shorter's, so reading
both listed each patient twice and pushed others off the page."""

from __future__ import annotations

import pytest

from clinic.models import User
from patients.models import Patient
from patients.selectors import SEARCH_LIMIT, patient_search
from tests.factories import PatientFactory


def _patients(first: str, last: str, count: int) -> list[Patient]:
    return [
        PatientFactory(first_name=f"{first}{i}", last_name=last, email=f"p{i}@example.org")
        for i in range(count)
    ]


def _pks(found: list[Patient]) -> list[int]:
    return [p.pk for p in found]


@pytest.mark.django_db
def test_a_page_of_umlaut_matches_lists_each_patient_once(receptionist: User) -> None:
    made = _patients("Anna", "Müller", SEARCH_LIMIT - 3)
    found = patient_search(user=receptionist, query="Mü")
    assert len(set(_pks(found))) == len(found), "a patient listed twice"
    assert sorted(_pks(found)) == sorted(p.pk for p in made)
    assert not found.more


@pytest.mark.django_db
def test_more_matches_than_a_page_fill_it_with_different_patients(receptionist: User) -> None:
    made = _patients("Per", "Bjørnstad", SEARCH_LIMIT + 5)
    found = patient_search(user=receptionist, query="bjø")
    assert len(set(_pks(found))) == len(found), "a patient listed twice"
    assert len(found) == SEARCH_LIMIT
    assert found.more
    assert set(_pks(found)) <= {p.pk for p in made}


@pytest.mark.django_db
@pytest.mark.parametrize("count", [1, 2, 5])
def test_a_few_umlaut_matches_are_each_found_once(receptionist: User, count: int) -> None:
    made = _patients("Eva", "Müller", count)
    assert sorted(_pks(patient_search(user=receptionist, query="mü"))) == [p.pk for p in made]
