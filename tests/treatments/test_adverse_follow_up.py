"""Following up an adverse event until it resolves: each follow-up a row of
its own below the event (which is never changed), with who and when,
audited, practitioners only; a resolved event takes no more."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
import time_machine
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from clinic.models import AuditAction, AuditEvent, User
from clinic.roles import Role
from tests.conftest import frozen_at, sign_in
from tests.pageforms import form_data
from tests.races import post_at_once
from tests.treatments.test_session_helpers import other_practitioner
from tests.treatments.timeline_story import LONDON, Story, returning_patient
from treatments.models import AdverseEvent, AdverseEventFollowUp
from treatments.services.session import AdverseEventResolvedError, adverse_event_follow_up

# Thursday 5 November 2026, four days after the session of 1 November.
NOW = datetime(2026, 11, 5, 9, 30, tzinfo=LONDON)
frozen = frozen_at(NOW)


def record_url(story: Story) -> str:
    return reverse("treatments:session_record", kwargs={"booking": story.session.booking.uuid})


def follow_up_url(story: Story) -> str:
    return reverse("treatments:adverse_event_follow_up", kwargs={"session": story.session.uuid})


def follow_up_post(client: Client, story: Story, **typed: Any) -> Any:
    """The follow-up form of the session's page, as the browser sends it."""
    page = client.get(record_url(story)).content.decode()
    data = form_data(page, action=follow_up_url(story), **typed)
    return client.post(follow_up_url(story), data)


@pytest.mark.django_db
def test_a_practitioner_follows_up_then_marks_resolved(
    client: Client, practitioner: User, make_staff: Callable[..., User]
) -> None:
    story = returning_patient(practitioner)
    nurse = make_staff("nurse", Role.PRACTITIONER, first_name="Nadia", last_name="Okafor")
    sign_in(client, nurse)
    page = client.get(record_url(story)).content.decode()
    assert 'data-testid="event-open"' in page
    assert 'data-testid="follow-up-form"' in page

    response = follow_up_post(client, story, **{"followup-note": "Fading; arnica advised"})
    assert response.status_code == 302
    assert response["Location"].endswith(f"#event-{story.bruise.uuid}")
    first = AdverseEventFollowUp.objects.get()
    assert (first.event, first.note, first.resolved) == (
        story.bruise,
        "Fading; arnica advised",
        False,
    )
    assert (first.recorded_by, first.recorded_at) == (nurse, NOW)
    page = client.get(record_url(story)).content.decode()
    assert "Fading; arnica advised" in page
    assert f"{nurse.get_full_name()}, Thu 5 Nov, 09:30" in page
    assert 'data-testid="event-open"' in page

    later = NOW + timedelta(days=3)
    with time_machine.travel(later, tick=False):
        sign_in(client, nurse)  # three days later: a new sign-in
        response = follow_up_post(
            client, story, **{"followup-note": "Gone, skin clear", "followup-resolved": "on"}
        )
        assert response.status_code == 302
        page = client.get(record_url(story)).content.decode()
    assert 'data-testid="event-resolved"' in page
    assert "resolved Sun 8 Nov" in page
    assert "marked resolved" in page
    assert 'data-testid="follow-up-form"' not in page  # nothing more to follow up
    # The event itself is as it was recorded.
    event = AdverseEvent.objects.get(pk=story.bruise.pk)
    assert (event.resolved_on, event.notes) == (None, "Small bruise under the left cheekbone")

    audits = AuditEvent.objects.filter(
        object_type="treatments.adverseeventfollowup", action=AuditAction.CREATE
    ).order_by("id")
    assert [a.actor for a in audits] == [nurse, nurse]
    assert {a.patient_ref for a in audits} == {story.patient.uuid}
    assert [a.object_id for a in audits] == [
        str(f.uuid) for f in AdverseEventFollowUp.objects.order_by("id")
    ]
    assert all({"note", "resolved"} <= set(a.changed_fields) for a in audits)


@pytest.mark.django_db
def test_a_resolved_event_takes_no_more_follow_ups(client: Client, practitioner: User) -> None:
    story = returning_patient(practitioner)
    adverse_event_follow_up(
        event=story.bruise, recorded_by=practitioner, note="Gone", resolved=True, at=NOW
    )
    sign_in(client, practitioner)
    # A form opened before it was resolved, sent after.
    data = {
        "followup-event": str(story.bruise.uuid),
        "followup-note": "Still a little yellow",
        "followup-submission_token": "",
    }
    response = client.post(follow_up_url(story), data)
    assert response.status_code == 409
    page = response.content.decode()
    assert (
        f"This adverse event was marked resolved on Thu 5 Nov by {practitioner.get_full_name()}"
        in page
    )
    assert "Still a little yellow" in page  # what was typed is kept
    assert AdverseEventFollowUp.objects.count() == 1


@pytest.mark.django_db
def test_an_event_recorded_already_resolved_takes_no_follow_up(practitioner: User) -> None:
    story = returning_patient(practitioner)
    redness = AdverseEvent.objects.create(
        session=story.session,
        effect="redness",
        severity="mild",
        onset=story.session.booking.starts_at + timedelta(minutes=20),
        resolved_on=datetime(2026, 11, 2, tzinfo=LONDON).date(),
        recorded_by=practitioner,
    )
    with pytest.raises(AdverseEventResolvedError, match="resolved on Mon 2 Nov"):
        adverse_event_follow_up(
            event=redness, recorded_by=practitioner, note="Fine", resolved=False, at=NOW
        )


@pytest.mark.django_db
def test_an_empty_note_is_refused_with_the_form_kept(client: Client, practitioner: User) -> None:
    story = returning_patient(practitioner)
    sign_in(client, practitioner)
    response = follow_up_post(client, story, **{"followup-note": "   ", "followup-resolved": "on"})
    assert response.status_code == 400
    page = response.content.decode()
    assert "This field is required." in page or "Write how it is going" in page
    assert "checked" in page.split(f'id="event-{story.bruise.uuid}"')[1].split("</form>")[0]
    assert not AdverseEventFollowUp.objects.exists()


@pytest.mark.django_db
def test_an_event_of_another_session_is_refused_and_nothing_written(
    client: Client, practitioner: User
) -> None:
    """Refused with a 400 that gives the note back (see
    test_session_hostile_posts): another session's event is never followed up."""
    story = returning_patient(practitioner)
    other = returning_patient(other_practitioner(), suffix=" (2)")
    sign_in(client, practitioner)
    data = {"followup-event": str(other.bruise.uuid), "followup-note": "Checked"}
    assert client.post(follow_up_url(story), data).status_code == 400
    assert not AdverseEventFollowUp.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("role", ["receptionist", "manager"])
def test_only_practitioners_follow_up(
    client: Client, practitioner: User, role: str, request: pytest.FixtureRequest
) -> None:
    story = returning_patient(practitioner)
    sign_in(client, request.getfixturevalue(role))
    data = {"followup-event": str(story.bruise.uuid), "followup-note": "Checked"}
    assert client.post(follow_up_url(story), data).status_code == 403
    assert not AdverseEventFollowUp.objects.exists()


@pytest.mark.django_db
def test_the_form_sent_twice_adds_one_follow_up(client: Client, practitioner: User) -> None:
    story = returning_patient(practitioner)
    sign_in(client, practitioner)
    page = client.get(record_url(story)).content.decode()
    data = form_data(
        page,
        action=follow_up_url(story),
        **{"followup-note": "Better", "followup-resolved": "on"},
    )
    assert client.post(follow_up_url(story), data).status_code == 302
    again = client.post(follow_up_url(story), data)
    assert again.status_code == 302  # to the record, "already saved", not "resolved"
    assert AdverseEventFollowUp.objects.count() == 1
    assert "already saved" in client.get(again["Location"]).content.decode()


@pytest.mark.django_db
def test_follow_ups_are_never_changed_or_deleted(practitioner: User) -> None:
    story = returning_patient(practitioner)
    follow_up = adverse_event_follow_up(
        event=story.bruise, recorded_by=practitioner, note="Fading", resolved=False, at=NOW
    )
    for statement in (
        "UPDATE treatments_adverseeventfollowup SET note = 'Changed' WHERE id = %s",
        "DELETE FROM treatments_adverseeventfollowup WHERE id = %s",
    ):
        with (
            # The trigger refuses the change; the application role may not delete at all.
            pytest.raises(DatabaseError, match=r"never changed or deleted|permission denied"),
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            cursor.execute(statement, [follow_up.pk])
    assert AdverseEventFollowUp.objects.get().note == "Fading"


@pytest.mark.django_db
def test_the_database_holds_one_resolving_follow_up_per_event(practitioner: User) -> None:
    story = returning_patient(practitioner)
    adverse_event_follow_up(
        event=story.bruise, recorded_by=practitioner, note="Gone", resolved=True, at=NOW
    )
    with pytest.raises(IntegrityError), transaction.atomic():
        AdverseEventFollowUp.objects.create(
            event=story.bruise,
            note="Gone too",
            resolved=True,
            recorded_at=NOW,
            recorded_by=practitioner,
        )


@pytest.mark.django_db(transaction=True)
def test_two_practitioners_resolving_at_once_resolve_it_once(
    practitioner: User, make_staff: Callable[..., User]
) -> None:
    story = returning_patient(practitioner)
    nurse = make_staff("nurse", Role.PRACTITIONER)
    clients = [sign_in(Client(), practitioner), sign_in(Client(), nurse)]
    pages = [c.get(record_url(story)).content.decode() for c in clients]
    payloads = [
        form_data(
            page,
            action=follow_up_url(story),
            **{"followup-note": f"Resolved, seen by {n}", "followup-resolved": "on"},
        )
        for n, page in enumerate(pages)
    ]
    answers = post_at_once(clients, follow_up_url(story), payloads)
    assert sorted(a.status for a in answers) == [302, 409], answers
    assert AdverseEventFollowUp.objects.filter(resolved=True).count() == 1
    refused = next(a for a in answers if a.status == 409)
    assert "was marked resolved on Thu 5 Nov" in refused.body
    assert timezone.localdate(AdverseEventFollowUp.objects.get().recorded_at) == NOW.date()
