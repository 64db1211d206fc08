"""The week's grid is kept in the cache (Redis) per version of the clinical
facts, and never shows a fact older than the page would compute.

Every write below is committed (transactional tests), as a request's would
be: the facts' version changes at COMMIT, through the database's triggers.
A page is "computed" when it read the bookings, "kept" when it did not."""

from __future__ import annotations

import re
import threading
import time as clock
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import time, timedelta
from pathlib import Path
from unittest import mock

import pytest
import time_machine
from django.db import connection, connections, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from clinic.models import User
from consent.models import CONSENT_SECTION_NAMES, ConsentFormVersion, SignedConsent
from consent.services import consent_sign, consent_withdraw
from patients.models import Patient
from tests.clinic_settings_support import settings_saved
from tests.conftest import sign_in
from tests.consent.helpers import drawn_signature
from tests.factories import (
    ConsentFormVersionFactory,
    IngredientFactory,
    PatientFactory,
    ProductFactory,
    make_history,
)
from tests.treatments import test_booking_support as support
from tests.treatments.test_booking_support import MONDAY, NOW, Clinic, at, book
from treatments.gates import ingredients_of
from treatments.models import (
    AllergyTest,
    Booking,
    Ingredient,
    ProtocolCocktailLine,
    Room,
    TreatmentCourse,
    WorkingHours,
)
from treatments.selectors.calendar_cache import facts_version, grid_get, grid_key
from treatments.services.allergy import allergy_test_give, allergy_test_read
from treatments.services.booking import booking_move

clinic = support.clinic
frozen = support.frozen
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("frozen")]
CALENDAR = reverse("treatments:calendar")
WEEK = f"{CALENDAR}?view=week&date={MONDAY.isoformat()}"
DEAD_REDIS = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        # Nothing listens on port 1.
        "LOCATION": "redis://127.0.0.1:1/0",
        "OPTIONS": {"socket_connect_timeout": 0.2, "socket_timeout": 0.2},
    }
}


@pytest.fixture
def media(settings: object, tmp_path: Path) -> None:
    settings.MEDIA_ROOT = tmp_path  # type: ignore[attr-defined]


@pytest.fixture
def no_pdf_queue() -> Iterator[None]:
    """Signing queues the consent's PDF after commit: no broker needed here."""
    with mock.patch("consent.tasks.consent_pdf_render.apply_async"):
        yield


@dataclass
class World:
    c: Clinic
    version: ConsentFormVersion
    ingredients: list[Ingredient]
    safe: Booking  # history, consent, negative reading: safe to treat
    unsigned: Booking  # history and reading, no consent
    pending: Booking  # history and consent, a reading not taken yet
    test: AllergyTest  # the pending one


def _ready_history(patient: Patient, by: User) -> None:
    with time_machine.travel(NOW - timedelta(days=30), tick=False):
        make_history(patient, by)


def _negative_reading(patient: Patient, by: User, ingredients: list[Ingredient]) -> None:
    given = NOW - timedelta(days=5)
    with time_machine.travel(given, tick=False):
        test = allergy_test_give(
            patient=patient,
            given_by=by,
            ingredients=ingredients,
            products=[],
            site="inner left forearm",
            given_at=given,
        )
    with time_machine.travel(given + timedelta(hours=25), tick=False):
        allergy_test_read(test=test, read_by=by, result="negative")


def _sign(patient: Patient, version: ConsentFormVersion, witness: User) -> SignedConsent:
    return consent_sign(
        patient=patient,
        form=version.form,
        version_uuid=version.uuid,
        sections_confirmed=CONSENT_SECTION_NAMES,
        photo_consent=True,
        signer_name=patient.full_name,
        signature_data_url=drawn_signature(),
        witness=witness,
        witnessed=True,
    )


@pytest.fixture
def world(clinic: Clinic, practitioner: User, no_pdf_queue: None, media: None) -> World:
    product = ProductFactory(ingredients=[IngredientFactory(name="Hyaluronic acid")])
    ProtocolCocktailLine.objects.create(protocol=clinic.protocol, product=product, amount="2.00")
    ingredients = ingredients_of([product])
    version = ConsentFormVersionFactory(form=clinic.protocol.consent_form)
    cara = PatientFactory(first_name="Cara", last_name="Moss")
    for patient in (clinic.patient, clinic.other_patient, cara):
        _ready_history(patient, practitioner)
    for patient in (clinic.patient, cara):
        _sign(patient, version, practitioner)
    for patient in (clinic.patient, clinic.other_patient):
        _negative_reading(patient, practitioner, ingredients)
    test = allergy_test_give(
        patient=cara,
        given_by=practitioner,
        ingredients=ingredients,
        products=[],
        site="inner left forearm",
        given_at=NOW,
    )

    def booked(patient: Patient, day: int, hour: int) -> Booking:
        return book(
            patient=patient,
            practitioner=clinic.practitioner,
            room=clinic.room,
            protocol=clinic.protocol,
            starts_at=at(MONDAY + timedelta(days=day), hour),
        )

    return World(
        c=clinic,
        version=version,
        ingredients=ingredients,
        safe=booked(clinic.patient, 0, 10),
        unsigned=booked(clinic.other_patient, 1, 10),
        pending=booked(cara, 2, 10),
        test=test,
    )


@dataclass
class Page:
    rows: str  # the grid's rows
    computed: bool  # the bookings were read (not kept in the cache)
    queries: int

    def card(self, booking: Booking) -> str:
        start = self.rows.index(f'data-booking="{booking.uuid}"')
        return self.rows[start : self.rows.index("</a>", start)]


def week_page(client: Client, url: str = WEEK) -> Page:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200
    body = response.content.decode()
    rows = body[body.index("<tbody>") : body.index("</tbody>")]
    computed = any('"treatments_booking"' in q["sql"] for q in queries.captured_queries)
    return Page(rows, computed, len(queries))


def computed_now(client: Client, settings: object, url: str = WEEK) -> Page:
    """The page as computed without any cache (Redis out of reach)."""
    saved = settings.CACHES  # type: ignore[attr-defined]
    settings.CACHES = DEAD_REDIS  # type: ignore[attr-defined]
    try:
        page = week_page(client, url)
    finally:
        settings.CACHES = saved  # type: ignore[attr-defined]
    assert page.computed
    return page


def kept(client: Client) -> Page:
    """Two views: the first computes the grid and keeps it, the second reads it."""
    first = week_page(client)
    second = week_page(client)
    assert first.computed
    assert not second.computed
    assert second.rows == first.rows
    return second


# --- What each kind of write changes ------------------------------------------------------


def test_the_week_is_kept_and_served_without_reading_the_facts_again(
    client: Client, world: World, receptionist: User
) -> None:
    sign_in(client, receptionist)
    page = kept(client)
    assert 'data-testid="safe"' in page.card(world.safe)
    assert "consent" in page.card(world.unsigned)
    assert "allergy reading due" in page.card(world.pending)


def test_signing_a_consent_clears_the_flag(
    client: Client, world: World, receptionist: User, practitioner: User
) -> None:
    sign_in(client, receptionist)
    assert 'data-testid="not-ready"' in kept(client).card(world.unsigned)
    _sign(world.c.other_patient, world.version, practitioner)
    page = week_page(client)
    assert page.computed
    assert 'data-testid="safe"' in page.card(world.unsigned)


def test_a_history_that_makes_the_patient_unsafe_flags_the_booking(
    client: Client, world: World, receptionist: User, practitioner: User
) -> None:
    sign_in(client, receptionist)
    assert 'data-testid="safe"' in kept(client).card(world.safe)
    make_history(world.c.patient, practitioner, pregnant=True)
    card = week_page(client).card(world.safe)
    assert 'data-testid="not-ready"' in card
    assert "practitioner" in card


def test_a_positive_reading_flags_the_booking(
    client: Client, world: World, receptionist: User, practitioner: User
) -> None:
    sign_in(client, receptionist)
    assert "allergy reading due" in kept(client).card(world.pending)
    with time_machine.travel(world.test.read_due_at + timedelta(minutes=5), tick=False):
        allergy_test_read(
            test=world.test, read_by=practitioner, result="positive", reaction="Weal, 9 mm"
        )
        client = sign_in(Client(), receptionist)  # a day later: signed out meanwhile
        card = week_page(client).card(world.pending)
    assert "cannot have this treatment" in card
    assert "allergy reading due" not in card


def test_moving_a_booking_moves_its_card(client: Client, world: World, receptionist: User) -> None:
    sign_in(client, receptionist)
    assert "10:00\N{EN DASH}10:45" in kept(client).card(world.safe)
    booking_move(
        booking=world.safe,
        starts_at=at(MONDAY, 14, 30),
        ends_at=at(MONDAY, 15, 15),
        practitioner=world.c.practitioner,
        room=world.c.room,
        moved_by=receptionist,
        expected_version=world.safe.version,
    )
    assert "14:30\N{EN DASH}15:15" in week_page(client).card(world.safe)


def test_withdrawing_consent_flags_the_booking(
    client: Client, world: World, receptionist: User, practitioner: User
) -> None:
    sign_in(client, receptionist)
    assert 'data-testid="safe"' in kept(client).card(world.safe)
    signed = SignedConsent.objects.get(patient=world.c.patient)
    consent_withdraw(signed=signed, reason="Changed her mind", recorded_by=practitioner)
    card = week_page(client).card(world.safe)
    assert 'data-testid="not-ready"' in card
    assert "consent" in card


def test_raw_sql_writes_count_too(client: Client, world: World, receptionist: User) -> None:
    """The triggers are the database's: a write Django never sees still counts."""
    sign_in(client, receptionist)
    assert "Amelia" in kept(client).card(world.safe)
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE patients_patient SET first_name = 'Zelda' WHERE id = %s", [world.c.patient.pk]
        )
    page = week_page(client)
    assert page.computed
    assert "Zelda" in page.card(world.safe)
    page = week_page(client)
    assert not page.computed
    assert 'data-testid="free-slot"' in page.rows
    # Working hours gone: no time is free to book.
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM treatments_workinghours")
    assert 'data-testid="free-slot"' not in week_page(client).rows


def test_the_version_cannot_be_set_back_to_one_already_used(world: World) -> None:
    before = facts_version()
    assert before is not None
    Room.objects.filter(pk=world.c.room.pk).update(name="Treatment room")
    after = facts_version()
    assert after not in (None, before)
    with connection.cursor() as cursor:
        cursor.execute("UPDATE clinic_factsversion SET token = %s::uuid", [before])
    assert facts_version() not in (None, before, after)


def test_a_transaction_that_wrote_sees_its_own_writes(
    client: Client, world: World, receptionist: User
) -> None:
    sign_in(client, receptionist)
    kept(client)
    with transaction.atomic():
        Patient.objects.filter(pk=world.c.patient.pk).update(first_name="Zoe")
        # Not committed: the version is still the kept one, but this
        # transaction must see its own change.
        assert facts_version() is None
        page = week_page(client)
        assert page.computed
        assert "Zoe" in page.card(world.safe)
    assert "Zoe" in week_page(client).card(world.safe)


def test_rows_computed_while_a_change_was_committed_are_not_kept(
    client: Client, world: World, receptionist: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rows kept under a version hold exactly that version's facts: a week
    computed while another change was committed (here, between reading the
    names and judging the week) is shown once and not kept, so no later
    state of the facts under that version (after a restore, say) shows it."""
    from treatments.views import calendar as calendar_views

    judge = calendar_views.week_readiness

    def judged_while_someone_writes(**kwargs: object) -> object:
        Patient.objects.filter(pk=world.c.patient.pk).update(first_name="Zara")  # committed
        return judge(**kwargs)  # type: ignore[arg-type]

    sign_in(client, receptionist)
    before = facts_version()
    assert before is not None
    monkeypatch.setattr(calendar_views, "week_readiness", judged_while_someone_writes)
    page = week_page(client)
    monkeypatch.undo()
    assert page.computed
    assert "Amelia" in page.card(world.safe)
    key = grid_key(
        version=before,
        view="week",
        first_day=MONDAY,
        practitioner=None,
        room=None,
        roles=[r.value for r in receptionist.roles],
    )
    assert grid_get(key, at=NOW) is None
    page = week_page(client)
    assert page.computed
    assert "Zara" in page.card(world.safe)
    assert not week_page(client).computed


# --- Who is looking, and with Redis out of reach ------------------------------------------


def test_each_role_gets_its_own_grid(
    client: Client, world: World, receptionist: User, manager: User
) -> None:
    sign_in(client, receptionist)
    assert 'draggable="true"' in kept(client).card(world.safe)
    other = Client()
    sign_in(other, manager)
    page = week_page(other)
    assert page.computed
    assert 'draggable="true"' not in page.rows
    assert 'data-testid="free-slot"' not in page.rows


def test_with_redis_out_of_reach_the_week_is_computed_and_current(
    client: Client, world: World, receptionist: User, practitioner: User, settings: object
) -> None:
    sign_in(client, receptionist)
    kept(client)
    settings.CACHES = DEAD_REDIS  # type: ignore[attr-defined]
    page = week_page(client)
    assert page.computed
    assert 'data-testid="safe"' in page.card(world.safe)
    make_history(world.c.patient, practitioner, pregnant=True)
    page = week_page(client)
    assert page.computed
    assert 'data-testid="not-ready"' in page.card(world.safe)


# --- Time ---------------------------------------------------------------------------------


def test_a_fact_stamped_later_counts_from_its_moment(
    client: Client, world: World, receptionist: User, practitioner: User
) -> None:
    """The week is judged on the facts recorded by now: a history stamped two
    hours ahead (a clock that was ahead) counts from then, written or not, and
    the kept week is dropped at that moment."""
    dana = PatientFactory(first_name="Dana")
    _sign(dana, world.version, practitioner)
    _negative_reading(dana, practitioner, world.ingredients)
    booking = book(
        patient=dana,
        practitioner=world.c.practitioner,
        room=world.c.room,
        protocol=world.c.protocol,
        starts_at=at(MONDAY + timedelta(days=3), 10),
    )
    ahead = NOW + timedelta(hours=2)
    with time_machine.travel(ahead, tick=False):
        make_history(dana, practitioner)
    sign_in(client, receptionist)
    assert "medical history needed" in kept(client).card(booking)
    with time_machine.travel(ahead - timedelta(seconds=1), tick=False):
        client = sign_in(Client(), receptionist)  # signed out meanwhile
        page = week_page(client)
    assert not page.computed
    assert "medical history needed" in page.card(booking)
    with time_machine.travel(ahead, tick=False):
        page = week_page(client)
    assert page.computed
    assert 'data-testid="safe"' in page.card(booking)


@pytest.mark.parametrize(
    "moment",
    [
        "reading due, a minute before",
        "reading due, a minute after",
        "booking started",
        "the next day",
    ],
)
def test_the_kept_week_is_what_the_page_computes_at_any_later_moment(
    client: Client, world: World, receptionist: User, settings: object, moment: str
) -> None:
    """Safe-to-treat judges each booking at its own start: neither a reading
    falling due, nor a booking starting, nor midnight changes a flag without
    a write. The kept week, read on either side of each, is the week the page
    computes then."""
    due = world.test.read_due_at
    when = {
        "reading due, a minute before": due - timedelta(minutes=1),
        "reading due, a minute after": due + timedelta(minutes=1),
        "booking started": world.safe.starts_at + timedelta(minutes=1),
        "the next day": NOW + timedelta(days=1),
    }[moment]
    sign_in(client, receptionist)
    kept(client)
    with time_machine.travel(when, tick=False):
        client = sign_in(Client(), receptionist)  # signed out meanwhile
        page = week_page(client)
        fresh = computed_now(client, settings)
    assert not page.computed
    assert page.rows == fresh.rows


# --- Queries --------------------------------------------------------------------------------


def test_the_week_runs_the_same_queries_whatever_its_bookings(
    client: Client, world: World, receptionist: User
) -> None:
    sign_in(client, receptionist)
    # Writes the session, the week remembered as the view chosen.
    client.get(CALENDAR, {"view": "week", "date": (MONDAY - timedelta(days=7)).isoformat()})
    computed_few = week_page(client)
    kept_few = week_page(client)
    for n in range(40):
        book(
            patient=PatientFactory(),
            practitioner=world.c.other_practitioner,
            room=world.c.other_room,
            protocol=world.c.protocol,
            starts_at=at(MONDAY + timedelta(days=n % 5), 9 + n // 5),
        )
    computed_many = week_page(client)
    kept_many = week_page(client)
    assert computed_few.computed
    assert computed_many.computed
    assert not kept_few.computed
    assert not kept_many.computed
    # 20: the clinic's settings (its name, validity windows, opening hours) once.
    assert computed_few.queries == computed_many.queries <= 20
    # Session, user, roles, two-factor device, the version, practitioners,
    # rooms, closures, the audit event, the clinic's settings (its name).
    assert kept_few.queries == kept_many.queries <= 10


# --- The triggers and the lock ------------------------------------------------------------


# The request's own tables (its session and two-factor device) and the version itself.
NOT_FACTS = {"django_session", "otp_totp_totpdevice", "clinic_factsversion"}


@pytest.mark.django_db(transaction=False)
def test_every_table_the_week_reads_changes_the_version(
    client: Client, clinic: Clinic, receptionist: User, practitioner: User
) -> None:
    """Whatever table the page reads to compute the week has the triggers
    that change the facts' version: a new loader reading a new table fails
    here until the clinic's migration covers it."""
    course = TreatmentCourse.objects.create(
        patient=clinic.patient,
        protocol=clinic.protocol,
        planned_sessions=6,
        interval="fortnightly",
        created_by=practitioner,
    )
    product = ProductFactory(ingredients=[IngredientFactory(name="Biotin")])
    ProtocolCocktailLine.objects.create(protocol=clinic.protocol, product=product, amount="1.00")
    book(
        patient=clinic.patient,
        practitioner=clinic.practitioner,
        room=clinic.room,
        protocol=clinic.protocol,
        starts_at=at(MONDAY, 10),
        course=course,
    )
    sign_in(client, receptionist)
    client.get(WEEK)
    with CaptureQueriesContext(connection) as queries:
        assert client.get(WEEK).status_code == 200
    read = set()
    for query in queries.captured_queries:
        read |= set(re.findall(r'(?:FROM|JOIN)\s+"?([a-z0-9_]+)"?', query["sql"]))
    tables = set(connection.introspection.table_names())
    read = (read & tables) - NOT_FACTS
    # Those the week's safe-to-treat and cards read, at least.
    assert {
        "treatments_booking",
        "patients_medicalhistory",
        "consent_signedconsent",
        "treatments_allergytest",
        "treatments_cocktailline",
        "treatments_workinghours",
        "treatments_clinicclosure",
    } <= read
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT c.relname, p.proname, t.tgtype, t.tgdeferrable, t.tginitdeferred
            FROM pg_trigger t
            JOIN pg_class c ON c.oid = t.tgrelid
            JOIN pg_proc p ON p.oid = t.tgfoid
            WHERE p.proname IN ('clinic_facts_changed', 'clinic_facts_truncated')
              AND t.tgenabled = 'O'
            """
        )
        triggers = cursor.fetchall()
    row, insert, delete, update, truncate = 1, 4, 8, 16, 32
    for table in sorted(read):
        events = 0
        for name, function, kind, deferrable, deferred in triggers:
            if name != table:
                continue
            if function == "clinic_facts_changed":
                # At commit, for every row: never before the rest of the transaction.
                assert kind & row, table
                assert deferrable, table
                assert deferred, table
            events |= kind
        assert events & (insert | delete | update | truncate) == (
            insert | delete | update | truncate
        ), f"{table} is read by the week but its changes do not change the facts' version"


def test_two_commits_waiting_on_each_other_never_deadlock_through_the_version(
    clinic: Clinic,
) -> None:
    """The version is taken last in every commit, after the transaction's
    deferred foreign-key checks. Here one transaction (A) changes a fact and
    adds a row whose key check waits, at A's commit, for a practitioner row
    that another transaction (B) holds locked while changing a fact too; B
    then commits. Were the version taken before A's key check, A would hold
    it while waiting for B, and B would wait for it at its own commit."""
    errors: list[BaseException] = []
    practitioner = clinic.practitioner

    def transaction_a() -> None:
        try:
            with transaction.atomic():
                Room.objects.filter(pk=clinic.room.pk).update(name="Room A")
                WorkingHours.objects.create(
                    practitioner_id=practitioner.pk, weekday=5, starts=time(9), ends=time(12)
                )
        except BaseException as error:  # reported below, never a hang
            errors.append(error)
        finally:
            connections.close_all()

    before, counted = facts_version(), _counter()
    with transaction.atomic():
        User.objects.select_for_update().get(pk=practitioner.pk)
        Room.objects.filter(pk=clinic.other_room.pk).update(name="Room B")
        thread = threading.Thread(target=transaction_a)
        thread.start()
        deadline = clock.monotonic() + 20
        waiting = 0
        while not waiting and clock.monotonic() < deadline:
            clock.sleep(0.05)
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT count(*) FROM pg_locks WHERE NOT granted AND pid <> pg_backend_pid()"
                )
                waiting = cursor.fetchone()[0]
        assert waiting, "A never waited for B's lock"
    thread.join(timeout=30)
    assert not thread.is_alive()
    assert errors == []
    assert Room.objects.get(pk=clinic.room.pk).name == "Room A"
    assert WorkingHours.objects.filter(practitioner=practitioner, weekday=5).exists()
    assert _counter() == counted + 2
    assert facts_version() != before


def _counter() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT version FROM clinic_factsversion")
        return int(cursor.fetchone()[0])


def test_a_transaction_changing_many_rows_changes_the_version_once(clinic: Clinic) -> None:
    before = _counter()
    with transaction.atomic():
        for n in range(5):
            Room.objects.create(name=f"Spare room {n}")
        Room.objects.update(active=True)
    assert _counter() == before + 1
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM clinic_factsversion_pending")
        assert cursor.fetchone()[0] == 0


def test_a_rolled_back_transaction_changes_nothing(clinic: Clinic) -> None:
    before = facts_version()
    with transaction.atomic():
        Room.objects.create(name="Never")
        transaction.set_rollback(True)
    assert facts_version() == before


@pytest.mark.django_db(transaction=False)
def test_no_service_and_no_gate_reads_the_cache() -> None:
    """The cache is for display: every write is judged by the gates afresh."""
    root = Path(__file__).resolve().parents[2]
    modules = [root / "treatments" / "gates.py"]
    for app in ("patients", "consent", "treatments"):
        modules += (root / app).glob("services*.py")
        modules += (root / app).glob("services/**/*.py")
    assert len(modules) > 5
    importing = re.compile(r"^\s*(from|import)\s+treatments\.selectors\.calendar_cache", re.M)
    assert [str(m) for m in modules if importing.search(m.read_text())] == []


def test_a_shorter_validity_in_the_clinics_settings_flags_the_week_at_once(
    client: Client, world: World, receptionist: User
) -> None:
    """The settings are facts: saving a shorter medical-history window gives
    the facts a new version, so the kept week is not shown with its old
    "ready to treat". The history was taken 30 days before Monday: with 30
    days valid, Monday's session is still safe and Tuesday's is not."""
    tuesday = book(
        patient=world.c.patient,
        practitioner=world.c.practitioner,
        room=world.c.room,
        protocol=world.c.protocol,
        starts_at=at(MONDAY + timedelta(days=1), 15),
    )
    sign_in(client, receptionist)
    page = kept(client)
    assert 'data-testid="safe"' in page.card(world.safe)
    assert 'data-testid="safe"' in page.card(tuesday)
    before = facts_version()
    settings_saved(medical_history_valid_days=30)
    assert facts_version() != before
    page = week_page(client)
    assert page.computed
    assert 'data-testid="safe"' in page.card(world.safe)
    card = page.card(tuesday)
    assert 'data-testid="not-ready"' in card
    assert "medical history" in card
