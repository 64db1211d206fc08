"""Every view that serves a stored file answers 404, never a server error,
when the row still names a file that is gone from storage (deleted by an
anonymisation or a withdrawal that committed while the request was reading
the row), and records no download of it. Real rows, real files, each file
removed from disk before the request."""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

import pytest
from django.core import mail
from django.test import Client
from django.urls import reverse

from clinic.models import AuditEvent, User
from consent.models import ConsentFormVersion
from consent.services import consent_pdf_render_now
from patients.images import clean_photo
from patients.models import Patient
from patients.services import photo_add
from tests.conftest import frozen_at, media_in_tmp, sign_in
from tests.consent.helpers import signed_consent_for
from tests.factories import ConsentFormVersionFactory, IngredientFactory, PatientFactory
from tests.treatments.test_aftercare import completed_session, ready_document
from tests.treatments.test_erasure import NOW, jpeg
from tests.treatments.test_session_helpers import give_and_read
from treatments.models import Ingredient
from treatments.services.data_rights import subject_access_render, subject_access_request
from treatments.services.portal import portal_invite

pytestmark = pytest.mark.django_db

frozen = frozen_at(NOW)
media_root = media_in_tmp()


@dataclass(frozen=True)
class Served:
    """One request for a stored file: who asks, how, and the file on disk."""

    client: Client
    url: str
    file: Path
    object_id: str
    data: dict[str, str] | None = None  # a POST (the emailed link's date-of-birth check)


def _patient() -> Patient:
    return cast(Patient, PatientFactory(email="zinnia@example.org"))


def _signed(patient: Patient, practitioner: User) -> Any:
    return signed_consent_for(
        patient=patient,
        version=cast(ConsentFormVersion, ConsentFormVersionFactory()),
        witness=practitioner,
    )


def _portal(patient: Patient, practitioner: User) -> Client:
    account = portal_invite(patient=patient, invited_by=practitioner)
    client = Client()
    client.force_login(account.user)
    return client


def signature(practitioner: User) -> Served:
    patient = _patient()
    signed = _signed(patient, practitioner)
    url = reverse(
        "consent:signature_image", kwargs={"patient": patient.uuid, "signed": signed.uuid}
    )
    return Served(
        sign_in(Client(), practitioner), url, Path(signed.signature.path), str(signed.uuid)
    )


def consent_pdf(practitioner: User) -> Served:
    patient = _patient()
    signed = _signed(patient, practitioner)
    pdf = consent_pdf_render_now(signed_consent_id=signed.pk)
    url = reverse("consent:signed_pdf", kwargs={"patient": patient.uuid, "signed": signed.uuid})
    return Served(sign_in(Client(), practitioner), url, Path(pdf.file.path), str(signed.uuid))


def portal_consent(practitioner: User) -> Served:
    patient = _patient()
    signed = _signed(patient, practitioner)
    pdf = consent_pdf_render_now(signed_consent_id=signed.pk)
    url = reverse("treatments:portal_consent", kwargs={"signed": signed.uuid})
    return Served(_portal(patient, practitioner), url, Path(pdf.file.path), str(signed.uuid))


def aftercare_sheet(practitioner: User) -> Served:
    document = ready_document(completed_session(patient=_patient()))
    url = reverse(
        "treatments:document_download",
        kwargs={"patient": document.patient.uuid, "document": document.uuid},
    )
    return Served(
        sign_in(Client(), practitioner), url, Path(document.file.path), str(document.uuid)
    )


def portal_aftercare_sheet(practitioner: User) -> Served:
    patient = _patient()
    document = ready_document(completed_session(patient=patient))
    url = reverse("treatments:portal_document", kwargs={"document": document.uuid})
    return Served(_portal(patient, practitioner), url, Path(document.file.path), str(document.uuid))


def emailed_link(practitioner: User) -> Served:
    document = ready_document(completed_session(patient=_patient()))
    found = re.search(r"/treatments/d/([A-Za-z0-9_-]+)/", str(mail.outbox[-1].body))
    assert found
    url = reverse("treatments:link_open", kwargs={"token": found.group(1)})
    return Served(
        Client(),
        url,
        Path(document.file.path),
        str(document.uuid),
        data={"date_of_birth": document.patient.date_of_birth.isoformat()},
    )


def photo(practitioner: User) -> Served:
    patient = _patient()
    found = photo_add(
        patient=patient,
        uploaded_by=practitioner,
        area="face",
        kind="before",
        taken_on=NOW.date(),
        image=clean_photo(io.BytesIO(jpeg()), size=len(jpeg())),
    )
    url = reverse("patients:photo_file", kwargs={"patient": patient.uuid, "photo": found.uuid})
    return Served(sign_in(Client(), practitioner), url, Path(found.image.path), str(found.uuid))


def allergy_test_photo(practitioner: User) -> Served:

    patient = _patient()
    given = NOW - timedelta(days=2)
    test = give_and_read(
        patient,
        practitioner,
        [cast(Ingredient, IngredientFactory())],
        given_at=given,
        result="positive",
        photo=jpeg(),
    )
    url = reverse(
        "treatments:allergy_test_photo", kwargs={"patient": patient.uuid, "test": test.uuid}
    )
    return Served(sign_in(Client(), practitioner), url, Path(test.photo.path), str(test.uuid))


def subject_access_export(practitioner: User) -> Served:
    patient = _patient()
    export = subject_access_request(patient=patient, requested_by=practitioner)
    export = subject_access_render(export_id=export.pk)
    url = reverse(
        "treatments:subject_access_download",
        kwargs={"patient": patient.uuid, "export": export.uuid},
    )
    return Served(sign_in(Client(), practitioner), url, Path(export.file.path), str(export.uuid))


SERVED: list[Callable[[User], Served]] = [
    signature,
    consent_pdf,
    portal_consent,
    aftercare_sheet,
    portal_aftercare_sheet,
    emailed_link,
    photo,
    allergy_test_photo,
    subject_access_export,
]


@pytest.fixture(autouse=True)
def _patients_have_no_authenticator(settings: Any) -> None:
    settings.REQUIRE_STAFF_2FA = False


def _get(served: Served) -> Any:
    if served.data is not None:
        return served.client.post(served.url, served.data)
    return served.client.get(served.url)


@pytest.mark.parametrize("make", SERVED, ids=[m.__name__ for m in SERVED])
def test_a_stored_file_gone_from_storage_is_404_and_no_download_is_recorded(
    make: Callable[[User], Served], practitioner: User
) -> None:
    served = make(practitioner)
    assert served.file.exists()
    served.client.raise_request_exception = False
    # The file was there: the view serves it.
    first = _get(served)
    assert first.status_code == 200, served.url
    assert b"".join(first.streaming_content)
    events = AuditEvent.objects.filter(object_id=served.object_id).count()
    assert events
    served.file.unlink()

    response = _get(served)

    assert response.status_code == 404, served.url
    assert b"This page does not exist" in response.content
    assert AuditEvent.objects.filter(object_id=served.object_id).count() == events
