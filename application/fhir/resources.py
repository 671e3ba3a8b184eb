"""The bytes of a FHIR disclosure: chart rows and patients as FHIR R4B resources.

Plain dicts, rendered by ``disclosure_rendering.render`` like every other disclosure,
so that replay rebuilds them byte for byte; the tests validate each with
``fhir.resources`` (R4B). The mapping is documented in docs/fhir.md. Nothing here
reads a clock: a replayed Bundle must not differ by a timestamp.
"""

import base64
from typing import Any
from uuid import UUID

from application.charts.disclosure_rendering import Row, zulu
from domain.patient import Patient

# 1: the first FHIR rendering; replay renders a record at the version it names.
FHIR_RENDER = 1

ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
NULL_FLAVOR = "http://terminology.hl7.org/CodeSystem/v3-NullFlavor"
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
ALLERGY_VERIFICATION = "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification"
UCUM = "http://unitsofmeasure.org"

# Sensitivity labels as HL7 v3 ActCode information-sensitivity codes.
SECURITY_LABELS = {
    "substance_use": ("ETH", "substance abuse information sensitivity"),
    "mental_health": ("MH", "mental health information sensitivity"),
    "sexual_health": ("SEX", "sexuality and reproductive health information sensitivity"),
    "genetic": ("GDIS", "genetic disease information sensitivity"),
}
ENCOUNTER_CLASS = {
    "virtual": ("VR", "virtual"),
    "in_office": ("AMB", "ambulatory"),
    "home": ("HH", "home health"),
}
# Each entry kind's resource type; an Observation's category tells its two kinds apart.
RESOURCE_OF_KIND = {
    "encounter": "Encounter",
    "observation": "Observation",
    "lab_result": "Observation",
    "condition": "Condition",
    "allergy": "AllergyIntolerance",
    "medication": "MedicationStatement",
    "immunization": "Immunization",
    "procedure": "Procedure",
    "note": "DocumentReference",
}
KINDS_OF_RESOURCE: dict[str, tuple[str, ...]] = {}
for _kind, _type in RESOURCE_OF_KIND.items():
    KINDS_OF_RESOURCE[_type] = (*KINDS_OF_RESOURCE.get(_type, ()), _kind)
CATEGORY_OF_KIND = {"observation": "vital-signs", "lab_result": "laboratory"}


def resource_id(patient_id: UUID, entry_id: str) -> str:
    """An entry's FHIR id: its patient's and its own ids in hex (64 characters, the
    most FHIR allows), so that a read finds the chart without an index."""
    return patient_id.hex + UUID(entry_id).hex


def parse_resource_id(text: str) -> tuple[UUID, UUID] | None:
    if len(text) != 64:
        return None
    try:
        return UUID(hex=text[:32]), UUID(hex=text[32:])
    except ValueError:
        return None


def _coding(code: dict[str, str]) -> dict[str, Any]:
    return {"coding": [dict(code)], "text": code["display"]}


def _meta(row: Row) -> dict[str, Any]:
    security = [
        {
            "system": ACT_CODE,
            "code": SECURITY_LABELS[label][0],
            "display": SECURITY_LABELS[label][1],
        }
        for label in row["labels"]
        if label in SECURITY_LABELS
    ]
    # Other security codes (HTEST) come back as they were written, after the labels.
    security += [dict(tag) for tag in row.get("tags", ())]
    return {"meta": {"security": security}} if security else {}


def _value(value: dict[str, Any] | None) -> dict[str, Any]:
    if value is None:
        return {}
    if "quantity" in value:
        unit = value["unit"]
        return {
            "valueQuantity": {
                "value": value["quantity"],
                "unit": unit,
                "system": UCUM,
                "code": unit,
            }
        }
    if "text" in value:
        return {"valueString": value["text"]}
    if "code" in value:
        return {"valueCodeableConcept": _coding(value["code"])}
    if "components" in value:
        return {
            "component": [
                {"code": _coding(part["code"]), **_value(part["value"])}
                for part in value["components"]
            ]
        }
    return {"valueBoolean": value["boolean"]}


def _note(value: dict[str, Any] | None) -> dict[str, Any]:
    """A text value of an entry whose resource has no value: its note."""
    return {"note": [{"text": value["text"]}]} if value and "text" in value else {}


def entry_resource(patient_id: UUID, row: Row) -> dict[str, Any]:
    """A timeline row (``disclosure_rendering.rendered``) as its FHIR resource, with
    its links (encounter, practitioners, organisations, locations) last."""
    from application.fhir import links  # it reads elements, which reads this module

    body = _entry_resource(patient_id, row)
    if "encounter" in row or "attributions" in row:
        body.update(links.rendered(body["resourceType"], patient_id, row))
    return body


def _entry_resource(patient_id: UUID, row: Row) -> dict[str, Any]:
    kind, status = row["kind"], row["status"]
    in_error = status == "entered_in_error"
    subject = {"reference": f"Patient/{patient_id}"}
    head: dict[str, Any] = {
        "resourceType": RESOURCE_OF_KIND[kind],
        "id": resource_id(patient_id, row["entry_id"]),
        **_meta(row),
    }
    code, at, value = row["code"], row["effective_at"], row["value"]
    if kind in CATEGORY_OF_KIND:
        category = CATEGORY_OF_KIND[kind]
        status_code = {"active": "final", "amended": "amended"}.get(status, "entered-in-error")
        return {
            **head,
            "status": status_code,
            "category": [{"coding": [{"system": OBSERVATION_CATEGORY, "code": category}]}],
            "code": _coding(code),
            "subject": subject,
            "effectiveDateTime": at,
            **_value(value),
        }
    if kind == "encounter":
        klass, display = ENCOUNTER_CLASS.get(row["modality"] or "", ("UNK", "unknown"))
        system = ACT_CODE if klass != "UNK" else NULL_FLAVOR
        return {
            **head,
            "status": "entered-in-error" if in_error else "finished",
            "class": {"system": system, "code": klass, "display": display},
            "type": [_coding(code)],
            "subject": subject,
            "period": {"start": at},
        }
    if kind in ("condition", "allergy"):
        system = VERIFICATION if kind == "condition" else ALLERGY_VERIFICATION
        verification = "entered-in-error" if in_error else "confirmed"
        return {
            **head,
            "verificationStatus": {"coding": [{"system": system, "code": verification}]},
            "code": _coding(code),
            ("subject" if kind == "condition" else "patient"): subject,
            "onsetDateTime": at,
            **_note(value),
        }
    if kind == "medication":
        return {
            **head,
            "status": "entered-in-error" if in_error else "active",
            "medicationCodeableConcept": _coding(code),
            "subject": subject,
            "effectiveDateTime": at,
            **_note(value),
        }
    if kind == "immunization":
        return {
            **head,
            "status": "entered-in-error" if in_error else "completed",
            "vaccineCode": _coding(code),
            "patient": subject,
            "occurrenceDateTime": at,
            **_note(value),
        }
    if kind == "procedure":
        return {
            **head,
            "status": "entered-in-error" if in_error else "completed",
            "code": _coding(code),
            "subject": subject,
            "performedDateTime": at,
            **_note(value),
        }
    text = value["text"] if value and "text" in value else ""
    return {
        **head,
        "status": "entered-in-error" if in_error else "current",
        "docStatus": "amended" if status == "amended" else "final",
        "type": _coding(code),
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
    }


def patient_resource(patient: Patient) -> dict[str, Any]:
    """A patient's demographics (``Patient/{id}``), at the version read."""
    body: dict[str, Any] = {
        "resourceType": "Patient",
        "id": str(patient.id),
        "meta": {"versionId": str(patient.version)},
    }
    if patient.mrn:
        body["identifier"] = [{"system": patient.mrn_system, "value": patient.mrn}]
    if patient.name is not None:
        body["name"] = [{"family": patient.name.family, "given": [patient.name.given]}]
    contact = patient.contact
    telecom = []
    if contact is not None and contact.phone:
        telecom.append({"system": "phone", "value": contact.phone})
    if contact is not None and contact.email:
        telecom.append({"system": "email", "value": contact.email})
    if telecom:
        body["telecom"] = telecom
    if patient.sex is not None:
        body["gender"] = str(patient.sex)
    if patient.birth_date is not None:
        body["birthDate"] = patient.birth_date.isoformat()
    if patient.deceased_at is not None:
        body["deceasedDateTime"] = zulu(patient.deceased_at)
    return body


def hit_resource(hit: dict[str, Any]) -> dict[str, Any]:
    """A directory search hit (``search_hit``): who the patient is, and no more."""
    name = hit["name"]
    return {
        "resourceType": "Patient",
        "id": hit["id"],
        "name": [{"family": name["family"], "given": [name["given"]]}],
        "birthDate": hit["birth_date"],
    }


def searchset(
    resources: list[dict[str, Any]],
    base: str,
    self_url: str,
    next_url: str | None,
    *,
    first: bool = True,
) -> dict[str, Any]:
    """A searchset Bundle. ``total`` only when this page (the ``first``, with no next)
    is the whole result: hidden entries are never counted, and counting the rest of a
    longer result would read the whole chart."""
    links = [{"relation": "self", "url": self_url}]
    if next_url is not None:
        links.append({"relation": "next", "url": next_url})
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset"}
    if first and next_url is None:
        bundle["total"] = len(resources)
    bundle["link"] = links
    if not resources:  # FHIR JSON has no empty arrays
        return bundle
    bundle["entry"] = [
        {
            "fullUrl": f"{base}/{r['resourceType']}/{r['id']}",
            "resource": r,
            "search": {"mode": "match"},
        }
        for r in resources
    ]
    return bundle


def operation_outcome(code: str, diagnostics: str) -> dict[str, Any]:
    return {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": code, "diagnostics": diagnostics}],
    }
