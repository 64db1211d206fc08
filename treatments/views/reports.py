"""The manager's reports: activity, no-shows, course completion, adverse events."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from clinic.access import staff
from clinic.roles import Role
from treatments.models import Severity
from treatments.selectors.reports import manager_reports


@staff(Role.MANAGER)
@require_GET
def reports(request: HttpRequest) -> HttpResponse:
    today = timezone.localdate()
    return render(
        request,
        "treatments/report_manager.html",
        {
            "reports": manager_reports(today=today),
            "today": today,
            "severities": [label for _value, label in Severity.choices],
        },
    )
