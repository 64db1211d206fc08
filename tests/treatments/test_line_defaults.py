"""How a session's cocktail lines start (issue 15): a protocol's usual
technique, depth, needle and device, edited by managers within the cocktail
line's own bounds; the session form's lines take the patient's last session
on the protocol, else the protocol's defaults, else nothing, and say which;
no empty line to scroll past."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from clinic.models import User
from tests.conftest import frozen_at, sign_in
from tests.factories import AftercareSheetFactory, ConsentFormFactory, ProtocolFactory
from tests.treatments.test_catalogue import protocol_data
from tests.treatments.test_session_helpers import (
    World,
    line_data,
    make_booking,
    make_world,
    other_practitioner,
    session_post,
)
from treatments.forms.session import CocktailLineForm
from treatments.models import Booking, BookingStatus, CocktailLine, Protocol, SessionRecord
from treatments.selectors.session import line_defaults
from treatments.services.catalogue import protocol_update

pytestmark = pytest.mark.django_db
# A Tuesday morning in London, whatever the wall clock says.
NOW = datetime(2026, 11, 24, 10, 0, tzinfo=ZoneInfo("Europe/London"))
frozen = frozen_at(NOW)

HOW = {
    "default_technique": "papule",
    "default_depth_mm": Decimal("2.0"),
    "default_needle_gauge": 30,
    "default_device": "syringe",
}


def url(booking: Booking) -> str:
    return reverse("treatments:session_record", kwargs={"booking": booking.uuid})


def field_value(page: str, index: int | str, name: str) -> str:
    """The value a line's field shows: the selected option or the input's value."""
    select = re.search(rf'<select name="lines-{index}-{name}".*?</select>', page, re.S)
    if select:
        chosen = re.search(r'<option value="([^"]*)" selected', select.group(0))
        return chosen.group(1) if chosen else ""
    field = re.search(rf'<input[^>]*name="lines-{index}-{name}"[^>]*>', page)
    assert field is not None, name
    value = re.search(r'value="([^"]*)"', field.group(0))
    return value.group(1) if value else ""


def how_given(page: str, index: int | str) -> tuple[str, str, str, str]:
    return tuple(  # type: ignore[return-value]
        field_value(page, index, name)
        for name in ("technique", "depth_mm", "needle_gauge", "device")
    )


def set_defaults(protocol: Protocol, **values: Any) -> None:
    Protocol.objects.filter(pk=protocol.pk).update(**values)
    protocol.refresh_from_db()


def complete(client: Client, world: World, booking: Booking, **line: str) -> None:
    data = session_post(world.batches[:1])
    data.update(line_data(0, world.batches[0], **line))
    response = client.post(url(booking), data)
    assert response.status_code == 302, response.content.decode()[:2000]


def later_booking(world: World, *, days: int, protocol: Protocol | None = None) -> Booking:
    return make_booking(
        patient=world.patient,
        practitioner=world.practitioner,
        protocol=protocol or world.protocol,
        room=world.room,
        starts_at=NOW + timedelta(days=days),
        status=BookingStatus.BOOKED,
    )


def completed_with_line(booking: Booking, world: World, by: User, **how: Any) -> None:
    """`booking` recorded as completed now (its rows written directly, as an
    earlier session's would stand) with one line: 1 mL of the world's first
    batch on the face, given as `how` says (technique, depth, needle, device)."""
    Booking.objects.filter(pk=booking.pk).update(status=BookingStatus.COMPLETED)
    record = SessionRecord.objects.create(
        booking=booking, numbing_cream=False, completed_at=NOW, completed_by=by
    )
    CocktailLine.objects.create(
        session=record, batch=world.batches[0], amount=Decimal("1"), area="face", **how
    )


@pytest.fixture
def client(practitioner: User) -> Client:
    return sign_in(Client(), practitioner)


# --- The protocol's defaults: bounds, one source with the cocktail line --------------


@pytest.mark.parametrize(
    ("depth", "gauge"), [("0.1", "18"), ("13", "34"), ("13.0", "18"), ("", "")]
)
def test_a_manager_saves_a_protocols_usual_way_at_the_bounds_or_none(
    manager: User, client: Client, depth: str, gauge: str
) -> None:
    form, sheet = ConsentFormFactory(), AftercareSheetFactory()
    data = protocol_data(form.uuid, sheet.pk, [])
    data.update(
        default_technique="nappage",
        default_depth_mm=depth,
        default_needle_gauge=gauge,
        default_device="meso_gun",
    )
    response = sign_in(client, manager).post(reverse("treatments:protocol_create"), data)
    assert response.status_code == 302, response.content.decode()[:3000]
    protocol = Protocol.objects.get()
    assert protocol.default_depth_mm == (Decimal(depth) if depth else None)
    assert protocol.default_needle_gauge == (int(gauge) if gauge else None)
    page = client.get(protocol.get_absolute_url()).content.decode()
    shown = page[page.index('data-testid="protocol-how-given"') :]
    assert "Nappage" in shown
    assert "Meso-gun (injector)" in shown
    assert (f"{protocol.default_depth_mm} mm" if depth else "Not set") in shown
    assert (f"{gauge}G" if gauge else "Not set") in shown


@pytest.mark.parametrize(
    ("field", "value", "sentence"),
    [
        ("default_depth_mm", "0.0", "Depth is between 0.1 and 13 mm."),
        ("default_depth_mm", "13.1", "Depth is between 0.1 and 13 mm."),
        ("default_depth_mm", "-1", "Depth is between 0.1 and 13 mm."),
        ("default_depth_mm", "99999", "Ensure that there are no more than 4 digits"),
        ("default_depth_mm", "deep", "Enter a number."),
        ("default_needle_gauge", "17", "Needle gauge is between 18G and 34G."),
        ("default_needle_gauge", "35", "Needle gauge is between 18G and 34G."),
        ("default_needle_gauge", "99999999999", "Needle gauge is between 18G and 34G."),
        ("default_technique", "laser", "Select a valid choice."),
        ("default_device", "drill", "Select a valid choice."),
    ],
)
def test_a_forged_or_out_of_range_default_is_a_form_error_and_nothing_is_saved(
    manager: User, client: Client, field: str, value: str, sentence: str
) -> None:
    form, sheet = ConsentFormFactory(), AftercareSheetFactory()
    data = protocol_data(form.uuid, sheet.pk, [], indication="Typed by the manager")
    data[field] = value
    response = sign_in(client, manager).post(reverse("treatments:protocol_create"), data)
    page = response.content.decode()
    assert response.status_code == 400
    assert sentence in page
    assert "Typed by the manager" in page  # nothing typed is lost
    assert not Protocol.objects.exists()


def test_an_edit_with_a_default_out_of_range_is_refused_and_the_protocol_unchanged(
    manager: User, client: Client
) -> None:
    protocol = ProtocolFactory(**HOW)
    data = protocol_data(
        protocol.consent_form.uuid,
        protocol.aftercare_sheet.pk,
        [],
        name=protocol.name,
        version=str(protocol.version),
        default_technique="papule",
        default_depth_mm="13.1",
        default_needle_gauge="30",
        default_device="syringe",
    )
    edit = reverse("treatments:protocol_edit", kwargs={"protocol": protocol.uuid})
    response = sign_in(client, manager).post(edit, data)
    assert response.status_code == 400
    assert "Depth is between 0.1 and 13 mm." in response.content.decode()
    protocol.refresh_from_db()
    assert protocol.default_depth_mm == Decimal("2.0")


def test_the_service_and_the_database_hold_the_cocktail_lines_bounds(manager: User) -> None:
    protocol = ProtocolFactory()
    for field, value in (("default_depth_mm", Decimal("13.1")), ("default_needle_gauge", 35)):
        with pytest.raises(ValidationError):
            protocol_update(
                protocol=protocol,
                updated_by=manager,
                lines=None,
                expected_version=None,
                **{field: value},
            )
    for field, value in (
        ("default_depth_mm", Decimal("0.0")),
        ("default_needle_gauge", 17),
        ("default_technique", "laser"),
        ("default_device", "drill"),
    ):
        with pytest.raises(IntegrityError), transaction.atomic():
            Protocol.objects.filter(pk=protocol.pk).update(**{field: value})
    protocol_update(
        protocol=protocol,
        updated_by=manager,
        lines=None,
        expected_version=None,
        default_depth_mm=Decimal("13"),
        default_needle_gauge=34,
    )
    protocol.refresh_from_db()
    assert (protocol.default_depth_mm, protocol.default_needle_gauge) == (Decimal("13"), 34)


@pytest.mark.parametrize(
    ("depth", "gauge", "valid"),
    [
        ("0.1", "18", True),
        ("13", "34", True),
        ("0.0", "18", False),
        ("13.1", "34", False),
        ("0.1", "17", False),
        ("13", "35", False),
    ],
)
def test_a_cocktail_line_takes_the_same_bounds(
    practitioner: User, depth: str, gauge: str, valid: bool
) -> None:
    world = make_world(practitioner, products=1)
    batches = {str(b.uuid): b for b in world.batches}
    data = {
        key.removeprefix("lines-0-"): value
        for key, value in line_data(0, world.batches[0], depth_mm=depth, needle_gauge=gauge).items()
    }
    form = CocktailLineForm(data, batches=batches, usable=world.batches)
    assert form.is_valid() is valid, form.errors


# --- Where the session form's lines start from ----------------------------------------


def test_a_first_session_starts_from_the_protocols_defaults_and_says_so(
    client: Client, practitioner: User
) -> None:
    world = make_world(practitioner)
    set_defaults(world.protocol, **HOW)
    page = client.get(url(world.booking)).content.decode()
    # The protocol's two products, each given as the protocol says; no empty line.
    assert page.count('data-testid="cocktail-line"') == 2
    assert how_given(page, 0) == how_given(page, 1) == ("papule", "2.0", "30", "syringe")
    source = re.search(r'data-testid="lines-source">(.*?)</p>', page, re.S)
    assert source is not None
    assert "technique, depth, needle and device: from the protocol." in source.group(1)
    # A line added by the page's script starts the same way.
    template = page[page.index('id="cocktail-line-template"') :]
    assert how_given(template, "__prefix__") == ("papule", "2.0", "30", "syringe")


def test_a_protocol_with_no_defaults_leaves_how_it_is_given_to_choose(
    client: Client, practitioner: User
) -> None:
    world = make_world(practitioner)
    page = client.get(url(world.booking)).content.decode()
    assert how_given(page, 0) == ("", "", "", "")
    assert 'data-testid="lines-source"' not in page
    assert line_defaults(booking=world.booking).values == {}


def test_a_protocol_with_some_defaults_gives_those_only(client: Client, practitioner: User) -> None:
    world = make_world(practitioner)
    set_defaults(world.protocol, default_technique="nappage", default_needle_gauge=32)
    page = client.get(url(world.booking)).content.decode()
    assert how_given(page, 0) == ("nappage", "", "32", "")
    assert "from the protocol." in page


def test_a_protocol_with_no_cocktail_offers_one_line_started_from_its_defaults(
    client: Client, practitioner: User
) -> None:
    world = make_world(practitioner, products=0, allergy=False)
    set_defaults(world.protocol, **HOW)
    page = client.get(url(world.booking)).content.decode()
    assert page.count('data-testid="cocktail-line"') == 1
    assert how_given(page, 0) == ("papule", "2.0", "30", "syringe")
    assert field_value(page, 0, "batch") == ""


def test_the_patients_last_session_on_the_protocol_comes_before_the_protocols_defaults(
    client: Client, practitioner: User
) -> None:
    world = make_world(practitioner)
    set_defaults(world.protocol, **HOW)
    complete(
        client,
        world,
        world.booking,
        technique="linear",
        depth_mm="4.0",
        needle_gauge="27",
        device="meso_gun",
    )
    # Another patient's session on the protocol, later: never carried over.
    other = make_world(other_practitioner())
    other_booking = make_booking(
        patient=other.patient,
        practitioner=other.practitioner,
        protocol=world.protocol,
        starts_at=NOW + timedelta(hours=2),
    )
    completed_with_line(
        other_booking,
        world,
        practitioner,
        technique="nappage",
        depth_mm=Decimal("0.5"),
        needle_gauge=34,
        device="syringe",
    )
    nxt = later_booking(world, days=14)
    page = client.get(url(nxt)).content.decode()
    # The lines are the last session's; a new line is given as its last line was.
    assert how_given(page, 0) == ("linear", "4.0", "27", "meso_gun")
    template = page[page.index('id="cocktail-line-template"') :]
    assert how_given(template, "__prefix__") == ("linear", "4.0", "27", "meso_gun")
    source = re.search(r'data-testid="lines-source">(.*?)</p>', page, re.S)
    assert source is not None
    # Both from the same session: its day is said once.
    said = " ".join(source.group(1).split())
    assert said == (
        "Lines copied from the session on Tue 24 Nov; a new line takes its technique, depth, "
        "needle and device from that session too."
    )


def test_a_session_on_another_protocol_gives_the_lines_but_the_protocol_gives_new_ones(
    client: Client, practitioner: User
) -> None:
    world = make_world(practitioner)
    complete(client, world, world.booking, technique="linear", depth_mm="4.0")
    scalp = ProtocolFactory(consent_form=world.protocol.consent_form, **HOW)
    nxt = later_booking(world, days=7, protocol=scalp)
    defaults = line_defaults(booking=nxt)
    assert defaults.session_day is None
    assert defaults.from_protocol
    page = client.get(url(nxt)).content.decode()
    assert how_given(page, 0)[0] == "linear"  # the patient's last lines, as before
    template = page[page.index('id="cocktail-line-template"') :]
    assert how_given(template, "__prefix__") == ("papule", "2.0", "30", "syringe")
    assert "Lines copied from the session on Tue 24 Nov." in page
    assert "technique, depth, needle and device: from the protocol." in page


def test_a_later_session_on_the_protocol_leads_whatever_came_between(
    client: Client, practitioner: User
) -> None:
    """The order is the session's start, not the order of recording."""
    world = make_world(practitioner)
    complete(client, world, world.booking, technique="linear")
    nxt = later_booking(world, days=14)
    completed_with_line(
        nxt,
        world,
        practitioner,
        technique="papule",
        depth_mm=Decimal("1.0"),
        needle_gauge=32,
        device="syringe",
    )
    third = later_booking(world, days=28)
    defaults = line_defaults(booking=third)
    assert defaults.values["technique"] == "papule"
    assert defaults.source() == "from the session on Tue 8 Dec"


# --- Lines added: without the script, and left as they started ------------------------


def test_add_a_line_without_the_script_starts_it_from_the_defaults(
    client: Client, practitioner: User
) -> None:
    world = make_world(practitioner)
    set_defaults(world.protocol, **HOW)
    data = session_post(world.batches)
    data["add_line"] = "1"
    page = client.post(url(world.booking), data).content.decode()
    assert page.count('data-testid="cocktail-line"') == 3
    assert how_given(page, 2) == ("papule", "2.0", "30", "syringe")
    assert field_value(page, 2, "batch") == ""
    assert "Tolerated well, typed by hand" in page
    assert not SessionRecord.objects.exists()


def test_a_line_added_and_left_as_it_started_is_no_line(client: Client, practitioner: User) -> None:
    world = make_world(practitioner)
    set_defaults(world.protocol, **HOW)
    data = session_post(world.batches)
    data.update(
        {
            "lines-TOTAL_FORMS": "3",
            "lines-2-unit": "ml",
            "lines-2-technique": "papule",
            "lines-2-depth_mm": "2.0",
            "lines-2-needle_gauge": "30",
            "lines-2-device": "syringe",
        }
    )
    response = client.post(url(world.booking), data)
    assert response.status_code == 302, response.content.decode()[:2000]
    assert CocktailLine.objects.count() == 2


# --- Query budget ---------------------------------------------------------------------


def test_the_session_form_reads_the_same_number_of_queries_whatever_the_history(
    client: Client, practitioner: User
) -> None:
    def past_sessions(world: World, count: int) -> Booking:
        for n in range(count):
            booking = make_booking(
                patient=world.patient,
                practitioner=world.practitioner,
                protocol=world.protocol,
                starts_at=NOW - timedelta(days=14 * (n + 1)),
                status=BookingStatus.COMPLETED,
            )
            record = SessionRecord.objects.create(
                booking=booking,
                numbing_cream=False,
                completed_at=booking.ends_at,
                completed_by=practitioner,
            )
            for batch in world.batches:
                CocktailLine.objects.create(
                    session=record,
                    batch=batch,
                    amount=Decimal("1"),
                    area="face",
                    technique="nappage",
                    depth_mm=Decimal("1.0"),
                    needle_gauge=32,
                    device="meso_gun",
                )
        return world.booking

    counts = []
    for count, who in ((1, practitioner), (15, other_practitioner())):
        world = make_world(who, products=3)
        set_defaults(world.protocol, **HOW)
        booking = past_sessions(world, count)
        client.get(url(booking))  # the session's own first write
        with CaptureQueriesContext(connection) as queries:
            response = client.get(url(booking))
        assert response.status_code == 200
        assert response.content.decode().count('data-testid="cocktail-line"') == 3
        counts.append(len(queries))
    assert counts[0] == counts[1]
    assert counts[1] <= 20
