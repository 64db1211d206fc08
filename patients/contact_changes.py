"""Changes of a patient's email or mobile number, and the wait they impose.

Who may route a patient's clinical documents (docs/architecture.md, "Who can
route clinical documents"): a change of the email or mobile number, by
anyone, is recorded as a `ContactChange` in the transaction that saves it,
and the previous address is told in the background. An email changed by
someone who cannot open the patient's clinical documents
(clinic.roles.CLINICAL_DOCUMENT_ROLES) receives nothing that opens them (a
portal invitation or sign-in link, an aftercare link) for
CONTACT_CHANGE_HOLD: the patient, told at their old address, has a day to
call the clinic before anything goes to the new one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone
from django.utils.translation import gettext as _

from clinic import dates
from clinic.models import User
from clinic.roles import CLINICAL_DOCUMENT_ROLES
from patients.models import ContactChange, ContactField, ContactNoticeStatus, Patient

CONTACT_CHANGE_HOLD = timedelta(hours=24)


def contact_changes_record(
    *,
    patient: Patient,
    previous: dict[str, Any],
    changed_by: User | None,
    held: bool = False,
) -> list[ContactChange]:
    """Record that `patient`'s email and/or phone changed, inside the caller's
    transaction (the service that saved them). `previous` maps "email" and
    "phone" (those that changed) to their values before the change (empty for
    a new record: nobody to tell); the notice to a non-empty previous address
    is owed from now (sent by the beat tick
    `treatments.contact_notices_dispatch`). `changed_by` None: no person
    (counted as not able to open clinical documents). `held` True: the new
    address came from someone who cannot open clinical documents even though
    `changed_by` can (a merge moving an address reception typed), so it is
    held like theirs."""
    now = timezone.now()
    clinical = bool(
        not held and changed_by is not None and changed_by.has_any_role(CLINICAL_DOCUMENT_ROLES)
    )
    rows = []
    for field in (ContactField.EMAIL, ContactField.PHONE):
        if field.value not in previous:
            continue
        value = previous[field.value]
        address = (value.as_e164 if hasattr(value, "as_e164") else str(value or "")).strip()
        row = ContactChange(
            patient=patient,
            field=field,
            previous=address,
            changed_at=now,
            changed_by=changed_by,
            by_clinical_role=clinical,
            notice_status=ContactNoticeStatus.PENDING if address else ContactNoticeStatus.NONE,
        )
        row.full_clean()
        rows.append(row)
    return ContactChange.objects.bulk_create(rows)


def email_set_by_non_clinical_role(*, patient: Patient) -> bool:
    """Whether `patient`'s email, as it stands, was last set by someone who
    cannot open clinical documents (at registration or since, at any age):
    an address that, moved elsewhere by a merge, is held again there."""
    latest = (
        ContactChange.objects.filter(patient=patient, field=ContactField.EMAIL)
        .order_by("-changed_at", "-id")
        .values_list("by_clinical_role", flat=True)
        .first()
    )
    return latest is False


@dataclass(frozen=True)
class EmailHold:
    """An email changed by someone who cannot open clinical documents, too
    recently for documents to be routed to it: when, and until when."""

    changed_at: datetime
    until: datetime
    previous_told: bool  # False: the email was added where there was none

    @property
    def sentence(self) -> str:
        """The wait in plain words, for staff (the clinic's local time)."""
        until = timezone.localtime(self.until)
        words = {"time": dates.clock(until), "day": dates.day(until)}
        sentence = (
            _(
                "The patient's email address was set or changed less than 24 hours ago by a member "
                "of staff who cannot see clinical documents. To protect the patient, nothing "
                "that opens their documents is emailed to it until %(time)s on %(day)s."
            )
            % words
        )
        if self.previous_told:
            sentence += " " + _("The previous address has been told of the change.")
        return sentence


def email_hold(*, patient: Patient, now: datetime | None = None) -> EmailHold | None:
    """The wait on `patient`'s email, or None when documents may go to it:
    when the email was last set, within CONTACT_CHANGE_HOLD (24 hours), by
    someone outside CLINICAL_DOCUMENT_ROLES, it is held until that change is
    24 hours old (one query). `now`: aware; the current time by default."""
    now = now or timezone.now()
    latest = (
        ContactChange.objects.filter(
            patient=patient, field=ContactField.EMAIL, changed_at__gt=now - CONTACT_CHANGE_HOLD
        )
        .order_by("-changed_at", "-id")
        .values_list("changed_at", "by_clinical_role", "previous")
        .first()
    )
    if latest is None or latest[1]:
        return None
    changed_at, _clinical, previous = latest
    return EmailHold(
        changed_at=changed_at, until=changed_at + CONTACT_CHANGE_HOLD, previous_told=bool(previous)
    )


def contact_change_sentences(
    *, patient: Patient, previous: dict[str, Any], now: datetime | None = None
) -> list[str]:
    """What a change of `patient`'s email or mobile number set off, in plain
    words for whoever made it (no clinical detail: reception reads it):
    the notice owed to the previous address, and the wait before documents
    go to a new email (`email_hold`). `previous` maps "email" and "phone"
    (those that changed) to their values before the change; [] when neither
    changed."""
    sentences = []
    if "email" in previous:
        if str(previous["email"] or "").strip():
            sentences.append(
                _("A notice of the change goes to the previous email address.")
                if patient.email
                else _("A notice that the email address was removed goes to that address.")
            )
        hold = email_hold(patient=patient, now=now) if patient.email else None
        if hold is not None:
            until = timezone.localtime(hold.until)
            sentences.append(
                _(
                    "Documents and portal invitations to the new address wait until %(time)s "
                    "on %(day)s, so the patient can call if the change was not theirs."
                )
                % {"time": dates.clock(until), "day": dates.day(until)}
            )
    if previous.get("phone"):
        sentences.append(_("A text message about the change goes to the previous mobile number."))
    return sentences
