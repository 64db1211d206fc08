from django.apps import AppConfig


class TreatmentsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "treatments"

    def ready(self) -> None:
        # Portal sign-in links asked for on the public page are sent by a worker.
        from clinic.models import SignInMailKind
        from clinic.sign_in_mail import sign_in_mail_sender_register
        from treatments.services.portal import portal_login_request

        sign_in_mail_sender_register(
            SignInMailKind.PORTAL_SIGN_IN, lambda email: portal_login_request(email=email)
        )
        # The patient's page says whether the patient may be treated, from the
        # same gates as the bookings it shows: the register cannot import them.
        from patients.readiness import readiness_judge_register
        from treatments.selectors.patient_readiness import patient_page_readiness

        readiness_judge_register(patient_page_readiness)
