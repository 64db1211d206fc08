"""URL routes of consent: the forms (managers) and patients' consents (practitioners)."""

from django.urls import path

from consent import views

app_name = "consent"

patient_routes = "patients/<uuid:patient>/"
signed_routes = patient_routes + "signed/<uuid:signed>/"

urlpatterns = [
    path("forms/", views.form_list, name="form_list"),
    path("forms/new/", views.form_create, name="form_create"),
    path("forms/<uuid:form>/", views.form_detail, name="form_detail"),
    path("forms/<uuid:form>/draft/", views.draft_edit, name="draft_edit"),
    path("forms/<uuid:form>/versions/<uuid:version>/", views.version_detail, name="version_detail"),
    path(
        "forms/<uuid:form>/versions/<uuid:version>/publish/",
        views.version_publish,
        name="version_publish",
    ),
    path(patient_routes, views.patient_consents, name="patient_consents"),
    path(patient_routes + "sign/<uuid:form>/", views.sign, name="sign"),
    path(signed_routes, views.signed_detail, name="signed_detail"),
    path(signed_routes + "pdf-status/", views.pdf_status, name="pdf_status"),
    path(signed_routes + "pdf-retry/", views.pdf_retry, name="pdf_retry"),
    path(signed_routes + "withdraw/", views.withdraw, name="withdraw"),
    path(signed_routes + "signature.png", views.signature_image, name="signature_image"),
    path(signed_routes + "consent.pdf", views.signed_pdf, name="signed_pdf"),
]
