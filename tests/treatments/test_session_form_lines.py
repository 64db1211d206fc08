"""The session form's cocktail lines, cautions and adverse events as a new
user met them: each line names its product and offers that product's batches
only, a batch of another product or one that cannot be used is refused beside
the batch, a caution ticked for one area does not cover an area added since,
and an adverse event's wrong start is said beside its field. Every clock here
is frozen."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from html import unescape
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from clinic.models import User
from tests.conftest import sign_in
from tests.factories import BatchFactory, make_history
from tests.treatments.test_session_helpers import World, make_world, session_post
from treatments.models import (
    DAY_OF_FIELDS,
    BatchStatus,
    CautionAcknowledgement,
    CocktailLine,
    SessionRecord,
)
from treatments.services.session import (
    GatesFailedError,
    LineInput,
    SessionRefusedError,
    session_complete,
)

pytestmark = pytest.mark.django_db

LONDON = ZoneInfo("Europe/London")
NOW = datetime(2026, 11, 24, 10, 0, tzinfo=LONDON)  # a Tuesday morning


@pytest.fixture
def clock() -> Iterator[None]:
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def client(practitioner: User, clock: None) -> Client:
    return sign_in(Client(), practitioner)


def url(world: World) -> str:
    return reverse("treatments:session_record", kwargs={"booking": world.booking.uuid})


def line_fieldsets(page: str) -> list[str]:
    """Each cocktail line of the page, as its HTML (the template's blank line left out)."""
    return re.findall(r'<fieldset[^>]*data-testid="cocktail-line".*?</fieldset>', page, re.S)


def event_fieldsets(page: str) -> list[str]:
    return re.findall(r'<fieldset[^>]*data-testid="adverse-event".*?</fieldset>', page, re.S)


def top_error(page: str) -> str:
    found = re.search(r'data-testid="form-error">(.*?)</div>', page, re.S)
    return unescape(found.group(1)) if found else ""


def nothing_saved(world: World) -> bool:
    return not SessionRecord.objects.filter(booking=world.booking).exists() and (
        CocktailLine.objects.count() == 0
    )


# --- Each line: a product, and a batch of it ---------------------------------------------


def test_each_line_offers_its_products_batches_grouped_and_marked_with_the_product(
    client: Client, practitioner: User
) -> None:
    world = make_world(practitioner)
    first, second = world.batches
    page = client.get(url(world)).content.decode()
    line = line_fieldsets(page)[0]
    # The product chosen for the line (pre-filled from its batch) ...
    assert re.search(
        rf'name="lines-0-product"[^>]*>.*?value="{first.product.uuid}" selected', line, re.S
    )
    # ... and every batch under its product, marked with it for the script.
    group = re.search(rf'<optgroup label="{first.product.name}">(.*?)</optgroup>', line, re.S)
    assert group is not None
    assert f'value="{first.uuid}"' in group.group(1)
    assert f'value="{second.uuid}"' not in group.group(1)
    assert re.search(rf'value="{second.uuid}"[^>]*data-product="{second.product.uuid}"', line)
    assert "js/session_form.js" in page


def test_a_batch_of_another_product_is_refused_beside_the_batch_and_the_form_kept(
    client: Client, practitioner: User
) -> None:
    world = make_world(practitioner)
    first, second = world.batches
    data = session_post(world.batches)
    # Line 1 says the first product, but its batch is a lot of the second.
    data["lines-0-batch"] = str(second.uuid)
    response = client.post(url(world), data)
    page = response.content.decode()
    assert response.status_code == 400
    sentence = (
        f"Lot {second.lot_number} is a batch of {second.product.name}, not of "
        f"{first.product.name}: choose a batch of {first.product.name}, or change the product."
    )
    assert sentence in unescape(line_fieldsets(page)[0])
    assert "Tolerated well, typed by hand" in page
    assert nothing_saved(world)


def test_the_service_refuses_a_line_whose_batch_is_not_of_its_product(
    practitioner: User, clock: None
) -> None:
    world = make_world(practitioner)
    first, second = world.batches
    line = LineInput(
        product=first.product,
        batch=second,
        amount=Decimal("1.00"),
        unit="ml",
        area="face",
        technique="nappage",
        depth_mm=Decimal("1.0"),
        needle_gauge=32,
        device="meso_gun",
    )
    with pytest.raises(SessionRefusedError) as refused:
        session_complete(
            booking=world.booking,
            completed_by=practitioner,
            lines=[line],
            adverse_events=[],
            numbing_cream=False,
            immediate_reactions="",
            notes="",
            day_of=dict.fromkeys(DAY_OF_FIELDS, False),
            cautions_acknowledged={},
            at=timezone.now(),
        )
    assert refused.value.field == "batch"
    assert refused.value.line == 0
    assert f"lot {second.lot_number} is a batch of {second.product.name}" in (refused.value.message)
    assert nothing_saved(world)


@pytest.mark.parametrize(
    ("field", "value", "sentence"),
    [
        (
            "batch",
            "00000000-0000-4000-8000-00000000dead",
            "This batch is not in the catalogue: choose one from the list.",
        ),
        ("batch", "lot 42; drop table", "This batch is not in the catalogue"),
        ("batch", "", "Choose the batch: its lot number is on the vial."),
        (
            "product",
            "00000000-0000-4000-8000-00000000beef",
            "This product has no batch that can be chosen: choose one from the list.",
        ),
        ("product", "", "Choose the product."),
    ],
)
def test_a_forged_or_missing_batch_or_product_is_refused_beside_it_in_plain_words(
    client: Client, practitioner: User, field: str, value: str, sentence: str
) -> None:
    world = make_world(practitioner)
    data = session_post(world.batches)
    data[f"lines-0-{field}"] = value
    response = client.post(url(world), data)
    page = response.content.decode()
    assert response.status_code == 400
    assert sentence in unescape(line_fieldsets(page)[0])
    assert "Tolerated well, typed by hand" in page
    assert nothing_saved(world)


@pytest.mark.parametrize("kind", ["expired", "recalled"])
def test_a_batch_that_cannot_be_used_is_refused_beside_the_batch_too(
    client: Client, practitioner: User, manager: User, kind: str
) -> None:
    world = make_world(practitioner)
    today = timezone.localdate()
    if kind == "expired":
        bad = BatchFactory(
            product=world.batches[0].product,
            received_on=today - timedelta(days=400),
            expiry_date=today - timedelta(days=1),
        )
        said = f"lot {bad.lot_number} expired on"
    else:
        bad = world.batches[0]
        bad.status = BatchStatus.RECALLED
        bad.recalled_at = timezone.now()
        bad.recalled_by = manager
        bad.recall_reason = "Supplier notice"
        bad.save()
        said = f"lot {bad.lot_number} was recalled: do not use it."
    response = client.post(url(world), session_post([bad, world.batches[1]]))
    page = response.content.decode()
    assert response.status_code == 409
    lines = [unescape(line) for line in line_fieldsets(page)]
    assert said in lines[0]
    assert said not in lines[1]
    assert f'value="{bad.uuid}" selected' in lines[0]
    assert nothing_saved(world)


# --- Cautions: acknowledged for the areas shown ------------------------------------------


def two_areas(world: World) -> dict[str, str]:
    """The form with line 1 on the face and line 2 under the eyes."""
    data = session_post(world.batches)
    data["lines-0-area"] = "face"
    data["lines-1-area"] = "under_eye"
    return data


def test_a_caution_ticked_for_one_area_does_not_cover_an_area_added_since(
    client: Client, practitioner: User
) -> None:
    world = make_world(practitioner, history=False)
    make_history(world.patient, practitioner, cold_sores_history=True)
    world.protocol.default_areas = ["face"]
    world.protocol.save(update_fields=["default_areas"])
    # The page shows the caution for the face only; its box says so.
    form = client.get(url(world)).content.decode()
    assert 'value="cold_sores:face"' in form

    # Under the eyes added after the tick (the page's box, or one sent by an
    # older page without areas): the tick does not cover the new area.
    for ticked in ("cold_sores:face", "cold_sores"):
        response = client.post(url(world), {**two_areas(world), "caution": ticked})
        page = unescape(response.content.decode())
        assert response.status_code == 409, ticked
        assert (
            "injections in the Face, Under-eye can bring on an outbreak. It was acknowledged "
            + ("for Face" if ticked.endswith(":face") else "for no area named")
            + ": read it again and tick it."
        ) in page
        # Shown again for both areas, not ticked.
        assert re.search(r'value="cold_sores:face,under_eye"(?![^>]*checked)[^>]*>', page)
        assert "Tolerated well, typed by hand" in page
        assert not CautionAcknowledgement.objects.exists()
        assert nothing_saved(world)

    done = client.post(url(world), {**two_areas(world), "caution": "cold_sores:face,under_eye"})
    assert done.status_code == 302
    assert CautionAcknowledgement.objects.get().areas == ["face", "under_eye"]


def test_gate_7_counts_a_tick_only_for_the_areas_the_caution_concerns_today(
    practitioner: User, clock: None
) -> None:
    world = make_world(practitioner, history=False)
    make_history(world.patient, practitioner, cold_sores_history=True)
    lines = [
        LineInput(
            batch=batch,
            amount=Decimal("1.00"),
            unit="ml",
            area=area,
            technique="nappage",
            depth_mm=Decimal("1.0"),
            needle_gauge=32,
            device="meso_gun",
        )
        for batch, area in zip(world.batches, ["face", "under_eye"], strict=True)
    ]
    with pytest.raises(GatesFailedError) as refused:
        session_complete(
            booking=world.booking,
            completed_by=practitioner,
            lines=lines,
            adverse_events=[],
            numbing_cream=False,
            immediate_reactions="",
            notes="",
            day_of=dict.fromkeys(DAY_OF_FIELDS, False),
            cautions_acknowledged={"cold_sores": {"face"}},
            at=timezone.now(),
        )
    [failure] = refused.value.failures
    assert failure.gate == 7
    assert failure.sentence == (
        "The patient has had cold sores, and injections in the Face, Under-eye can bring on an "
        "outbreak. It was acknowledged for Face: read it again and tick it."
    )
    assert nothing_saved(world)


# --- Adverse events: the error beside its field ------------------------------------------


def test_an_adverse_event_starting_in_the_future_is_refused_beside_its_start(
    client: Client, practitioner: User
) -> None:
    world = make_world(practitioner)
    later = timezone.localtime() + timedelta(hours=2)
    events = [
        {
            "effect": "bruising",
            "severity": "mild",
            "onset": later.strftime("%Y-%m-%dT%H:%M"),
            "resolved_on": "",
            "notes": "Bruise on the left cheek",
        }
    ]
    response = client.post(url(world), session_post(world.batches, events=events))
    page = response.content.decode()
    assert response.status_code == 400
    [event] = [unescape(fieldset) for fieldset in event_fieldsets(page)]
    beside = re.search(r'id="error_\d+_id_events-0-onset"[^>]*>(.*?)</', event, re.S)
    assert beside is not None
    assert "The start of an adverse event cannot be in the future." in event
    assert "cannot be in the future" not in top_error(page)
    assert "Bruise on the left cheek" in event
    assert nothing_saved(world)
