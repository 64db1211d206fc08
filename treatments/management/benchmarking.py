"""What the treatment benchmarks share: the protocol they book their sessions with."""

from __future__ import annotations

from clinic.models import User
from consent.models import ConsentForm
from treatments.models import AftercareSheet, Interval, Protocol


def benchmark_protocol(*, tag: str, created_by: User, sheet: dict[str, str]) -> Protocol:
    """The protocol named `tag` a benchmark books (face and neck, six
    fortnightly sessions, maintenance every 6 months), with a consent form
    and an aftercare sheet of the same name; `sheet` gives the sheet's texts
    by field (introduction, do_advice, avoid_advice, warning_signs).

    Made by a first run (the form by `created_by`) and found again by the
    next, whatever texts it then gives. Raises nothing of its own; call it
    inside the benchmark's transaction.
    """
    form, _ = ConsentForm.objects.get_or_create(title=tag, defaults={"created_by": created_by})
    aftercare, _ = AftercareSheet.objects.get_or_create(title=tag, defaults=sheet)
    protocol, _ = Protocol.objects.get_or_create(
        name=tag,
        defaults={
            "indication": "Benchmark",
            "default_areas": ["face", "neck"],
            "default_sessions": 6,
            "interval": Interval.FORTNIGHTLY,
            "maintenance_months": 6,
            "consent_form": form,
            "aftercare_sheet": aftercare,
        },
    )
    return protocol
