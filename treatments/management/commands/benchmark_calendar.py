"""Measure the calendar's week view on a full schedule, then leave no trace.

    python manage.py benchmark_calendar --patients 50000 --bookings 200000 --weeks 400 800

Inside one transaction: synthetic patients, 20 practitioners with their rooms
and hours, bookings spread over about a year and a half around the target
weeks, and one target week per `--weeks` figure holding that many bookings
(Monday to Friday, the same number a day for each practitioner). Every
patient booked in a target week has the clinical records reception's
ready-to-treat flag reads, in realistic proportions: medical histories with
screening answers (some contraindications, some cautions, some out of date,
a few missing), consents signed on the current version, superseded,
withdrawn or missing, allergy tests read negative, read positive with the
allergy recorded, pending, expired or never given, on the ingredients of
protocols that have a default cocktail; most bookings belong to a course.

Then the anchor (a trivial page) and each target week's view are fetched N
times through Django's test client signed in as a receptionist (in-process,
every middleware included), printing median, p95, max, queries per request,
the ratio to the anchor and the cost per booking, and the slope between two
weeks (what one more booking costs). `--profile` adds a cProfile of one
request of the largest week. Everything is rolled back at the end: the
command touches no row it did not make, so it can follow the other benchmark
commands in the same database.
"""

from __future__ import annotations

import contextlib
import cProfile
import hashlib
import io
import pstats
import random
import secrets
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from datetime import time as clock
from typing import Any

from django.conf import settings
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext, override_settings
from django.urls import reverse
from django.utils import timezone

from clinic.benchmarking import (
    ANCHOR_PATH,
    TABLE_HEAD,
    Timings,
    anchors,
    benchmark_urls,
    load_average,
    signed_in_client,
    staff_member,
    time_request,
)
from clinic.localtime import local_to_utc
from clinic.models import User
from clinic.roles import Role
from consent.models import ConsentForm, ConsentFormVersion, ConsentWithdrawal, SignedConsent
from patients.models import MedicalHistory, Patient
from patients.services import patient_search_text
from treatments.models import (
    AftercareSheet,
    AllergyResult,
    AllergyTest,
    Booking,
    BookingStatus,
    Ingredient,
    IngredientCategory,
    Interval,
    PatientAllergy,
    Product,
    Protocol,
    ProtocolCocktailLine,
    Room,
    TreatmentCourse,
    WorkingHours,
)
from treatments.selectors.calendar import calendar_build
from treatments.selectors.calendar_cache import facts_version_private
from treatments.selectors.readiness import readiness_of

PRACTITIONERS = 20
WEEKDAYS = 5  # target weeks are booked Monday to Friday
SESSION = timedelta(minutes=30)
WEEK_SESSION = timedelta(minutes=45)
BATCH = 5_000
DAY = timedelta(days=1)
READING_DELAY = timedelta(hours=24)
SAFE_MARK = 'data-testid="safe"'
NOT_READY_MARK = 'data-testid="not-ready"'

# The answers of a history with nothing to declare (every question "no").
NO_ANSWERS: dict[str, Any] = {
    "diabetes": False,
    "cancer_history": False,
    "autoimmune_disease": False,
    "cardiac_disease": False,
    "bleeding_disorder": False,
    "epilepsy": False,
    "keloid_scarring": False,
    "scleroderma": False,
    "chronic_condition_uncontrolled": False,
    "chronic_condition_details": "",
    "anticoagulants": False,
    "steroids": False,
    "isotretinoin_last_dose": None,
    "bruising_supplements": False,
    "medicines_other": "",
    "allergy_ingredients": "",
    "allergy_local_anaesthetic": False,
    "allergy_other": "",
    "pregnant": False,
    "breastfeeding": False,
    "skin_infection": False,
    "active_acne": False,
    "cold_sores_history": False,
    "implant_areas": [],
    "unwell_today": False,
    "important_event_soon": False,
    "alcohol_around_session": False,
}


class _RollbackError(Exception):
    pass


@dataclass
class _Clinic:
    tag: str
    staff: list[User]
    rooms: list[Room]
    protocols: list[Protocol]
    ingredients: dict[int, list[Ingredient]]  # by protocol id: its cocktail's
    current: dict[int, ConsentFormVersion]  # by consent form id
    older: dict[int, ConsentFormVersion]  # superseded versions, by form id


def _pick(rng: random.Random, shares: list[tuple[float, str]]) -> str:
    """One of the labels, each with its share (the rest of 1.0 goes to the last)."""
    draw = rng.random()
    for share, label in shares:
        if draw < share:
            return label
        draw -= share
    return shares[-1][1]


class Command(BaseCommand):
    help = "Time the calendar week view on synthetic weeks of N bookings (rolled back)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--patients", type=int, default=50_000)
        parser.add_argument(
            "--bookings", type=int, default=200_000, help="bookings in the table, in all"
        )
        parser.add_argument(
            "--weeks",
            type=int,
            nargs="+",
            default=[400, 800],
            help="bookings in each target week (a multiple of 100: 20 practitioners, 5 days)",
        )
        parser.add_argument("--repeat", type=int, default=30, help="week views to time")
        parser.add_argument(
            "--profile", action="store_true", help="cProfile one request of the largest week"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        weeks = sorted(options["weeks"])
        per_day = PRACTITIONERS * WEEKDAYS
        if any(n <= 0 or n % per_day or n // per_day > 12 for n in weeks):
            raise CommandError(f"Each week holds a multiple of {per_day} bookings, at most 1200.")
        if options["patients"] < sum(weeks) + PRACTITIONERS:
            raise CommandError("Give at least one patient per target-week booking, plus 20.")
        try:
            # clinic.benchmarking's signed-out anchor uses the test client's
            # default host name.
            hosts = [*settings.ALLOWED_HOSTS, "testserver"]
            with benchmark_urls(), override_settings(ALLOWED_HOSTS=hosts), transaction.atomic():
                self._run(options, weeks)
                raise _RollbackError
        except _RollbackError:
            self.stdout.write("Rolled back: no synthetic row is left in the database.")

    # --- The clinic -----------------------------------------------------------------

    def _clinic(self, tag: str) -> _Clinic:
        group = Group.objects.get(name=Role.PRACTITIONER.value)
        staff = []
        for i in range(PRACTITIONERS):
            user = User.objects.create(
                username=f"calbench-{tag}-{i}", first_name=f"Practitioner {i}", last_name=tag
            )
            user.groups.add(group)
            staff.append(user)
        WorkingHours.objects.bulk_create(
            WorkingHours(practitioner=user, weekday=weekday, starts=clock(8), ends=clock(21))
            for user in staff
            for weekday in range(6)
        )
        rooms = [Room.objects.create(name=f"Room {i} ({tag})") for i in range(PRACTITIONERS)]
        sheet = AftercareSheet.objects.create(
            title=f"Aftercare ({tag})",
            introduction="-",
            do_advice="-",
            avoid_advice="-",
            warning_signs="-",
        )
        now = timezone.now()
        current: dict[int, ConsentFormVersion] = {}
        older: dict[int, ConsentFormVersion] = {}
        forms = []
        for title in ("Face mesotherapy", "Scalp mesotherapy"):
            form = ConsentForm.objects.create(title=f"{title} ({tag})", created_by=staff[0])
            forms.append(form)
            versions = []
            for number, published in ((1, now - 400 * DAY), (2, now - 60 * DAY)):
                versions.append(
                    ConsentFormVersion.objects.create(
                        form=form,
                        number=number,
                        procedure="Tiny injections into the middle layer of the skin.",
                        benefits="Brighter, better hydrated skin over a course of sessions.",
                        common_side_effects="Redness, swelling, small bruises for a day or two.",
                        rare_complications="Infection, lumps, allergic reaction, scarring.",
                        alternatives="Peels, microneedling, or no treatment.",
                        aftercare="No make-up for 12 hours; no sauna or sport for 48 hours.",
                        photo_consent_text="Photographs for my clinical record only.",
                        created_by=staff[0],
                        published_at=published,
                        published_by=staff[0],
                    )
                )
            older[form.pk], current[form.pk] = versions
        kinds = IngredientCategory
        names = [
            ("Hyaluronic acid", kinds.HYALURONIC_ACID),
            ("Vitamin C", kinds.VITAMIN),
            ("Vitamin B5", kinds.VITAMIN),
            ("DMAE", kinds.ANTIOXIDANT),
            ("Biotin", kinds.VITAMIN),
            ("Copper peptide", kinds.MINERAL),
            ("Organic silicon", kinds.MINERAL),
        ]
        ingredients = [
            Ingredient.objects.create(name=f"{name} ({tag})", category=kind) for name, kind in names
        ]
        products = []
        for i, contents in enumerate(([0], [1, 2], [3], [4, 5], [6, 0])):
            product = Product.objects.create(
                name=f"Solution {i} ({tag})", maker="Lab Example", concentration="10 mg/mL"
            )
            product.ingredients.set([ingredients[k] for k in contents])
            products.append(product)
        protocols = []
        cocktails: dict[int, list[Ingredient]] = {}
        for i, (lines, areas) in enumerate(
            (([0, 1], ["face"]), ([1], ["face", "neck"]), ([2], ["face"]), ([3, 4], ["scalp"]))
        ):
            protocol = Protocol.objects.create(
                name=f"Protocol {i} ({tag})",
                indication="-",
                default_areas=areas,
                default_sessions=6,
                interval=Interval.FORTNIGHTLY,
                session_minutes=45,
                maintenance_months=6,
                consent_form=forms[1] if "scalp" in areas else forms[0],
                aftercare_sheet=sheet,
            )
            for position, k in enumerate(lines):
                ProtocolCocktailLine.objects.create(
                    protocol=protocol, product=products[k], amount="2.00", position=position
                )
            cocktails[protocol.pk] = list(
                {i.pk: i for k in lines for i in products[k].ingredients.all()}.values()
            )
            protocols.append(protocol)
        return _Clinic(tag, staff, rooms, protocols, cocktails, current, older)

    # --- The clinical records of the target weeks' patients ----------------------------

    def _records(
        self, rng: random.Random, clinic: _Clinic, booked: dict[int, Protocol], now: datetime
    ) -> dict[str, int]:
        """Histories, consents and allergy tests for each patient booked in a
        target week (`booked`: patient id to the protocol of their booking).
        Returns how many patients got each kind of record."""
        signer = clinic.staff[0]
        counts: dict[str, int] = {}

        def count(label: str) -> None:
            counts[label] = counts.get(label, 0) + 1

        histories: list[MedicalHistory] = []
        signed: list[SignedConsent] = []
        withdrawn: set[int] = set()  # patient ids whose signature is withdrawn
        tests: list[tuple[AllergyTest, list[Ingredient], str, timedelta | None]] = []
        for patient_id, protocol in booked.items():
            # Medical history: most current, some out of date, a few missing;
            # some patients have an older one the current supersedes.
            kind = _pick(
                rng,
                [
                    (0.04, "history missing"),
                    (0.05, "history out of date"),
                    (0.91, "history current"),
                ],
            )
            count(kind)
            if kind != "history missing":
                answers = dict(NO_ANSWERS)
                finding = _pick(
                    rng,
                    [
                        (0.03, "anticoagulants"),
                        (0.02, "pregnant"),
                        (0.02, "isotretinoin"),
                        (0.02, "allergy declared"),
                        (0.01, "implant"),
                        (0.02, "acne on the day taken"),
                        (0.15, "cold sores (caution)"),
                        (0.10, "bruising supplements (caution)"),
                        (0.63, "nothing declared"),
                    ],
                )
                count(finding)
                if finding == "anticoagulants":
                    answers["anticoagulants"] = True
                elif finding == "pregnant":
                    answers["pregnant"] = True
                elif finding == "isotretinoin":
                    answers["isotretinoin_last_dose"] = (now - 120 * DAY).date()
                elif finding == "allergy declared":
                    answers["allergy_ingredients"] = "Vitamin C, lidocaine"
                elif finding == "implant":
                    answers["implant_areas"] = ["face"]
                elif finding == "acne on the day taken":
                    answers["active_acne"] = True
                elif finding.startswith("cold sores"):
                    answers["cold_sores_history"] = True
                    answers["important_event_soon"] = rng.random() < 0.3
                elif finding.startswith("bruising"):
                    answers["bruising_supplements"] = True
                    answers["medicines_other"] = "Fish oil, ginkgo"
                outdated = kind == "history out of date"
                age = 400 + rng.randrange(200) if outdated else 10 + rng.randrange(300)
                if not outdated and rng.random() < 0.2:
                    count("older history superseded")
                    histories.append(
                        MedicalHistory(
                            patient_id=patient_id,
                            signed_by=signer,
                            signed_at=now - (age + 380) * DAY,
                            **{**NO_ANSWERS, "diabetes": rng.random() < 0.3},
                        )
                    )
                histories.append(
                    MedicalHistory(
                        patient_id=patient_id,
                        signed_by=signer,
                        signed_at=now - age * DAY - timedelta(minutes=rng.randrange(600)),
                        **answers,
                    )
                )
            # Consent to the protocol's form.
            form_id = protocol.consent_form_id
            consent = _pick(
                rng,
                [
                    (0.80, "consent signed"),
                    (0.06, "consent on a superseded version"),
                    (0.03, "consent withdrawn"),
                    (0.11, "consent missing"),
                ],
            )
            count(consent)
            if consent != "consent missing":
                version = (
                    clinic.older[form_id]
                    if consent == "consent on a superseded version"
                    else clinic.current[form_id]
                )
                text = f"Consent {version.pk} of patient {patient_id}"
                signed.append(
                    SignedConsent(
                        patient_id=patient_id,
                        version=version,
                        text=text,
                        text_sha256=hashlib.sha256(text.encode()).hexdigest(),
                        sections=[{"key": "procedure", "title": "The procedure", "text": "-"}],
                        sections_confirmed=["procedure"],
                        photo_consent=rng.random() < 0.7,
                        signer_name=f"Patient {patient_id}",
                        signature=f"signatures/bench-{patient_id}.png",
                        signature_sha256=hashlib.sha256(text.encode()).hexdigest(),
                        signed_at=max(version.published_at or now, now - 300 * DAY)
                        + rng.randrange(1, 50) * DAY,
                        witness=signer,
                    )
                )
                if consent == "consent withdrawn":
                    withdrawn.add(patient_id)
            # Allergy tests of the cocktail's ingredients.
            ingredients = clinic.ingredients[protocol.pk]
            allergy = _pick(
                rng,
                [
                    (0.68, "allergy test read negative"),
                    (0.04, "allergy test read exactly 24 hours after"),
                    (0.06, "allergy test expired"),
                    (0.10, "allergy reading pending"),
                    (0.04, "allergy test positive"),
                    (0.08, "no allergy test"),
                ],
            )
            count(allergy)
            if allergy == "no allergy test":
                continue
            if allergy == "allergy test expired":
                given, read_after = now - (200 + rng.randrange(100)) * DAY, timedelta(hours=26)
            elif allergy == "allergy reading pending":
                given, read_after = now - timedelta(hours=rng.randrange(2, 20)), None
            elif allergy == "allergy test read exactly 24 hours after":
                given, read_after = now - (3 + rng.randrange(60)) * DAY, READING_DELAY
            else:
                given = now - (3 + rng.randrange(150)) * DAY
                read_after = READING_DELAY + timedelta(minutes=rng.randrange(600))
            result = AllergyResult.POSITIVE if allergy == "allergy test positive" else ""
            if read_after is not None and not result:
                result = AllergyResult.NEGATIVE
            test = AllergyTest(
                patient_id=patient_id,
                site="inner left forearm",
                given_at=given,
                given_by=signer,
                entered_at=given,
                read_due_at=given + READING_DELAY,
            )
            tests.append((test, ingredients, result, read_after))
            if rng.random() < 0.15:  # an older negative reading, long expired
                old = now - (400 + rng.randrange(100)) * DAY
                tests.append(
                    (
                        AllergyTest(
                            patient_id=patient_id,
                            site="inner right forearm",
                            given_at=old,
                            given_by=signer,
                            entered_at=old,
                            read_due_at=old + READING_DELAY,
                        ),
                        ingredients,
                        AllergyResult.NEGATIVE,
                        timedelta(hours=25),
                    )
                )
        MedicalHistory.objects.bulk_create(histories, batch_size=BATCH)
        made = SignedConsent.objects.bulk_create(signed, batch_size=BATCH)
        ConsentWithdrawal.objects.bulk_create(
            ConsentWithdrawal(
                signed_consent=s,
                reason="Changed her mind",
                withdrawn_at=s.signed_at + DAY,
                recorded_by=signer,
            )
            for s in made
            if s.patient_id in withdrawn
        )
        # A test's ingredients are fixed once read (trigger): give, link, then read.
        given_tests = AllergyTest.objects.bulk_create([t for t, *_rest in tests], batch_size=BATCH)
        through = AllergyTest.ingredients.through
        through.objects.bulk_create(
            (
                through(allergytest_id=test.pk, ingredient_id=ingredient.pk)
                for test, (_t, ingredients, _r, _a) in zip(given_tests, tests, strict=True)
                for ingredient in ingredients
            ),
            batch_size=BATCH,
        )
        read = []
        allergies = []
        for test, (_t, ingredients, result, read_after) in zip(given_tests, tests, strict=True):
            if read_after is None:
                continue
            test.read_at = test.read_due_at - READING_DELAY + read_after
            test.read_by = signer
            test.result = result
            if result == AllergyResult.POSITIVE:
                test.reaction = "Raised red weal, 8 mm, itching."
                allergies.append(
                    PatientAllergy(
                        patient_id=test.patient_id,
                        ingredient=ingredients[0],
                        source_test=test,
                        recorded_by=signer,
                    )
                )
            read.append(test)
        AllergyTest.objects.bulk_update(
            read, ["read_at", "read_by", "result", "reaction"], batch_size=BATCH
        )
        PatientAllergy.objects.bulk_create(allergies)
        return counts

    # --- The run ----------------------------------------------------------------------

    def _run(self, options: dict[str, Any], weeks: list[int]) -> None:
        rng = random.Random(20261123)  # noqa: S311 - repeatable test data, not secrets
        tag = secrets.token_hex(3)
        patients, bookings, repeat = options["patients"], options["bookings"], options["repeat"]
        started = time.perf_counter()
        people = []
        for i in range(patients):
            patient = Patient(
                first_name=rng.choice(["Amelia", "Oliver", "Isla", "George", "Ava", "Noah"]),
                last_name=f"Calbench{tag}{i}",
                date_of_birth=date(1950, 1, 1) + timedelta(days=rng.randrange(20_000)),
                email=f"calbench.{tag}.{i}@example.org",
                phone=f"+4479{i:08d}",
                reminder_channel="email",
            )
            patient.search_text = patient_search_text(patient)
            people.append(patient)
        patient_ids = [p.pk for p in Patient.objects.bulk_create(people, batch_size=BATCH)]
        clinic = self._clinic(tag)
        self.stdout.write(
            f"Inserted {patients} patients and the clinic in {time.perf_counter() - started:.1f} s"
        )

        today = timezone.localdate()
        first_target = today - timedelta(days=today.weekday()) + timedelta(days=7)  # next Monday
        targets = [first_target + timedelta(days=7 * k) for k in range(len(weeks))]
        target_days = {t + timedelta(days=d) for t in targets for d in range(7)}
        history = max(0, bookings - sum(weeks))
        slots_per_day = 25  # every 30 minutes from 08:00
        days_needed = -(-history // (slots_per_day * PRACTITIONERS))
        history_days = [
            d
            for d in (first_target - timedelta(days=days_needed // 2 + 7) + timedelta(days=n)
                      for n in range(days_needed + 7 * len(weeks) + 14))
            if d not in target_days
        ][:days_needed]  # fmt: skip
        creator = clinic.staff[0]
        batch: list[Booking] = []
        started = time.perf_counter()

        def add(booking: Booking) -> None:
            nonlocal batch
            batch.append(booking)
            if len(batch) >= BATCH:
                Booking.objects.bulk_create(batch)
                batch = []

        made = 0
        for day in history_days:
            for slot in range(slots_per_day):
                starts = local_to_utc(day, clock(8 + slot // 2, 30 * (slot % 2)), fold=0)
                for index in range(PRACTITIONERS):
                    if made >= history:
                        break
                    add(
                        Booking(
                            patient_id=patient_ids[made % len(patient_ids)],
                            practitioner=clinic.staff[index],
                            room=clinic.rooms[index],
                            protocol=clinic.protocols[made % len(clinic.protocols)],
                            starts_at=starts,
                            ends_at=starts + SESSION,
                            status=BookingStatus.COMPLETED if day < today else BookingStatus.BOOKED,
                            created_by=creator,
                        )
                    )
                    made += 1
        # The target weeks: one patient per booking, each with a clinical record.
        booked: dict[int, Protocol] = {}
        courses: list[TreatmentCourse] = []
        week_rows: list[tuple[int, date, int, int]] = []  # patient, day, minute, practitioner
        next_patient = 0
        for target, count in zip(targets, weeks, strict=True):
            per_day = count // (PRACTITIONERS * WEEKDAYS)
            for d in range(WEEKDAYS):
                for q in range(per_day):
                    for index in range(PRACTITIONERS):
                        patient_id = patient_ids[next_patient]
                        next_patient += 1
                        protocol = clinic.protocols[rng.randrange(len(clinic.protocols))]
                        booked[patient_id] = protocol
                        week_rows.append((patient_id, target + timedelta(days=d), q, index))
                        if rng.random() < 0.6:
                            courses.append(
                                TreatmentCourse(
                                    patient_id=patient_id,
                                    protocol=protocol,
                                    planned_sessions=6,
                                    interval=Interval.FORTNIGHTLY,
                                    created_by=creator,
                                )
                            )
        course_of = {
            c.patient_id: c.pk for c in TreatmentCourse.objects.bulk_create(courses, BATCH)
        }
        for patient_id, day, q, index in week_rows:
            starts = local_to_utc(day, clock(9 + (45 * q) // 60, (45 * q) % 60), fold=0)
            add(
                Booking(
                    patient_id=patient_id,
                    practitioner=clinic.staff[index],
                    room=clinic.rooms[index],
                    protocol=booked[patient_id],
                    course_id=course_of.get(patient_id),
                    starts_at=starts,
                    ends_at=starts + WEEK_SESSION,
                    status=BookingStatus.BOOKED,
                    created_by=creator,
                )
            )
        Booking.objects.bulk_create(batch)
        records = self._records(rng, clinic, booked, timezone.now())
        with connection.cursor() as cursor:
            for table in (
                "treatments_booking",
                "patients_patient",
                "patients_medicalhistory",
                "consent_signedconsent",
                "treatments_allergytest",
                "treatments_allergytest_ingredients",
            ):
                cursor.execute(f"ANALYZE {table}")
            cursor.execute("SHOW server_version")
            version = cursor.fetchone()[0]
        total = Booking.objects.count()
        self.stdout.write(
            f"Inserted {made + len(week_rows)} bookings ({total} in the table), the target"
            f" weeks' clinical records, in {time.perf_counter() - started:.1f} s;"
            f" PostgreSQL {version}"
        )
        self.stdout.write(
            "Target weeks' patients: "
            + ", ".join(f"{label} {n}" for label, n in sorted(records.items()))
        )
        self._measure(clinic, targets, weeks, repeat, profile=options["profile"])

    def _measure(
        self,
        clinic: _Clinic,
        targets: list[date],
        weeks: list[int],
        repeat: int,
        *,
        profile: bool,
    ) -> None:
        reception = staff_member(f"calbench-{clinic.tag}-reception", Role.RECEPTIONIST)
        client = signed_in_client(reception)
        base = reverse("treatments:calendar")
        figures: list[tuple[int, Timings, Timings, Timings, str]] = []
        anchor, anchor_out = anchors(client, repeat=repeat)
        for target, count in zip(targets, weeks, strict=True):
            url = f"{base}?view=week&date={target.isoformat()}"
            body = client.get(url, secure=True).content.decode()
            shown = body.count('data-testid="booking"')
            if shown != count:
                raise CommandError(f"The week of {target} shows {shown} bookings, not {count}.")
            safe, not_ready = body.count(SAFE_MARK), body.count(NOT_READY_MARK)
            flags = f"{safe} ready to treat, {not_ready} not ready"
            # This transaction's rows are not committed, so the page keeps
            # nothing in the cache (as with Redis out of reach): computed.
            computed = time_request(client, url, repeat=repeat)
            # Under a version of its own, the transaction's rows count as the
            # facts: the first request computes and keeps the week, the rest
            # read it (cache hits).
            with facts_version_private():
                kept = time_request(client, url, repeat=repeat, check=_same_grid(body))
            # A new version before each request: computed and kept (cache misses).
            missed = _time_each_fresh(client, url, repeat=repeat)
            figures.append((count, computed, kept, missed, flags))
        load = load_average()
        self.stdout.write(
            f"\nWeek views, {PRACTITIONERS} practitioners, signed in as reception,"
            f" {repeat} runs each; load average {load}\n"
        )
        self.stdout.write(TABLE_HEAD)
        self.stdout.write(anchor.row("anchor, signed in"))
        self.stdout.write(anchor_out.row("anchor, signed out"))
        for count, computed, kept, missed, _flags in figures:
            self.stdout.write(computed.row(f"week view, {count} bookings, no cache", anchor))
            self.stdout.write(kept.row(f"week view, {count} bookings, cache hit", anchor))
            self.stdout.write(missed.row(f"week view, {count} bookings, cache miss", anchor))
        self.stdout.write("")
        for count, computed, kept, _missed, flags in figures:
            self.stdout.write(
                f"{count} bookings: {computed.median / count:.3f} ms per booking computed,"
                f" {kept.median / count:.4f} kept (medians over bookings); {flags}"
            )
        # Process time: the Python share of the request, which the machine's
        # load inflates less than the wall clock.
        cpu_anchor = _cpu_ms(client, ANCHOR_PATH, repeat=repeat)
        self.stdout.write(f"CPU (process time) medians: anchor, signed in {cpu_anchor:.1f} ms")
        for target, count in zip(targets, weeks, strict=True):
            url = f"{base}?view=week&date={target.isoformat()}"
            for label, cpu in (
                ("no cache", _cpu_ms(client, url, repeat=repeat)),
                ("cache hit", _cpu_ms(client, url, repeat=repeat, cached=True)),
                ("cache miss", _cpu_ms(client, url, repeat=repeat, fresh=True)),
            ):
                self.stdout.write(
                    f"  week view, {count} bookings, {label}: {cpu:.1f} ms"
                    f" ({cpu / cpu_anchor:.1f} x anchor, {cpu / count:.4f} ms per booking)"
                )
        if len(figures) > 1:
            (n1, c1, k1, *_r1), (n2, c2, k2, *_r2) = figures[0], figures[-1]
            self.stdout.write(
                f"Slope from {n1} to {n2} bookings (medians, ms per extra booking):"
                f" computed {(c2.median - c1.median) / (n2 - n1):.3f},"
                f" kept {(k2.median - k1.median) / (n2 - n1):.4f}"
            )
        count = figures[-1][0]
        url = f"{base}?view=week&date={targets[-1].isoformat()}"
        with CaptureQueriesContext(connection) as queries:
            client.get(url, secure=True)
        self._queries(f"one computed request of the {count}-booking week", queries)
        with facts_version_private():
            client.get(url, secure=True)
            with CaptureQueriesContext(connection) as queries:
                client.get(url, secure=True)
        self._queries(f"one cache hit of the {count}-booking week", queries)
        if profile:
            self._parts(targets[-1], repeat)
            for label, cached in (("computed", False), ("cache hit", True)):
                profiler = cProfile.Profile()
                with facts_version_private() if cached else contextlib.nullcontext():
                    if cached:
                        client.get(url, secure=True)
                    profiler.enable()
                    client.get(url, secure=True)
                    profiler.disable()
                out = io.StringIO()
                stats = pstats.Stats(profiler, stream=out)
                self.stdout.write(f"\ncProfile of one {count}-booking week request, {label}:")
                stats.sort_stats("cumulative").print_stats(
                    r"(clinic|treatments|patients|consent)/", 40 if not cached else 15
                )
                if not cached:
                    stats.sort_stats("tottime").print_stats(25)
                self.stdout.write(out.getvalue())

    def _queries(self, label: str, queries: CaptureQueriesContext) -> None:
        db_ms = sum(float(q["time"]) for q in queries.captured_queries) * 1000
        self.stdout.write(
            f"Database time in {label}: {db_ms:.1f} ms over {len(queries)} queries; slowest:"
        )
        for query in sorted(queries.captured_queries, key=lambda q: -float(q["time"]))[:4]:
            self.stdout.write(f"  {float(query['time']) * 1000:6.1f} ms  {query['sql'][:110]}")

    def _parts(self, target: date, repeat: int) -> None:
        """Process-time medians of the week view's parts, for the profile."""
        now = timezone.now()
        built = calendar_build(view="week", day=target, practitioner=None, room=None, at=now)
        bookings = [item.booking for row in built.rows for c in row.cells for item in c.bookings]

        def median_ms(work: Callable[[], object]) -> float:
            samples = []
            for _ in range(repeat):
                started = time.process_time()
                work()
                samples.append((time.process_time() - started) * 1000)
            return statistics.median(samples)

        grid = median_ms(
            lambda: calendar_build(view="week", day=target, practitioner=None, room=None, at=now)
        )
        ready = median_ms(lambda: readiness_of(bookings=bookings, at=now))
        self.stdout.write(
            f"Parts (process time, median): grid without ready-to-treat {grid:.1f} ms;"
            f" ready-to-treat of {len(bookings)} bookings {ready:.1f} ms"
        )


def _grid(body: str) -> str:
    return body[body.index("<tbody>") : body.index("</tbody>")]


def _same_grid(expected: str) -> Callable[[bytes], None]:
    """A check that a page shows the same grid as `expected` (a page's HTML)."""
    grid = _grid(expected)

    def check(content: bytes) -> None:
        if _grid(content.decode()) != grid:
            raise CommandError("The kept week differs from the week computed.")

    return check


def _time_each_fresh(client: Client, url: str, *, repeat: int) -> Timings:
    """GET `url` `repeat` times, each under a new version of the facts (so
    each computes the week and keeps it): wall-clock ms and queries."""
    samples: list[float] = []
    counts: list[int] = []
    for _ in range(repeat):
        with facts_version_private(), CaptureQueriesContext(connection) as queries:
            started = time.perf_counter()
            response = client.get(url, secure=True)
            samples.append((time.perf_counter() - started) * 1000)
        if response.status_code != 200:
            raise CommandError(f"{url} answered {response.status_code}")
        counts.append(len(queries))
    return Timings(samples=tuple(samples), queries=tuple(counts))


def _cpu_ms(
    client: Client, url: str, *, repeat: int, cached: bool = False, fresh: bool = False
) -> float:
    """Median process time (ms) of GET `url`, in this process: computed
    (nothing kept), read from the cache (`cached`), or computed and kept under
    a new version each time (`fresh`)."""
    samples = []
    with facts_version_private() if cached else contextlib.nullcontext():
        if cached:
            client.get(url, secure=True)  # computes and keeps it
        for _ in range(repeat):
            with facts_version_private() if fresh else contextlib.nullcontext():
                started = time.process_time()
                client.get(url, secure=True)
                samples.append((time.process_time() - started) * 1000)
    return statistics.median(samples)
