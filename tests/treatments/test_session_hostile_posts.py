"""What a made-up or careless post of the session form gets: a form error and
a 4xx with what was typed kept, never a server error. Found by trying to
break the needle map, line copying and adverse-event follow-ups (issue 15)."""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path

import pytest
from django.test import Client
from django.urls import reverse

from clinic.models import User
from clinic.posted import UnreadablePostError, json_from_post
from tests.conftest import frozen_at, sign_in
from tests.treatments.test_session_helpers import make_world, session_post
from tests.treatments.timeline_story import LONDON, returning_patient
from treatments.models import AdverseEvent, InjectionPoint, SessionRecord
from treatments.needle_map import technique_takes_points

pytestmark = pytest.mark.django_db
NOW = datetime(2026, 11, 24, 10, 0, tzinfo=LONDON)
frozen = frozen_at(NOW)
ROOT = Path(__file__).resolve().parents[2]


def with_points(data: dict[str, str], technique: str, points: str) -> dict[str, str]:
    return {**data, "lines-0-technique": technique, "lines-0-points": points}


def record_url(booking) -> str:  # type: ignore[no-untyped-def]
    return reverse("treatments:session_record", kwargs={"booking": booking.uuid})


@pytest.mark.parametrize(
    ("points", "says"),
    [
        ("[" * 3000 + "]" * 3000, "could not be read"),
        ('[["face", 0.5, ' + "[" * 3000 + "]" * 3000 + "]]", "could not be read"),
        ('[["face", 1' + "0" * 400 + ", 0.5]]", "outside the diagram"),
        ('[["face", 0.5, -1' + "0" * 400 + "]]", "outside the diagram"),
        ('[["face", 1' + "0" * 5000 + ", 0.5]]", "could not be read"),
        ('[["face", 1e309, 0.5]]', "outside the diagram"),
        ('[["face", NaN, 0.5]]', "outside the diagram"),
    ],
    ids=["nested", "nested-in-point", "huge-int", "huge-negative", "5000-digits", "1e309", "nan"],
)
def test_unreadable_points_are_a_form_error_not_a_server_error(
    practitioner: User, points: str, says: str
) -> None:
    client = sign_in(Client(), practitioner)
    world = make_world(practitioner)
    data = with_points(session_post(world.batches), "papule", points)
    response = client.post(record_url(world.booking), data)
    assert response.status_code == 400
    assert says in response.content.decode()
    # What was typed stays on the form.
    assert "Tolerated well, typed by hand" in response.content.decode()
    assert not SessionRecord.objects.filter(booking=world.booking).exists()


@pytest.mark.parametrize("technique", ["nappage", "linear"])
def test_points_on_a_line_given_over_an_area_are_refused(
    practitioner: User, technique: str
) -> None:
    """Points are tapped for papules and point by point; nappage and linear
    threading are shaded as an area."""
    client = sign_in(Client(), practitioner)
    world = make_world(practitioner)
    points = json.dumps([["face", 0.5, 0.5]])
    data = with_points(session_post(world.batches), technique, points)
    response = client.post(record_url(world.booking), data)
    assert response.status_code == 400
    assert "covers an area: clear its points" in response.content.decode()
    assert not InjectionPoint.objects.exists()


@pytest.mark.parametrize("technique", ["papule", "point"])
def test_points_on_a_line_given_point_by_point_are_kept(practitioner: User, technique: str) -> None:
    client = sign_in(Client(), practitioner)
    world = make_world(practitioner)
    points = json.dumps([["face", 0.5, 0.5], ["face", 0.34, 0.62]])
    data = with_points(session_post(world.batches), technique, points)
    response = client.post(record_url(world.booking), data)
    assert response.status_code == 302
    assert InjectionPoint.objects.count() == 2


def test_the_service_refuses_points_on_an_area_technique_whatever_the_form() -> None:
    assert technique_takes_points("papule")
    assert technique_takes_points("point")
    assert not technique_takes_points("nappage")
    assert not technique_takes_points("linear")
    assert not technique_takes_points("")


@pytest.mark.parametrize("source", ["\u00b2", "\u00b9", "\u0661", "1" * 5000, "-1", "99", "x"])
def test_copying_a_made_up_line_adds_an_empty_one(practitioner: User, source: str) -> None:
    """ "Copy this line" without the page's script: a line number that is not
    one of the form's (superscripts, other scripts' digits, 5,000 digits)
    adds an empty line; nothing fails."""
    client = sign_in(Client(), practitioner)
    world = make_world(practitioner)
    data = session_post(world.batches, copy_line=source)
    response = client.post(record_url(world.booking), data)
    assert response.status_code == 200
    assert response.content.decode().count('name="lines-2-batch"') == 1
    assert not SessionRecord.objects.filter(booking=world.booking).exists()


def test_a_follow_up_sent_for_another_patients_event_keeps_the_note(
    practitioner: User,
) -> None:
    story = returning_patient(practitioner)
    world = make_world(practitioner)
    client = sign_in(Client(), practitioner)
    client.post(record_url(world.booking), session_post(world.batches))
    record = SessionRecord.objects.get(booking=world.booking)
    foreign = AdverseEvent.objects.get(pk=story.bruise.pk)
    url = reverse("treatments:adverse_event_follow_up", kwargs={"session": record.uuid})
    response = client.post(
        url,
        {
            "followup-event": str(foreign.uuid),
            "followup-note": "Typed at length by the nurse, not to be lost",
            "followup-resolved": "on",
            "followup-submission_token": "5b0c8f0e-9a49-4a7e-bb0e-2c1d8d8c0c11",
        },
    )
    assert response.status_code == 400
    assert not foreign.follow_ups.exists()
    page = response.content.decode()
    assert "not one of this session" in page
    assert "Typed at length by the nurse, not to be lost" in page


@pytest.mark.parametrize(
    "text",
    ["[" * 100_000 + "]" * 100_000, '{"a": ' * 50 + "1" + "}" * 50, "1" + "0" * 5000, "{", ""],
)
def test_posted_json_that_cannot_be_read_raises_one_error(text: str) -> None:
    with pytest.raises(UnreadablePostError):
        json_from_post(text)


def test_posted_json_within_its_depth_is_read() -> None:
    assert json_from_post('[["face", 0.5, 0.5]]', max_depth=2) == [["face", 0.5, 0.5]]
    with pytest.raises(UnreadablePostError):
        json_from_post('[[["face"]]]', max_depth=2)
    assert json_from_post('{"name": ["a", "b"]}') == {"name": ["a", "b"]}


def test_forms_and_views_read_posted_json_only_through_clinic_posted() -> None:
    """json.loads raises RecursionError, not ValueError, for deep nesting: a
    form or view reading posted JSON itself would answer a server error."""
    offenders = []
    for app in ("clinic", "patients", "consent", "treatments"):
        for path in (ROOT / app).rglob("*.py"):
            relative = path.relative_to(ROOT).as_posix()
            if (
                "/forms" in relative
                or "/views" in relative
                or relative.endswith(("forms.py", "views.py"))
            ) and "json.loads(" in path.read_text(encoding="utf-8"):
                offenders.append(relative)
    assert offenders == []


def test_points_outside_the_lines_area_are_refused_even_on_a_view_that_shows_it(
    practitioner: User,
) -> None:
    """Neck and under-eye share the face view: points tapped on the neck for
    a line given under the eyes would be recorded, for ever, in the wrong place."""
    client = sign_in(Client(), practitioner)
    world = make_world(practitioner)
    neck = json.dumps([["face", 0.5, 0.925]])
    data = with_points(session_post(world.batches), "papule", neck)
    data["lines-0-area"] = "under_eye"
    response = client.post(record_url(world.booking), data)
    assert response.status_code == 400
    assert (
        "outside Under-eye" in response.content.decode() or "outside" in response.content.decode()
    )
    assert not InjectionPoint.objects.exists()
    data["lines-0-area"] = "neck"
    assert client.post(record_url(world.booking), data).status_code == 302
    assert InjectionPoint.objects.count() == 1


def test_every_keyboard_place_of_an_area_is_inside_its_own_outline() -> None:
    from treatments.needle_map import SHAPES, VIEW_BY_CODE, point_in_area

    for shape in SHAPES:
        view = VIEW_BY_CODE[shape.view]
        for x, y in shape.centres:
            assert point_in_area(shape.area, shape.view, x / view.width, y / view.height)
    assert not point_in_area("under_eye", "face", 0.5, 0.925)
    assert not point_in_area("face", "nowhere", 0.5, 0.5)


def test_copying_a_line_without_the_script_leaves_its_points_behind(practitioner: User) -> None:
    """Each needle is recorded once, on the line that gave it."""
    client = sign_in(Client(), practitioner)
    world = make_world(practitioner)
    cheeks = json.dumps([["face", 0.34, 0.62]])
    data = with_points(session_post(world.batches), "papule", cheeks)
    data["copy_line"] = "0"
    page = client.post(record_url(world.booking), data).content.decode()
    copied = re.search(r'<input[^>]*name="lines-2-points"[^>]*>', page)
    assert copied is not None
    assert "0.34" not in copied.group(0)
    assert 'name="lines-2-technique"' in page
