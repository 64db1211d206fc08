"""Where the needle went: the points tapped on the face and body diagram are
kept with their cocktail lines (append-only, audited with them), anything
else than points on the diagram is refused with a sentence, the next session
starts from the last one's map, the form works without its script (a line
added or copied by sending it back), and the record, the timeline and the
per-area doses read the map back."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from decimal import Decimal

import pytest
import time_machine
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from clinic.models import AuditAction, AuditEvent, User
from patients.models import Patient, TreatmentArea
from tests.conftest import frozen_at, sign_in
from tests.factories import (
    BatchFactory,
    IngredientFactory,
    PatientFactory,
    ProductFactory,
    ProtocolFactory,
)
from tests.treatments.test_session_helpers import (
    World,
    give_and_read,
    make_booking,
    make_world,
    other_practitioner,
    session_post,
)
from tests.treatments.timeline_story import LONDON
from treatments.forms.session import MAX_LINES
from treatments.models import (
    DAY_OF_FIELDS,
    MAX_POINTS_PER_LINE,
    Booking,
    BookingStatus,
    CocktailLine,
    InjectionPoint,
    MapView,
    SessionRecord,
    TreatmentCourse,
)
from treatments.needle_map import AREA_VIEWS, SHAPES, VIEW_BY_CODE, needle_map_of
from treatments.selectors.session import session_area_doses
from treatments.services.session import (
    LineInput,
    PointInput,
    SessionRefusedError,
    session_complete,
)

pytestmark = pytest.mark.django_db
NOW = datetime(2026, 11, 24, 10, 0, tzinfo=LONDON)  # a Tuesday morning
frozen = frozen_at(NOW)

CHEEKS = [["face", 0.34, 0.62], ["face", 0.66, 0.62], ["face", 0.5, 0.26]]


def url(booking: Booking) -> str:
    return reverse("treatments:session_record", kwargs={"booking": booking.uuid})


@pytest.fixture
def client(practitioner: User) -> Client:
    return sign_in(Client(), practitioner)


def completed_with_points(client: Client, world: World, points: list[list[object]]) -> Booking:
    data = session_post(world.batches)
    # Points are tapped for papules (and point by point), not for nappage.
    data.update({"lines-0-technique": "papule", "lines-0-points": json.dumps(points)})
    response = client.post(url(world.booking), data)
    assert response.status_code == 302, response.content.decode()[:3000]
    return world.booking


def next_booking(world: World, *, course: TreatmentCourse | None, days: int = 14) -> Booking:
    return make_booking(
        patient=world.patient,
        practitioner=world.practitioner,
        protocol=world.protocol,
        course=course,
        room=world.room,
        starts_at=timezone.now().replace(microsecond=0) + timedelta(days=days),
        status=BookingStatus.BOOKED,
    )


def course_of(world: World) -> TreatmentCourse:
    course = TreatmentCourse.objects.create(
        patient=world.patient,
        protocol=world.protocol,
        planned_sessions=6,
        interval="fortnightly",
        created_by=world.practitioner,
    )
    Booking.objects.filter(pk=world.booking.pk).update(course=course)
    world.booking.refresh_from_db()
    return course


# --- Kept with the lines -------------------------------------------------------------


def test_points_are_kept_with_their_line_in_the_order_tapped_and_audited_with_the_lines(
    client: Client, practitioner: User
) -> None:
    world = make_world(practitioner)
    completed_with_points(client, world, CHEEKS)
    record = SessionRecord.objects.get(booking=world.booking)
    first, second = CocktailLine.objects.filter(session=record).order_by("id")
    points = list(InjectionPoint.objects.filter(line=first).order_by("position"))
    assert [(p.view, p.x, p.y) for p in points] == [
        ("face", Decimal("0.3400"), Decimal("0.6200")),
        ("face", Decimal("0.6600"), Decimal("0.6200")),
        ("face", Decimal("0.5000"), Decimal("0.2600")),
    ]
    assert [p.position for p in points] == [0, 1, 2]
    assert not InjectionPoint.objects.filter(line=second).exists()
    audit = AuditEvent.objects.get(action=AuditAction.COMPLETED, object_id=str(record.uuid))
    assert {"lines", "injection_points"} <= set(audit.changed_fields)
    assert audit.patient_ref == world.patient.uuid


def test_without_the_script_no_points_are_sent_and_the_session_is_recorded_as_before(
    client: Client, practitioner: User
) -> None:
    world = make_world(practitioner)
    page = client.get(url(world.booking)).content.decode()
    # The points field is disabled in the page: a browser without the script sends nothing.
    field = re.search(r'<input[^>]*name="lines-0-points"[^>]*>', page)
    assert field is not None
    assert " disabled" in field.group(0)
    assert client.post(url(world.booking), session_post(world.batches)).status_code == 302
    record = SessionRecord.objects.get(booking=world.booking)
    assert not InjectionPoint.objects.exists()
    audit = AuditEvent.objects.get(action=AuditAction.COMPLETED, object_id=str(record.uuid))
    assert "injection_points" not in audit.changed_fields


def test_two_hundred_points_on_a_line_are_kept(client: Client, practitioner: User) -> None:
    world = make_world(practitioner)
    # A grid over the middle of the face: every point on the line's area.
    grid = [
        ["face", round(0.35 + (n % 20) * 0.015, 4), round(0.3 + (n // 20) * 0.04, 4)]
        for n in range(MAX_POINTS_PER_LINE)
    ]
    completed_with_points(client, world, grid)
    assert InjectionPoint.objects.count() == MAX_POINTS_PER_LINE


# --- Anything else is refused, never a server error ----------------------------------


@pytest.mark.parametrize(
    ("points", "sentence"),
    [
        ('[["face", 1.5, 0.2]]', "outside the diagram"),
        ('[["face", -0.01, 0.2]]', "outside the diagram"),
        ('[["face", NaN, 0.2]]', "outside the diagram"),
        ('[["face", 0.5, Infinity]]', "outside the diagram"),
        ('[["elbow", 0.5, 0.5]]', "a view the diagram does not have"),
        ('[["face", true, 0.5]]', "could not be read"),
        ('[["face", "0.5", 0.5]]', "could not be read"),
        ('[["face", 0.5]]', "could not be read"),
        ('{"face": [0.5, 0.5]}', "could not be read"),
        ("face 0.5 0.5", "could not be read"),
        ('[["scalp", 0.5, 0.5]]', "which does not show Face"),
        (json.dumps([["face", 0.5, 0.5]] * (MAX_POINTS_PER_LINE + 1)), "at most 200 a line"),
        ("[" + ",".join(['["face",0.123456789,0.123456789]'] * 300) + "]", "too many points"),
    ],
    ids=[
        "past-the-edge",
        "before-the-edge",
        "not-a-number",
        "infinite",
        "unknown-view",
        "a-boolean",
        "a-string",
        "two-numbers",
        "not-a-list",
        "not-json",
        "a-view-without-the-area",
        "201-points",
        "far-too-long",
    ],
)
def test_points_not_on_the_diagram_are_refused_with_a_sentence_and_nothing_saved(
    client: Client, practitioner: User, points: str, sentence: str
) -> None:
    world = make_world(practitioner)
    data = session_post(world.batches)
    data.update({"lines-0-technique": "papule", "lines-0-points": points})
    response = client.post(url(world.booking), data)
    page = response.content.decode()
    assert response.status_code == 400
    assert sentence in page
    assert 'data-testid="points-error"' in page
    assert not SessionRecord.objects.exists()
    assert not InjectionPoint.objects.exists()
    # What was typed is kept.
    assert "Tolerated well, typed by hand" in page


def _complete(world: World, lines: list[LineInput]) -> SessionRecord:
    return session_complete(
        booking=world.booking,
        completed_by=world.practitioner,
        lines=lines,
        adverse_events=[],
        numbing_cream=False,
        immediate_reactions="",
        notes="",
        day_of=dict.fromkeys(DAY_OF_FIELDS, False),
        cautions_acknowledged={},
        at=timezone.now(),
    )


def _line(world: World, area: str, points: list[PointInput]) -> LineInput:
    return LineInput(
        batch=world.batches[0],
        amount=Decimal("1.00"),
        unit="ml",
        area=area,
        technique="papule",
        depth_mm=Decimal("2.0"),
        needle_gauge=30,
        device="syringe",
        points=tuple(points),
    )


@pytest.mark.parametrize(
    ("area", "points", "sentence"),
    [
        ("face", [PointInput("face", Decimal("0.5"), Decimal("0.5"))] * 201, "at most 200"),
        ("face", [PointInput("body_back", Decimal("0.5"), Decimal("0.5"))], "does not show"),
        ("scalp", [PointInput("scalp", Decimal("1.2"), Decimal("0.5"))], "outside the diagram"),
        ("scalp", [PointInput("side", Decimal("0.5"), Decimal("0.5"))], "does not have"),
    ],
    ids=["201-points", "wrong-view", "outside", "unknown-view"],
)
def test_the_service_refuses_points_not_on_the_diagram_whoever_calls_it(
    practitioner: User, area: str, points: list[PointInput], sentence: str
) -> None:
    world = make_world(practitioner, products=1)
    with pytest.raises(SessionRefusedError, match=sentence) as refused:
        _complete(world, [_line(world, area, points)])
    assert refused.value.field == "points"
    assert not SessionRecord.objects.exists()
    world.booking.refresh_from_db()
    assert world.booking.status == BookingStatus.ARRIVED


def test_points_are_never_changed_or_deleted_and_the_database_holds_their_bounds(
    practitioner: User,
) -> None:
    world = make_world(practitioner, products=1)
    record = _complete(
        world, [_line(world, "face", [PointInput("face", Decimal("0.4"), Decimal("0.6"))])]
    )
    point = InjectionPoint.objects.get(line__session=record)
    for statement in (
        "UPDATE treatments_injectionpoint SET x = 0.9 WHERE id = %s",
        "DELETE FROM treatments_injectionpoint WHERE id = %s",
    ):
        with (
            pytest.raises(DatabaseError, match=r"never changed or deleted|permission denied"),
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            cursor.execute(statement, [point.pk])
    assert InjectionPoint.objects.get().x == Decimal("0.4000")
    line = point.line
    for wrong in (
        {"position": 1, "view": "face", "x": Decimal("1.5"), "y": Decimal("0.5")},
        {"position": MAX_POINTS_PER_LINE, "view": "face", "x": Decimal("0.5"), "y": Decimal("0.5")},
        {"position": 1, "view": "elbow", "x": Decimal("0.5"), "y": Decimal("0.5")},
        {"position": 0, "view": "face", "x": Decimal("0.5"), "y": Decimal("0.5")},  # twice
    ):
        with pytest.raises(IntegrityError), transaction.atomic():
            InjectionPoint.objects.create(line=line, **wrong)


# --- The next session starts from the last one's map ---------------------------------


def hidden_points(page: str, index: int) -> list[list[object]]:
    field = re.search(rf'<input[^>]*name="lines-{index}-points"[^>]*>', page)
    assert field is not None
    value = re.search(r'value="([^"]*)"', field.group(0))
    return json.loads(value.group(1).replace("&quot;", '"')) if value else []


def test_the_next_session_of_the_course_starts_from_the_last_sessions_map(
    client: Client, practitioner: User
) -> None:
    world = make_world(practitioner)
    course = course_of(world)
    completed_with_points(client, world, CHEEKS)
    page = client.get(url(next_booking(world, course=course))).content.decode()
    assert hidden_points(page, 0) == CHEEKS
    assert hidden_points(page, 1) == []
    assert re.search(r'name="lines-0-area"[^>]*>.*?value="face" selected', page, re.S)


def test_a_booking_outside_the_course_starts_from_the_patients_last_session(
    client: Client, practitioner: User
) -> None:
    world = make_world(practitioner)
    completed_with_points(client, world, CHEEKS)
    # A one-off session a week later: no course, the patient's last session leads.
    page = client.get(url(next_booking(world, course=None, days=7))).content.decode()
    assert hidden_points(page, 0) == CHEEKS


def test_the_course_session_comes_before_a_later_one_off_session(
    client: Client, practitioner: User
) -> None:
    world = make_world(practitioner)
    course = course_of(world)
    completed_with_points(client, world, CHEEKS)
    # Later the same day, a one-off session on the scalp.
    with time_machine.travel(NOW + timedelta(hours=3), tick=False):
        client = sign_in(Client(), practitioner)  # the other was signed out, idle
        one_off = make_booking(
            patient=world.patient,
            practitioner=practitioner,
            protocol=world.protocol,
            room=world.room,
            starts_at=NOW + timedelta(hours=2),
        )
        data = session_post(world.batches)
        for index in range(2):
            data[f"lines-{index}-area"] = "scalp"
        data["lines-0-technique"] = "papule"
        data["lines-0-points"] = '[["scalp", 0.5, 0.5]]'
        assert client.post(url(one_off), data).status_code == 302
        assert InjectionPoint.objects.filter(view="scalp").count() == 1
        page = client.get(url(next_booking(world, course=course))).content.decode()
    assert hidden_points(page, 0) == CHEEKS


def test_a_first_session_takes_how_the_protocol_gives_it_not_another_patients_session(
    client: Client, practitioner: User
) -> None:
    world = make_world(practitioner)
    world.protocol.default_technique, world.protocol.default_needle_gauge = "nappage", 32
    world.protocol.save(update_fields=["default_technique", "default_needle_gauge"])
    data = session_post(world.batches)
    data.update({"lines-0-technique": "papule", "lines-0-needle_gauge": "30"})
    data.update({"lines-0-depth_mm": "2.5", "lines-0-device": "syringe"})
    assert client.post(url(world.booking), data).status_code == 302
    # Another patient's first session under the same protocol, tomorrow.
    other = make_world(other_practitioner())
    newcomer = make_booking(
        patient=other.patient,
        practitioner=other.practitioner,
        protocol=world.protocol,
        starts_at=NOW + timedelta(days=1),
        status=BookingStatus.BOOKED,
    )
    page = client.get(url(newcomer)).content.decode()
    assert re.search(r'name="lines-0-technique".*?value="nappage" selected', page, re.S)
    assert re.search(r'name="lines-0-needle_gauge"[^>]*value="32"', page)
    # What the protocol leaves open stays to choose: another patient's is never used.
    assert not re.search(r'name="lines-0-device".*?value="syringe" selected', page, re.S)
    assert not re.search(r'name="lines-0-depth_mm"[^>]*value=', page)
    assert hidden_points(page, 0) == []  # another patient's map is never carried over


# --- Adding and copying a line without the script ------------------------------------


def test_add_a_line_without_the_script_shows_one_more_and_saves_nothing(
    client: Client, practitioner: User
) -> None:
    world = make_world(practitioner)
    data = session_post(world.batches)
    data["add_line"] = "1"
    response = client.post(url(world.booking), data)
    page = response.content.decode()
    assert response.status_code == 200
    assert page.count('data-testid="cocktail-line"') == 3
    assert 'name="lines-TOTAL_FORMS" value="3"' in page
    assert "Tolerated well, typed by hand" in page
    assert 'data-testid="form-error"' not in page
    assert not SessionRecord.objects.exists()


def test_copy_a_line_without_the_script_adds_the_same_line_again(
    client: Client, practitioner: User
) -> None:
    world = make_world(practitioner)
    data = session_post(world.batches)
    data.update({"lines-1-area": "neck", "lines-1-amount": "0.75", "copy_line": "1"})
    page = client.post(url(world.booking), data).content.decode()
    assert page.count('data-testid="cocktail-line"') == 3
    assert 'name="lines-2-amount" value="0.75"' in page
    assert re.search(r'name="lines-2-area".*?value="neck" selected', page, re.S)
    assert re.search(
        rf'name="lines-2-batch".*?value="{world.batches[1].uuid}" selected', page, re.S
    )
    assert not SessionRecord.objects.exists()
    # Completed as shown: three lines.
    data = session_post(world.batches)
    data.update({"lines-1-area": "neck", "lines-1-amount": "0.75"})
    data.update({k.replace("lines-1-", "lines-2-"): v for k, v in data.items() if "lines-1-" in k})
    data["lines-TOTAL_FORMS"] = "3"
    assert client.post(url(world.booking), data).status_code == 302
    assert CocktailLine.objects.filter(area="neck").count() == 2


@pytest.mark.parametrize(
    ("total", "sentence"),
    [
        (str(MAX_LINES), f"A session has at most {MAX_LINES} lines."),
        ("lots", "The cocktail lines could not be read"),
        ("-1", "The cocktail lines could not be read"),
    ],
)
def test_a_line_more_than_the_form_can_hold_is_refused_with_a_sentence(
    client: Client, practitioner: User, total: str, sentence: str
) -> None:
    world = make_world(practitioner)
    data = session_post(world.batches)
    data.update({"lines-TOTAL_FORMS": total, "add_line": "1"})
    response = client.post(url(world.booking), data)
    assert response.status_code == 400
    assert sentence in response.content.decode()
    assert not SessionRecord.objects.exists()


# --- Read back: the record, per-area doses, the timeline -----------------------------


def test_the_record_shows_the_treated_areas_shaded_with_their_amounts_and_points(
    client: Client, practitioner: User
) -> None:
    world = make_world(practitioner)
    data = session_post(world.batches)
    data.update(
        {
            "lines-0-technique": "papule",
            "lines-0-points": json.dumps(CHEEKS),
            "lines-1-area": "neck",
        }
    )
    assert client.post(url(world.booking), data).status_code == 302
    page = client.get(url(world.booking)).content.decode()
    drawn = page[page.index('data-testid="needle-map-record"') :]
    assert re.search(r'class="nm-area is-treated nm-c0"[^>]*data-area="face"', drawn)
    assert re.search(r'class="nm-area is-treated nm-c1"[^>]*data-area="neck"', drawn)
    assert not re.search(r'class="nm-area is-treated[^"]*"[^>]*data-area="scalp"', drawn)
    assert drawn.count('class="nm-point nm-c0"') == 3
    assert ">2.50 mL</text>" in drawn
    assert "Face</span> 2.50 mL · 3 points" in drawn
    assert "Neck</span> 2.50 mL" in drawn
    # Only the face is drawn: nothing was given on the body or the scalp.
    assert drawn.count('<svg class="nm-svg nm-svg-face"') == 1
    assert "nm-svg-body_front" not in drawn
    assert "nm-svg-scalp" not in drawn


def test_session_area_doses_give_each_ingredient_per_area_in_two_queries(
    client: Client, practitioner: User, django_assert_num_queries: object
) -> None:
    world = make_world(practitioner)
    hyaluronic = IngredientFactory(name="Hyaluronic acid")
    vitamin_c = IngredientFactory(name="Vitamin C")
    give_and_read(
        world.patient,
        practitioner,
        [hyaluronic, vitamin_c],
        given_at=timezone.now() - timedelta(days=3),
    )
    mixed = BatchFactory(product=ProductFactory(ingredients=[hyaluronic, vitamin_c]))
    world.batches[1].product.ingredients.add(hyaluronic)
    own = world.ingredients[0].name
    data = session_post(world.batches)
    data.update(
        {
            "lines-0-technique": "papule",
            "lines-0-points": json.dumps(CHEEKS),
            "lines-1-amount": "1.00",
            "lines-2-product": str(mixed.product.uuid),
            "lines-2-batch": str(mixed.uuid),
            "lines-2-amount": "0.50",
            "lines-2-unit": "ml",
            "lines-2-area": "neck",
            "lines-2-technique": "nappage",
            "lines-2-depth_mm": "1.0",
            "lines-2-needle_gauge": "32",
            "lines-2-device": "meso_gun",
            "lines-TOTAL_FORMS": "3",
        }
    )
    response = client.post(url(world.booking), data)
    assert response.status_code == 302, response.content.decode()[:2000]
    record = SessionRecord.objects.get(booking=world.booking)
    with django_assert_num_queries(2):  # type: ignore[operator]
        doses = session_area_doses(session=record)
    assert [d.area for d in doses] == ["face", "neck"]
    face, neck = doses
    # On the face: the first product's own ingredient, and hyaluronic acid in the second.
    assert ("Hyaluronic acid", Decimal("1.00"), "ml") in face.doses
    assert (own, Decimal("2.50"), "ml") in face.doses
    assert face.points == 3
    assert neck.doses == [
        ("Hyaluronic acid", Decimal("0.50"), "ml"),
        ("Vitamin C", Decimal("0.50"), "ml"),
    ]
    assert neck.points == 0


def _sessions_with_points(patient: Patient, count: int) -> None:
    """`count` recorded sessions a day apart before now, each a line on the
    face with three points and one on the body's front."""
    practitioner = other_practitioner()
    batch = BatchFactory()
    protocol = ProtocolFactory()
    for n in range(count):
        at = timezone.now().replace(microsecond=0) - timedelta(days=n + 1)
        booking = make_booking(
            patient=patient,
            practitioner=practitioner,
            protocol=protocol,
            starts_at=at,
            status=BookingStatus.COMPLETED,
        )
        record = SessionRecord.objects.create(
            booking=booking,
            numbing_cream=False,
            completed_at=booking.ends_at,
            completed_by=practitioner,
        )
        for area, view in (("face", "face"), ("abdomen", "body_front")):
            line = CocktailLine.objects.create(
                session=record,
                batch=batch,
                amount=Decimal("1.00"),
                unit="ml",
                area=area,
                technique="papule",
                depth_mm=Decimal("2.0"),
                needle_gauge=30,
                device="syringe",
            )
            for position in range(3):
                InjectionPoint.objects.create(
                    line=line, position=position, view=view, x=Decimal("0.5"), y=Decimal("0.5")
                )


def test_the_timeline_draws_each_session_on_the_diagram_in_a_fixed_number_of_queries(
    client: Client,
) -> None:
    few, many = PatientFactory(), PatientFactory()
    _sessions_with_points(few, 1)
    _sessions_with_points(many, 12)

    def read(patient: Patient) -> tuple[int, str]:
        address = reverse("treatments:patient_timeline", kwargs={"patient": patient.uuid})
        with CaptureQueriesContext(connection) as queries:
            response = client.get(address, HTTP_HX_REQUEST="true")
        assert response.status_code == 200
        return len(queries), response.content.decode()

    read(few)  # the session's first reads are not the page's
    one, _page = read(few)
    twelve, page = read(many)
    assert twelve == one
    assert page.count('data-testid="needle-map-record"') == 12
    assert page.count('class="nm-point nm-c0"') == 12 * 3
    assert page.count('class="nm-point nm-c1"') == 12 * 3
    assert page.count("nm-svg-body_front") == 12


# --- The drawing ---------------------------------------------------------------------


def test_every_area_is_drawn_with_its_code_as_the_id_of_one_shape(
    client: Client, practitioner: User
) -> None:
    world = make_world(practitioner)
    page = client.get(url(world.booking)).content.decode()
    for area in TreatmentArea.values:
        assert page.count(f'id="{area}"') == 1, area
        assert AREA_VIEWS[area], area
        assert re.search(rf'<path class="nm-area"[^>]*id="{area}"[^>]*role="button"', page)
    assert {shape.view for shape in SHAPES} == set(MapView.values)
    for shape in SHAPES:
        view = VIEW_BY_CODE[shape.view]
        for x, y in shape.centres:
            assert 0 < x < view.width, shape
            assert 0 < y < view.height, shape


def test_a_map_of_lines_left_without_points_shows_each_area_on_its_own_view(
    client: Client, practitioner: User
) -> None:
    world = make_world(practitioner)
    data = session_post(world.batches)
    data.update({"lines-0-area": "buttocks", "lines-1-area": "scalp"})
    assert client.post(url(world.booking), data).status_code == 302
    record = SessionRecord.objects.get(booking=world.booking)
    lines = list(record.lines.select_related("batch__product").prefetch_related("points"))
    drawn = needle_map_of(lines)
    assert [v.code for v in drawn.views] == ["body_back", "scalp"]
    assert [a.label for a in drawn.areas] == ["Scalp", "Buttocks"]
