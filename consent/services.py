"""State changes of consent: drafting and publishing form versions, signing,
withdrawing, and making the PDF of a signed consent. Views, tasks and the demo
data call these; nothing else saves a consent model."""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import logging
import uuid
from collections.abc import Iterable
from typing import Any

from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone
from django.utils.translation import gettext as _
from PIL import Image

from clinic import clinic_settings
from clinic.audit import audit_log
from clinic.background import enqueue
from clinic.concurrency import (
    OtherEdit,
    StaleChange,
    StaleEditError,
    bad_version_error,
    differs,
    stale_edit_error,
    stale_message,
    submission_check,
    submission_marks,
    version_bump,
    version_check,
    version_mark,
)
from clinic.documents import (
    document_queue,
    document_render,
    document_requeue_due,
    document_retry,
)
from clinic.models import AuditAction, User
from clinic.names import nfc
from consent.models import (
    CONSENT_SECTION_NAMES,
    CONSENT_SECTIONS,
    PHOTOGRAPHS,
    ConsentForm,
    ConsentFormVersion,
    ConsentWithdrawal,
    SignedConsent,
    SignedConsentPDF,
    sections_text,
)
from consent.selectors import version_current
from patients.images import ImageRejectedError, untrusted_image, without_metadata
from patients.locking import patient_hold
from patients.models import Patient

logger = logging.getLogger(__name__)

VERSION_TEXT_FIELDS = (*CONSENT_SECTION_NAMES, "photo_consent_text")

# A drawn signature is a small PNG: a few tens of kilobytes at tablet size.
SIGNATURE_MAX_BYTES = 512 * 1024
SIGNATURE_MAX_WIDTH = 2400
SIGNATURE_MAX_HEIGHT = 1200
SIGNATURE_MAX_PIXELS = 1_600_000
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
DATA_URL_PREFIX = "data:image/png;base64,"

# PostgreSQL's name for the UNIQUE of ConsentWithdrawal.signed_consent (a one-to-one).
ONE_WITHDRAWAL_PER_CONSENT = "consent_consentwithdrawal_signed_consent_id_key"


# --- Forms and versions ---------------------------------------------------------------------


@transaction.atomic
def consent_form_create(
    *, title: str, created_by: User, submission_token: uuid.UUID | None = None
) -> ConsentForm:
    """Create a consent form called `title` (trimmed); its text is written as
    a draft next. `submission_token` is the form's one-time token: sent twice,
    one form is created (AlreadySubmittedError, clinic.concurrency, with
    `.obj`). Raises `ValidationError` for an empty or too long title."""
    submission_check(ConsentForm, submission_token, by=created_by)
    form = ConsentForm(title=title.strip(), created_by=created_by)
    form.full_clean()
    form.save()
    audit_log(
        actor=created_by,
        action=AuditAction.CREATE,
        obj=form,
        changed_fields=submission_marks(submission_token),
    )
    return form


def _draft_gone_error(form: ConsentForm) -> StaleEditError:
    """The refusal for an edit of a draft that was published since it was opened."""
    published = (
        form.versions.filter(published_at__isnull=False)
        .select_related("published_by")
        .order_by("-published_at", "-id")
        .first()
    )
    if published is None:  # a draft discarded: nothing to compare with
        return bad_version_error()
    assert published.published_by is not None
    who = published.published_by.get_full_name() or published.published_by.get_username()
    edits = [OtherEdit(by=who, at=published.published_at, labels=[_("Published")])]
    change = StaleChange(
        field="published_at",
        label=_("Published"),
        value=_("as version %(number)s") % {"number": published.number},
        by=who,
        at=published.published_at,
    )
    # Saved again, the form makes the next draft, from the text just published.
    return StaleEditError(
        stale_message(edits, what=_("draft")),
        changes=[change],
        edits=edits,
        current=published,
        version=0,
    )


@transaction.atomic
def consent_draft_save(
    *, form: ConsentForm, saved_by: User, expected_version: int | None, **texts: str
) -> ConsentFormVersion:
    """Create the form's one draft, or change it. Published versions are never touched.

    `texts` are the draft's sections (VERSION_TEXT_FIELDS), as typed (a form
    sends those the person changed: a section left out keeps its text). A new
    draft starts from the text of the current published version, if any.
    `expected_version` is the version of the draft the page was opened with,
    0 when the form had no draft then (None: not from a page, the demo data).
    Only the sections that differ (`clinic.concurrency.differs`) are saved;
    the draft's version is raised and the audit event names them.

    Raises `StaleEditError` (clinic.concurrency) when the draft changed since
    the page was opened: another manager saved it, created it (the page had
    none), or published it (the page had it as a draft); code "stale_edit",
    with the sections changed, their text now, who and when. Code
    "bad_version" for a version the draft never had. `ValidationError` for an
    empty section; `TypeError` for other fields. Nothing is written when it
    raises."""
    unknown = set(texts) - set(VERSION_TEXT_FIELDS)
    if unknown:
        raise TypeError(f"not version text: {sorted(unknown)}")
    # Lock the form: two managers saving the first draft at once make one draft,
    # and the draft cannot change or be published while this save decides.
    ConsentForm.objects.select_for_update().get(pk=form.pk)
    draft = form.versions.filter(published_at__isnull=True).first()
    if expected_version is not None:
        if draft is None and expected_version != 0:
            raise _draft_gone_error(form)
        if draft is not None and expected_version == 0:
            raise stale_edit_error(draft, since=0)
        if draft is not None:
            version_check(draft, expected=expected_version)
    creating = draft is None
    if draft is None:
        numbers = form.versions.aggregate(n=Max("number"), v=Max("version"))
        draft = ConsentFormVersion(
            form=form,
            number=(numbers["n"] or 0) + 1,
            created_by=saved_by,
            # Versions run on across the form's drafts: a page opened on a
            # draft since published is stale against the next draft too.
            version=(numbers["v"] or 0) + 1,
        )
        # The next version starts from the current text: the sections named
        # as changed are those that differ from it.
        published = version_current(form=form)
        for name in VERSION_TEXT_FIELDS:
            setattr(draft, name, getattr(published, name) if published is not None else "")
    changed = [name for name, value in texts.items() if differs(getattr(draft, name), value)]
    for name in changed:
        setattr(draft, name, texts[name])
    if creating or changed:
        mark = version_mark(draft.version) if creating else version_bump(draft)
        draft.full_clean()
        draft.save()
        audit_log(
            actor=saved_by,
            action=AuditAction.CREATE if creating else AuditAction.UPDATE,
            obj=draft,
            changed_fields=[*changed, mark],
        )
    else:
        draft.full_clean()
    return draft


@transaction.atomic
def consent_version_publish(
    *,
    version: ConsentFormVersion,
    published_by: User,
    expected_version: int | None = None,
) -> ConsentFormVersion:
    """Publish the draft: it gets the next number and its text is frozen for good
    (the database refuses any later change). Future signatures use it; patients
    who signed an older version are flagged "re-consent needed". Its version
    is raised, so a draft page opened before is refused.

    `expected_version` is the version of the draft the preview showed (None:
    not from a page): a text changed since is never published unread.
    Raises `ValidationError` (code "already_published") when `version` is
    already published; `StaleEditError` (clinic.concurrency) when the draft
    changed since the preview was opened ("stale_edit": the sections changed,
    their text now, who and when) or the version is not one it had
    ("bad_version")."""
    ConsentForm.objects.select_for_update().get(pk=version.form_id)
    draft = ConsentFormVersion.objects.select_for_update().get(pk=version.pk)
    if draft.published_at is not None:
        raise ValidationError(
            _("Version %(number)s is already published; write a new draft to change the text.")
            % {"number": draft.number},
            code="already_published",
        )
    version_check(draft, expected=expected_version)
    highest = (
        ConsentFormVersion.objects.filter(
            form_id=draft.form_id, published_at__isnull=False
        ).aggregate(n=Max("number"))["n"]
        or 0
    )
    draft.number = highest + 1
    draft.published_at = timezone.now()
    draft.published_by = published_by
    mark = version_bump(draft)
    draft.full_clean()
    draft.save()
    audit_log(
        actor=published_by,
        action=AuditAction.PUBLISHED,
        obj=draft,
        changed_fields=["number", "published_at", "published_by", mark],
    )
    return draft


# --- Signing --------------------------------------------------------------------------------


def _plain(text: str) -> str:
    return text.strip().replace("\r\n", "\n")


def consent_sections(*, version: ConsentFormVersion, photo_consent: bool) -> list[dict[str, str]]:
    """The sections the patient reads and agrees to, in reading order, as stored
    on the signed consent: {"name", "heading", "text"} for each of the six
    sections of CONSENT_SECTIONS (headings in the active language, texts as the
    version has them, trimmed), then PHOTOGRAPHS: the version's photographs
    wording and, on the next line, the patient's choice.

    `version`: the (published) version signed; `photo_consent`: whether the
    patient agrees to photographs. Raises nothing."""
    sections = [
        {"name": name, "heading": str(heading), "text": _plain(getattr(version, name))}
        for name, heading in CONSENT_SECTIONS
    ]
    choice = (
        _("The patient agrees to photographs being taken.")
        if photo_consent
        else _("The patient does not agree to photographs being taken.")
    )
    sections.append(
        {
            "name": PHOTOGRAPHS,
            "heading": _("Photographs"),
            "text": _plain(version.photo_consent_text) + "\n" + choice,
        }
    )
    return sections


def consent_text(*, version: ConsentFormVersion, photo_consent: bool) -> str:
    """The exact text the patient agrees to, as one canonical string: what is
    stored and hashed. The form's title and the version number, a blank line,
    then `sections_text` of `consent_sections(...)`: byte for byte the text
    signatures have always stored, so every fingerprint recorded still verifies.

    `version`: the version signed; `photo_consent`: the patient's choice about
    photographs. Raises nothing."""
    return _text_of(version, consent_sections(version=version, photo_consent=photo_consent))


def _text_of(version: ConsentFormVersion, sections: list[dict[str, str]]) -> str:
    header = [version.form.title, _("Version %(number)s") % {"number": version.number}, ""]
    return "\n".join(header) + "\n" + sections_text(sections)


def sha256_hex(data: str | bytes) -> str:
    """The SHA-256 of `data` (text as UTF-8, or bytes), as 64 lowercase hex digits."""
    return hashlib.sha256(data.encode("utf-8") if isinstance(data, str) else data).hexdigest()


def signature_png_clean(data_url: str) -> bytes:
    """The drawn signature, checked and re-encoded as a fresh PNG (no metadata).

    `data_url`: the PNG as a base64 data URL, as the signing page sends it.
    Raises ValidationError when it is missing, not a PNG ("not_png"), too
    large ("too_large": over 512 KB, 2400 x 1200 pixels or 1.6 megapixels,
    read from the header before any pixel is decoded, so a picture declaring
    100,000 x 100,000 pixels is refused, not expanded) or blank."""
    data_url = (data_url or "").strip()
    if not data_url:
        raise ValidationError(
            _("The patient has not signed yet: please draw the signature in the box."),
            code="missing",
        )
    if not data_url.startswith(DATA_URL_PREFIX):
        raise ValidationError(
            _("The signature was not received as a picture. Clear it and sign again."),
            code="not_png",
        )
    encoded = data_url[len(DATA_URL_PREFIX) :]
    if len(encoded) > SIGNATURE_MAX_BYTES * 4 // 3 + 4:
        raise ValidationError(
            _("The signature picture is too large. Clear it and sign again."), code="too_large"
        )
    try:
        raw = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise ValidationError(
            _("The signature was not received as a picture. Clear it and sign again."),
            code="not_png",
        ) from None
    if not raw.startswith(PNG_MAGIC):
        raise ValidationError(
            _("The signature was not received as a picture. Clear it and sign again."),
            code="not_png",
        )
    too_large = _("The signature picture is too large. Clear it and sign again.")
    try:
        # The size is checked from the header, before any pixel is decoded.
        with untrusted_image(
            io.BytesIO(raw), max_pixels=SIGNATURE_MAX_PIXELS, too_large=too_large, formats=("PNG",)
        ) as image:
            width, height = image.size
            if width > SIGNATURE_MAX_WIDTH or height > SIGNATURE_MAX_HEIGHT:
                raise ImageRejectedError(too_large, code="too_large")
            image.load()
            rgba = without_metadata(image.convert("RGBA"))
    except ImageRejectedError as exc:
        if exc.code == "too_large":
            raise ValidationError(too_large, code="too_large") from None
        raise ValidationError(
            _("The signature was not received as a picture. Clear it and sign again."),
            code="not_png",
        ) from None
    # Drawn on white or on transparent: flatten on white, then look for ink.
    flat = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    flat.alpha_composite(rgba)
    extrema = flat.convert("L").getextrema()
    darkest = extrema[0] if isinstance(extrema, tuple) else extrema
    if not isinstance(darkest, (int, float)) or darkest > 200:
        raise ValidationError(
            _("The signature box is empty: please draw the signature."), code="blank"
        )
    out = io.BytesIO()
    rgba.save(out, format="PNG", optimize=True)
    return out.getvalue()


@transaction.atomic
def consent_sign(
    *,
    patient: Patient,
    form: ConsentForm,
    version_uuid: Any,
    sections_confirmed: Iterable[str],
    photo_consent: bool,
    signer_name: str,
    signature_data_url: str,
    witness: User,
    witnessed: bool,
    submission_token: uuid.UUID | None = None,
) -> SignedConsent:
    """Record the patient's signature on the current version of `form`,
    countersigned by `witness`: the sections read (as data, `consent_sections`),
    the canonical text written from them and its SHA-256, the re-encoded
    signature, and a queued PDF row (the task is queued after commit).

    `version_uuid`: the version the page showed; `sections_confirmed`: names of
    the sections ticked; `photo_consent`: the patient's choice; `signer_name`:
    the name the patient typed; `signature_data_url`: the drawn PNG as a data
    URL; `witnessed`: the practitioner's tick; `submission_token`: the signing
    page's one-time token, stored on the record (None: no page, no guard).

    Raises `AlreadySubmittedError` (clinic.concurrency, with `.obj`) when a
    signature was already recorded with this token: the same page sent twice
    (a double tap), even at the same instant, records one signature. Refuses
    (ValidationError, keyed by form field) anything short of a complete,
    current, drawn and witnessed consent: "version" when a newer version was
    published since the page was opened, "confirm_<section>", "signer_name",
    "signature", "witnessed". Nothing is written when it raises. A record
    being merged into another at this moment is signed for once the merge is
    done, on the record that stays (patients.locking)."""
    # First the token: a second post of the same page waits here for the first.
    submission_check(SignedConsent, submission_token)
    patient = patient_hold(patient)
    # Lock the form: a version published while the patient signs is noticed.
    ConsentForm.objects.select_for_update().get(pk=form.pk)
    current = version_current(form=form)
    if current is None or str(current.uuid) != str(version_uuid or ""):
        raise ValidationError(
            {
                "version": _(
                    "This consent form has changed since the page was opened. "
                    "Reload the page and read the current version."
                )
            },
            code="stale_version",
        )
    errors: dict[str, str] = {}
    confirmed = set(sections_confirmed)
    for name, heading in CONSENT_SECTIONS:
        if name not in confirmed:
            errors[f"confirm_{name}"] = _(
                "Please confirm you have read and understood “%(section)s”."
            ) % {"section": heading}
    # Composed (NFC), like every name stored (clinic.names).
    signer_name = " ".join(nfc(signer_name or "").split())
    if not signer_name:
        errors["signer_name"] = _("Please type your full name.")
    elif len(signer_name) > 200:
        errors["signer_name"] = _("The name is too long (200 characters at most).")
    try:
        png = signature_png_clean(signature_data_url)
    except ValidationError as exc:
        errors["signature"] = exc.messages[0]
    if not witnessed:
        errors["witnessed"] = _("The practitioner must confirm they witnessed the signature.")
    if errors:
        raise ValidationError(errors)

    # One source for both: the sections shown later, and the text hashed now.
    sections = consent_sections(version=current, photo_consent=photo_consent)
    text = _text_of(current, sections)
    signed = SignedConsent(
        patient=patient,
        version=current,
        text=text,
        text_sha256=sha256_hex(text),
        sections=sections,
        sections_confirmed=list(CONSENT_SECTION_NAMES),
        photo_consent=photo_consent,
        signer_name=signer_name,
        signature_sha256=sha256_hex(png),
        signed_at=timezone.now(),
        witness=witness,
        submission_token=submission_token,
    )
    signed.signature.save(f"{signed.uuid}.png", ContentFile(png), save=False)
    try:
        with transaction.atomic():
            signed.full_clean()
            signed.save()
            document_queue(row=SignedConsentPDF(signed_consent=signed), enqueue=_enqueue)
            audit_log(
                actor=witness, action=AuditAction.SIGNED, obj=signed, patient_ref=patient.uuid
            )
    except Exception:
        signed.signature.storage.delete(signed.signature.name)
        raise
    return signed


@transaction.atomic
def consent_withdraw(
    *,
    signed: SignedConsent,
    reason: str,
    recorded_by: User,
    submission_token: uuid.UUID | None = None,
) -> ConsentWithdrawal:
    """Record that the patient withdrew this consent. The signed record stays as it was.

    `signed`: the signed consent withdrawn; `reason`: why, as the practitioner
    writes it (trimmed, required); `recorded_by`: the practitioner recording it;
    `submission_token`: the withdrawal form's one-time token (None: no guard).
    Raises `AlreadySubmittedError` (clinic.concurrency, with `.obj`, the
    signed consent) when this very form was already saved (sent twice).
    Raises ValidationError keyed "reason" when the reason is empty (code
    "reason_required"), and when the consent is already withdrawn (code
    "already_withdrawn"), including when two withdrawals of it arrive at once:
    exactly one is recorded, the other gets this refusal. A withdrawal is the
    one change a signed consent takes, so the page's state ("not withdrawn")
    is what this refusal checks."""
    submission_check(ConsentWithdrawal, submission_token, by=recorded_by, find=lambda _e: signed)
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError(
            {
                "reason": ValidationError(
                    _("Please write why the consent is withdrawn."), code="reason_required"
                )
            }
        )
    # Lock the signed consent: a second withdrawal waits here until the first
    # commits, then sees it. (SELECT ... FOR UPDATE does not fire the trigger
    # that refuses UPDATE.)
    SignedConsent.objects.select_for_update().get(pk=signed.pk)
    if ConsentWithdrawal.objects.filter(signed_consent_id=signed.pk).exists():
        raise _already_withdrawn()
    withdrawal = ConsentWithdrawal(
        signed_consent=signed,
        reason=reason,
        withdrawn_at=timezone.now(),
        recorded_by=recorded_by,
    )
    withdrawal.full_clean(validate_unique=False)
    try:
        with transaction.atomic():
            withdrawal.save()
    except IntegrityError as exc:
        # The one-withdrawal-per-consent index refused it (a writer the lock did
        # not hold back, or an older snapshot): the same refusal as above.
        diag = getattr(exc.__cause__, "diag", None)
        if getattr(diag, "constraint_name", None) == ONE_WITHDRAWAL_PER_CONSENT:
            raise _already_withdrawn() from exc
        raise
    audit_log(
        actor=recorded_by,
        action=AuditAction.WITHDRAWN,
        obj=withdrawal,
        patient_ref=signed.patient.uuid,
        changed_fields=submission_marks(submission_token),
    )
    return withdrawal


def _already_withdrawn() -> ValidationError:
    message = _("This consent has already been withdrawn: the withdrawal recorded first stands.")
    return ValidationError({"reason": ValidationError(message, code="already_withdrawn")})


# --- The PDF (clinic.documents: the pipeline every generated document follows) -------------

# How the PDF is read for rendering: with what it shows.
PDF_RELATED = (
    "signed_consent__patient",
    "signed_consent__version__form",
    "signed_consent__witness",
)


def consent_pdf_enqueue(*, signed_consent_id: int) -> bool:
    """Queue the PDF task. Never fails the caller: with the broker down the row
    stays queued and the beat sweep (consent_pdf_requeue_stale) tries again."""
    from consent.tasks import consent_pdf_render

    return enqueue(
        consent_pdf_render,
        signed_consent_id,
        label=f"the PDF of signed consent {signed_consent_id}",
    )


def _enqueue(pk: int) -> bool:
    return consent_pdf_enqueue(signed_consent_id=pk)


def consent_pdf_render_pdf(row: SignedConsentPDF) -> bytes:
    """The PDF's bytes for one signed consent: as signed, with the signature
    image (none once the record is anonymised) and any withdrawal."""
    from clinic.pdf import render_pdf

    signed = row.signed_consent
    signature_data_uri = ""
    # An anonymised record's consent has no drawn signature any more.
    if signed.signature:
        with signed.signature.open("rb") as handle:
            signature_data_uri = "data:image/png;base64," + base64.b64encode(handle.read()).decode(
                "ascii"
            )
    return render_pdf(
        "consent/signed_consent_pdf.html",
        {
            **clinic_settings.printed(),
            "signed": signed,
            "patient": signed.patient,
            "version": signed.version,
            "sections": signed_sections(signed),
            "signature_data_uri": signature_data_uri,
            "withdrawal": ConsentWithdrawal.objects.filter(signed_consent=signed).first(),
        },
    )


def consent_pdf_render_now(*, signed_consent_id: int) -> SignedConsentPDF:
    """Render the signed consent to PDF, replacing the file at its one path,
    and record the outcome (`clinic.documents.document_render`): ready, or
    queued again after a wait, or failed after MAX_ATTEMPTS. Idempotent:
    running twice gives one file and the same row. Raises
    `SignedConsentPDF.DoesNotExist` for a consent without a PDF row."""
    return document_render(
        model=SignedConsentPDF,
        pk=signed_consent_id,
        renderer=consent_pdf_render_pdf,
        related=PDF_RELATED,
    )


def consent_pdf_requeue_stale() -> int:
    """Queue again the PDFs whose next attempt has come (their task was lost,
    or a render failed and waited); give up those that had MAX_ATTEMPTS.
    Returns how many were queued."""
    return document_requeue_due(model=SignedConsentPDF, enqueue=_enqueue)


def consent_pdf_retry(*, signed: SignedConsent, requested_by: User) -> SignedConsentPDF:
    """Make the PDF of a signed consent again (staff's "Try again" after it
    could not be made): queued afresh, attempts from zero, and audited.

    `signed`: the signed consent; `requested_by`: the practitioner. Raises
    `SignedConsentPDF.DoesNotExist` when the consent has no PDF row."""
    with transaction.atomic():
        row = document_retry(model=SignedConsentPDF, pk=signed.pk, enqueue=_enqueue)
        audit_log(
            actor=requested_by,
            action=AuditAction.UPDATE,
            obj=row,
            object_id=str(signed.uuid),
            patient_ref=signed.patient.uuid,
            changed_fields=["status"],
        )
    return row


def signed_sections(signed: SignedConsent) -> list[tuple[str, str, str]]:
    """(name, heading, text) of each section as signed (not as the form is now),
    in reading order, from the sections recorded at signing; the stored text is
    never parsed, so a line typed inside a section stays inside it.

    `signed`: the signed consent. Raises nothing."""
    return [(s["name"], s["heading"], s["text"]) for s in signed.sections]
