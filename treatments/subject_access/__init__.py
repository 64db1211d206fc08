"""A patient's subject-access export (UK GDPR Art. 15): `collect` reads the
record, `pdf` writes the readable summary, `fhir` the HL7 FHIR bundle and
`archive` puts them in one ZIP with the photos and documents."""
