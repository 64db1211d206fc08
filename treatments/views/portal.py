"""Public pages reached from emails (a download link, a portal sign-in link)
and the patient portal itself.

The public pages never say whether a patient exists: an unknown, revoked or
guessed token, and a wrong date of birth, all get the same plain help. Failed
attempts are counted by address and answered with 429 past the limit. A GET
writes nothing: the token is checked when the form is sent.
"""

from __future__ import annotations

import uuid

from django.contrib.auth import login
from django.http import FileResponse, HttpRequest, HttpResponse, HttpResponseRedirect
from django.http.response import HttpResponseBase
from django.shortcuts import render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods

from clinic.access import portal, public
from clinic.audit import audit_log, audit_read
from clinic.context import get_request_context
from clinic.downloads import stored_file_response
from clinic.models import AuditAction, SignInMailKind, User
from clinic.sign_in_mail import sign_in_mail_request
from treatments.forms.portal import DateOfBirthForm, PortalRequestForm
from treatments.selectors.portal import (
    portal_consent_get,
    portal_document_get,
    portal_overview,
    portal_patient_of,
)
from treatments.services.aftercare import (
    LinkExpiredError,
    LinkGoneError,
    download_link_find,
    download_link_use,
)
from treatments.services.portal import (
    link_attempt_record,
    link_attempts_exceeded,
    link_wrong_birth_date,
    portal_login_consume,
)
from treatments.views.documents import document_file_response, private_download

AUTH_BACKEND = "django.contrib.auth.backends.ModelBackend"


def _ip() -> str | None:
    ctx = get_request_context()
    return ctx.ip if ctx else None


def _no_referrer(response: HttpResponse) -> HttpResponse:
    """The page's address holds a secret: never send it to another site as a
    referrer (same-origin still, so the browser sends a real Origin on the form)."""
    response["Referrer-Policy"] = "same-origin"
    return response


def _message(
    request: HttpRequest, *, title: str, text: str, status: int, portal_link: bool = False
) -> HttpResponse:
    return _no_referrer(
        render(
            request,
            "treatments/link_message.html",
            {"title": title, "text": text, "portal_link": portal_link},
            status=status,
        )
    )


def _too_many(request: HttpRequest) -> HttpResponse:
    return _message(
        request,
        title=_("Too many attempts"),
        text=_(
            "There have been too many unsuccessful attempts from your connection. "
            "Please wait ten minutes and try again, or call the clinic."
        ),
        status=429,
    )


def _link_gone(request: HttpRequest, *, expired: bool) -> HttpResponse:
    help_text = _(
        "Please ask the clinic for a new link: reply to the clinic's email or give us a call."
    )
    if expired:
        return _message(
            request,
            title=_("This link has expired"),
            text=_("Links to documents work for a limited time. ") + help_text,
            status=410,
        )
    return _message(
        request,
        title=_("This link does not work"),
        text=_("The link may be mistyped, or it is no longer valid. ") + help_text,
        status=404,
    )


# The two token pages check CSRF like every form: the token in the address is
# no defence when the forger uses a link of their own (signing a staff browser
# into the forger's portal, say). A refused check logs the path with the token
# redacted (clinic.logfilters.RedactSecretPaths).
@public
@require_http_methods(["GET", "POST"])
def link_open(request: HttpRequest, token: str) -> HttpResponseBase:
    """An emailed download link: asks for the date of birth, then gives the PDF."""
    ip = _ip()
    if link_attempts_exceeded(ip=ip):
        return _too_many(request)
    if request.method == "GET":
        return _no_referrer(
            render(request, "treatments/link_open.html", {"form": DateOfBirthForm()})
        )
    try:
        link = download_link_find(token=token)
    except LinkExpiredError:
        return _link_gone(request, expired=True)
    except LinkGoneError:
        link_attempt_record(ip=ip)
        return _link_gone(request, expired=False)
    form = DateOfBirthForm(request.POST)
    if not form.is_valid():
        return _no_referrer(
            render(request, "treatments/link_open.html", {"form": form}, status=400)
        )
    if form.cleaned_data["date_of_birth"] != link.patient.date_of_birth:
        if link_wrong_birth_date(link=link, ip=ip):
            return _message(
                request,
                title=_("This link has been switched off"),
                text=_(
                    "The date of birth was entered wrongly too many times, so this link "
                    "no longer works, to keep the document private. Please ask the clinic "
                    "for a new link: reply to the clinic's email or give us a call."
                ),
                status=410,
            )
        form.add_error(
            None,
            _(
                "Those details do not match our records. Please check the date of "
                "birth and try again."
            ),
        )
        return _no_referrer(
            render(request, "treatments/link_open.html", {"form": form}, status=400)
        )
    response = document_file_response(link.document)
    download_link_use(link=link)
    return response


@public
@require_http_methods(["GET", "POST"])
def portal_request(request: HttpRequest) -> HttpResponse:
    """Ask for a sign-in link by email. The answer is the same, in the same
    time, for every address, known or not, over the hourly limits or not (the
    limits keep the page from flooding a patient's inbox): a worker looks the
    address up and sends the link (clinic/sign_in_mail.py)."""
    if request.method == "POST":
        form = PortalRequestForm(request.POST)
        if form.is_valid():
            sign_in_mail_request(
                kind=SignInMailKind.PORTAL_SIGN_IN, email=form.cleaned_data["email"], ip=_ip()
            )
            return render(request, "treatments/portal_request.html", {"sent": True})
        return render(request, "treatments/portal_request.html", {"form": form}, status=400)
    return render(request, "treatments/portal_request.html", {"form": PortalRequestForm()})


@public
@require_http_methods(["GET", "POST"])
def portal_login(request: HttpRequest, token: str) -> HttpResponse:
    """A one-time sign-in link: a button (so that a mail scanner opening the
    link does not use it up), then the portal."""
    ip = _ip()
    if link_attempts_exceeded(ip=ip):
        return _too_many(request)
    if request.method == "GET":
        return _no_referrer(render(request, "treatments/portal_login.html"))
    try:
        account = portal_login_consume(token=token)
    except LinkExpiredError:
        return _message(
            request,
            title=_("This sign-in link has expired"),
            text=_("Sign-in links work for a short time only. Ask for a new one below."),
            status=410,
            portal_link=True,
        )
    except LinkGoneError:
        link_attempt_record(ip=ip)
        return _message(
            request,
            title=_("This sign-in link does not work"),
            text=_("Each link signs you in once. Ask for a new one below, or call the clinic."),
            status=404,
            portal_link=True,
        )
    login(request, account.user, backend=AUTH_BACKEND)
    return HttpResponseRedirect(reverse("treatments:portal_home"))


def _portal_user(request: HttpRequest) -> User:
    user = request.user
    assert isinstance(user, User)  # portal routes only
    return user


@portal
@require_GET
def portal_home(request: HttpRequest) -> HttpResponse:
    """The patient's own page: upcoming sessions, aftercare sheets, signed consents."""
    patient = portal_patient_of(_portal_user(request))
    overview = portal_overview(patient=patient)
    audit_read(request, patient, patient_ref=patient.uuid)
    return render(request, "treatments/portal_home.html", {"overview": overview})


@portal
@require_GET
def portal_document(request: HttpRequest, document: uuid.UUID) -> FileResponse:
    found = portal_document_get(user=_portal_user(request), document_uuid=document)
    response = document_file_response(found)
    audit_log(
        actor=request.user, action=AuditAction.DOWNLOAD, obj=found, patient_ref=found.patient.uuid
    )
    return response


@portal
@require_GET
def portal_consent(request: HttpRequest, signed: uuid.UUID) -> FileResponse:
    found = portal_consent_get(user=_portal_user(request), signed_uuid=signed)
    pdf = found.pdf
    response = stored_file_response(
        pdf.file,
        content_type="application/pdf",
        as_attachment=True,
        filename=f"consent-{found.uuid}.pdf",
    )
    audit_log(
        actor=request.user,
        action=AuditAction.DOWNLOAD,
        obj=pdf,
        object_id=str(found.uuid),
        patient_ref=found.patient.uuid,
    )
    return private_download(response)
