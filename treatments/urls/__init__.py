"""URL routes of the treatments app: the catalogue, protocols and aftercare
sheets (managers), allergy tests and tasks, the calendar and courses, and
session records, reminders, aftercare documents, the patient portal, and
merging a duplicate patient record into the one that stays."""

from django.urls import URLPattern

from treatments.urls.allergy import urlpatterns as allergy_urls
from treatments.urls.booking import urlpatterns as booking_urls
from treatments.urls.catalogue import urlpatterns as catalogue_urls
from treatments.urls.data_rights import urlpatterns as data_rights_urls
from treatments.urls.merge import urlpatterns as merge_urls
from treatments.urls.portal import urlpatterns as portal_urls
from treatments.urls.reminders import urlpatterns as reminder_urls
from treatments.urls.session import urlpatterns as session_urls

app_name = "treatments"

urlpatterns: list[URLPattern] = [
    *catalogue_urls,
    *allergy_urls,
    *booking_urls,
    *session_urls,
    *reminder_urls,
    *portal_urls,
    *merge_urls,
    *data_rights_urls,
]
