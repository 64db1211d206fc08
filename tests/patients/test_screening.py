"""Contraindication screening: what stops or complicates a session, and who sees what."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field, fields, replace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from patients.screening import RULES, Finding, Severity, add_months, has_absolute, screen

TODAY = datetime.date(2026, 3, 15)
A = Severity.ABSOLUTE
C = Severity.CAUTION

# Words that would tell the reception what the patient has.
CONDITION_WORDS = (
    "pregnan",
    "breastfe",
    "diabet",
    "cancer",
    "autoimmun",
    "cardiac",
    "heart",
    "bleed",
    "anticoag",
    "aspirin",
    "warfarin",
    "steroid",
    "isotretinoin",
    "allerg",
    "anaesthe",
    "acne",
    "infection",
    "unwell",
    "implant",
    "keloid",
    "scleroderma",
    "epilep",
    "chronic",
    "cold sore",
    "alcohol",
    "supplement",
    "bruis",
)


@dataclass
class Answers:
    """A questionnaire with nothing declared; each test declares what it needs."""

    diabetes: bool = False
    cancer_history: bool = False
    autoimmune_disease: bool = False
    cardiac_disease: bool = False
    bleeding_disorder: bool = False
    epilepsy: bool = False
    keloid_scarring: bool = False
    scleroderma: bool = False
    chronic_condition_uncontrolled: bool = False
    chronic_condition_details: str = ""
    anticoagulants: bool = False
    steroids: bool = False
    isotretinoin_last_dose: datetime.date | None = None
    bruising_supplements: bool = False
    allergy_ingredients: str = ""
    allergy_local_anaesthetic: bool = False
    allergy_other: str = ""
    pregnant: bool = False
    breastfeeding: bool = False
    skin_infection: bool = False
    active_acne: bool = False
    cold_sores_history: bool = False
    implant_areas: list[str] = field(default_factory=list)
    unwell_today: bool = False
    important_event_soon: bool = False
    alcohol_around_session: bool = False


# Everything declared at once: every rule fires.
EVERYTHING = Answers(
    diabetes=True,
    cancer_history=True,
    autoimmune_disease=True,
    cardiac_disease=True,
    bleeding_disorder=True,
    epilepsy=True,
    keloid_scarring=True,
    scleroderma=True,
    chronic_condition_uncontrolled=True,
    chronic_condition_details="Rheumatoid arthritis, flaring",
    anticoagulants=True,
    steroids=True,
    isotretinoin_last_dose=datetime.date(2025, 11, 15),
    bruising_supplements=True,
    allergy_ingredients="hyaluronic acid",
    allergy_local_anaesthetic=True,
    allergy_other="cats",
    pregnant=True,
    breastfeeding=True,
    skin_infection=True,
    active_acne=True,
    cold_sores_history=True,
    implant_areas=["face", "neck"],
    unwell_today=True,
    important_event_soon=True,
    alcohol_around_session=True,
)


def only_finding(**declared: Any) -> Finding:
    findings = screen(Answers(**declared), today=TODAY)
    assert len(findings) == 1, findings
    return findings[0]


@pytest.mark.parametrize(
    ("declared", "code", "severity", "key_fact"),
    [
        ({"pregnant": True}, "pregnancy", A, "pregnant"),
        ({"breastfeeding": True}, "breastfeeding", A, "breastfeeding"),
        ({"diabetes": True}, "diabetes", A, "diabetes"),
        ({"cancer_history": True}, "cancer_history", A, "cancer"),
        ({"autoimmune_disease": True}, "autoimmune_disease", A, "autoimmune"),
        ({"cardiac_disease": True}, "cardiac_disease", A, "cardiac"),
        ({"bleeding_disorder": True}, "bleeding_disorder", A, "bleeding disorder"),
        ({"anticoagulants": True}, "anticoagulants", A, "warfarin"),
        ({"steroids": True}, "steroids", A, "steroids"),
        ({"allergy_local_anaesthetic": True}, "allergy_local_anaesthetic", A, "anaesthetic"),
        ({"active_acne": True}, "active_acne", A, "acne"),
        ({"skin_infection": True}, "skin_infection", A, "infection"),
        ({"keloid_scarring": True}, "keloid_scarring", A, "keloid"),
        ({"scleroderma": True}, "scleroderma", A, "scleroderma"),
        ({"epilepsy": True}, "epilepsy", A, "epilepsy"),
        ({"chronic_condition_uncontrolled": True}, "chronic_condition", A, "chronic"),
        ({"cold_sores_history": True}, "cold_sores", C, "cold sores"),
        ({"important_event_soon": True}, "important_event_soon", C, "event"),
        ({"bruising_supplements": True}, "bruising_supplements", C, "supplements"),
        ({"alcohol_around_session": True}, "alcohol_around_session", C, "alcohol"),
    ],
)
def test_each_declared_answer_gives_its_finding(
    declared: dict[str, Any], code: str, severity: Severity, key_fact: str
) -> None:
    finding = only_finding(**declared)

    assert finding.code == code
    assert finding.severity == severity
    assert key_fact in finding.reason.lower()
    assert finding.lifts_on is None


def test_all_clear_history_gives_no_findings() -> None:
    findings = screen(Answers(), today=TODAY)

    assert findings == []
    assert not has_absolute(findings)


def test_other_allergies_alone_give_no_finding() -> None:
    assert screen(Answers(allergy_other="penicillin, cats"), today=TODAY) == []


def test_allergy_to_an_ingredient_quotes_what_was_typed() -> None:
    finding = only_finding(allergy_ingredients="  Hyaluronic acid (hives)\n")

    assert finding.code == "allergy_ingredient"
    assert finding.severity == A
    assert "Hyaluronic acid (hives)" in finding.reason


def test_allergy_to_an_ingredient_is_shortened_to_80_characters() -> None:
    typed = "vitamin C, " * 30
    finding = only_finding(allergy_ingredients=typed)

    quoted = finding.reason.split("“")[1].split("”")[0]
    assert len(quoted) <= 80
    assert quoted.startswith("vitamin C, vitamin C")
    assert typed not in finding.reason


def test_blank_allergy_to_an_ingredient_gives_no_finding() -> None:
    assert screen(Answers(allergy_ingredients="   \n"), today=TODAY) == []


def test_unwell_today_says_to_postpone_with_no_lift_date() -> None:
    finding = only_finding(unwell_today=True)

    assert finding.code == "unwell_today"
    assert finding.severity == A
    assert "postpone" in finding.reason
    assert "recovered" in finding.reason
    assert finding.lifts_on is None
    assert finding.reception_note == "ask the practitioner before booking"


def test_permanent_implant_names_the_areas() -> None:
    finding = only_finding(implant_areas=["face", "neck"])

    assert finding.code == "implant"
    assert finding.severity == A
    assert "implant" in finding.reason
    assert "face, neck" in finding.reason


def test_blank_implant_areas_give_no_finding() -> None:
    assert screen(Answers(implant_areas=["", "  "]), today=TODAY) == []


def test_chronic_condition_reason_includes_the_details_shortened() -> None:
    details = "Crohn's disease, on and off flares since 2019. " * 5
    finding = only_finding(chronic_condition_uncontrolled=True, chronic_condition_details=details)

    assert "Crohn's disease, on and off flares" in finding.reason
    assert details.strip() not in finding.reason
    assert len(finding.reason) < len(details)


def test_chronic_condition_details_alone_give_no_finding() -> None:
    assert screen(Answers(chronic_condition_details="well-controlled asthma"), today=TODAY) == []


# --- Isotretinoin ---------------------------------------------------------------


def test_isotretinoin_four_months_ago_stops_treatment_until_18_months_after() -> None:
    last_dose = datetime.date(2025, 11, 15)
    finding = only_finding(isotretinoin_last_dose=last_dose)

    assert finding.code == "isotretinoin"
    assert finding.severity == A
    assert finding.lifts_on == datetime.date(2027, 5, 15)
    assert "Isotretinoin" in finding.reason
    assert "15 Nov 2025" in finding.reason
    assert "15 May 2027" in finding.reason
    assert finding.reception_note == "not before Sat 15 May 2027 — ask the practitioner"


def test_isotretinoin_exactly_18_months_ago_gives_no_finding() -> None:
    assert screen(Answers(isotretinoin_last_dose=datetime.date(2024, 9, 15)), today=TODAY) == []


def test_isotretinoin_one_day_short_of_18_months_still_stops_treatment() -> None:
    finding = only_finding(isotretinoin_last_dose=datetime.date(2024, 9, 16))

    assert finding.lifts_on == datetime.date(2026, 3, 16)


def test_isotretinoin_never_taken_gives_no_finding() -> None:
    assert screen(Answers(isotretinoin_last_dose=None), today=TODAY) == []


def test_isotretinoin_lift_date_clamps_to_the_end_of_february() -> None:
    finding = only_finding(isotretinoin_last_dose=datetime.date(2025, 8, 31))

    assert finding.lifts_on == datetime.date(2027, 2, 28)
    assert "28 Feb 2027" in finding.reason


def test_isotretinoin_in_the_future_counts_as_taking_it_now() -> None:
    last_dose = datetime.date(2026, 6, 30)
    finding = only_finding(isotretinoin_last_dose=last_dose)

    assert finding.severity == A
    assert finding.lifts_on == datetime.date(2027, 12, 30)
    assert "now" in finding.reason
    assert "30 Dec 2027" in finding.reason


@pytest.mark.parametrize(
    ("day", "months", "expected"),
    [
        (datetime.date(2025, 8, 31), 18, datetime.date(2027, 2, 28)),
        (datetime.date(2026, 8, 31), 18, datetime.date(2028, 2, 29)),  # leap year
        (datetime.date(2025, 1, 31), 1, datetime.date(2025, 2, 28)),
        (datetime.date(2025, 12, 15), 1, datetime.date(2026, 1, 15)),
        (datetime.date(9999, 12, 1), 18, datetime.date.max),
    ],
)
def test_add_months_clamps_the_day(
    day: datetime.date, months: int, expected: datetime.date
) -> None:
    assert add_months(day, months) == expected


# --- What each reader sees ------------------------------------------------------


def test_reception_note_never_names_the_condition() -> None:
    findings = screen(EVERYTHING, today=TODAY)

    assert {finding.code for finding in findings} == {rule.code for rule in RULES}
    for finding in findings:
        note = finding.reception_note.lower()
        assert not [word for word in CONDITION_WORDS if word in note], finding


def test_reception_is_told_to_ask_for_absolutes_and_nothing_for_cautions() -> None:
    findings = screen(replace(EVERYTHING, isotretinoin_last_dose=None), today=TODAY)

    for finding in findings:
        if finding.severity == A:
            assert finding.reception_note == "ask the practitioner before booking"
        else:
            assert finding.reception_note == ""


def test_absolute_findings_come_before_cautions() -> None:
    severities = [finding.severity for finding in screen(EVERYTHING, today=TODAY)]

    assert severities == sorted(severities, key=lambda severity: severity != A)
    assert severities[0] == A
    assert severities[-1] == C


def test_rules_table_has_unique_codes_and_absolutes_first() -> None:
    codes = [rule.code for rule in RULES]
    severities = [rule.severity for rule in RULES]

    assert len(codes) == len(set(codes))
    assert severities == sorted(severities, key=lambda severity: severity != A)


def test_has_absolute_is_false_for_cautions_only() -> None:
    findings = screen(Answers(cold_sores_history=True, alcohol_around_session=True), today=TODAY)

    assert [finding.severity for finding in findings] == [C, C]
    assert not has_absolute(findings)
    assert has_absolute(screen(Answers(pregnant=True, cold_sores_history=True), today=TODAY))


# Every field drawn from its type: arbitrary text, dates, lists of area codes.
any_answers = st.builds(Answers, **{answer.name: ... for answer in fields(Answers)})


@given(history=any_answers, today=st.dates())
def test_screen_never_raises_and_lift_dates_are_after_today(
    history: Answers, today: datetime.date
) -> None:
    findings = screen(history, today=today)

    for finding in findings:
        assert finding.reason
        if finding.lifts_on is not None:
            assert finding.lifts_on > today
