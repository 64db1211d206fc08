"""Reads of consent: the current text of a form and where a patient stands."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import datetime

from django.db.models import Count, Max, OuterRef, Q, QuerySet, Subquery
from django.http import Http404
from django.utils.translation import gettext as _

from consent.models import ConsentForm, ConsentFormVersion, SignedConsent, sections_text
from patients.models import Patient


class ConsentStatus:
    VALID = "valid"
    NOT_SIGNED = "not_signed"
    RECONSENT_NEEDED = "reconsent_needed"  # signed an older version
    WITHDRAWN = "withdrawn"
    NO_PUBLISHED_VERSION = "no_published_version"


@dataclass(frozen=True)
class ConsentState:
    """Where one patient stands with one consent form."""

    status: str
    current_version: ConsentFormVersion | None
    signed: SignedConsent | None  # the latest signature on any version, if any

    @property
    def is_valid(self) -> bool:
        return self.status == ConsentStatus.VALID

    @property
    def sentence(self) -> str:
        """The reason in plain words, for the practitioner; empty when valid."""
        form = self.current_version.form.title if self.current_version else ""
        if self.status == ConsentStatus.NO_PUBLISHED_VERSION:
            return _("The consent form has no published version yet: the manager must publish one.")
        if self.status == ConsentStatus.NOT_SIGNED:
            return _("The patient has not signed the consent form “%(form)s”.") % {"form": form}
        if self.status == ConsentStatus.RECONSENT_NEEDED:
            assert self.current_version is not None
            assert self.signed is not None
            return _(
                "Re-consent needed: the patient signed version %(old)s of “%(form)s”, "
                "and version %(new)s is now current."
            ) % {
                "old": self.signed.version.number,
                "new": self.current_version.number,
                "form": form,
            }
        if self.status == ConsentStatus.WITHDRAWN:
            return _("The patient withdrew their consent to “%(form)s”.") % {"form": form}
        return ""

    @property
    def reception_note(self) -> str:
        """What reception may see: no clinical detail."""
        if self.status == ConsentStatus.RECONSENT_NEEDED:
            return _("re-consent needed")
        if self.status == ConsentStatus.VALID:
            return ""
        return _("consent needed")


def version_current(*, form: ConsentForm) -> ConsentFormVersion | None:
    """The published version future signatures use: the highest number published."""
    return (
        form.versions.filter(published_at__isnull=False)
        .select_related("form")
        .order_by("-number")
        .first()
    )


def signed_consents_of(*, patient: Patient) -> QuerySet[SignedConsent]:
    """The consents `patient` signed, newest first, with their form version,
    witness, withdrawal and PDF loaded (one query)."""
    return (
        SignedConsent.objects.filter(patient=patient)
        .select_related("patient", "version__form", "witness", "withdrawal", "pdf")
        .order_by("-signed_at", "-id")
    )


def consent_state_from(
    *,
    current: ConsentFormVersion | None,
    latest: SignedConsent | None,
    as_of: datetime | None = None,
) -> ConsentState:
    """Where a patient stands, from the form's current published version and the
    patient's latest signature on any version of it (with `withdrawal` loaded).
    With `as_of` (aware), a withdrawal recorded after it does not count yet.
    The one place the rule of gate 3 is decided; no query of its own."""
    withdrawal = getattr(latest, "withdrawal", None) if latest is not None else None
    withdrawn = withdrawal is not None and (as_of is None or withdrawal.withdrawn_at <= as_of)
    if current is None:
        status = ConsentStatus.NO_PUBLISHED_VERSION
    elif latest is None:
        status = ConsentStatus.NOT_SIGNED
    elif withdrawn:
        status = ConsentStatus.WITHDRAWN
    elif latest.version_id != current.pk:
        status = ConsentStatus.RECONSENT_NEEDED
    else:
        status = ConsentStatus.VALID
    return ConsentState(status=status, current_version=current, signed=latest)


def consent_state(*, patient: Patient, form: ConsentForm) -> ConsentState:
    """Gate 3's question: has this patient signed the current version of this
    form, and not withdrawn it? The latest signature decides."""
    return consent_state_from(
        current=version_current(form=form),
        latest=signed_consents_of(patient=patient).filter(version__form=form).first(),
    )


def consent_states_of(*, patient: Patient) -> list[tuple[ConsentForm, ConsentState]]:
    """Every consent form with this patient's state, in a fixed number of queries."""
    forms = list(ConsentForm.objects.order_by("title"))
    currents: dict[int, ConsentFormVersion] = {}
    for version in (
        ConsentFormVersion.objects.filter(published_at__isnull=False)
        .select_related("form")
        .order_by("form_id", "-number")
    ):
        currents.setdefault(version.form_id, version)
    latest: dict[int, SignedConsent] = {}
    for signed in signed_consents_of(patient=patient):
        latest.setdefault(signed.version.form_id, signed)
    states = []
    for form in forms:
        states.append(
            (form, consent_state_from(current=currents.get(form.pk), latest=latest.get(form.pk)))
        )
    return states


def consent_forms_overview() -> QuerySet[ConsentForm]:
    """The forms with their number of published versions and of signatures."""
    return ConsentForm.objects.annotate(
        published_count=Count("versions", filter=Q(versions__published_at__isnull=False)),
        current_number=Max("versions__number", filter=Q(versions__published_at__isnull=False)),
        has_draft=Count("versions", filter=Q(versions__published_at__isnull=True)),
    ).order_by("title")


def form_versions(*, form: ConsentForm) -> list[ConsentFormVersion]:
    """The versions of a form, newest first, each with its number of signatures."""
    return list(
        form.versions.select_related("published_by", "created_by")
        .annotate(signature_count=Count("signatures"))
        .order_by("-number")
    )


def patients_needing_reconsent(*, form: ConsentForm) -> int:
    """Patients whose latest signature on this form is on an older published
    version (and not withdrawn): consent_state flags them "re-consent needed"."""
    current = version_current(form=form)
    if current is None:
        return 0
    latest = (
        SignedConsent.objects.filter(patient=OuterRef("patient"), version__form=form)
        .order_by("-signed_at", "-id")
        .values("pk")[:1]
    )
    return (
        SignedConsent.objects.filter(version__form=form, pk=Subquery(latest))
        .exclude(version=current)
        .filter(withdrawal__isnull=True)
        .count()
    )


def signed_consent_get(*, patient: Patient, signed_uuid: uuid.UUID | str) -> SignedConsent:
    """One of this patient's signed consents; 404 for anyone else's."""
    try:
        return signed_consents_of(patient=patient).get(uuid=signed_uuid)
    except SignedConsent.DoesNotExist:
        raise Http404 from None


def text_matches_hash(signed: SignedConsent) -> bool:
    """Recompute the SHA-256 of the stored text: does it still match?"""
    return hashlib.sha256(signed.text.encode("utf-8")).hexdigest() == signed.text_sha256


def sections_match_text(signed: SignedConsent) -> bool:
    """Do the sections recorded (what the pages and the PDF show) write out to
    the stored text, the one the fingerprint covers? The title and version
    lines that open the text are left out of the comparison."""
    title_and_version = signed.text.split("\n", 2)
    return len(title_and_version) == 3 and title_and_version[2] == "\n" + sections_text(
        signed.sections
    )
