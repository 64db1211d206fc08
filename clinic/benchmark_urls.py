"""The clinic's URLconf plus the benchmarks' anchor page (clinic/benchmarking.py).

Only the benchmark commands switch to it, for the length of a run."""

from django.urls import path

from clinic.benchmarking import anchor_public_view, anchor_view
from clinic.urls import urlpatterns as clinic_urlpatterns

urlpatterns = [
    path("benchmark-anchor/", anchor_view),
    path("benchmark-anchor/public/", anchor_public_view),
    *clinic_urlpatterns,
]

handler400 = "clinic.views.bad_request"
handler403 = "clinic.views.permission_denied"
handler404 = "clinic.views.page_not_found"
handler500 = "clinic.views.server_error"
