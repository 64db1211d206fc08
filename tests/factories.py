"""Factories for the clinic's models."""

from __future__ import annotations

from typing import Any

import factory
from django.contrib.auth.models import Group
from django_otp.plugins.otp_totp.models import TOTPDevice

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
