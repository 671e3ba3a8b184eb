"""A valid FHIR resource of each entry type, for the write stories and the matrices."""

import base64
from typing import Any

LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
CONDITION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
ALLERGY = "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification"


def concept(system: str, code: str, display: str) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code, "display": display}], "text": display}


def entry_body(resource_type: str, patient_id: str, text: str) -> dict[str, Any]:
    """One ``resource_type`` for ``patient_id``, carrying ``text`` (a note, a string
    value or a document) so that a story can look for it."""
    subject = {"reference": f"Patient/{patient_id}"}
    at = "2026-11-20T09:30:00.000000Z"  # as the server renders an instant
    note = [{"text": text}]
    code = concept(SNOMED, "195967001", "Asthma")
    bodies: dict[str, dict[str, Any]] = {
        "Observation": {
            "status": "final",
            "category": [{"coding": [{"system": CATEGORY, "code": "vital-signs"}]}],
            "code": concept(LOINC, "8867-4", "Heart rate"),
            "subject": subject,
            "effectiveDateTime": at,
            "valueString": text,
        },
        "Encounter": {
            "status": "finished",
            "class": {"system": ACT_CODE, "code": "AMB", "display": "ambulatory"},
            "type": [concept(SNOMED, "185349003", "Encounter for check up")],
            "subject": subject,
            "period": {"start": at},
        },
        "Condition": {
            "verificationStatus": {"coding": [{"system": CONDITION, "code": "confirmed"}]},
            "code": code,
            "subject": subject,
            "onsetDateTime": at,
            "note": note,
        },
        "AllergyIntolerance": {
            "verificationStatus": {"coding": [{"system": ALLERGY, "code": "confirmed"}]},
            "code": concept(SNOMED, "91936005", "Allergy to penicillin"),
            "patient": subject,
            "onsetDateTime": at,
            "note": note,
        },
        "MedicationStatement": {
            "status": "active",
            "medicationCodeableConcept": concept(
                "http://www.nlm.nih.gov/research/umls/rxnorm", "197361", "amlodipine 5 MG"
            ),
            "subject": subject,
            "effectiveDateTime": at,
            "note": note,
        },
        "Immunization": {
            "status": "completed",
            "vaccineCode": concept("http://hl7.org/fhir/sid/cvx", "208", "COVID-19"),
            "patient": subject,
            "occurrenceDateTime": at,
            "note": note,
        },
        "Procedure": {
            "status": "completed",
            "code": concept(SNOMED, "80146002", "Appendectomy"),
            "subject": subject,
            "performedDateTime": at,
            "note": note,
        },
        "DocumentReference": {
            "status": "current",
            "docStatus": "final",
            "type": concept(LOINC, "11506-3", "Progress note"),
            "subject": subject,
            "date": at,
            "content": [
                {
                    "attachment": {
                        "contentType": "text/plain; charset=utf-8",
                        "data": base64.b64encode(text.encode()).decode(),
                    }
                }
            ],
        },
    }
    return {"resourceType": resource_type, **bodies[resource_type]}


def patient_body(mrn: str, system: str = "urn:oid:2.16.840.1.113883.19.5") -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "identifier": [{"system": system, "value": mrn}],
        "name": [{"family": "Theirs", "given": ["Ike"]}],
        "gender": "male",
        "birthDate": "1990-01-01",
    }
