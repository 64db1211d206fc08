"""Routes of aftercare documents (staff), emailed download links and the patient portal."""

from django.urls import URLPattern, path

from treatments.views import documents, portal

document_routes = "patients/<uuid:patient>/documents/<uuid:document>/"

urlpatterns: list[URLPattern] = [
    # Staff
    path(document_routes + "status/", documents.document_status, name="document_status"),
    path(document_routes + "aftercare.pdf", documents.document_download, name="document_download"),
    path(document_routes + "send/", documents.document_send, name="document_send"),
    path(document_routes + "revoke/", documents.document_revoke, name="document_revoke"),
    path(
        document_routes + "regenerate/", documents.document_regenerate, name="document_regenerate"
    ),
    path(
        "patients/<uuid:patient>/portal/invite/",
        documents.portal_invite_view,
        name="portal_invite",
    ),
    # Public: links sent by email
    path("d/<str:token>/", portal.link_open, name="link_open"),
    path("portal/sign-in/", portal.portal_request, name="portal_request"),
    path("portal/sign-in/<str:token>/", portal.portal_login, name="portal_login"),
    # The patient portal
    path("portal/", portal.portal_home, name="portal_home"),
    path(
        "portal/documents/<uuid:document>/aftercare.pdf",
        portal.portal_document,
        name="portal_document",
    ),
    path("portal/consents/<uuid:signed>/consent.pdf", portal.portal_consent, name="portal_consent"),
]
