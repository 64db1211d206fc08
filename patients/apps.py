from django.apps import AppConfig


class PatientsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "patients"

    def ready(self) -> None:
        from clinic.selectors import (
            patient_labels_finder_register,
            patient_records_finder_register,
        )
        from patients.selectors import patient_labels_for_audit, patient_records_merged_into

        # The audit log's patient filter covers the records merged into one.
        patient_records_finder_register(patient_records_merged_into)
        # The audit log names the patient of each row (a merged record: the survivor).
        patient_labels_finder_register(patient_labels_for_audit)
