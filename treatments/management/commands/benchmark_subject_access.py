"""Time a subject-access export of a patient with 50 sessions.

    python manage.py benchmark_subject_access [--sessions 50] [--runs 3] [--keep PATH]

Makes (once; later runs reuse it) a patient with N completed sessions, each
with three cocktail lines of their own batches, ten injection points a line,
an adverse event every tenth session, five clinical photographs, a
consultation and 500 audit events naming them; then makes the export
`--runs` times in this process, through the service the Celery task calls
(collect, summary PDF, FHIR bundle validated, ZIP), and prints each time,
the ZIP's size, the summary's size and the load average. `--keep PATH`
writes the last ZIP there to look at. Session records are append-only, so
the synthetic patient stays; run it on a benchmark database, never a
clinic's.
"""

from __future__ import annotations

import io
import os
import statistics
import time
import zipfile
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from django.core.files.base import ContentFile
from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction
from django.utils import timezone
from PIL import Image

from clinic.models import AuditAction, AuditEvent, User
from patients.models import Consultation, Patient, Photo
from patients.services import patient_search_text
from treatments.management.benchmarking import benchmark_protocol
from treatments.models import (
    AdverseEvent,
    Batch,
    Booking,
    BookingStatus,
    CocktailLine,
    Ingredient,
    IngredientCategory,
    InjectionPoint,
    Product,
    Room,
    SessionRecord,
    SubjectAccessExport,
)
from treatments.services.data_rights import subject_access_render, subject_access_request

TAG = "bench-subject-access"


def _jpeg(n: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (1600, 1200), (180 + n, 120, 90)).save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


class Command(BaseCommand):
    help = "Time a subject-access export of a patient with many sessions."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--sessions", type=int, default=50)
        parser.add_argument("--runs", type=int, default=3)
        parser.add_argument("--keep", default="")

    def handle(self, *args: Any, **options: Any) -> None:
        patient, practitioner = self._setup(options["sessions"])
        times = []
        export = None
        for _ in range(options["runs"]):
            started = time.perf_counter()
            export = subject_access_request(patient=patient, requested_by=practitioner)
            export = subject_access_render(export_id=export.pk)
            times.append(time.perf_counter() - started)
            assert export.status == "ready", export.error
        assert export is not None
        with export.file.open("rb") as handle:
            data = handle.read()
        archive = zipfile.ZipFile(io.BytesIO(data))
        summary = archive.read("summary.pdf")
        if options["keep"]:
            with open(options["keep"], "wb") as out:
                out.write(data)
        load = os.getloadavg()
        self.stdout.write(
            f"sessions={options['sessions']} runs={options['runs']} "
            f"seconds={' '.join(f'{t:.2f}' for t in times)} "
            f"median={statistics.median(times):.2f} zip_bytes={len(data)} "
            f"files={len(archive.namelist())} summary_bytes={len(summary)} "
            f"load={load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
        )
        # The exports' files are removed; the rows stay as the record of each request.
        for row in SubjectAccessExport.objects.filter(patient=patient):
            if row.file:
                row.file.storage.delete(row.file.name)

    def _setup(self, sessions: int) -> tuple[Patient, User]:
        practitioner, _ = User.objects.get_or_create(username=TAG, defaults={"first_name": "Bench"})
        existing = Patient.objects.filter(email=f"{TAG}@example.invalid").first()
        if existing is not None and existing.bookings.count() >= sessions:
            return existing, practitioner
        self.stdout.write(f"Making a patient with {sessions} sessions...")
        with transaction.atomic():
            room, _ = Room.objects.get_or_create(name=TAG)
            protocol = benchmark_protocol(
                tag=TAG,
                created_by=practitioner,
                sheet={
                    "introduction": "After your session.",
                    "do_advice": "Cold compress.",
                    "avoid_advice": "No make-up for 12 hours.",
                    "warning_signs": "Spreading redness.",
                },
            )
            batches = []
            for n, name in enumerate(("Hyaluronic acid", "Vitamin C", "Peptides")):
                ingredient, _ = Ingredient.objects.get_or_create(
                    name=f"{TAG} {name}", defaults={"category": IngredientCategory.values[0]}
                )
                product, _ = Product.objects.get_or_create(
                    name=f"{TAG} {name} 2 mL", defaults={"maker": "Bench"}
                )
                product.ingredients.add(ingredient)
                batch, _ = Batch.objects.get_or_create(
                    product=product,
                    lot_number=f"LOT-{n:03d}",
                    defaults={
                        "expiry_date": timezone.localdate() + timedelta(days=700),
                        "quantity_received": 100,
                        "received_on": timezone.localdate() - timedelta(days=800),
                    },
                )
                batches.append(batch)
            patient = Patient(
                first_name="Bench",
                last_name="Fifty",
                date_of_birth=date(1985, 5, 17),
                email=f"{TAG}@example.invalid",
                phone="+447700900123",
                address="1 Test Street\nLondon",
                postcode="N1 1AA",
                consents_to_messages=True,
                created_by=practitioner,
            )
            patient.search_text = patient_search_text(patient)
            patient.save()
            start = timezone.now().replace(microsecond=0) - timedelta(days=2 * sessions + 30)
            bookings = Booking.objects.bulk_create(
                [
                    Booking(
                        patient=patient,
                        practitioner=practitioner,
                        room=room,
                        protocol=protocol,
                        starts_at=start + timedelta(days=2 * i),
                        ends_at=start + timedelta(days=2 * i, minutes=45),
                        status=BookingStatus.COMPLETED,
                        created_by=practitioner,
                    )
                    for i in range(sessions)
                ]
            )
            records = SessionRecord.objects.bulk_create(
                [
                    SessionRecord(
                        booking=b,
                        numbing_cream=True,
                        notes="Tolerated well; mild erythema settled before leaving.",
                        completed_at=b.ends_at,
                        completed_by=practitioner,
                    )
                    for b in bookings
                ]
            )
            lines = CocktailLine.objects.bulk_create(
                [
                    CocktailLine(
                        session=record,
                        batch=batch,
                        amount=Decimal("1.00"),
                        area="face",
                        technique="nappage",
                        depth_mm=Decimal("1.0"),
                        needle_gauge=32,
                        device="syringe",
                    )
                    for record in records
                    for batch in batches
                ]
            )
            InjectionPoint.objects.bulk_create(
                [
                    InjectionPoint(
                        line=line,
                        position=p,
                        view="face",
                        x=Decimal("0.4") + Decimal(p) / 100,
                        y=Decimal("0.5"),
                    )
                    for line in lines
                    for p in range(10)
                ]
            )
            AdverseEvent.objects.bulk_create(
                [
                    AdverseEvent(
                        session=record,
                        effect="bruising",
                        severity="mild",
                        onset=record.completed_at + timedelta(hours=2),
                        resolved_on=record.completed_at.date() + timedelta(days=4),
                        recorded_by=practitioner,
                    )
                    for record in records[::10]
                ]
            )
            Consultation.objects.create(
                patient=patient,
                recorded_by=practitioner,
                skin_type="III",
                concerns=["dull"],
                areas=["face"],
                goals="Brighter skin",
                expectations_discussed=True,
                risks_discussed=True,
            )
            for n in range(5):
                photo = Photo(
                    patient=patient,
                    area="face",
                    kind="progress",
                    taken_on=start.date() + timedelta(days=20 * n),
                    width=1600,
                    height=1200,
                    sha256="0" * 64,
                    uploaded_by=practitioner,
                )
                photo.image.save(f"{photo.uuid}.jpg", ContentFile(_jpeg(n)), save=False)
                photo.save()
            AuditEvent.objects.bulk_create(
                [
                    AuditEvent(
                        actor=practitioner,
                        actor_label=practitioner.username,
                        roles="practitioner",
                        action=AuditAction.VIEW,
                        object_type="patients.patient",
                        object_id=str(patient.uuid),
                        patient_ref=patient.uuid,
                    )
                    for _ in range(500)
                ]
            )
        return patient, practitioner
