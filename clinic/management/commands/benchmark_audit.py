"""Measure the audit log, the manager's dashboard and the follow-up list at
300,000 and at 3,000,000 audit events, then leave no trace.

    python manage.py benchmark_audit

Inside one transaction, rolled back at the end: 20 staff, 50,000 patients,
30,000 courses, 200,000 bookings over four years with two reminders each
(400,000; one in 200 failed), then 300,000 audit events spread over the last
year (views of patients' records, changes, sign-ins, sign-outs, failed
sign-ins from known and unknown names), all written with INSERT ... SELECT
generate_series. It times each page through the test client, signed in as a
manager, beside the anchor (clinic/benchmarking.py), prints the plan of each
audit filter's query (EXPLAIN ANALYZE, BUFFERS), then adds 2,700,000 events over
the same year and does it all again. Afterwards it vacuums the tables it
wrote to, so the dead rows of the rollback do not slow the next run.

Run it on a database of its own (docs/benchmarks.md): it needs the rights to
create and roll back rows in every table it seeds.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser
from django.db import connection, transaction
from django.db.models import QuerySet
from django.test.utils import override_settings
from django.urls import reverse
from django.utils import timezone

from clinic.benchmarking import (
    TABLE_HEAD,
    Timings,
    anchors,
    benchmark_urls,
    load_average,
    signed_in_client,
    staff_member,
    time_request,
)
from clinic.models import AuditEvent, User
from clinic.roles import Role
from clinic.selectors import AuditCursor, audit_events_filtered, audit_events_older_than
from consent.models import ConsentForm
from treatments.models import AftercareSheet, Interval, Protocol, Reminder, Room
from treatments.selectors.reminders import FOLLOWUP_DAYS, LOG_LIMIT

PATIENTS = 50_000
COURSES = 30_000
BOOKINGS = 200_000
PRACTITIONERS = 12
SLOTS_A_DAY = 12  # 45-minute sessions from 08:00
STEPS = (300_000, 3_000_000)

# What a year of the trail is made of, per thousand events: reading records
# dominates (every patient page, every search), then changes, then sign-ins.
ACTION_MIX = (
    ("view", 700),
    ("create", 80),
    ("update", 80),
    ("download", 20),
    ("signed", 10),
    ("denied", 5),
    ("login", 50),
    ("logout", 45),
    ("login_failed", 5),
    ("2fa_enrolled", 1),
    ("published", 4),
)

TABLES = (
    "clinic_auditevent",
    "treatments_reminder",
    "treatments_booking",
    "treatments_treatmentcourse",
    "patients_patient",
)


class _RollbackError(Exception):
    pass


@dataclass
class _Clinic:
    tag: str
    manager: User
    staff: list[User]
    practitioners: list[User]
    rooms: list[int]
    protocol: Protocol
    now: datetime


class Command(BaseCommand):
    help = (
        "Time the audit log, the manager's dashboard and the follow-up list at 300,000 "
        "and 3,000,000 audit events (everything rolled back afterwards)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--repeat", type=int, default=10, help="timed requests per page")
        parser.add_argument(
            "--events",
            type=int,
            nargs="+",
            default=list(STEPS),
            help="the trail's sizes to measure at, smallest first",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        started = time.perf_counter()
        try:
            # A test client asks for "testserver" unless told otherwise.
            hosts = [*settings.ALLOWED_HOSTS, "testserver"]
            with benchmark_urls(), override_settings(ALLOWED_HOSTS=hosts), transaction.atomic():
                self._run(options["events"], options["repeat"])
                raise _RollbackError
        except _RollbackError:
            self.stdout.write("Rolled back: nothing the benchmark made is left.")
        if not connection.in_atomic_block:
            with connection.cursor() as cursor:
                for table in TABLES:
                    cursor.execute(f"VACUUM (ANALYZE) {table}")
            self.stdout.write(f"Vacuumed {', '.join(TABLES)}.")
        self.stdout.write(f"Total {time.perf_counter() - started:.0f} s.")

    # --- The clinic: staff, catalogue, patients, courses, bookings, reminders ---------

    def _clinic(self) -> _Clinic:
        tag = uuid.uuid4().hex[:8]
        manager = staff_member(f"audit-manager-{tag}", Role.MANAGER)
        practitioners = [
            staff_member(f"audit-practitioner{i}-{tag}", Role.PRACTITIONER)
            for i in range(PRACTITIONERS)
        ]
        receptionists = [
            staff_member(f"audit-reception{i}-{tag}", Role.RECEPTIONIST) for i in range(6)
        ]
        staff = [manager, staff_member(f"audit-manager2-{tag}", Role.MANAGER)]
        staff += practitioners + receptionists
        rooms = [Room.objects.create(name=f"Room {i} ({tag})").pk for i in range(PRACTITIONERS)]
        sheet = AftercareSheet.objects.create(
            title=f"Aftercare ({tag})",
            introduction="-",
            do_advice="-",
            avoid_advice="-",
            warning_signs="-",
        )
        form = ConsentForm.objects.create(title=f"Face mesotherapy ({tag})", created_by=manager)
        protocol = Protocol.objects.create(
            name=f"Face ({tag})",
            indication="-",
            default_areas=["face"],
            default_sessions=6,
            interval=Interval.FORTNIGHTLY,
            session_minutes=45,
            maintenance_months=6,
            consent_form=form,
            aftercare_sheet=sheet,
        )
        return _Clinic(tag, manager, staff, practitioners, rooms, protocol, timezone.now())

    def _seed_records(
        self,
        clinic: _Clinic,
        *,
        patients: int = PATIENTS,
        courses: int = COURSES,
        bookings: int = BOOKINGS,
    ) -> None:
        """Patients, courses, bookings and their reminders, in SQL: a register
        a decade old, four years of sessions (at the default sizes), the last
        two months ahead (a smaller calendar: its last half at most)."""
        started = time.perf_counter()
        practitioner_ids = [p.pk for p in clinic.practitioners]
        with connection.cursor() as cursor:
            cursor.execute(
                """
                CREATE TEMPORARY TABLE bench_patient ON COMMIT DROP AS
                WITH made AS (
                    INSERT INTO patients_patient (
                        uuid, first_name, last_name, date_of_birth, email, phone, address,
                        postcode, emergency_contact_name, emergency_contact_phone, gp_details,
                        reminder_channel, consents_to_messages, search_text, created_at,
                        updated_at, version)
                    SELECT gen_random_uuid(), 'Patient' || g, 'Audit' || %(tag)s || g,
                        DATE '1950-01-01' + (g * 7 %% 20000), 'p' || g || '@example.org',
                        '+4479' || lpad(g::text, 8, '0'), '', '', '', '', '',
                        CASE WHEN g %% 3 = 0 THEN 'sms' ELSE 'email' END, true,
                        'patient' || g || ' audit' || g, %(now)s - (g %% 3650) * interval '1 day',
                        %(now)s, 1
                    FROM generate_series(0, %(patients)s - 1) AS g
                    RETURNING id, uuid
                )
                SELECT row_number() OVER (ORDER BY id) - 1 AS n, id, uuid FROM made
                """,
                {"tag": clinic.tag, "now": clinic.now, "patients": patients},
            )
            cursor.execute("CREATE INDEX ON bench_patient (n)")
            self._lap("patients", started)
            # One course a patient for the first `courses` patients; one in a hundred running.
            cursor.execute(
                """
                CREATE TEMPORARY TABLE bench_course ON COMMIT DROP AS
                WITH made AS (
                    INSERT INTO treatments_treatmentcourse (
                        uuid, planned_sessions, interval, status, created_at, created_by_id,
                        patient_id, protocol_id)
                    SELECT gen_random_uuid(), 6, 'fortnightly',
                        CASE WHEN p.n %% 100 = 0 THEN 'active' ELSE 'completed' END,
                        %(now)s - (p.n %% 1400) * interval '1 day', %(by)s, p.id, %(protocol)s
                    FROM bench_patient p WHERE p.n < %(courses)s
                    RETURNING id, patient_id
                )
                SELECT id, patient_id FROM made
                """,
                {
                    "now": clinic.now,
                    "by": clinic.manager.pk,
                    "protocol": clinic.protocol.pk,
                    "courses": courses,
                },
            )
            cursor.execute("CREATE INDEX ON bench_course (patient_id)")
            self._lap("courses", started)
            # Booking i: practitioner and room i mod 12, slot i div 12 (12 a
            # day, 45 minutes from 08:00), so no two overlap; 60 days ahead of
            # now, the rest behind. Past ones completed, one in 12 cancelled,
            # one in 40 a no-show.
            days = bookings // (PRACTITIONERS * SLOTS_A_DAY)
            days_back = days - min(60, days // 2)
            # The slots above never overlap, so the three no-overlap
            # constraints (GiST, checked row by row, the most of the seeding
            # time; rebuilding them afterwards takes longer still) are set
            # aside for this run, within its transaction, which is rolled
            # back. No page measured here reads their indexes (the plans
            # printed say which indexes are read).
            cursor.execute(
                "SELECT conname FROM pg_constraint"
                " WHERE conrelid = 'treatments_booking'::regclass AND contype = 'x'"
            )
            for (name,) in cursor.fetchall():
                cursor.execute(f'ALTER TABLE treatments_booking DROP CONSTRAINT "{name}"')
            cursor.execute(
                """
                CREATE TEMPORARY TABLE bench_booking ON COMMIT DROP AS
                WITH slots AS (
                    SELECT g, p.id AS patient_id,
                        date_trunc('day', %(now)s::timestamptz)
                            + ((g / %(per_day)s) - %(days_back)s) * interval '1 day'
                            + interval '8 hours'
                            + ((g / %(prac)s) %% %(slots)s) * interval '45 minutes' AS starts_at,
                        (%(practitioners)s::bigint[])[1 + g %% %(prac)s] AS practitioner_id,
                        (%(rooms)s::bigint[])[1 + g %% %(prac)s] AS room_id
                    FROM generate_series(0, %(bookings)s - 1) AS g
                    JOIN bench_patient p ON p.n = (g::bigint * 7919) %% %(patients)s
                ), made AS (
                    INSERT INTO treatments_booking (
                        uuid, starts_at, ends_at, status, cancel_reason, created_at, updated_at,
                        created_by_id, patient_id, practitioner_id, protocol_id, room_id,
                        course_id, version)
                    SELECT gen_random_uuid(), s.starts_at, s.starts_at + interval '45 minutes',
                        CASE WHEN s.starts_at > %(now)s THEN 'booked'
                             WHEN s.g %% 12 = 5 THEN 'cancelled'
                             WHEN s.g %% 40 = 7 THEN 'no_show'
                             ELSE 'completed' END,
                        CASE WHEN s.starts_at <= %(now)s AND s.g %% 12 = 5
                             THEN 'Patient asked' ELSE '' END,
                        s.starts_at - interval '20 days', s.starts_at, %(by)s, s.patient_id,
                        s.practitioner_id, %(protocol)s, s.room_id, c.id, 1
                    FROM slots s LEFT JOIN bench_course c ON c.patient_id = s.patient_id
                    RETURNING id, patient_id, starts_at, status
                )
                SELECT * FROM made
                """,
                {
                    "now": clinic.now,
                    "per_day": PRACTITIONERS * SLOTS_A_DAY,
                    "days_back": days_back,
                    "prac": PRACTITIONERS,
                    "slots": SLOTS_A_DAY,
                    "practitioners": practitioner_ids,
                    "rooms": clinic.rooms,
                    "bookings": bookings,
                    "patients": patients,
                    "by": clinic.manager.pk,
                    "protocol": clinic.protocol.pk,
                },
            )
            self._lap("bookings", started)
            # Two reminders a booking (the day before, two hours before): sent
            # once due, one in 200 failed, cancelled with their booking.
            cursor.execute(
                """
                INSERT INTO treatments_reminder (
                    uuid, kind, channel, lead_minutes, slot_starts_at, intended_at, due_at,
                    status, attempts, last_attempt_at, sent_at, provider_message_id, error,
                    created_at, updated_at, booking_id, patient_id)
                SELECT gen_random_uuid(), 'session', CASE WHEN b.id %% 3 = 0 THEN 'sms'
                    ELSE 'email' END, lead.minutes, b.starts_at,
                    b.starts_at - lead.minutes * interval '1 minute',
                    b.starts_at - lead.minutes * interval '1 minute',
                    r.status, CASE WHEN r.status IN ('sent', 'failed') THEN 1 ELSE 0 END,
                    CASE WHEN r.status IN ('sent', 'failed') THEN r.due END,
                    CASE WHEN r.status = 'sent' THEN r.due END, '',
                    CASE WHEN r.status = 'failed' THEN 'mailbox unavailable' ELSE '' END,
                    b.starts_at - interval '20 days',
                    CASE WHEN r.status IN ('sent', 'failed') THEN r.due + interval '1 minute'
                         ELSE b.starts_at - interval '20 days' END,
                    b.id, b.patient_id
                FROM bench_booking b
                CROSS JOIN (VALUES (1440), (120)) AS lead (minutes)
                CROSS JOIN LATERAL (
                    SELECT b.starts_at - lead.minutes * interval '1 minute' AS due
                ) AS d
                CROSS JOIN LATERAL (
                    SELECT d.due,
                        CASE WHEN b.status = 'cancelled' THEN 'cancelled'
                             WHEN d.due > %(now)s THEN 'planned'
                             WHEN (b.id + lead.minutes) %% 200 = 0 THEN 'failed'
                             ELSE 'sent' END AS status
                ) AS r
                """,
                {"now": clinic.now},
            )
            reminders = cursor.rowcount
        took = time.perf_counter() - started
        self.stdout.write(
            f"Seeded {patients:,} patients, {min(courses, patients):,} courses, "
            f"{bookings:,} bookings and {reminders:,} reminders in {took:.1f} s."
        )

    def _lap(self, what: str, started: float) -> None:
        self.stdout.write(f"  {what} done at {time.perf_counter() - started:.1f} s")

    def _seed_events(self, clinic: _Clinic, first: int, last: int) -> None:
        """Events `first` to `last` - 1 of the year's trail, spread evenly over
        the year before now (so each step makes the same year busier)."""
        started = time.perf_counter()
        actions: list[str] = []
        for action, per_thousand in ACTION_MIX:
            actions += [action] * per_thousand
        staff_ids = [u.pk for u in clinic.staff]
        labels = [u.username for u in clinic.staff]
        roles = [",".join(sorted(r.value for r in u.roles)) for u in clinic.staff]
        with connection.cursor() as cursor:
            cursor.execute(
                """
                INSERT INTO clinic_auditevent (
                    at, actor_id, actor_label, roles, action, object_type, object_id,
                    patient_ref, changed_fields, ip, request_id)
                SELECT e.at,
                    CASE WHEN e.action = 'login_failed' AND e.g %% 3 = 0 THEN NULL
                         ELSE (%(staff)s::bigint[])[e.who] END,
                    CASE WHEN e.action = 'login_failed' AND e.g %% 3 = 0
                         THEN 'guess' || (e.g %% 97) ELSE (%(labels)s::text[])[e.who] END,
                    CASE WHEN e.action = 'login_failed' AND e.g %% 3 = 0 THEN ''
                         ELSE (%(roles)s::text[])[e.who] END,
                    e.action,
                    CASE WHEN e.action IN ('login', 'logout', '2fa_enrolled') THEN 'clinic.user'
                         WHEN e.action = 'login_failed' THEN 'auth'
                         WHEN e.action = 'published' THEN 'consent.consentformversion'
                         ELSE 'patients.patient' END,
                    CASE WHEN e.action IN ('login', 'logout', '2fa_enrolled', 'login_failed',
                                           'published') THEN ''
                         ELSE p.uuid::text END,
                    CASE WHEN e.action IN ('login', 'logout', '2fa_enrolled', 'login_failed',
                                           'published') THEN NULL
                         ELSE p.uuid END,
                    CASE WHEN e.action = 'update' THEN '["phone", "email"]'::jsonb
                         ELSE '[]'::jsonb END,
                    ('192.0.2.' || (1 + e.g %% 200))::inet,
                    substr(md5(e.g::text), 1, 16)
                FROM (
                    SELECT g,
                        %(now)s - interval '365 days'
                            + (g::float8 / %(total)s) * interval '365 days' AS at,
                        (%(actions)s::text[])[1 + (g * 7) %% 1000] AS action,
                        1 + (g * 13) %% %(n_staff)s AS who
                    FROM generate_series(%(first)s::bigint, %(last)s::bigint - 1) AS g
                ) AS e
                JOIN bench_patient p ON p.n = (e.g::bigint * 104729) %% %(patients)s
                """,
                {
                    "staff": staff_ids,
                    "labels": labels,
                    "roles": roles,
                    "now": clinic.now - timedelta(minutes=1),
                    # Each step's events interleave with the earlier ones.
                    "total": last - first,
                    "actions": actions,
                    "n_staff": len(staff_ids),
                    "first": 0,
                    "last": last - first,
                    "patients": PATIENTS,
                },
            )
            cursor.execute("ANALYZE clinic_auditevent")
        self.stdout.write(
            f"Added {last - first:,} audit events in {time.perf_counter() - started:.1f} s."
        )

    # --- Measuring ---------------------------------------------------------------------

    def _run(self, steps: list[int], repeat: int) -> None:
        clinic = self._clinic()
        self._seed_records(clinic)
        with connection.cursor() as cursor:
            for table in TABLES[1:]:
                cursor.execute(f"ANALYZE {table}")
            cursor.execute("SHOW server_version")
            version = cursor.fetchone()[0]
        self.stdout.write(f"PostgreSQL {version}")
        made = 0
        for step in steps:
            self._seed_events(clinic, made, step)
            made = step
            self._measure(clinic, step, repeat)

    def _measure(self, clinic: _Clinic, events: int, repeat: int) -> None:
        client = signed_in_client(clinic.manager)
        # The manager signed in before (the dashboard's "previous sign-in").
        practitioner = clinic.practitioners[3].username
        patient = (
            AuditEvent.objects.filter(patient_ref__isnull=False)
            .order_by("-at", "-id")
            .values_list("patient_ref", flat=True)
            .first()
        )
        day = timezone.localdate(clinic.now)
        middle = AuditEvent.objects.filter(at__lt=clinic.now - timedelta(days=182)).first()
        assert middle is not None
        deep = AuditCursor.of(middle).token()
        audit = reverse("audit_log")
        pages: list[tuple[str, str]] = [
            ("manager's dashboard", reverse("home")),
            ("audit log, first page", audit),
            ("audit log, action: failed sign-ins", f"{audit}?action=login_failed"),
            ("audit log, action: changed", f"{audit}?action=update"),
            ("audit log, user (a practitioner)", f"{audit}?user={practitioner}"),
            ("audit log, patient", f"{audit}?patient={patient}"),
            (
                "audit log, a week (date range)",
                f"{audit}?since={day - timedelta(days=100)}&until={day - timedelta(days=94)}",
            ),
            ("audit log, six months deep (cursor)", f"{audit}?before={deep}"),
            (
                "audit log, user six months deep",
                f"{audit}?user={practitioner}&before={deep}",
            ),
            ("audit log, page=999999999 (first page)", f"{audit}?page=999999999"),
            ("follow-up list", reverse("treatments:reminder_followups")),
        ]
        failed = Reminder.objects.filter(
            status="failed", updated_at__gte=clinic.now - timedelta(days=FOLLOWUP_DAYS)
        ).count()
        inside, outside = anchors(client, repeat=repeat * 2)
        rows = [inside.row("anchor, signed in"), outside.row("anchor, signed out")]
        for label, url in pages:
            timings: Timings = time_request(client, url, repeat=repeat)
            rows.append(timings.row(label, inside))
        refused = time_request(client, f"{audit}?per_page=100000", repeat=repeat, expect=400)
        rows.append(refused.row("audit log, per_page=100000 (400)", inside))
        self.stdout.write(
            f"\n### {events:,} audit events ({failed} failed reminders in the last "
            f"{FOLLOWUP_DAYS} days shown, at most {LOG_LIMIT}); load average "
            f"{load_average()}\n"
        )
        self.stdout.write(TABLE_HEAD)
        for row in rows:
            self.stdout.write(row)
        self.stdout.write(f"\nload average after: {load_average()}\n")
        self._plans(practitioner, patient, day, AuditCursor.of(middle))

    def _plans(self, user: str, patient: Any, day: Any, deep: AuditCursor) -> None:
        """The plan of each audit filter's page query, as the page runs it."""
        queries: list[tuple[str, QuerySet[Any]]] = [
            ("first page", audit_events_filtered()[:51]),
            ("action=login_failed", audit_events_filtered(action="login_failed")[:51]),
            ("action=update", audit_events_filtered(action="update")[:51]),
            ("user", audit_events_filtered(user=user)[:51]),
            ("patient", audit_events_filtered(patient=patient)[:51]),
            (
                "date range",
                audit_events_filtered(
                    since=day - timedelta(days=100), until=day - timedelta(days=94)
                )[:51],
            ),
            ("deep page (cursor)", audit_events_older_than(audit_events_filtered(), deep)[:51]),
            (
                "user, deep page",
                audit_events_older_than(audit_events_filtered(user=user), deep)[:51],
            ),
            (
                "dashboard: recent failed sign-ins",
                AuditEvent.objects.filter(action="login_failed").order_by("-at", "-id")[:5],
            ),
            (
                "follow-up list, courses to book",
                _courses_to_book_query(),
            ),
            (
                "follow-up list, failed reminders",
                Reminder.objects.filter(
                    status="failed",
                    updated_at__gte=timezone.now() - timedelta(days=FOLLOWUP_DAYS),
                ).order_by("-due_at", "-id")[:LOG_LIMIT],
            ),
        ]
        self.stdout.write("Plans (EXPLAIN ANALYZE, BUFFERS):\n")
        for label, queryset in queries:
            self.stdout.write(f"- {label}: {_plan_summary(queryset)}")
        self.stdout.write("")


def _courses_to_book_query() -> QuerySet[Any]:
    """The query `courses_to_book` runs (it returns rows, not its queryset)."""
    from django.test.utils import CaptureQueriesContext

    from treatments.selectors.reminders import courses_to_book

    with CaptureQueriesContext(connection) as captured:
        courses_to_book()
    return captured.captured_queries[-1]["sql"]  # type: ignore[return-value]


def _plan_summary(queryset: QuerySet[Any]) -> str:
    """The plan's nodes, outermost first, with the index each reads, the
    rows it returned, shared buffers hit/read and the execution time."""
    if isinstance(queryset, str):
        sql, params = queryset, ()
    else:
        sql, params = queryset.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {sql}", params)
        result = cursor.fetchone()[0]
    if isinstance(result, str):
        result = json.loads(result)
    top = result[0]
    nodes: list[str] = []

    def walk(node: dict[str, Any]) -> None:
        name = node["Node Type"]
        if "Index Name" in node:
            name += f" using {node['Index Name']}"
        nodes.append(f"{name} ({node.get('Actual Rows', '?')} rows)")
        for child in node.get("Plans", []):
            walk(child)

    walk(top["Plan"])
    plan = top["Plan"]
    return (
        " > ".join(nodes)
        + f"; buffers hit {plan.get('Shared Hit Blocks', 0)} read "
        + f"{plan.get('Shared Read Blocks', 0)}; {top['Execution Time']:.2f} ms"
    )
