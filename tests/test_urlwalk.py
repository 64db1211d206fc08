"""Walk every URL pattern as anonymous and as each role (deny by default).

Every route must declare its audience (clinic.access). This test fails on an
undeclared route, checks each persona gets exactly what its role allows, and
that every response carries the security headers. Feature issues extend
SAMPLE_KWARGS and the expectations, never skip a route.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from clinic.access import Access, access_of
from clinic.models import User
from tests.conftest import frozen_at, sign_in

# Values for the path parameters routes take. A new parameter name fails the
# walk until a sample is added here.
SAMPLE_KWARGS: dict[str, str] = {
    "uidb64": "MQ",
    "token": "set-password",
    "app_label": "clinic",
    "model_name": "user",
    # An id no sequence reaches in a test run: the objects the admin pages
    # open are made with it (sample_objects), whatever ran before.
    "object_id": "987654",
    "pk": "987654",
    "id": "987654",
    "content_type_id": "1",
    "url": "missing",
    "patient": "00000000-0000-4000-8000-000000000001",
    "photo": "00000000-0000-4000-8000-000000000002",
    # consent
    "form": "00000000-0000-4000-8000-000000000010",
    "version": "00000000-0000-4000-8000-000000000011",
    "signed": "00000000-0000-4000-8000-000000000012",
    # catalogue
    "ingredient": "00000000-0000-4000-8000-000000000020",
    "product": "00000000-0000-4000-8000-000000000021",
    "batch": "00000000-0000-4000-8000-000000000022",
    "protocol": "00000000-0000-4000-8000-000000000023",
    "sheet": "00000000-0000-4000-8000-000000000024",
    # allergy tests
    "test": "00000000-0000-4000-8000-000000000030",
    # calendar and courses
    "room": "00000000-0000-4000-8000-000000000040",
    "booking": "00000000-0000-4000-8000-000000000041",
    "course": "00000000-0000-4000-8000-000000000042",
    "closure": "00000000-0000-4000-8000-000000000043",
    # session records
    "session": "00000000-0000-4000-8000-000000000050",
    # reminders, documents and the portal
    "reminder": "00000000-0000-4000-8000-000000000060",
    "document": "00000000-0000-4000-8000-000000000061",
    # staff
    "member": "00000000-0000-4000-8000-000000000070",
    # subject-access exports (tests/treatments/samples_data_rights.py)
    "export": "00000000-0000-4000-8000-000000000090",
    # patient import (tests/patients/samples_import.py)
    "job": "00000000-0000-4000-8000-000000000080",
    "row": "0",
}

# Tables a GET may write to: the session (idle timer), the audit trail
# (reads and refusals are recorded) and the sign-in throttle.
GET_WRITABLE_TABLES = ("django_session", "clinic_auditevent", "axes_")


@dataclass(frozen=True)
class Route:
    name: str
    url: str
    access: Access


def _walk(resolver: URLResolver, namespace: str = "") -> Iterator[tuple[str, URLPattern]]:
    for entry in resolver.url_patterns:
        if isinstance(entry, URLResolver):
            ns = entry.namespace or ""
            prefix = f"{namespace}{ns}:" if ns else namespace
            yield from _walk(entry, prefix)
        elif entry.name:
            yield f"{namespace}{entry.name}", entry


def all_routes() -> list[Route]:
    resolver = get_resolver()
    routes: dict[str, Route] = {}
    for name, pattern in _walk(resolver):
        if name in routes:
            continue
        access = access_of(pattern.callback)
        if access is None and name.startswith("admin:"):
            access = Access("admin")
        if access is None:
            raise AssertionError(f"Route {name!r} declares no audience (see clinic.access)")
        kwargs = {}
        for group in pattern.pattern.regex.groupindex:
            if group not in SAMPLE_KWARGS:
                raise AssertionError(f"Route {name!r}: add a sample for parameter {group!r}")
            kwargs[group] = SAMPLE_KWARGS[group]
        routes[name] = Route(name, reverse(name, kwargs=kwargs), access)
    return list(routes.values())


ROUTES = all_routes()
PERSONAS = ["anonymous", "receptionist", "practitioner", "manager", "superuser"]
# The walk starts on a Tuesday morning in London, whatever the wall clock says.
NOW = datetime(2026, 11, 24, 10, 0, tzinfo=ZoneInfo("Europe/London"))
frozen = frozen_at(NOW, tick=True)

# What a GET answers one the route is open to, with the sample objects: 200
# unless named here. Refusals are 403 for staff, and the sign-in page for
# strangers.
ALLOWED_GET_STATUS: dict[str, int] = {
    "healthz": 503,  # a part is down: no worker runs in the tests
    "logout": 405,  # a POST only
    "two_factor_setup": 302,  # the sample staff already have a confirmed device
    "admin:login": 302,  # the admin's sign-in forwards to ours
    "admin:logout": 405,
    "admin:autocomplete": 403,  # the admin's own check: no search fields asked for
    "admin:view_on_site": 404,  # content type 1 has no object of the sample id
    # The admin shows the sign-in records and devices; nobody adds them by hand.
    "admin:axes_accessattempt_add": 403,
    "admin:axes_accesslog_add": 403,
    "admin:axes_accessfailurelog_add": 403,
    "admin:otp_totp_totpdevice_add": 403,
    "patients:photo_compare": 302,  # two photos to compare not chosen: to the photos
    "patients:photo_file": 404,  # the sample photo id names no photo
    "consent:signed_pdf": 404,  # the signed consent's PDF is not made yet
    "treatments:allergy_test_photo": 404,  # the sample test has no photo
    "staff_join": 400,  # the sample token is no invitation link
    # POST only:
    "consent:version_publish": 405,
    "consent:withdraw": 405,
    "consent:pdf_retry": 405,
    "treatments:batch_recall": 405,
    "treatments:allergy_test_read": 405,
    "treatments:booking_cancel": 405,
    "treatments:booking_mark": 405,
    "treatments:hours_clear": 405,
    "treatments:closure_remove": 405,
    "treatments:session_amend": 405,
    "treatments:adverse_event_new": 405,
    "treatments:adverse_event_follow_up": 405,
    "treatments:document_send": 405,
    "treatments:document_revoke": 405,
    "treatments:document_regenerate": 405,
    "treatments:portal_invite": 405,
    "treatments:patient_merge": 405,
    "treatments:subject_access_create": 405,
    "treatments:erasure_create": 405,
}
# Where who is signed in gets another answer than a stranger.
SIGNED_IN_GET_STATUS: dict[str, int] = {"login": 302}  # already signed in: to the dashboard


def test_every_route_declares_its_audience() -> None:
    # all_routes() raises on an undeclared route; this names the count walked.
    assert len(ROUTES) > 10


@pytest.fixture(autouse=True)
def sample_objects(db: None, frozen: None) -> None:
    """The objects SAMPLE_KWARGS name, so allowed personas see real pages."""
    from tests.consent.samples import create_samples as consent_samples
    from tests.factories import PatientFactory
    from tests.patients.samples_import import create_samples as import_samples
    from tests.treatments.samples_allergy import create_samples as allergy_samples
    from tests.treatments.samples_booking import create_samples as booking_samples
    from tests.treatments.samples_catalogue import create_samples as catalogue_samples
    from tests.treatments.samples_data_rights import create_samples as data_rights_samples
    from tests.treatments.samples_portal import create_samples as portal_samples
    from tests.treatments.samples_reminders import create_samples as reminder_samples
    from tests.treatments.samples_session import create_samples as session_samples

    _admin_samples(int(SAMPLE_KWARGS["object_id"]))
    _staff_samples()
    PatientFactory(uuid=SAMPLE_KWARGS["patient"])
    consent_samples(SAMPLE_KWARGS)
    catalogue_samples(SAMPLE_KWARGS)
    allergy_samples(SAMPLE_KWARGS)
    booking_samples(SAMPLE_KWARGS)
    session_samples(SAMPLE_KWARGS)
    reminder_samples(SAMPLE_KWARGS)
    portal_samples(SAMPLE_KWARGS)
    data_rights_samples(SAMPLE_KWARGS)
    import_samples(SAMPLE_KWARGS)


def _staff_samples() -> None:
    """A member of staff, for their page on the staff pages."""
    from clinic.roles import Role
    from tests.factories import UserFactory

    UserFactory(uuid=SAMPLE_KWARGS["member"], username="sample-member", roles=[Role.RECEPTIONIST])


def _admin_samples(pk: int) -> None:
    """One object of each model the admin opens by id, with that id."""
    from axes.models import AccessAttempt, AccessFailureLog, AccessLog
    from django.contrib.auth.models import Group

    from tests.factories import TOTPDeviceFactory, UserFactory

    user = UserFactory(pk=pk, username="sample-admin-user")
    TOTPDeviceFactory(pk=pk, user=user)
    Group.objects.create(pk=pk, name="Sample group")
    seen = {"user_agent": "walk", "ip_address": "127.0.0.1", "username": "sample-admin-user"}
    where = {"http_accept": "text/html", "path_info": "/accounts/login/"}
    AccessLog.objects.create(pk=pk, **seen, **where)
    AccessFailureLog.objects.create(pk=pk, **seen, **where)
    AccessAttempt.objects.create(
        pk=pk, **seen, **where, get_data="", post_data="", failures_since_start=1
    )


def _client_for(persona: str, request: pytest.FixtureRequest) -> tuple[Client, User | None]:
    client = Client()
    if persona == "anonymous":
        return client, None
    user = request.getfixturevalue(persona)
    return sign_in(client, user), user


def _allowed(access: Access, user: User | None) -> bool:
    if user is None:
        return access.kind == "public"
    return access.allows(user)


@pytest.mark.django_db
@pytest.mark.parametrize("persona", PERSONAS)
def test_each_persona_gets_what_its_role_allows(
    persona: str, request: pytest.FixtureRequest
) -> None:
    client, user = _client_for(persona, request)
    failures = []
    for route in ROUTES:
        with CaptureQueriesContext(connection) as queries:
            response = client.get(route.url)
        status = response.status_code
        # 503 is /healthz saying a part is down (no worker runs here); 500 is a bug.
        if status >= 500 and (route.name, status) != ("healthz", 503):
            failures.append(f"{route.name}: {status}")
            continue
        if _allowed(route.access, user):
            expected = ALLOWED_GET_STATUS.get(route.name, 200)
            if user is not None:
                expected = SIGNED_IN_GET_STATUS.get(route.name, expected)
            if status != expected:
                failures.append(f"{route.name}: {persona} got {status}, expected {expected}")
        elif user is None:
            location = response.get("Location", "")
            # The admin sends strangers to its login, which forwards to ours.
            logins = (reverse("login"), reverse("admin:login"))
            if not (status == 302 and location.startswith(logins)):
                failures.append(f"{route.name}: anonymous got {status} {location}")
        elif status != 403:
            failures.append(f"{route.name}: {persona} got {status}, expected 403")
        # Security headers on every response, whoever asks.
        csp = response.get("Content-Security-Policy", "")
        if "default-src 'self'" not in csp or "frame-ancestors 'none'" not in csp:
            failures.append(f"{route.name}: CSP missing or weak: {csp!r}")
        if "no-store" not in response.get("Cache-Control", ""):
            failures.append(f"{route.name}: Cache-Control lacks no-store")
        if response.get("X-Content-Type-Options") != "nosniff":
            failures.append(f"{route.name}: no nosniff header")
        # A GET changes nothing but the session, the audit trail and the throttle.
        for query in queries.captured_queries:
            sql = query["sql"].lstrip().upper()
            if sql.startswith(("INSERT", "UPDATE", "DELETE")) and not any(
                f'"{t}'.upper() in sql for t in GET_WRITABLE_TABLES
            ):
                failures.append(f"{route.name}: GET wrote: {query['sql'][:80]}")
    assert not failures, "\n".join(failures)


@pytest.mark.django_db
@pytest.mark.parametrize("persona", ["receptionist", "practitioner", "manager"])
def test_refused_routes_are_recorded_in_the_audit_trail(
    persona: str, request: pytest.FixtureRequest
) -> None:
    from clinic.models import AuditAction, AuditEvent

    client, user = _client_for(persona, request)
    assert user is not None
    refused = [r for r in ROUTES if r.access.kind == "staff" and not _allowed(r.access, user)]
    assert refused, f"{persona} is refused no route: nothing walked"
    for route in refused:
        client.get(route.url)
    # One refusal a route, in the order walked, naming the route and who asked.
    recorded = AuditEvent.objects.filter(action=AuditAction.DENIED).order_by("id")
    assert [(e.actor_id, e.actor_label, e.roles, e.object_type, e.object_id) for e in recorded] == [
        (user.pk, user.username, persona, "route", r.name) for r in refused
    ]


def test_route_matrix_is_printable() -> None:
    """The role-by-route matrix, for review (pytest -s shows it)."""
    lines = [
        f"{r.name:<40} {r.access.describe()}" for r in ROUTES if not r.name.startswith("admin:")
    ]
    print("\n".join(lines))
    assert any("staff: manager" in line for line in lines)


def _rows() -> dict[str, str]:
    """A digest of every row of the clinic's own tables, all columns, in one
    query: table by table, each row as PostgreSQL prints it, in order. All but
    the audit trail, which the walk reads on its own."""
    from django.apps import apps

    from clinic.models import AuditEvent

    tables = [
        model._meta.db_table
        for app in ("clinic", "patients", "consent", "treatments")
        for model in apps.get_app_config(app).get_models()
        if model is not AuditEvent and model._meta.managed
    ]
    quote = connection.ops.quote_name
    # The models' own table names, quoted.
    digest = "SELECT %s, md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM "
    sql = " UNION ALL ".join(f"{digest}{quote(table)} t" for table in tables)
    with connection.cursor() as cursor:
        cursor.execute(sql, tables)
        return dict(cursor.fetchall())


def _changes(before: dict[str, str], after: dict[str, str]) -> list[str]:
    """The tables whose rows differ."""
    return sorted(table for table, digest in after.items() if digest != before[table])


# What a post answers one the route is open to: (an empty post, a hostile one
# naming the sample patient and forged ids), with the URL naming another
# patient where the route takes one. 405 (no POST) unless named here.
ALLOWED_POST_STATUS: dict[str, tuple[int, int]] = {
    # A subject-access export is made (the record named by the URL); an
    # erasure request without its date and confirmation is said on the page.
    "treatments:subject_access_create": (302, 302),
    "treatments:erasure_create": (400, 400),
    "logout": (302, 302),
    "password_change": (200, 200),  # the form again, with its messages
    "password_reset": (200, 200),  # no address given: the form again
    "password_reset_confirm": (200, 200),  # an unknown link: said on the page
    "two_factor": (200, 200),  # no code: the prompt again
    "two_factor_setup": (302, 302),  # already confirmed: nothing to set up
    "sign_in_locks": (400, 400),  # no lock named: said on the page
    "account": (400, 400),  # nothing asked for: said on the page
    "step_up": (400, 400),  # no password typed: said on the form
    "staff_list": (400, 400),  # no invitation named: said on the page
    "staff_member": (400, 400),  # no change named: said on the page
    "staff_join": (400, 400),  # the sample token is no invitation link
    "staff_invite": (200, 200),  # the form again, with its messages
    # The clinic's settings: an empty or forged post is the form again with
    # its messages (400), nothing saved; the history takes no post.
    "clinic_settings": (400, 400),
    # The patient import: no file, no action or another manager's import: said on the page.
    "patients:import_list": (400, 400),
    "patients:import_detail": (400, 400),
    "patients:import_columns": (400, 400),
    "patients:import_row": (400, 400),
    "treatments:hours_clear": (302, 302),  # no weekday named: back to the hours
    "treatments:portal_invite": (302, 302),  # the other patient is invited
    # Forms: an empty post is the form again (200), a forged one a 400.
    "patients:create": (200, 400),
    "patients:edit": (200, 400),
    "patients:history_new": (200, 400),
    "patients:consultation_new": (200, 400),
    "consent:form_create": (200, 400),
    "consent:draft_edit": (200, 400),
    "consent:sign": (200, 400),
    "treatments:ingredient_create": (200, 400),
    "treatments:ingredient_edit": (200, 400),
    "treatments:product_create": (200, 400),
    "treatments:product_edit": (200, 400),
    "treatments:batch_create": (200, 400),
    "treatments:protocol_create": (200, 400),
    "treatments:protocol_edit": (200, 400),
    "treatments:sheet_create": (200, 400),
    "treatments:sheet_edit": (200, 400),
    "treatments:allergy_test_new": (200, 400),
    "treatments:room_new": (200, 400),
    "treatments:room_edit": (200, 400),
    "treatments:closure_list": (200, 400),
    "treatments:closure_edit": (200, 400),
    # Actions: refused with a message.
    "patients:photos": (400, 400),
    "consent:version_publish": (400, 400),
    "treatments:batch_recall": (400, 400),
    "treatments:booking_new": (400, 400),
    "treatments:booking_move": (400, 400),
    "treatments:booking_cancel": (400, 400),
    "treatments:booking_mark": (400, 400),
    "treatments:course_new": (400, 400),
    "treatments:hours_edit": (400, 400),
    "treatments:closure_remove": (400, 400),
    "treatments:session_record": (400, 400),
    "treatments:session_amend": (400, 400),
    "treatments:adverse_event_new": (400, 400),
    "treatments:adverse_event_follow_up": (400, 400),
    "treatments:patient_merge": (400, 400),
    "treatments:portal_request": (400, 400),
    # The sample's id does not belong to the other patient in the URL, or
    # names nothing of its kind.
    "consent:withdraw": (404, 404),
    "consent:pdf_retry": (404, 404),
    "treatments:allergy_test_read": (404, 404),
    "treatments:document_send": (404, 404),
    "treatments:document_revoke": (404, 404),
    "treatments:document_regenerate": (404, 404),
    "treatments:link_open": (404, 404),
    "treatments:portal_login": (404, 404),
}
SIGNED_IN_POST_STATUS: dict[str, tuple[int, int]] = {"login": (302, 302)}
# A refused try at a link or a portal sign-in is itself counted: the tries'
# log is the one table these posts write to when they answer 404.
POST_COUNTS_TRIES: dict[str, list[str]] = {
    "treatments:link_open": ["treatments_linkattempt"],
    "treatments:portal_login": ["treatments_linkattempt"],
}
ANONYMOUS_POST_STATUS: dict[str, tuple[int, int]] = {"login": (200, 200)}


@pytest.mark.django_db
@pytest.mark.parametrize("persona", PERSONAS)
def test_posting_to_every_route_never_errors_and_refusals_change_nothing(
    persona: str, request: pytest.FixtureRequest
) -> None:
    """Empty and hostile posts, with another patient's identifiers where a route
    takes them, each from a fresh sign-in (a post to sign out ends only its
    own): exactly the answer expected; a refused post, or one answered 4xx,
    changes no row, and a refusal of staff is recorded once, naming the route."""
    from clinic.models import AuditAction, AuditEvent
    from tests.factories import PatientFactory

    other = PatientFactory()
    failures = []
    for route in ROUTES:
        if route.name.startswith("admin:"):
            continue
        url = route.url.replace(SAMPLE_KWARGS["patient"], str(other.uuid))
        for index, data in enumerate(
            ({}, {"patient": SAMPLE_KWARGS["patient"], "uuid": "1", "created_by": "1"})
        ):
            client, user = _client_for(persona, request)
            allowed = _allowed(route.access, user)
            last_event = AuditEvent.objects.order_by("-id").values_list("id", flat=True).first()
            before = _rows()
            response = client.post(url, data)
            status = response.status_code
            if allowed:
                table = ANONYMOUS_POST_STATUS if user is None else SIGNED_IN_POST_STATUS
                expected = table.get(route.name, ALLOWED_POST_STATUS.get(route.name, (405, 405)))
                wanted = expected[index]
            else:
                wanted = 302 if user is None else 403
            if status != wanted:
                failures.append(f"{route.name} (post {index}): {status}, expected {wanted}")
                continue
            if user is None and not allowed:
                location = response.get("Location", "")
                if not location.startswith(reverse("login")):
                    failures.append(f"{route.name}: anonymous sent to {location!r}")
            if not allowed or status >= 400:
                changed = _changes(before, _rows())
                if changed != POST_COUNTS_TRIES.get(route.name, []):
                    failures.append(f"{route.name} (post {index}, {status}) changed {changed}")
            if not allowed:
                events = AuditEvent.objects.filter(id__gt=last_event or 0).order_by("id")
                seen = [(e.actor_id, e.action, e.object_type, e.object_id) for e in events]
                owed = [] if user is None else [(user.pk, AuditAction.DENIED, "route", route.name)]
                if seen != owed:
                    failures.append(f"{route.name}: refusal recorded as {seen}, expected {owed}")
    assert not failures, "\n".join(failures)


# --- Reads of a patient's record are recorded (SEC-16) ------------------------------------

# Every route that shows a patient's record or clinical data by GET, with who
# opens it in the walk and the query string it needs. Each must record at
# least one read against the sample patient, by that user.
PATIENT_READS: dict[str, tuple[str, str]] = {
    "patients:detail": ("practitioner", ""),
    "patients:edit": ("receptionist", ""),
    "patients:history": ("practitioner", ""),
    "patients:history_new": ("practitioner", ""),
    "patients:access_history": ("manager", ""),
    "patients:consultations": ("practitioner", ""),
    "patients:photos": ("practitioner", ""),
    "patients:photo_compare": ("practitioner", "compare"),
    "patients:photo_file": ("practitioner", ""),
    "consent:patient_consents": ("practitioner", ""),
    "consent:sign": ("practitioner", ""),
    "consent:signed_detail": ("practitioner", ""),
    "consent:signature_image": ("practitioner", ""),
    "consent:signed_pdf": ("practitioner", ""),
    "treatments:batch_detail": ("manager", ""),
    "treatments:batch_recall_csv": ("manager", ""),
    "treatments:tasks": ("practitioner", ""),
    "treatments:allergy_tests": ("practitioner", ""),
    "treatments:allergy_test_detail": ("practitioner", ""),
    "treatments:allergy_test_photo": ("practitioner", ""),
    "treatments:patient_treatment_panel": ("receptionist", ""),
    "treatments:patient_timeline": ("practitioner", ""),
    "treatments:booking_detail": ("receptionist", ""),
    "treatments:booking_check": ("receptionist", "check"),
    "treatments:course_detail": ("receptionist", ""),
    "treatments:session_record": ("practitioner", ""),
    "treatments:reminder_log": ("receptionist", ""),
    "treatments:document_download": ("practitioner", ""),
    "treatments:data_rights": ("practitioner", ""),
    "treatments:subject_access_download": ("practitioner", ""),
    "treatments:portal_home": ("portal", ""),
    "treatments:portal_document": ("portal", ""),
    "treatments:portal_consent": ("portal", ""),
    "treatments:patient_merge_compare": ("practitioner", ""),
}

# Every other route, and why it records no read of a patient.
NOT_PATIENT_READS: dict[str, str] = {
    "home": "the dashboard: counts and links",
    "healthz": "the health check: no data",
    "login": "sign-in",
    "logout": "sign-out",
    "password_change": "one's own password",
    "password_change_done": "one's own password",
    "password_reset": "sign-in help",
    "password_reset_done": "sign-in help",
    "password_reset_confirm": "sign-in help",
    "password_reset_complete": "sign-in help",
    "two_factor": "sign-in",
    "two_factor_setup": "sign-in",
    "audit_log": "the audit trail itself: who did what, by reference",
    "sign_in_locks": "sign-in locks: account names and addresses, no patient",
    "account": "one's own account",
    "step_up": "confirming one's own password",
    "staff_list": "the staff: names, roles and sign-ins, no patient",
    "staff_invite": "an empty invitation form",
    "staff_member": "a member of staff: no patient",
    "staff_join": "joining the staff",
    "clinic_settings": "the clinic's settings: hours, reminders, retention; no patient",
    "clinic_settings_history": "earlier versions of the clinic's settings: no patient",
    # A file's rows before they are patients; a possible duplicate is named
    # (name and birth date, as registration's warning does), never opened.
    "patients:import_list": "the imports: file names and counts",
    "patients:import_detail": "an import's rows, not yet in the register",
    "patients:import_columns": "an import's columns and first rows",
    "patients:import_row": "one row of an import, not yet a patient",
    "patients:import_progress": "an import's progress: counts",
    "patients:list": "the register: names and birth dates, no clinical data",
    "patients:create": "an empty registration form",
    "patients:consultation_new": "an empty form under the patient's name",
    "consent:form_list": "consent forms: no patient",
    "consent:form_create": "consent forms: no patient",
    "consent:form_detail": "consent forms: no patient",
    "consent:draft_edit": "consent forms: no patient",
    "consent:version_detail": "consent forms: no patient",
    "consent:version_publish": "a POST only",
    "consent:pdf_status": "the PDF's status box, polled by the signed consent's page (recorded)",
    "consent:pdf_retry": "a POST only",
    "consent:withdraw": "a POST only",
    "treatments:catalogue": "the catalogue: no patient",
    "treatments:ingredient_list": "the catalogue: no patient",
    "treatments:ingredient_create": "the catalogue: no patient",
    "treatments:ingredient_edit": "the catalogue: no patient",
    "treatments:product_list": "the catalogue: no patient",
    "treatments:product_create": "the catalogue: no patient",
    "treatments:product_detail": "the catalogue: no patient",
    "treatments:product_edit": "the catalogue: no patient",
    "treatments:batch_create": "the catalogue: no patient",
    "treatments:batch_recall": "a POST only",
    "treatments:protocol_list": "the catalogue: no patient",
    "treatments:protocol_create": "the catalogue: no patient",
    "treatments:protocol_detail": "the catalogue: no patient",
    "treatments:protocol_edit": "the catalogue: no patient",
    "treatments:sheet_list": "the catalogue: no patient",
    "treatments:sheet_create": "the catalogue: no patient",
    "treatments:sheet_detail": "the catalogue: no patient",
    "treatments:sheet_edit": "the catalogue: no patient",
    "treatments:allergy_test_new": "an empty form under the patient's name",
    "treatments:allergy_test_read": "a POST only",
    "treatments:calendar": "the schedule: names and times, readiness in reception's words",
    "treatments:next_free_slot": "free times: no patient",
    "treatments:booking_new": "an empty booking form",
    "treatments:booking_patient_search": "names for choosing whom to book",
    "treatments:booking_move": "the schedule: a booking's time to change",
    "treatments:booking_cancel": "a POST only",
    "treatments:booking_mark": "a POST only",
    "treatments:course_new": "an empty course form",
    "treatments:room_list": "rooms: no patient",
    "treatments:room_new": "rooms: no patient",
    "treatments:room_edit": "rooms: no patient",
    "treatments:hours_edit": "working hours: no patient",
    "treatments:hours_clear": "a POST only",
    "treatments:closure_list": "clinic closures: no patient",
    "treatments:closure_edit": "clinic closures: no patient",
    "treatments:closure_remove": "a POST only",
    "treatments:session_amend": "a POST only",
    "treatments:adverse_event_new": "a POST only",
    "treatments:adverse_event_follow_up": "a POST only",
    "treatments:reports": "figures: counts by month and batch, no patient named",
    "treatments:reminder_followups": "whom to call: names and failed reminders, no clinical data",
    "treatments:document_status": "the sheet's status box, polled by the session's page (recorded)",
    "treatments:document_send": "a POST only",
    "treatments:document_revoke": "a POST only",
    "treatments:document_regenerate": "a POST only",
    "treatments:portal_invite": "a POST only",
    "treatments:link_open": "asks for a date of birth first; the download is recorded",
    "treatments:portal_request": "sign-in help",
    "treatments:portal_login": "a sign-in button",
    "treatments:patient_merge": "a POST only",
    "treatments:subject_access_create": "a POST only",
    "treatments:erasure_create": "a POST only",
    "treatments:subject_access_status": (
        "an export's progress, polled by the data-rights page (whose opening is recorded)"
    ),
}


def test_every_route_says_whether_it_shows_a_patients_record() -> None:
    names = {r.name for r in ROUTES if not r.name.startswith("admin:")}
    unclassified = names - set(PATIENT_READS) - set(NOT_PATIENT_READS)
    assert not unclassified, f"Add to PATIENT_READS or NOT_PATIENT_READS: {sorted(unclassified)}"
    assert not set(PATIENT_READS) & set(NOT_PATIENT_READS)
    gone = (set(PATIENT_READS) | set(NOT_PATIENT_READS)) - names
    assert not gone, f"No such route any more: {sorted(gone)}"


@pytest.fixture
def patient_read_samples(sample_objects: None, practitioner: User) -> dict[str, str]:
    """What the sample objects lack for every read to show something: a signed
    medical history, two photos of one area, the signed consent's PDF ready, a photo of the allergy
    reaction, and a portal account of the sample patient. Returns the query
    strings the PATIENT_READS name."""
    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage
    from django.utils import timezone

    from consent.models import DocumentStatus, SignedConsentPDF
    from patients.models import Patient, Photo
    from tests.factories import UserFactory, make_history
    from treatments.models import AllergyTest, PortalAccount

    patient = Patient.objects.get(uuid=SAMPLE_KWARGS["patient"])
    make_history(patient, practitioner)  # "take a new history" shows its answers
    jpeg = b"\xff\xd8\xff\xe0 sample photo \xff\xd9"
    photos = []
    for index, photo_uuid in enumerate((SAMPLE_KWARGS["photo"], None)):
        photo = Photo(
            patient=patient,
            area="face",
            kind="before" if index == 0 else "after",
            taken_on=timezone.localdate(),
            width=10,
            height=10,
            sha256="0" * 64,
            uploaded_by=practitioner,
        )
        if photo_uuid:
            photo.uuid = photo_uuid
        photo.image.save(f"{photo.uuid}.jpg", ContentFile(jpeg), save=False)
        photo.save()
        photos.append(photo)
    pdf = SignedConsentPDF.objects.get(signed_consent__uuid=SAMPLE_KWARGS["signed"])
    name = default_storage.save(f"consent/pdf/{SAMPLE_KWARGS['signed']}.pdf", ContentFile(b"%PDF"))
    SignedConsentPDF.objects.filter(pk=pdf.pk).update(
        status=DocumentStatus.READY, file=name, sha256="0" * 64
    )
    photo_name = default_storage.save(f"allergy/{SAMPLE_KWARGS['test']}.jpg", ContentFile(jpeg))
    AllergyTest.objects.filter(uuid=SAMPLE_KWARGS["test"]).update(photo=photo_name)
    PortalAccount.objects.create(patient=patient, user=UserFactory(username="sample-portal"))
    return {
        "compare": f"?a={photos[0].uuid}&b={photos[1].uuid}",
        # The booking form's check: the sample patient with the sample protocol tomorrow.
        "check": f"?patient={patient.uuid}&protocol={SAMPLE_KWARGS['protocol']}"
        "&date=2026-11-25&start_time=10:00",
    }


@pytest.mark.django_db
def test_every_patient_read_is_recorded_against_its_patient(
    request: pytest.FixtureRequest, patient_read_samples: dict[str, str]
) -> None:
    """Walk each route of PATIENT_READS as one who may open it: the page opens
    and at least one audit event by that user names the sample patient."""
    from clinic.models import AuditEvent
    from treatments.models import PortalAccount

    clients: dict[str, tuple[Client, User]] = {}
    for persona in {persona for persona, _query in PATIENT_READS.values()}:
        if persona == "portal":
            user = PortalAccount.objects.get(patient__uuid=SAMPLE_KWARGS["patient"]).user
            client = Client()
            client.force_login(user)
        else:
            user = request.getfixturevalue(persona)
            client = sign_in(Client(), user)
        client.get(reverse("home"))  # the first request starts the idle timer
        clients[persona] = (client, user)
    urls = {route.name: route.url for route in ROUTES}
    failures = []
    for name, (persona, query) in PATIENT_READS.items():
        client, user = clients[persona]
        last = AuditEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0
        response = client.get(urls[name] + patient_read_samples.get(query, ""))
        if getattr(response, "streaming", False):
            b"".join(response.streaming_content)  # type: ignore[attr-defined]
        if response.status_code != 200:
            failures.append(f"{name}: {persona} got {response.status_code}")
            continue
        recorded = AuditEvent.objects.filter(
            id__gt=last, actor=user, patient_ref=SAMPLE_KWARGS["patient"]
        )
        if not recorded.exists():
            failures.append(f"{name}: no read recorded against the patient")
    assert not failures, "\n".join(failures)
