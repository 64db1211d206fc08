"""Factories for the clinic's models."""

from __future__ import annotations

import io
from typing import Any

import factory
from django.contrib.auth.models import Group
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice
from PIL import Image

from clinic.models import User

PASSWORD = "correct horse battery staple"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    first_name = factory.Faker("first_name")
    last_name = factory.Faker("last_name")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.org")
    password = factory.django.Password(PASSWORD)

    @factory.post_generation
    def roles(self, create: bool, extracted: Any, **kwargs: Any) -> None:
        if create and extracted:
            self.groups.set(Group.objects.filter(name__in=[str(r) for r in extracted]))


class TOTPDeviceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = TOTPDevice

    user = factory.SubFactory(UserFactory)
    name = "authenticator"
    confirmed = True


class PatientFactory(factory.django.DjangoModelFactory):
    """Patients are created through the service in views; the factory keeps
    search_text in step the same way."""

    class Meta:
        model = "patients.Patient"

    first_name = factory.Faker("first_name")
    last_name = factory.Faker("last_name")
    date_of_birth = factory.Faker("date_of_birth", minimum_age=18, maximum_age=80)
    email = factory.LazyAttribute(lambda p: f"{p.first_name}.{p.last_name}@example.org".lower())
    phone = factory.Sequence(lambda n: f"+447911{n % 1000000:06d}")
    reminder_channel = "email"
    consents_to_messages = True

    @classmethod
    def _create(cls, model_class: Any, *args: Any, **kwargs: Any) -> Any:
        from patients.services import patient_search_text

        patient = model_class(*args, **kwargs)
        patient.search_text = patient_search_text(patient)
        patient.save()
        return patient


def _no_conditions() -> dict[str, bool]:
    from patients.models import HISTORY_BOOLEAN_FIELDS

    return dict.fromkeys(HISTORY_BOOLEAN_FIELDS, False)


# Every yes/no question of the questionnaire, answered "no".
NO_CONDITIONS = _no_conditions()


def make_history(patient: Any, signed_by: Any, **answers: Any) -> Any:
    """A signed history through the service, with every question answered 'no'
    unless given."""
    from patients.services import medical_history_record

    return medical_history_record(
        patient=patient, signed_by=signed_by, answers={**NO_CONDITIONS, **answers}
    )


# --- Consent ------------------------------------------------------------------------


class ConsentFormFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "consent.ConsentForm"

    title = factory.Sequence(lambda n: f"Mesotherapy consent {n}")
    created_by = factory.SubFactory(UserFactory)


class ConsentFormVersionFactory(factory.django.DjangoModelFactory):
    """A published version by default; `published_at=None, published_by=None` for a draft."""

    class Meta:
        model = "consent.ConsentFormVersion"

    form = factory.SubFactory(ConsentFormFactory)
    number = factory.LazyAttribute(lambda v: v.form.versions.count() + 1)
    procedure = "Tiny injections into the middle layer of the skin."
    benefits = "Brighter, better hydrated skin over a course of sessions."
    common_side_effects = "Redness, swelling, small bruises for a day or two."
    rare_complications = "Infection, lumps, allergic reaction, scarring."
    alternatives = "Peels, microneedling, or no treatment."
    aftercare = "No make-up for 12 hours; no sauna or sport for 48 hours."
    photo_consent_text = "Photographs for my clinical record only."
    created_by = factory.SelfAttribute("form.created_by")
    published_at = factory.LazyFunction(timezone.now)
    published_by = factory.SelfAttribute("form.created_by")


# --- Catalogue ----------------------------------------------------------------------


class IngredientFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "treatments.Ingredient"

    name = factory.Sequence(lambda n: f"Ingredient {n}")
    category = "vitamin"


class ProductFactory(factory.django.DjangoModelFactory):
    """A product; `ingredients=[...]` sets them, otherwise one new ingredient."""

    class Meta:
        model = "treatments.Product"
        skip_postgeneration_save = True

    name = factory.Sequence(lambda n: f"Revitalising solution {n}")
    maker = "Lab Example"
    concentration = "10 mg/mL"

    @factory.post_generation
    def ingredients(self, create: bool, extracted: Any, **kwargs: Any) -> None:
        if create:
            self.ingredients.set(extracted if extracted is not None else [IngredientFactory()])


class BatchFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "treatments.Batch"

    product = factory.SubFactory(ProductFactory)
    lot_number = factory.Sequence(lambda n: f"LOT{n:05d}")
    received_on = factory.LazyFunction(timezone.localdate)
    expiry_date = factory.LazyAttribute(
        lambda b: b.received_on.replace(year=b.received_on.year + 1)
    )
    quantity_received = 20


class AftercareSheetFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "treatments.AftercareSheet"

    title = factory.Sequence(lambda n: f"Aftercare {n}")
    introduction = "What to expect after your session."
    do_advice = "Use a cold compress for swelling.\nWear sunscreen."
    avoid_advice = "No make-up for 12 hours.\nNo sauna, steam or sport for 48 hours."
    warning_signs = "Spreading redness, heat or pus.\nDifficulty breathing: call 999."


class ProtocolFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "treatments.Protocol"

    name = factory.Sequence(lambda n: f"Revitalising {n}")
    indication = "Dull, dehydrated skin and fine lines."
    default_areas = factory.LazyFunction(lambda: ["face", "neck"])
    default_sessions = 6
    interval = "fortnightly"
    session_minutes = 45
    maintenance_months = 6
    consent_form = factory.SubFactory(ConsentFormFactory)
    aftercare_sheet = factory.SubFactory(AftercareSheetFactory)


def jpeg() -> bytes:
    """A small plain photograph (64x48, no metadata), as a camera's JPEG bytes."""
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 120, 90)).save(buffer, "JPEG")
    return buffer.getvalue()
