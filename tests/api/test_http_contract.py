"""The HTTP contract through the real ASGI app, on SQLite and on PostgreSQL."""

import threading
from typing import Any
from uuid import UUID

import pytest
from fastapi.testclient import TestClient

from tests.api.support import chart, records_written, settled
from tests.conftest import ENTRY_BODY, REGISTER_BODY, auth, token

CLINICIAN = auth("clinician", sub="dr-1")


def register(client: TestClient, **headers: str) -> str:
    response = client.post("/v1/patients", json=REGISTER_BODY, headers={**CLINICIAN, **headers})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def assert_problem(response: Any, status: int, field: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert {"type", "title", "status", "detail"} <= body.keys() and body["status"] == status
    if field is not None:
        assert field in [error["field"] for error in body["errors"]], body
    return body


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**REGISTER_BODY, "birth_date": "2999-01-01"}, "birth_date"),
        ({**REGISTER_BODY, "sex": "robot"}, "sex"),
        ({**REGISTER_BODY, "name": 5}, "name"),
        ({**REGISTER_BODY, "favourite_colour": "blue"}, "favourite_colour"),
        ({k: v for k, v in REGISTER_BODY.items() if k != "mrn"}, "mrn"),
    ],
)
def test_bad_registrations_are_422_naming_the_field(
    client: TestClient, body: dict[str, Any], field: str
) -> None:
    assert_problem(client.post("/v1/patients", json=body, headers=CLINICIAN), 422, field)


def test_malformed_json_wrong_uuid_and_unknown_kind(client: TestClient) -> None:
    malformed = client.post(
        "/v1/patients",
        content=b'{"mrn": ',
        headers={**CLINICIAN, "content-type": "application/json"},
    )
    assert_problem(malformed, 422, "body")
    assert_problem(client.get("/v1/patients/not-a-uuid", headers=CLINICIAN), 422, "patient_id")
    patient_id = register(client)
    bad_kind = {**ENTRY_BODY, "kind": "horoscope"}
    response = client.post(f"/v1/patients/{patient_id}/entries", json=bad_kind, headers=CLINICIAN)
    assert_problem(response, 422, "kind")


def test_a_huge_body_is_413(client: TestClient) -> None:
    huge = b'{"mrn": "' + b"x" * (1024 * 1024 + 10) + b'"}'
    response = client.post(
        "/v1/patients", content=huge, headers={**CLINICIAN, "content-type": "application/json"}
    )
    assert_problem(response, 413)


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer not.a.jwt", "Basic abc", f"Bearer {token('clinician', ttl=-30)}"],
)
def test_missing_malformed_or_expired_tokens_are_401(
    client: TestClient, authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    response = client.post("/v1/patients", json=REGISTER_BODY, headers=headers)
    assert_problem(response, 401)
    assert response.headers["www-authenticate"] == "Bearer"


def test_roles_and_organisations(client: TestClient) -> None:
    patient_id = register(client)
    entries = f"/v1/patients/{patient_id}/entries"
    assert_problem(client.post(entries, json=ENTRY_BODY, headers=auth("admin")), 403)
    assert_problem(client.post(entries, json=ENTRY_BODY, headers=auth("auditor")), 403)
    outsider = auth("clinician", sub="dr-x", org="org-other")
    assert_problem(client.post(entries, json=ENTRY_BODY, headers=outsider), 404)
    assert_problem(client.get(f"/v1/patients/{patient_id}", headers=outsider), 404)
    someone_else = auth("patient", sub="p-9", patient="00000000-0000-4000-8000-000000000009")
    assert_problem(client.get(f"/v1/patients/{patient_id}", headers=someone_else), 404)
    themselves = auth("patient", sub="p-1", patient=patient_id)
    assert client.get(f"/v1/patients/{patient_id}", headers=themselves).status_code == 200


def test_if_match_maps_to_the_expected_version(client: TestClient) -> None:
    patient_id = register(client)
    change = {"contact": {"phone": "+1-555-0199"}}
    url = f"/v1/patients/{patient_id}"

    first = client.patch(url, json=change, headers={**CLINICIAN, "If-Match": '"1"'})
    stale = client.patch(url, json=change, headers={**CLINICIAN, "If-Match": '"1"'})
    malformed = client.patch(url, json=change, headers={**CLINICIAN, "If-Match": "yesterday"})

    assert first.status_code == 200 and first.headers["etag"] == '"2"'
    assert_problem(stale, 412)
    assert_problem(malformed, 422, "If-Match")


def test_an_idempotent_retry_returns_the_first_result_and_writes_nothing(
    client: TestClient,
) -> None:
    keyed = {**CLINICIAN, "Idempotency-Key": "register-ada-1"}
    first = client.post("/v1/patients", json=REGISTER_BODY, headers=keyed)
    written = records_written(client)

    retry = client.post("/v1/patients", json=REGISTER_BODY, headers=keyed)
    other = client.post("/v1/patients", json={**REGISTER_BODY, "mrn": "MRN-2"}, headers=keyed)

    assert retry.status_code == 201 and retry.json() == first.json()
    assert retry.headers["idempotent-replayed"] == "true"
    assert_problem(other, 409)
    assert records_written(client) == written


def test_twenty_concurrent_entries_are_each_201_or_409_and_none_is_lost(
    client: TestClient,
) -> None:
    patient_id = register(client)
    statuses: list[int] = []
    lock = threading.Lock()

    def post() -> None:
        response = client.post(
            f"/v1/patients/{patient_id}/entries", json=ENTRY_BODY, headers=CLINICIAN
        )
        with lock:
            statuses.append(response.status_code)

    threads = [threading.Thread(target=post) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    created = statuses.count(201)
    assert set(statuses) <= {201, 409} and len(statuses) == 20
    found = chart(client, patient_id)
    assert found["entry_count"] == created and found["version"] == 1 + created


def test_request_ids_are_echoed_or_generated(client: TestClient) -> None:
    given = client.get("/healthz", headers={"X-Request-Id": "trace-42"})
    generated = client.get("/healthz")
    assert given.headers["x-request-id"] == "trace-42"
    assert str(UUID(generated.headers["x-request-id"])) == generated.headers["x-request-id"]


def test_membership_lifecycle_and_sponsor_rules(client: TestClient) -> None:
    patient_id = register(client)
    admin = auth("admin", sub="admin-1")
    body = {
        "patient_id": patient_id,
        "plan": "individual",
        "annual_fee_cents": 19900,
        "starts_on": "2026-01-01",
        "ends_on": "2026-12-31",
    }
    assert_problem(client.post("/v1/memberships", json=body, headers=CLINICIAN), 403)
    employer_without_sponsor = {**body, "plan": "employer"}
    response = client.post("/v1/memberships", json=employer_without_sponsor, headers=admin)
    assert_problem(response, 422, "sponsor_id")
    created = client.post("/v1/memberships", json=body, headers=admin)
    assert created.status_code == 201
    membership = created.json()["id"]

    cancel = client.post(
        f"/v1/memberships/{membership}/cancel", json={"reason": "moved"}, headers=admin
    )
    renew = client.post(
        f"/v1/memberships/{membership}/renew", json={"ends_on": "2027-12-31"}, headers=admin
    )
    listed = client.get(
        "/v1/memberships", params={"patient_id": patient_id, **settled(client)}, headers=admin
    )

    assert cancel.status_code == 200
    assert "cancelled" in assert_problem(renew, 409)["detail"]
    assert [item["status"] for item in listed.json()["items"]] == ["cancelled"]
