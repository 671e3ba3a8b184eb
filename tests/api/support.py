"""Helpers shared by the API stories: actors, fixtures of data, and problem+json checks."""

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import httpx
from fastapi.testclient import TestClient

from api.container import Container
from domain.patient import Patient
from tests.conftest import ENTRY_BODY, REGISTER_BODY, Auth, auth

CLINICIAN = auth("clinician", sub="dr-main")
OUTSIDER = auth("clinician", sub="dr-other", org="org-other")
ADMIN = auth("admin", sub="admin-main")
AUDITOR = auth("auditor", sub="auditor-main")

UNKNOWN_ID = "00000000-0000-4000-8000-00000000abcd"
SHA256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"

ENCOUNTER_BODY = {
    "kind": "encounter",
    "code": {
        "system": "http://snomed.info/sct",
        "code": "185317003",
        "display": "Telephone encounter",
    },
    "effective_at": "2026-11-20T10:00:00Z",
    "modality": "virtual",
}

GRANT_BODY = {
    "grantee": "org-pharmacy",
    "purposes": ["TREAT"],
    "labels": ["substance_use"],
    "period": {"start": "2020-01-01"},
    "evidence": {
        "form_id": "consent-42cfr2",
        "form_version": "3",
        "text_sha256": SHA256,
        "method": "electronic",
    },
}


def enrol_body(patient_id: str, **changes: Any) -> dict[str, Any]:
    return {
        "patient_id": patient_id,
        "plan": "individual",
        "annual_fee_cents": 19900,
        "starts_on": "2026-01-01",
        "ends_on": "2026-12-31",
        **changes,
    }


def patient_token(patient_id: str | UUID, sub: str = "patient-self") -> dict[str, str]:
    return auth("patient", sub=sub, patient=patient_id)


def container_of(client: TestClient) -> Container:
    """The use cases behind an in-process client's app."""
    return client.app.state.container  # type: ignore[attr-defined,no-any-return]


def settled(client: TestClient) -> dict[str, int]:
    """Query parameters that make a read-model query see every write made so far."""
    position = client.get("/readyz").json()["position"]
    return {"min_position": position}


def access_records(
    client: TestClient, *, auditor: Auth = AUDITOR, **filters: str
) -> list[dict[str, Any]]:
    """The access records ``auditor`` (of org-main by default) finds with these filters,
    every write made so far shown."""
    response = client.get(
        "/v1/audit/accesses", params={**filters, **settled(client)}, headers=auditor
    )
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def records_written(client: TestClient) -> int:
    """Events in the log other than access records (every response adds one of those)."""
    recorder = client.app.state.container.ledger.recorder  # type: ignore[attr-defined]
    notifications = recorder.select_notifications(start=1, limit=1_000_000)
    return sum(1 for n in notifications if not n.topic.startswith("domain.access_record:"))


def membership_body(patient_id: str) -> dict[str, Any]:
    """An active membership from yesterday for a year: clinicians treat within one."""
    today = datetime.now(UTC).date()
    return {
        "patient_id": patient_id,
        "plan": "individual",
        "annual_fee_cents": 0,
        "starts_on": (today - timedelta(days=1)).isoformat(),
        "ends_on": (today + timedelta(days=365)).isoformat(),
    }


def under_care(client: TestClient | httpx.Client, patient_id: str, admin: Auth = ADMIN) -> str:
    """The patient put under care by ``admin`` (of org-main by default); its position."""
    response = client.post("/v1/memberships", headers=admin, json=membership_body(patient_id))
    assert response.status_code == 201, response.text
    return str(response.json()["position"])


def register(client: TestClient, body: dict[str, Any] | None = None) -> str:
    """Given a patient registered by a clinician of org-main; returns the patient id."""
    response = client.post("/v1/patients", json=body or REGISTER_BODY, headers=CLINICIAN)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def record_entry(client: TestClient, patient_id: str, body: dict[str, Any] | None = None) -> str:
    response = client.post(
        f"/v1/patients/{patient_id}/entries", json=body or ENTRY_BODY, headers=CLINICIAN
    )
    assert response.status_code == 201, response.text
    return str(response.json()["entry_id"])


def enrol(client: TestClient, patient_id: str, **changes: Any) -> str:
    response = client.post("/v1/memberships", json=enrol_body(patient_id, **changes), headers=ADMIN)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def grant(client: TestClient, patient_id: str, headers: dict[str, str] | None = None) -> str:
    response = client.post(
        f"/v1/patients/{patient_id}/consents", json=GRANT_BODY, headers=headers or CLINICIAN
    )
    assert response.status_code == 201, response.text
    return str(response.json()["directive_id"])


def chart(client: TestClient, patient_id: str) -> dict[str, Any]:
    """The demographics a clinician reads, with ``entry_count``: the entries in the chart
    as the log holds them, labelled ones included (the API no longer discloses a count
    of entries its reader may not see, so the test reads it from the aggregate)."""
    response = client.get(f"/v1/patients/{patient_id}", headers=CLINICIAN)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert "entry_count" not in body
    ledger = client.app.state.container.ledger  # type: ignore[attr-defined]
    body["entry_count"] = ledger.load(Patient, UUID(patient_id), "patient").entry_count
    return body


def names_field(reported: str, field: str) -> bool:
    """``labels.0`` names ``labels``; ``name.given`` names ``name.given`` and ``name``."""
    return reported == field or reported.startswith((f"{field}.", f"{field}["))


def assert_problem(
    response: httpx.Response,
    status: int,
    field: str | None = None,
    detail_mentions: str | None = None,
) -> dict[str, Any]:
    """The response is an RFC 9457 problem with this status (and, for 422, names ``field``)."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].split(";")[0] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert isinstance(body.get("type"), str) and body["type"], body
    assert isinstance(body.get("title"), str) and body["title"], body
    assert body.get("status") == status, body
    assert isinstance(body.get("detail"), str) and body["detail"], body
    if status == 422:
        errors = body.get("errors")
        assert isinstance(errors, list) and errors, body
        for error in errors:
            assert isinstance(error.get("field"), str) and error["field"], body
            assert isinstance(error.get("message"), str) and error["message"], body
    if field is not None:
        reported = [error["field"] for error in body["errors"]]
        assert any(names_field(each, field) for each in reported), (field, reported)
    if detail_mentions is not None:
        assert detail_mentions.lower() in body["detail"].lower(), body
    return body


def assert_unauthenticated(response: httpx.Response) -> dict[str, Any]:
    body = assert_problem(response, 401)
    assert response.headers["www-authenticate"].split()[0] == "Bearer"
    return body


# Subscriptions -----------------------------------------------------------------------

MEDICATION = {
    "kind": "medication",
    "code": {
        "system": "http://www.nlm.nih.gov/research/umls/rxnorm",
        "code": "197361",
        "display": "amlodipine 5 MG Oral Tablet",
    },
    "value": {"text": "amlodipine 5 mg once daily"},
    "effective_at": "2026-11-20T09:30:00Z",
}
OBSERVATION = {
    "kind": "observation",
    "code": {"system": "http://loinc.org", "code": "8867-4", "display": "Heart rate"},
    "value": {"quantity": 72, "unit": "/min"},
    "effective_at": "2026-11-20T09:30:00Z",
}


def subscribe(client: httpx.Client, **spec: Any) -> tuple[str, dict[str, str]]:
    """org-main's admin registers a subscriber; returns its id and its service token,
    which is of the registering organisation, whatever the recipient organisation."""
    body = {
        "name": "Main St pharmacy",
        "recipient_org": "org-main",
        "purpose": "TREAT",
        "kinds": ["medication"],
        "labels": [],
        "content": "summary",
        **spec,
    }
    response = client.post("/v1/subscribers", json=body, headers=ADMIN)
    assert response.status_code == 201, response.text
    subscriber_id = response.json()["id"]
    return subscriber_id, auth("service", sub=subscriber_id, org="org-main")


def entry(client: httpx.Client, patient_id: str, body: dict[str, Any], **extra: Any) -> str:
    return record_entry(client, patient_id, {**body, **extra})  # type: ignore[arg-type]


def patient(client: httpx.Client, mrn: str) -> str:
    return register(client, {**REGISTER_BODY, "mrn": mrn})


def feed(client: httpx.Client, subscriber_id: str, token: dict[str, str], **params: Any) -> Any:
    response = client.get(f"/v1/subscribers/{subscriber_id}/feed", params=params, headers=token)
    assert response.status_code == 200, response.text
    return response


def revoke(client: httpx.Client, patient_id: str, directive_id: str) -> None:
    response = client.post(
        f"/v1/patients/{patient_id}/consents/{directive_id}/revoke",
        json={"reason": "no more marketing"},
        headers=CLINICIAN,
    )
    assert response.status_code == 200, response.text


def entry_ids(response: Any) -> list[str]:
    return [item["payload"]["entry_id"] for item in response.json()["items"]]


def directive(
    client: httpx.Client,
    patient_id: str,
    grantee: str,
    purposes: list[str],
    labels: list[str] | None = None,
) -> str:
    body = {
        "grantee": grantee,
        "purposes": purposes,
        "labels": labels or [],
        "period": {"start": "2020-01-01"},
        "evidence": {
            "form_id": "f",
            "form_version": "1",
            "text_sha256": SHA256,
            "method": "electronic",
        },
    }
    # The patient's own grant: staff never record one naming their organisation's access.
    response = client.post(
        f"/v1/patients/{patient_id}/consents", json=body, headers=patient_token(patient_id)
    )
    assert response.status_code == 201, response.text
    return str(response.json()["directive_id"])
