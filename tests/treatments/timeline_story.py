"""A returning patient, written through the clinic's own services at the
moments each thing happened: a consultation, a medical history (cold sores:
a caution for the face), consent, an allergy test read at 24 hours, a
session on 1 Nov 2026 with a cocktail from batch NVP-DC0417, its caution
acknowledged, a bruise noticed on the day, photos before and after, and the
next session booked. No tests here: the timeline tests and the browser
journey share it."""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import time_machine
from PIL import Image, ImageDraw

from clinic.models import User
from patients.images import clean_photo
from patients.models import Patient, Photo
from patients.services import consultation_record, photo_add
from tests.consent.helpers import signed_consent_for
from tests.factories import (
    BatchFactory,
    ConsentFormVersionFactory,
    IngredientFactory,
    PatientFactory,
    ProductFactory,
    ProtocolFactory,
    make_history,
)
from tests.treatments.test_session_helpers import give_and_read, make_booking
from treatments.models import (
    DAY_OF_FIELDS,
    AdverseEvent,
    Batch,
    Booking,
    BookingStatus,
    Protocol,
    SessionRecord,
)
from treatments.services.catalogue import batch_recall
from treatments.services.session import AdverseEventInput, LineInput, session_complete

LONDON = ZoneInfo("Europe/London")
# The session the recall is about: Sunday 1 November 2026, 10:00 in London.
SESSION_AT = datetime(2026, 11, 1, 10, 0, tzinfo=LONDON)
RECALLED_LOT = "NVP-DC0417"


@dataclass
class Story:
    patient: Patient
    protocol: Protocol
    recalled: Batch
    other: Batch
    session: SessionRecord
    bruise: AdverseEvent
    next_booking: Booking


def jpeg(colour: tuple[int, int, int]) -> bytes:
    image = Image.new("RGB", (400, 300), colour)
    ImageDraw.Draw(image).ellipse((120, 60, 280, 240), fill=(240, 200, 180))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG")
    return buffer.getvalue()


def photo_of(
    patient: Patient, practitioner: User, *, kind: str, colour: tuple[int, int, int]
) -> Photo:
    raw = jpeg(colour)
    with time_machine.travel(SESSION_AT + timedelta(minutes=5 if kind == "before" else 50)):
        return photo_add(
            patient=patient,
            uploaded_by=practitioner,
            area="face",
            kind=kind,
            taken_on=SESSION_AT.date(),
            image=clean_photo(io.BytesIO(raw), size=len(raw)),
        )


def returning_patient(
    practitioner: User, *, recall_by: User | None = None, suffix: str = ""
) -> Story:
    """The story above; `recall_by` (a manager) recalls batch NVP-DC0417 on
    20 Nov 2026. The next session is booked for 1 Dec 2026, 10:00. A second
    story in the same test gives a `suffix` to the names the catalogue keeps
    unique (protocol, products)."""
    with time_machine.travel(SESSION_AT - timedelta(days=21), tick=False):
        patient = PatientFactory(first_name="Margaret", last_name="Ellis")
        version = ConsentFormVersionFactory()
        protocol = ProtocolFactory(
            name="Facial revitalisation" + suffix, consent_form=version.form, default_areas=["face"]
        )
        acid = IngredientFactory(name="Hyaluronic acid" + suffix)
        vitamins = IngredientFactory(name="Vitamin complex (B, C)" + suffix)
        serum = ProductFactory(
            name="Polyrevitalising solution" + suffix, ingredients=[acid, vitamins]
        )
        booster = ProductFactory(name="Vitamin C booster" + suffix, ingredients=[vitamins])
        recalled = BatchFactory(product=serum, lot_number=RECALLED_LOT)
        other = BatchFactory(product=booster, lot_number="VC-2291")
        consultation_record(
            patient=patient,
            recorded_by=practitioner,
            skin_type="III",
            concerns=["lines", "dull"],
            areas=["face"],
            goals="Fresher, better hydrated skin",
            expectations_discussed=True,
            risks_discussed=True,
            alternatives_discussed="Chemical peel; no treatment",
            recommended_protocol="Facial revitalisation, 4 sessions a fortnight apart",
            notes="",
        )
    with time_machine.travel(SESSION_AT - timedelta(days=14), tick=False):
        make_history(patient, practitioner, cold_sores_history=True)
        signed_consent_for(patient=patient, version=version)
    give_and_read(patient, practitioner, [acid, vitamins], given_at=SESSION_AT - timedelta(days=7))
    booking = make_booking(
        patient=patient,
        practitioner=practitioner,
        protocol=protocol,
        starts_at=SESSION_AT,
        status=BookingStatus.ARRIVED,
    )
    photo_of(patient, practitioner, kind="before", colour=(200, 170, 150))
    with time_machine.travel(SESSION_AT + timedelta(minutes=40), tick=False):
        now = SESSION_AT + timedelta(minutes=40)
        session = session_complete(
            booking=booking,
            completed_by=practitioner,
            lines=[
                LineInput(
                    batch=recalled,
                    amount=Decimal("2.00"),
                    unit="ml",
                    area="face",
                    technique="nappage",
                    depth_mm=Decimal("1.0"),
                    needle_gauge=32,
                    device="meso_gun",
                ),
                LineInput(
                    batch=other,
                    amount=Decimal("1.00"),
                    unit="ml",
                    area="neck",
                    technique="papule",
                    depth_mm=Decimal("2.5"),
                    needle_gauge=30,
                    device="syringe",
                ),
            ],
            adverse_events=[
                AdverseEventInput(
                    effect="bruising",
                    severity="mild",
                    onset=SESSION_AT + timedelta(minutes=30),
                    follow_up_needed=True,
                    notes="Small bruise under the left cheekbone",
                )
            ],
            numbing_cream=True,
            immediate_reactions="Slight redness",
            notes="Tolerated well",
            day_of=dict.fromkeys(DAY_OF_FIELDS, False),
            cautions_acknowledged={"cold_sores": {"face"}},
            at=now,
        )
    photo_of(patient, practitioner, kind="after", colour=(210, 160, 150))
    next_at = datetime(2026, 12, 1, 10, 0, tzinfo=LONDON)
    with time_machine.travel(SESSION_AT + timedelta(hours=2), tick=False):
        next_booking = make_booking(
            patient=patient,
            practitioner=practitioner,
            protocol=protocol,
            starts_at=next_at,
            status=BookingStatus.BOOKED,
        )
    if recall_by is not None:
        with time_machine.travel(datetime(2026, 11, 20, 9, 0, tzinfo=LONDON), tick=False):
            batch_recall(
                batch=recalled,
                recalled_by=recall_by,
                reason="Maker's recall: sterility not assured",
            )
    return Story(
        patient=patient,
        protocol=protocol,
        recalled=recalled,
        other=other,
        session=session,
        bruise=session.adverse_events.get(),
        next_booking=next_booking,
    )
