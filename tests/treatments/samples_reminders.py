"""Objects the URL walk needs: one for each sample id in tests.test_urlwalk.SAMPLE_KWARGS
that this part of the app takes in its routes, created with exactly that uuid."""

from __future__ import annotations


def create_samples(kwargs: dict[str, str]) -> None:
    """The sample booking's reminders, planned by the planning service, so
    the logs show rows. (No route takes a reminder's uuid.)"""
    from django.db import transaction

    from treatments.models import Booking
    from treatments.services.reminders import reminders_plan_for_booking

    booking = Booking.objects.filter(uuid=kwargs["booking"]).first()
    if booking is None:
        return
    with transaction.atomic():
        planned = reminders_plan_for_booking(booking=booking)
    assert planned, "the sample booking (tomorrow at 10:00) has its 2-hour reminder planned"
