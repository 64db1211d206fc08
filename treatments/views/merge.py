"""Comparing two records of one person and merging one into the other
(practitioners only): thin views over `treatments.selectors.merge` and
`treatments.services.merge`."""

from __future__ import annotations

import uuid
from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext_lazy
from django.views.decorators.http import require_GET, require_POST

from clinic import dates
from clinic.access import refused_as, signed_in_user, staff
from clinic.audit import audit_read
from clinic.concurrency import StaleEditError
from clinic.refusals import refusal_status
from clinic.roles import Role
from patients.models import Patient
from patients.search_audit import patient_search_audit
from patients.selectors import patient_get_for_user, patient_search
from treatments.forms.merge import MergeChooseForm, MergeForm
from treatments.selectors.merge import (
    RECORD_KINDS,
    merge_candidates,
    merge_comparison,
    merge_record_get_for_user,
)
from treatments.services.merge import PatientMergeRefusedError, patient_merge

COMPARE_TEMPLATE = "treatments/patient_merge_compare.html"
# Refusals of what was sent (400); the others are the records' state (409).


def _compare_page(
    request: HttpRequest,
    *,
    duplicate: Patient,
    survivor: Patient,
    form: MergeForm,
    refusal: PatientMergeRefusedError | None = None,
    stale: StaleEditError | None = None,
    status: int = 200,
) -> HttpResponse:
    comparison = merge_comparison(duplicate=duplicate, survivor=survivor)
    audit_read(request, duplicate, patient_ref=duplicate.uuid)
    if survivor.pk != duplicate.pk:
        audit_read(request, survivor, patient_ref=survivor.uuid)
    # A refusal the comparison already lists (a clash, say) is not said twice.
    listed = {p.sentence for p in comparison.problems}
    return render(
        request,
        COMPARE_TEMPLATE,
        {
            "comparison": comparison,
            "duplicate": duplicate,
            "survivor": survivor,
            "form": form,
            "refusal": refusal
            if refusal and any(p.sentence not in listed for p in refusal.problems)
            else None,
            "stale": stale,
            "reload_url": reverse(
                "treatments:patient_merge_compare", kwargs={"patient": duplicate.uuid}
            )
            + f"?into={survivor.uuid}",
        },
        status=status,
    )


# What a merge moved, counted as people say it (kind key -> singular, plural).
MOVED_WORDS: dict[str, Any] = {
    "medical_histories": ngettext_lazy(
        "%(count)d medical history", "%(count)d medical histories", "count"
    ),
    "consultations": ngettext_lazy("%(count)d consultation", "%(count)d consultations", "count"),
    "photos": ngettext_lazy("%(count)d photo", "%(count)d photos", "count"),
    "signed_consents": ngettext_lazy(
        "%(count)d signed consent", "%(count)d signed consents", "count"
    ),
    "consent_withdrawals": ngettext_lazy(
        "%(count)d consent withdrawal", "%(count)d consent withdrawals", "count"
    ),
    "allergy_tests": ngettext_lazy("%(count)d allergy test", "%(count)d allergy tests", "count"),
    "allergies": ngettext_lazy(
        "%(count)d recorded allergy", "%(count)d recorded allergies", "count"
    ),
    "courses": ngettext_lazy("%(count)d treatment course", "%(count)d treatment courses", "count"),
    "bookings": ngettext_lazy("%(count)d booking", "%(count)d bookings", "count"),
    "session_records": ngettext_lazy(
        "%(count)d session record", "%(count)d session records", "count"
    ),
    "cocktail_lines": ngettext_lazy("%(count)d cocktail line", "%(count)d cocktail lines", "count"),
    "adverse_events": ngettext_lazy("%(count)d adverse event", "%(count)d adverse events", "count"),
    "reminders": ngettext_lazy("%(count)d reminder", "%(count)d reminders", "count"),
    "documents": ngettext_lazy("%(count)d aftercare sheet", "%(count)d aftercare sheets", "count"),
    "download_links": ngettext_lazy("%(count)d download link", "%(count)d download links", "count"),
    "portal_accounts": ngettext_lazy(
        "%(count)d portal account", "%(count)d portal accounts", "count"
    ),
    "contact_changes": ngettext_lazy(
        "%(count)d record of a contact-detail change",
        "%(count)d records of contact-detail changes",
        "count",
    ),
    "merged_records": ngettext_lazy(
        "%(count)d record merged into it before", "%(count)d records merged into it before", "count"
    ),
}


def moved_sentence(moved: dict[str, int]) -> str:
    """What a merge moved to the record that stays, as a sentence: "Moved to
    this record: 2 bookings, 1 allergy test and 1 photo." Kinds with nothing
    moved are left out, in the order the comparison lists them."""
    parts = []
    for kind in RECORD_KINDS:
        count = moved.get(kind.key, 0)
        if not count:
            continue
        words = MOVED_WORDS.get(kind.key)
        if words is None:
            parts.append(f"{str(kind.label).lower()}: {count}")
        else:
            parts.append(str(words % {"count": count}))
    if not parts:
        return _("Nothing was recorded on it to move.")
    listed = (
        parts[0]
        if len(parts) == 1
        else _("%(list)s and %(last)s")
        % {
            "list": ", ".join(parts[:-1]),
            "last": parts[-1],
        }
    )
    return _("Moved to this record: %(moved)s.") % {"moved": listed}


@refused_as(gettext_lazy("Merging records is done by a practitioner."))
@staff(Role.PRACTITIONER)
@require_GET
def patient_merge_compare(request: HttpRequest, patient: uuid.UUID) -> HttpResponse:
    """Find the other record of this person (`?q=`), then compare the two
    (`?into=`: the record that stays) before merging this one into it."""
    user = signed_in_user(request)
    record = patient_get_for_user(user=user, patient_uuid=patient)
    choose = MergeChooseForm(request.GET)  # every field optional: nothing asked is valid
    valid = choose.is_valid()
    into = choose.cleaned_data.get("into") if valid else None
    if into is not None:
        survivor = merge_record_get_for_user(user=user, patient_uuid=into)
        return _compare_page(
            request,
            duplicate=record,
            survivor=survivor,
            form=MergeForm.opened(survivor=survivor, duplicate=record),
        )
    query = choose.cleaned_data.get("q", "") if valid else ""
    results = [p for p in patient_search(user=user, query=query) if p.pk != record.pk]
    if query:
        # A search shows personal data: record that it happened (not what was typed).
        patient_search_audit(request=request, query=query)
    audit_read(request, record, patient_ref=record.uuid)
    return render(
        request,
        "treatments/patient_merge_choose.html",
        {
            "patient": record,
            "form": choose,
            "query": query,
            "candidates": merge_candidates(user=user, patient=record),
            "results": results,
        },
        status=200 if valid else 400,
    )


@refused_as(gettext_lazy("Merging records is done by a practitioner."))
@staff(Role.PRACTITIONER)
@require_POST
def patient_merge_view(request: HttpRequest, patient: uuid.UUID) -> HttpResponse:
    """Merge this record into the one chosen on the comparison page. A form
    sent twice merges once: the second finds the merge done and leads to the
    record that stays. A comparison opened before either record changed is
    refused (409) with what changed, by whom, and the comparison as it is now."""
    user = signed_in_user(request)
    duplicate = merge_record_get_for_user(user=user, patient_uuid=patient)
    form = MergeForm(request.POST)
    if not form.is_valid() and "into" in form.errors:
        return render(
            request,
            "treatments/patient_merge_refused.html",
            {"patient": duplicate, "sentence": form.errors["into"][0]},
            status=400,
        )
    survivor = merge_record_get_for_user(user=user, patient_uuid=form.cleaned_data["into"])
    if not form.is_valid():
        return _compare_page(request, duplicate=duplicate, survivor=survivor, form=form, status=400)
    try:
        result = patient_merge(
            duplicate=duplicate,
            survivor=survivor,
            merged_by=user,
            take_email=form.cleaned_data["take_email"],
            take_phone=form.cleaned_data["take_phone"],
            duplicate_version=form.cleaned_data["duplicate_version"],
            survivor_version=form.cleaned_data["survivor_version"],
        )
    except StaleEditError as refused:
        duplicate = merge_record_get_for_user(user=user, patient_uuid=patient)
        survivor = merge_record_get_for_user(user=user, patient_uuid=survivor.uuid)
        if not refused.is_stale:
            form.add_error(None, refused.message)
        return _compare_page(
            request,
            duplicate=duplicate,
            survivor=survivor,
            form=form,
            stale=refused if refused.is_stale else None,
            status=409 if refused.is_stale else 400,
        )
    except PatientMergeRefusedError as refusal:
        duplicate = merge_record_get_for_user(user=user, patient_uuid=patient)
        survivor = merge_record_get_for_user(user=user, patient_uuid=survivor.uuid)
        if refusal.code == "already_merged" and duplicate.merged_into_id == survivor.pk:
            messages.info(
                request,
                _("%(name)s's other record was already merged into this one.")
                % {"name": survivor.full_name},
            )
            return HttpResponseRedirect(survivor.get_absolute_url())
        return _compare_page(
            request,
            duplicate=duplicate,
            survivor=survivor,
            form=form,
            refusal=refusal,
            status=refusal_status(refusal),
        )
    moved = moved_sentence(result.moved)
    messages.success(
        request,
        _(
            "%(name)s's record (born %(born)s) was merged into this one, and its old pages "
            "now lead here. %(moved)s"
        )
        % {
            "name": result.duplicate.full_name,
            "born": dates.birth_date(result.duplicate.date_of_birth),
            "moved": moved,
        },
    )
    return HttpResponseRedirect(
        reverse("patients:detail", kwargs={"patient": result.survivor.uuid})
    )
