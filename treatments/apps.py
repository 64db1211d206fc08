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
