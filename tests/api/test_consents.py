"""Consent directives through HTTP: grant, revoke, and read them back."""

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.api.support import (
    CLINICIAN,
    GRANT_BODY,
    SHA256,
    UNKNOWN_ID,
    assert_problem,
    grant,
    register,
    settled,
)


def _consents(client: TestClient, patient_id: str) -> dict[str, Any]:
    response = client.get(
        f"/v1/patients/{patient_id}/consents", params=settled(client), headers=CLINICIAN
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert response.headers["etag"] == f'"{body["consent_version"]}"'
    return body


def _with_evidence(**changes: Any) -> dict[str, Any]:
    return {**GRANT_BODY, "evidence": {**GRANT_BODY["evidence"], **changes}}  # type: ignore[dict-item]


def test_a_directive_is_granted(client: TestClient) -> None:
    # Given a registered patient with an empty consent record (version 1)
    patient_id = register(client)
    assert _consents(client, patient_id)["consent_version"] == 1
    # When a clinician records a directive
    response = client.post(
        f"/v1/patients/{patient_id}/consents", json=GRANT_BODY, headers=CLINICIAN
    )
    # Then it is created, and the consent version moves to 2
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) >= {"directive_id", "consent_version", "position"}
    assert body["consent_version"] == 2


@pytest.mark.parametrize(
    "text_sha256",
    ["abc", SHA256[:-1], SHA256 + "0", SHA256.upper(), "g" * 64, ""],
    ids=["short", "63-chars", "65-chars", "upper-case", "not-hex", "empty"],
)
def test_evidence_whose_hash_is_not_64_hex_is_422_naming_it(
    client: TestClient, text_sha256: str
) -> None:
    # Given a registered patient
    patient_id = register(client)
    # When a directive's evidence carries a hash that is not 64 lower-case hex digits
    response = client.post(
        f"/v1/patients/{patient_id}/consents",
        json=_with_evidence(text_sha256=text_sha256),
        headers=CLINICIAN,
    )
    # Then the problem names evidence.text_sha256, and nothing is granted
    problem = assert_problem(response, 422, "evidence.text_sha256")
    assert [error["field"] for error in problem["errors"]] == ["evidence.text_sha256"]
    assert _consents(client, patient_id)["consent_version"] == 1


def test_an_unknown_signing_method_is_422_naming_evidence_method(client: TestClient) -> None:
    patient_id = register(client)
    response = client.post(
        f"/v1/patients/{patient_id}/consents",
        json=_with_evidence(method="telepathy"),
        headers=CLINICIAN,
    )
    assert_problem(response, 422, "evidence.method")


def test_a_directive_with_no_purposes_is_422_naming_purposes(client: TestClient) -> None:
    patient_id = register(client)
    response = client.post(
        f"/v1/patients/{patient_id}/consents",
        json={**GRANT_BODY, "purposes": []},
        headers=CLINICIAN,
    )
    assert_problem(response, 422, "purposes")


def test_a_period_that_ends_before_it_starts_is_422(client: TestClient) -> None:
    patient_id = register(client)
    response = client.post(
        f"/v1/patients/{patient_id}/consents",
        json={**GRANT_BODY, "period": {"start": "2026-06-01", "end": "2026-01-01"}},
        headers=CLINICIAN,
    )
    assert_problem(response, 422, "period")


def test_a_directive_is_revoked_once(client: TestClient) -> None:
    # Given a granted directive
    patient_id = register(client)
    directive_id = grant(client, patient_id)
    url = f"/v1/patients/{patient_id}/consents/{directive_id}/revoke"
    # When it is revoked, and then revoked again
    first = client.post(url, json={"reason": "withdrawn"}, headers=CLINICIAN)
    second = client.post(url, json={"reason": "withdrawn again"}, headers=CLINICIAN)
    # Then the first revocation succeeds and the second is a conflict
    assert first.status_code == 200, first.text
    assert first.json()["consent_version"] == 3
    assert_problem(second, 409, detail_mentions="not active")
    assert _consents(client, patient_id)["consent_version"] == 3


def test_revoking_an_unknown_directive_is_a_409_problem(client: TestClient) -> None:
    patient_id = register(client)
    response = client.post(
        f"/v1/patients/{patient_id}/consents/{UNKNOWN_ID}/revoke",
        json={"reason": "withdrawn"},
        headers=CLINICIAN,
    )
    assert_problem(response, 409, detail_mentions="no such directive")


def test_consents_for_an_unknown_patient_are_404(client: TestClient) -> None:
    response = client.get(f"/v1/patients/{UNKNOWN_ID}/consents", headers=CLINICIAN)
    assert_problem(response, 404)


def test_the_consent_record_shows_its_version_and_each_directives_status(
    client: TestClient,
) -> None:
    # Given two granted directives, the first of them revoked
    patient_id = register(client)
    revoked = grant(client, patient_id)
    active = grant(client, patient_id)
    client.post(
        f"/v1/patients/{patient_id}/consents/{revoked}/revoke",
        json={"reason": "withdrawn"},
        headers=CLINICIAN,
    )
    # When the consent record is read
    record = _consents(client, patient_id)
    # Then it shows the consent version and the status of each directive
    assert record["consent_version"] == 4
    statuses = {d["directive_id"]: d["status"] for d in record["directives"]}
    assert statuses == {revoked: "revoked", active: "active"}
    shown = next(d for d in record["directives"] if d["directive_id"] == active)
    assert shown["grantee"] == "org-pharmacy"
    assert shown["purposes"] == ["TREAT"] and shown["labels"] == ["substance_use"]
    assert shown["evidence"]["text_sha256"] == SHA256
    assert shown["evidence"]["recorded_by"] == "dr-main"
    gone = next(d for d in record["directives"] if d["directive_id"] == revoked)
    assert gone["revoked_at"] is not None and gone["revocation_reason"] == "withdrawn"


def test_a_directive_that_has_not_started_is_not_yet_active(client: TestClient) -> None:
    patient_id = register(client)
    future = {**GRANT_BODY, "period": {"start": "2999-01-01"}}
    response = client.post(f"/v1/patients/{patient_id}/consents", json=future, headers=CLINICIAN)
    assert response.status_code == 201, response.text
    [directive] = _consents(client, patient_id)["directives"]
    assert directive["status"] == "inactive"
