"""Objects the URL walk needs: one for each sample id in tests.test_urlwalk.SAMPLE_KWARGS
that this part of the app takes in its routes, created with exactly that uuid."""

from __future__ import annotations


def create_samples(kwargs: dict[str, str]) -> None:
    """A planned reminder of the sample booking, so the logs show a row."""
    from datetime import timedelta

    from treatments.models import Booking, Reminder, ReminderChannel, ReminderKind

    booking = Booking.objects.filter(uuid=kwargs["booking"]).first()
    if booking is None:
        return
    Reminder.objects.create(
        uuid=kwargs["reminder"],
        kind=ReminderKind.SESSION,
        channel=ReminderChannel.EMAIL,
        patient=booking.patient,
        booking=booking,
        lead_minutes=120,
        slot_starts_at=booking.starts_at,
        intended_at=booking.starts_at - timedelta(hours=2),
        due_at=booking.starts_at - timedelta(hours=2),
    )
