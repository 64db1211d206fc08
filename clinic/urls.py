"""Top-level URL configuration. Feature apps are included by name only."""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from django.views.generic import RedirectView

from clinic import clinic_settings_views, staff_views, views
from clinic.access import authenticated, public

handler400 = "clinic.views.bad_request"
handler403 = "clinic.views.permission_denied"
handler404 = "clinic.views.page_not_found"
handler500 = "clinic.views.server_error"

# One sign-in page for everyone: the admin's own login form goes to it.
admin.site.login = public(RedirectView.as_view(pattern_name="login", query_string=True))  # type: ignore[method-assign,assignment]
admin.site.site_header = "Clinic administration"

accounts = [
    path(
        "login/",
        public(views.SignInView.as_view()),
        name="login",
    ),
    path("locks/", views.sign_in_locks_view, name="sign_in_locks"),
    path("logout/", authenticated(views.LogoutView.as_view()), name="logout"),
    path(
        "password/change/",
        authenticated(auth_views.PasswordChangeView.as_view()),
        name="password_change",
    ),
    path(
        "password/change/done/",
        authenticated(auth_views.PasswordChangeDoneView.as_view()),
        name="password_change_done",
    ),
    path(
        "password/reset/",
        public(views.PasswordResetRequestView.as_view()),
        name="password_reset",
    ),
    path(
        "password/reset/sent/",
        public(auth_views.PasswordResetDoneView.as_view()),
        name="password_reset_done",
    ),
    path(
        "password/reset/<uidb64>/<token>/",
        public(views.PasswordResetConfirmView.as_view()),
        name="password_reset_confirm",
    ),
    path(
        "password/reset/complete/",
        public(auth_views.PasswordResetCompleteView.as_view()),
        name="password_reset_complete",
    ),
    path("two-factor/", views.two_factor, name="two_factor"),
    path("two-factor/setup/", views.two_factor_setup, name="two_factor_setup"),
    path("me/", staff_views.account, name="account"),
    path("confirm/", staff_views.step_up, name="step_up"),
]

staff = [
    path("", staff_views.staff_list, name="staff_list"),
    path("invite/", staff_views.staff_invite_view, name="staff_invite"),
    path("join/<str:token>/", staff_views.staff_join, name="staff_join"),
    path("<uuid:member>/", staff_views.staff_member, name="staff_member"),
]

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("accounts/", include(accounts)),
    path("audit/", views.audit_log_list, name="audit_log"),
    path("staff/", include(staff)),
    path("settings/", clinic_settings_views.clinic_settings_edit, name="clinic_settings"),
    path(
        "settings/history/",
        clinic_settings_views.clinic_settings_history_view,
        name="clinic_settings_history",
    ),
    path("admin/", admin.site.urls),
    path("patients/", include("patients.urls")),
    path("consent/", include("consent.urls")),
    path("treatments/", include("treatments.urls")),
]
