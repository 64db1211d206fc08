"""The patient import the URL walk opens: uploaded by a manager of its own,
its columns matched, one row with a problem (so each page has content)."""

from __future__ import annotations

from patients.imports import patient_import_map, patient_import_upload
from patients.models import PatientImport


def create_samples(kwargs: dict[str, str]) -> PatientImport:
    from clinic.roles import Role
    from tests.factories import UserFactory

    uploader = UserFactory(username="sample-importer", roles=[Role.MANAGER])
    data = (
        b"First name,Surname,DOB,Mobile\r\n"
        b"Ana,Lee,31/02/1990,07911 123456\r\n"
        b"Ben,Ode,14/02/1985,\r\n"
    )
    job = patient_import_upload(created_by=uploader, data=data, file_name="sample.csv")
    PatientImport.objects.filter(pk=job.pk).update(uuid=kwargs["job"])
    job.refresh_from_db()
    return patient_import_map(
        job=job, user=uploader, mapping=job.mapping, expected_version=job.version
    )
