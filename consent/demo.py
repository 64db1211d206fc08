"""Demo consent forms and signatures for `manage.py seed_demo` (idempotent:
keyed by form title, and by patient and form for signatures).

The forms were published when the demo clinic opened; each patient signed
on the day of their first visit, through `consent_sign` with the clock
moved to that day (clinic.demo_clock), so a session of theirs in the weeks
after finds the consent it needs, and none before."""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Callable
from datetime import datetime, timedelta

from django.utils import timezone
from PIL import Image, ImageDraw

from clinic.demo_clock import OPENED_DAYS_AGO, clinic_time, clock_at, working_day
from clinic.models import User
from consent.models import CONSENT_SECTION_NAMES, ConsentForm, SignedConsent
from consent.selectors import version_current
from consent.services import (
    consent_draft_save,
    consent_form_create,
    consent_sign,
    consent_version_publish,
)
from patients.models import Patient

FACE = "Mesotherapy of the face, neck and hands"
BODY = "Mesotherapy of the body"
SCALP = "Mesotherapy of the scalp"

COMMON = {
    "common_side_effects": (
        "Redness, mild swelling, tenderness and small bruises where the needle went in. "
        "They usually settle within two to five days."
    ),
    "rare_complications": (
        "Infection, small lumps under the skin, an allergic reaction to an ingredient, "
        "changes in skin colour or, very rarely, a scar. Tell us at once about heat, "
        "spreading redness, pus or fever."
    ),
    "aftercare": (
        "Keep the area clean and do not touch it for 6 hours. No make-up for 12 hours. "
        "No sauna, steam room, swimming pool or hard exercise for 48 hours. "
        "Use sun protection every day during the course."
    ),
    "photo_consent_text": (
        "I agree that the clinic takes photographs of the treated area before and during "
        "the course, kept in my clinical record only, never shown to anyone else "
        "without my written agreement."
    ),
}

TEXTS: dict[str, dict[str, str]] = {
    FACE: {
        "procedure": (
            "Many very small injections of vitamins, amino acids and hyaluronic acid into "
            "the middle layer of the skin of the face, neck and backs of the hands, "
            "usually a course of 4 to 6 sessions two weeks apart."
        ),
        "benefits": (
            "Better hydrated, brighter skin with finer lines. Results build over the course "
            "and vary from person to person; they are not permanent."
        ),
        "alternatives": (
            "Skin care at home, chemical peels, microneedling, other injectable treatments, "
            "or no treatment at all."
        ),
    },
    BODY: {
        "procedure": (
            "Small injections of a mixture chosen for the area (such as the thighs, "
            "abdomen or arms) into the fat layer under the skin, in a course of sessions."
        ),
        "benefits": (
            "Smoother looking skin and a modest reduction of small local fat deposits. "
            "It does not replace diet and exercise and is not a weight-loss treatment."
        ),
        "alternatives": (
            "Diet and exercise, massage or device treatments, surgery, or no treatment."
        ),
    },
    SCALP: {
        "procedure": (
            "Small injections of vitamins and other active ingredients into the scalp "
            "where the hair is thinning, in a course of sessions."
        ),
        "benefits": (
            "Less hair fall and thicker looking hair for some people after several sessions. "
            "Some people see little change."
        ),
        "alternatives": (
            "Lotions or tablets prescribed by a doctor, platelet-rich plasma, hair "
            "transplant, or no treatment."
        ),
    },
}

# Version 2 of the face form: a clearer aftercare section.
FACE_V2_AFTERCARE = (
    "Keep the area clean and do not touch it for 6 hours. No make-up for 12 hours. "
    "No sauna, steam room, swimming pool, hard exercise or alcohol for 48 hours. "
    "No other facial treatment for two weeks. Use sun protection (SPF 30 or more) every day."
)


def demo_signature(seed: int = 0) -> str:
    """A squiggle drawn with Pillow, as a PNG data URL."""
    image = Image.new("RGBA", (700, 220), (255, 255, 255, 0))
    draw = ImageDraw.Draw(image)
    points = [
        (40 + x * 6, 120 + 45 * math.sin((x + seed) / 6) * math.cos(x / 17)) for x in range(0, 100)
    ]
    draw.line(points, fill=(28, 36, 39, 255), width=4, joint="curve")
    draw.line([(60, 175), (620, 165)], fill=(28, 36, 39, 255), width=3)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return "data:image/png;base64," + base64.b64encode(out.getvalue()).decode("ascii")


Moment = Callable[[], datetime]


def _on(days_ago: int, hour: int, minute: int = 0) -> Moment:
    """That working day (clinic.demo_clock.working_day) at hour:minute."""
    return lambda: clinic_time(working_day(days_ago), hour, minute)


def _hours_ago(hours: float) -> Moment:
    return lambda: timezone.now() - timedelta(hours=hours)


# Signatures, in the order they were given: (patient's email, form, when,
# agrees to photographs). Each at a visit of the patient (patients.demo),
# after the history was taken.
SIGNED_BEFORE_FACE_V2: tuple[tuple[str, str, Moment, bool], ...] = (
    ("grace.okafor@demo.clinic.invalid", BODY, _on(130, 10, 15), True),
    # Oliver signed version 1 of the face form; version 2 came after, so he must sign again.
    ("oliver.bennett@demo.clinic.invalid", FACE, _on(70, 10, 15), False),
)
FACE_V2_PUBLISHED = _on(3, 9)
SIGNED_AFTER_FACE_V2: tuple[tuple[str, str, Moment, bool], ...] = (
    # Amelia came in to sign the new version before her course starts.
    ("amelia.hart@demo.clinic.invalid", FACE, _on(2, 12), True),
    # Theo signed when he came for his allergy test yesterday (treatments.demo.allergy).
    ("theo.fairbairn@demo.clinic.invalid", FACE, _hours_ago(21.25), False),
)


def _publish(form: ConsentForm, author: User, **texts: str) -> None:
    # Not from a page: the demo data checks no version.
    draft = consent_draft_save(form=form, saved_by=author, expected_version=None, **texts)
    consent_version_publish(version=draft, published_by=author)


def _sign(form: ConsentForm, email: str, practitioner: User, *, at: datetime, photos: bool) -> int:
    patient = Patient.objects.filter(email=email).first()
    current = version_current(form=form)
    if patient is None or current is None:
        return 0
    if SignedConsent.objects.filter(patient=patient, version__form=form).exists():
        return 0
    with clock_at(at):
        consent_sign(
            patient=patient,
            form=form,
            version_uuid=current.uuid,
            sections_confirmed=CONSENT_SECTION_NAMES,
            photo_consent=photos,
            signer_name=patient.full_name,
            signature_data_url=demo_signature(len(email)),
            witness=practitioner,
            witnessed=True,
        )
    return 1


def _sign_all(
    signatures: tuple[tuple[str, str, Moment, bool], ...],
    forms: dict[str, ConsentForm],
    practitioner: User,
) -> int:
    added = 0
    for email, title, when, photos in signatures:
        added += _sign(forms[title], email, practitioner, at=when(), photos=photos)
    return added


def seed(*, practitioner: User, reception: User) -> int:
    """Write the demo forms (published when the clinic opened) and the demo
    patients' signatures, each on its day (clinic.demo_clock); return how
    many were added."""
    author = User.objects.filter(username="manager").first() or practitioner
    added = 0
    forms: dict[str, ConsentForm] = {}
    for title, own in TEXTS.items():
        form = ConsentForm.objects.filter(title=title).first()
        if form is None:
            with clock_at(clinic_time(working_day(OPENED_DAYS_AGO), 9)):
                form = consent_form_create(title=title, created_by=author)
                _publish(form, author, **COMMON, **own)
            added += 1
        forms[title] = form
    added += _sign_all(SIGNED_BEFORE_FACE_V2, forms, practitioner)
    face = forms[FACE]
    if not face.versions.filter(number=2, published_at__isnull=False).exists():
        with clock_at(FACE_V2_PUBLISHED()):
            _publish(face, author, **{**COMMON, **TEXTS[FACE], "aftercare": FACE_V2_AFTERCARE})
        added += 1
    added += _sign_all(SIGNED_AFTER_FACE_V2, forms, practitioner)
    return added
