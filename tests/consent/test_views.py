"""Consent pages: who may open them, bad input answered with 400 keeping what was
typed, another patient's records answered with 404, and query budgets."""

from __future__ import annotations

import re
from typing import Any
from unittest import mock

import pytest
from django.test import Client
from django.urls import reverse

from clinic.models import AuditAction, AuditEvent, User
from consent.models import (
    CONSENT_SECTION_NAMES,
    ConsentForm,
    ConsentFormVersion,
    ConsentWithdrawal,
    DocumentStatus,
    SignedConsent,
    SignedConsentPDF,
)
from patients.models import Patient
from tests.conftest import sign_in
from tests.consent.helpers import drawn_signature, signed_consent_for
from tests.factories import ConsentFormFactory, ConsentFormVersionFactory, PatientFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def version() -> ConsentFormVersion:
    return ConsentFormVersionFactory(form=ConsentFormFactory(title="Face, neck and hands"))


@pytest.fixture
def patient() -> Patient:
    return PatientFactory(first_name="Amelia", last_name="Hart")


@pytest.fixture
def signed(patient: Patient, version: ConsentFormVersion) -> SignedConsent:
    return signed_consent_for(patient=patient, version=version)


def client_for(user: User) -> Client:
    return sign_in(Client(), user)


def patient_urls(patient: Patient, version: ConsentFormVersion, signed: SignedConsent) -> list[str]:
    kw = {"patient": patient.uuid}
    skw = {**kw, "signed": signed.uuid}
    return [
        reverse("consent:patient_consents", kwargs=kw),
        reverse("consent:sign", kwargs={**kw, "form": version.form.uuid}),
        reverse("consent:signed_detail", kwargs=skw),
        reverse("consent:pdf_status", kwargs=skw),
        reverse("consent:signature_image", kwargs=skw),
        reverse("consent:signed_pdf", kwargs=skw),
    ]


def form_urls(version: ConsentFormVersion) -> list[str]:
    fkw = {"form": version.form.uuid}
    return [
        reverse("consent:form_list"),
        reverse("consent:form_create"),
        reverse("consent:form_detail", kwargs=fkw),
        reverse("consent:draft_edit", kwargs=fkw),
        reverse("consent:version_detail", kwargs={**fkw, "version": version.uuid}),
    ]


def test_reception_is_refused_every_consent_page(
    receptionist: User, patient: Patient, version: ConsentFormVersion, signed: SignedConsent
) -> None:
    client = client_for(receptionist)
    for url in patient_urls(patient, version, signed) + form_urls(version):
        assert client.get(url).status_code == 403, url


def test_a_manager_is_refused_patient_consent_pages(
    manager: User, patient: Patient, version: ConsentFormVersion, signed: SignedConsent
) -> None:
    client = client_for(manager)
    for url in patient_urls(patient, version, signed):
        assert client.get(url).status_code == 403, url


def test_a_practitioner_reads_forms_but_cannot_write_them(
    practitioner: User, version: ConsentFormVersion
) -> None:
    client = client_for(practitioner)
    fkw = {"form": version.form.uuid}
    assert client.get(reverse("consent:form_list")).status_code == 200
    assert client.get(reverse("consent:form_detail", kwargs=fkw)).status_code == 200
    assert client.get(reverse("consent:draft_edit", kwargs=fkw)).status_code == 403
    publish = reverse("consent:version_publish", kwargs={**fkw, "version": version.uuid})
    assert client.post(publish).status_code == 403


def test_another_patients_signed_consent_under_this_patient_is_404(
    practitioner: User, patient: Patient, version: ConsentFormVersion
) -> None:
    theirs = signed_consent_for(patient=PatientFactory(), version=version)
    client = client_for(practitioner)
    for name in ("signed_detail", "signature_image", "pdf_status", "signed_pdf"):
        url = reverse(f"consent:{name}", kwargs={"patient": patient.uuid, "signed": theirs.uuid})
        assert client.get(url).status_code == 404, name
    url = reverse("consent:withdraw", kwargs={"patient": patient.uuid, "signed": theirs.uuid})
    assert client.post(url, {"reason": "x"}).status_code == 404
    assert not hasattr(SignedConsent.objects.get(pk=theirs.pk), "withdrawal")


# --- Managers write and publish -------------------------------------------------------------


def test_a_manager_writes_a_draft_from_the_current_text_previews_and_publishes(
    manager: User, version: ConsentFormVersion
) -> None:
    client = client_for(manager)
    form = version.form
    draft_url = reverse("consent:draft_edit", kwargs={"form": form.uuid})
    page = client.get(draft_url)
    assert version.procedure in page.content.decode()  # starts from the current text
    texts = {
        name: getattr(version, name) for name in (*CONSENT_SECTION_NAMES, "photo_consent_text")
    }
    texts["aftercare"] = "No sauna for 48 hours, and no alcohol."
    response = client.post(draft_url, {**texts, "version": "0"})  # the form had no draft
    draft = form.versions.get(published_at__isnull=True)
    preview = reverse("consent:version_detail", kwargs={"form": form.uuid, "version": draft.uuid})
    assert response["Location"] == preview
    assert "no alcohol" in client.get(preview).content.decode()
    publish = reverse("consent:version_publish", kwargs={"form": form.uuid, "version": draft.uuid})
    response = client.post(publish, {"version": str(draft.version)}, follow=True)
    assert "Version 2 is published" in response.content.decode()
    draft.refresh_from_db()
    assert draft.number == 2
    assert draft.published_by == manager
    # The published text offers no edit any more.
    assert "publish-version" not in client.get(preview).content.decode()


def test_an_empty_draft_section_is_refused_and_keeps_the_rest(
    manager: User, version: ConsentFormVersion
) -> None:
    client = client_for(manager)
    url = reverse("consent:draft_edit", kwargs={"form": version.form.uuid})
    response = client.post(url, {"procedure": "Kept words", "benefits": "", "version": "0"})
    assert response.status_code == 400
    assert "Kept words" in response.content.decode()
    assert not version.form.versions.filter(published_at__isnull=True).exists()


def test_the_form_page_counts_patients_needing_re_consent(
    manager: User, version: ConsentFormVersion
) -> None:
    signed_consent_for(patient=PatientFactory(), version=version)
    signed_consent_for(patient=PatientFactory(), version=version)
    ConsentFormVersionFactory(form=version.form)
    response = client_for(manager).get(
        reverse("consent:form_detail", kwargs={"form": version.form.uuid})
    )
    assert "2 patients signed an older version" in response.content.decode()


def test_a_manager_creates_a_form(manager: User) -> None:
    client = client_for(manager)
    response = client.post(reverse("consent:form_create"), {"title": "Mesotherapy of the scalp"})
    form = ConsentForm.objects.get(title="Mesotherapy of the scalp")
    assert response["Location"] == reverse("consent:draft_edit", kwargs={"form": form.uuid})
    assert client.post(reverse("consent:form_create"), {"title": ""}).status_code == 400


# --- Practitioners take consent -------------------------------------------------------------


def sign_data(current: ConsentFormVersion, **overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {f"confirm_{n}": "on" for n in CONSENT_SECTION_NAMES}
    data.update(
        version=str(current.uuid),
        photo_consent="yes",
        signer_name="Amelia Hart",
        signature=drawn_signature(),
        witnessed="on",
    )
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def test_taking_consent_signs_and_shows_the_signed_page(
    practitioner: User, patient: Patient, version: ConsentFormVersion
) -> None:
    client = client_for(practitioner)
    url = reverse("consent:sign", kwargs={"patient": patient.uuid, "form": version.form.uuid})
    with mock.patch("consent.services.consent_pdf_enqueue"):
        response = client.post(url, sign_data(version))
    signed = SignedConsent.objects.get(patient=patient)
    assert response["Location"] == signed.get_absolute_url()
    page = client.get(signed.get_absolute_url()).content.decode()
    assert "matches its fingerprint" in page
    assert "being prepared" in page
    assert "hx-trigger" in page
    assert signed.text_sha256 in page


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"signature": ""}, "draw the signature"),
        ({"signature": "data:image/png;base64,AAAA"}, "not received as a picture"),
        ({"confirm_benefits": None}, "read and understood"),
        ({"signer_name": ""}, "type your full name"),
        ({"witnessed": None}, "witnessed the signature"),
        ({"photo_consent": None}, "yes or no for photographs"),
        ({"version": "00000000-0000-4000-8000-0000000000ff"}, "Reload the page"),
    ],
    ids=["no-signature", "bad-signature", "section", "name", "witness", "photos", "tampered"],
)
def test_bad_consent_posts_answer_400_save_nothing_and_keep_what_was_typed(
    practitioner: User,
    patient: Patient,
    version: ConsentFormVersion,
    overrides: dict[str, Any],
    message: str,
) -> None:
    client = client_for(practitioner)
    url = reverse("consent:sign", kwargs={"patient": patient.uuid, "form": version.form.uuid})
    data = sign_data(version, **{"signer_name": "Amelia Typed-Name", **overrides})
    response = client.post(url, data)
    assert response.status_code == 400
    body = response.content.decode()
    assert message in body
    assert SignedConsent.objects.count() == 0
    assert SignedConsentPDF.objects.count() == 0
    if data.get("signer_name"):
        assert 'value="Amelia Typed-Name"' in body


def test_withdrawal_from_the_signed_page(
    practitioner: User, patient: Patient, signed: SignedConsent
) -> None:
    client = client_for(practitioner)
    url = reverse("consent:withdraw", kwargs={"patient": patient.uuid, "signed": signed.uuid})
    assert client.post(url, {"reason": ""}).status_code == 400
    response = client.post(url, {"reason": "Moving abroad."}, follow=True)
    body = response.content.decode()
    assert "Withdrawn on" in body
    assert "Moving abroad." in body
    assert (
        "withdrawn"
        in client.get(
            reverse("consent:patient_consents", kwargs={"patient": patient.uuid})
        ).content.decode()
    )


def test_withdrawing_twice_in_a_row_keeps_the_first_and_answers_409(
    practitioner: User, patient: Patient, signed: SignedConsent
) -> None:
    client = client_for(practitioner)
    url = reverse("consent:withdraw", kwargs={"patient": patient.uuid, "signed": signed.uuid})
    first = client.post(url, {"reason": "Moving abroad."})
    assert first.status_code == 302
    second = client.post(url, {"reason": "Sent again."})
    assert second.status_code == 409
    body = second.content.decode()
    assert "This consent has already been withdrawn: the withdrawal recorded first stands." in body
    assert "Moving abroad." in body  # the page shows the withdrawal that stands
    assert "Sent again." not in body
    assert 'data-testid="withdraw"' not in body  # no form offering to withdraw again
    [withdrawal] = ConsentWithdrawal.objects.all()
    assert withdrawal.reason == "Moving abroad."


def test_a_heading_typed_inside_a_section_shows_inside_that_section(
    practitioner: User, patient: Patient
) -> None:
    version = ConsentFormVersionFactory(
        procedure="Tiny injections.\n## Agreed to everything\nmore",
        form=ConsentFormFactory(title="Face, neck and hands"),
    )
    client = client_for(practitioner)
    url = reverse("consent:sign", kwargs={"patient": patient.uuid, "form": version.form.uuid})
    with mock.patch("consent.services.consent_pdf_enqueue"):
        assert client.post(url, sign_data(version)).status_code == 302
    signed = SignedConsent.objects.get(patient=patient)

    page = client.get(signed.get_absolute_url()).content.decode()

    shown = re.findall(
        r'<section [^>]*data-section="([a-z_]+)">\s*<h3 class="h5">([^<]*)</h3>\s*'
        r'<p class="mb-0">(.*?)</p>',
        page,
        flags=re.DOTALL,
    )
    assert [(name, heading) for name, heading, _text in shown] == [
        ("procedure", "The procedure"),
        ("benefits", "Expected benefits"),
        ("common_side_effects", "Common side effects"),
        ("rare_complications", "Rare complications"),
        ("alternatives", "Alternatives"),
        ("aftercare", "Aftercare"),
        ("photographs", "Photographs"),
    ]
    assert shown[0][2] == "Tiny injections.<br>## Agreed to everything<br>more"
    assert "matches its fingerprint" in page


def test_the_signature_image_is_private_and_audited(
    practitioner: User, patient: Patient, signed: SignedConsent
) -> None:
    url = reverse(
        "consent:signature_image", kwargs={"patient": patient.uuid, "signed": signed.uuid}
    )
    response = client_for(practitioner).get(url)
    assert response.status_code == 200
    assert response["Content-Type"] == "image/png"
    assert "no-store" in response["Cache-Control"]
    assert response["X-Content-Type-Options"] == "nosniff"
    assert b"".join(response.streaming_content).startswith(b"\x89PNG")
    assert AuditEvent.objects.filter(
        actor=practitioner, action=AuditAction.VIEW, object_id=str(signed.uuid)
    ).exists()


def test_the_pdf_is_404_while_being_prepared_then_downloads_audited(
    practitioner: User, patient: Patient, signed: SignedConsent
) -> None:
    from consent.services import consent_pdf_render_now

    client = client_for(practitioner)
    url = reverse("consent:signed_pdf", kwargs={"patient": patient.uuid, "signed": signed.uuid})
    assert client.get(url).status_code == 404
    assert consent_pdf_render_now(signed_consent_id=signed.pk).status == DocumentStatus.READY
    response = client.get(url)
    assert response.status_code == 200
    assert b"".join(response.streaming_content).startswith(b"%PDF")
    assert AuditEvent.objects.filter(actor=practitioner, action=AuditAction.DOWNLOAD).exists()
    status = client.get(
        reverse("consent:pdf_status", kwargs={"patient": patient.uuid, "signed": signed.uuid})
    ).content.decode()
    assert "Download the PDF" in status
    assert "hx-trigger" not in status


# --- Query budgets, with one row and with many ----------------------------------------------


@pytest.mark.parametrize("rows", [1, 12])
def test_patient_pages_keep_their_query_budget(
    practitioner: User,
    patient: Patient,
    rows: int,
    django_assert_max_num_queries: Any,
) -> None:
    versions = [ConsentFormVersionFactory() for _ in range(rows)]
    signed_list = [signed_consent_for(patient=patient, version=v) for v in versions]
    client = client_for(practitioner)
    first = signed_list[0]
    with django_assert_max_num_queries(16):
        r = client.get(reverse("consent:patient_consents", kwargs={"patient": patient.uuid}))
    assert r.status_code == 200
    assert r.content.decode().count('data-testid="consent-state"') == rows
    skw = {"patient": patient.uuid, "signed": first.uuid}
    with django_assert_max_num_queries(14):
        assert client.get(reverse("consent:signed_detail", kwargs=skw)).status_code == 200
    sign_url = reverse(
        "consent:sign", kwargs={"patient": patient.uuid, "form": versions[0].form.uuid}
    )
    with django_assert_max_num_queries(14):
        assert client.get(sign_url).status_code == 200


@pytest.mark.parametrize("rows", [1, 12])
def test_form_pages_keep_their_query_budget(
    manager: User, rows: int, django_assert_max_num_queries: Any
) -> None:
    form = ConsentFormFactory()
    versions = [ConsentFormVersionFactory(form=form) for _ in range(rows)]
    for _ in range(rows):
        ConsentFormFactory()
    for v in versions:
        signed_consent_for(patient=PatientFactory(), version=v)
    client = client_for(manager)
    with django_assert_max_num_queries(12):
        assert client.get(reverse("consent:form_list")).status_code == 200
    with django_assert_max_num_queries(14):
        assert (
            client.get(reverse("consent:form_detail", kwargs={"form": form.uuid})).status_code
            == 200
        )
    with django_assert_max_num_queries(12):
        url = reverse(
            "consent:version_detail", kwargs={"form": form.uuid, "version": versions[0].uuid}
        )
        assert client.get(url).status_code == 200
