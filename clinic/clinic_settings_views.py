"""The manager's clinic settings page and its history (managers only)."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_http_methods

from clinic.access import refused_as, signed_in_user, staff
from clinic.clinic_settings_forms import ClinicSettingsForm
from clinic.clinic_settings_services import (
    ClinicSettingsRefusedError,
    clinic_settings_change,
    clinic_settings_history,
    clinic_settings_newest,
)
from clinic.concurrency import StaleEditError
from clinic.models import ClinicSettings
from clinic.roles import Role

HISTORY_SHOWN = 50


@staff(Role.MANAGER)
@refused_as(gettext_lazy("The clinic's settings are changed by a manager."))
@require_http_methods(["GET", "POST"])
def clinic_settings_edit(request: HttpRequest) -> HttpResponse:
    """Every setting in one form, opened on the newest version. A save after
    someone else's is refused (409) with what they changed, keeping what was
    typed; values outside the bounds are form errors (400)."""
    newest = ClinicSettings.objects.select_related("changed_by").order_by("-id").first()
    if newest is None:
        # Nothing stored (a database emptied by hand): the defaults become the first version.
        newest = clinic_settings_newest()
    form = ClinicSettingsForm(request.POST or None, instance=newest)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                saved = clinic_settings_change(
                    changed_by=signed_in_user(request),
                    changes=form.typed(form.service_fields()),
                    reason=form.cleaned_data.get("change_reason") or "",
                    expected_version=form.cleaned_data["version"],
                )
            except StaleEditError as refusal:
                status = form.show_stale(refusal)
            except ClinicSettingsRefusedError as refusal:
                form.add_error(
                    refusal.field if refusal.field in form.fields else None, refusal.message
                )
                status = 400
            else:
                if newest is not None and saved.pk == newest.pk:
                    messages.info(request, _("Nothing was changed."))
                else:
                    messages.success(request, _("Settings saved."))
                return HttpResponseRedirect(reverse("clinic_settings"))
        else:
            status = 400
    return render(
        request,
        "clinic/settings_form.html",
        {"form": form, "newest": newest, "stale": form.stale},
        status=status,
    )


@staff(Role.MANAGER)
@refused_as(gettext_lazy("The clinic's settings are changed by a manager."))
@require_GET
def clinic_settings_history_view(request: HttpRequest) -> HttpResponse:
    """Who changed which setting from what to what, when and why, newest
    first (the newest 50 versions): a fixed number of queries whatever the
    history holds."""
    history = clinic_settings_history(limit=HISTORY_SHOWN)
    return render(
        request,
        "clinic/settings_history.html",
        {"history": history, "limit": HISTORY_SHOWN},
    )
