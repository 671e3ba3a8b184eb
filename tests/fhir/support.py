"""Helpers of the FHIR stories: a chart of every kind, waiting for the views, and
validation of every resource a response carries with ``fhir.resources`` (R4B)."""

from typing import Any
from uuid import UUID

import httpx
from fastapi.testclient import TestClient
from fhir.resources.R4B import get_fhir_model_class

from application.charts.chart_reads import TIMELINE_VIEWS
from tests.api.support import CLINICIAN, record_entry, register, under_care

LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"

HEART_RATE = {
    "kind": "observation",
    "code": {"system": LOINC, "code": "8867-4", "display": "Heart rate"},
    "value": {"quantity": 72, "unit": "/min"},
    "effective_at": "2026-11-20T09:30:00Z",
}
GLUCOSE = {
    "kind": "lab_result",
    "code": {"system": LOINC, "code": "2339-0", "display": "Glucose [Mass/volume] in Blood"},
    "value": {"quantity": "5.4", "unit": "mmol/L"},
    "effective_at": "2026-11-21T08:00:00Z",
}
VISIT = {
    "kind": "encounter",
    "code": {"system": SNOMED, "code": "185317003", "display": "Telephone encounter"},
    "effective_at": "2026-11-19T10:00:00Z",
    "modality": "virtual",
}
HOME_VISIT = {**VISIT, "modality": "home", "effective_at": "2026-11-22T10:00:00Z"}
PANIC = {
    "kind": "condition",
    "code": {"system": SNOMED, "code": "371631005", "display": "Panic disorder"},
    "effective_at": "2026-11-18T10:00:00Z",
    "labels": ["mental_health"],
}
ASTHMA = {
    "kind": "condition",
    "code": {"system": SNOMED, "code": "195967001", "display": "Asthma"},
    "effective_at": "2026-11-17T10:00:00Z",
}
OTHERS = [
    {
        "kind": "allergy",
        "code": {"system": SNOMED, "code": "91936005", "display": "Allergy to penicillin"},
        "effective_at": "2026-11-16T10:00:00Z",
    },
    {
        "kind": "medication",
        "code": {
            "system": "http://www.nlm.nih.gov/research/umls/rxnorm",
            "code": "197361",
            "display": "amlodipine 5 MG Oral Tablet",
        },
        "value": {"text": "once daily"},
        "effective_at": "2026-11-16T11:00:00Z",
    },
    {
        "kind": "immunization",
        "code": {"system": "http://hl7.org/fhir/sid/cvx", "code": "208", "display": "COVID-19"},
        "effective_at": "2026-11-16T12:00:00Z",
    },
    {
        "kind": "procedure",
        "code": {"system": SNOMED, "code": "80146002", "display": "Appendectomy"},
        "effective_at": "2026-11-16T13:00:00Z",
    },
    {
        "kind": "note",
        "code": {"system": LOINC, "code": "11506-3", "display": "Progress note"},
        "value": {"text": "Feeling better."},
        "effective_at": "2026-11-16T14:00:00Z",
    },
]


def full_chart(client: TestClient) -> tuple[str, dict[str, str]]:
    """A patient under care with an entry of every kind (one labelled mental_health);
    their id and the entry ids by name."""
    patient_id = register(client)
    under_care(client, patient_id)
    ids = {
        "heart": record_entry(client, patient_id, HEART_RATE),
        "glucose": record_entry(client, patient_id, GLUCOSE),
        "visit": record_entry(client, patient_id, VISIT),
        "home": record_entry(client, patient_id, HOME_VISIT),
        "panic": record_entry(client, patient_id, PANIC),
        "asthma": record_entry(client, patient_id, ASTHMA),
    }
    for body in OTHERS:
        ids[str(body["kind"])] = record_entry(client, patient_id, body)
    return patient_id, ids


def caught_up(client: TestClient | Any) -> None:
    """FHIR reads take no min_position: wait until the views show every write."""
    container = client.app.state.container
    position = client.get("/readyz").json()["position"]
    container.charts.views.caught_up(TIMELINE_VIEWS, position)


def resource_id(patient_id: str, entry_id: str) -> str:
    return UUID(patient_id).hex + UUID(entry_id).hex


def validated(body: dict[str, Any]) -> list[dict[str, Any]]:
    """Validate the resource (and a Bundle's every entry) with fhir.resources R4B;
    returns the resources a Bundle carries, or the one resource."""
    model = get_fhir_model_class(body["resourceType"])
    model.model_validate(body)
    if body["resourceType"] != "Bundle":
        return [body]
    found = []
    for entry in body.get("entry", []):
        # A transaction- or batch-response's entries carry a response, and an outcome.
        outcome = entry.get("response", {}).get("outcome")
        if outcome is not None:
            get_fhir_model_class(outcome["resourceType"]).model_validate(outcome)
        resource = entry.get("resource")
        if resource is None:
            assert body["type"] in ("transaction-response", "batch-response"), entry
            continue
        get_fhir_model_class(resource["resourceType"]).model_validate(resource)
        found.append(resource)
    return found


def fhir_get(
    client: TestClient, path: str, params: Any = None, headers: Any = CLINICIAN
) -> httpx.Response:
    return client.get(path, params=params, headers=headers)


def outcome(response: httpx.Response, status: int) -> dict[str, Any]:
    """An OperationOutcome with this status, valid R4B, with a diagnostic."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].split(";")[0] == "application/fhir+json"
    body: dict[str, Any] = response.json()
    assert body["resourceType"] == "OperationOutcome", body
    validated(body)
    assert body["issue"][0]["diagnostics"], body
    return body


def next_url(bundle: dict[str, Any]) -> str | None:
    links = {link["relation"]: link["url"] for link in bundle["link"]}
    return links.get("next")
