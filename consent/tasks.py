"""Background tasks of consent: thin, they take ids and call a service."""

from celery import shared_task


@shared_task(name="consent.tasks.consent_pdf_render", ignore_result=True, acks_late=True)
def consent_pdf_render(signed_consent_id: int) -> None:
    """Make (or remake, replacing the file) the PDF of one signed consent."""
    from consent.models import SignedConsentPDF
    from consent.services import consent_pdf_render_now

    try:
        consent_pdf_render_now(signed_consent_id=signed_consent_id)
    except SignedConsentPDF.DoesNotExist:
        # A message outliving its row (a test database, a restore): nothing to make.
        return


@shared_task(name="consent.tasks.consent_pdf_requeue", ignore_result=True)
def consent_pdf_requeue() -> None:
    """Queue again the PDFs whose task was lost (broker down when signing, say)."""
    from consent.services import consent_pdf_requeue_stale

    consent_pdf_requeue_stale()
