from django.apps import AppConfig


class ClinicConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "clinic"
    verbose_name = "Clinic"

    def ready(self) -> None:
        # Signal receivers: role permissions after migrate, audit of logins.
        from clinic import signals  # noqa: F401
