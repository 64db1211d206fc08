"""Django's admin, for superusers: staff accounts and their roles. Managers
keep the staff on the staff page (clinic/staff.py); nothing needs the admin."""

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin
from django.contrib.auth.forms import AdminUserCreationForm, UsernameField
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice

from clinic.audit import audit_log
from clinic.concurrency import AlreadySubmittedError, submission_check, submission_marks
from clinic.forms import SubmissionTokenMixin
from clinic.models import AuditAction, User


class StaffCreationForm(SubmissionTokenMixin, AdminUserCreationForm):
    """A new staff account. Its one-time token creates one account however
    often the form is sent."""

    # Declared, so that the admin's fieldsets may place it.
    submission_token = forms.CharField(required=False, widget=forms.HiddenInput)

    class Meta:
        model = User
        fields = ("username",)
        field_classes = {"username": UsernameField}


@admin.register(User)
class ClinicUserAdmin(UserAdmin):
    list_display = ("username", "first_name", "last_name", "email", "is_active", "last_login")
    list_filter = ("is_active", "groups")
    add_form = StaffCreationForm
    add_fieldsets = (
        (
            None,
            {
                "classes": ("wide",),
                "fields": (
                    "username",
                    "usable_password",
                    "password1",
                    "password2",
                    "submission_token",
                ),
            },
        ),
    )

    def _already_saved(self, request: HttpRequest, user: Any) -> HttpResponse:
        messages.info(request, str(AlreadySubmittedError.MESSAGE))
        return HttpResponseRedirect(reverse("admin:clinic_user_change", args=[user.pk]))

    def add_view(
        self, request: HttpRequest, form_url: str = "", extra_context: Any = None
    ) -> HttpResponse:
        # The form sent again: the account it created (its username is now taken).
        if request.method == "POST":
            earlier = StaffCreationForm(request.POST).saved_before(User, by=request.user)
            if earlier is not None:
                return self._already_saved(request, earlier)
        try:
            return super().add_view(request, form_url, extra_context)
        except AlreadySubmittedError as repeated:
            return self._already_saved(request, repeated.obj)

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        # Sent twice at once: the second waits here, then finds the first.
        token = form.cleaned_data.get("submission_token")
        submission_check(User, token, by=request.user)
        super().save_model(request, obj, form, change)
        audit_log(
            actor=request.user,
            action=AuditAction.CREATE,
            obj=obj,
            changed_fields=["username", *submission_marks(token)],
        )


# django-otp's own admin shows each device's secret (QR "config" view) and
# fails on a missing device. Ours lists devices and lets a superuser remove one
# (a lost phone): the staff member then enrols again at next sign-in.
admin.site.unregister(TOTPDevice)
# Backup codes are secrets shown once to their owner: the admin does not list them.
admin.site.unregister(StaticDevice)


@admin.register(TOTPDevice)
class TOTPDeviceAdmin(admin.ModelAdmin):
    list_display = ("user", "name", "confirmed", "last_used_at", "created_at")
    fields = ("user", "name", "confirmed", "last_used_at", "created_at")
    readonly_fields = fields
    search_fields = ("user__username",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False
