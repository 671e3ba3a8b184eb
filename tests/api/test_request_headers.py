"""Request headers: If-Match, Idempotency-Key, X-Request-Id, X-Break-Glass, X-Purpose-Of-Use."""

import re
from uuid import UUID

import pytest
from eventsourcing.utils import get_topic
from fastapi.testclient import TestClient

from domain.patient import Patient
from tests.api.support import (
    CLINICIAN,
    assert_problem,
    chart,
    record_entry,
    records_written,
    register,
)
from tests.conftest import ENTRY_BODY, REGISTER_BODY, auth

CHANGE = {"contact": {"phone": "+1-555-0199"}}


def _registrations(client: TestClient) -> int:
    recorder = client.app.state.container.ledger.recorder  # type: ignore[attr-defined]
    topic = get_topic(Patient.Registered)
    return len(recorder.select_notifications(start=1, limit=1000, topics=[topic]))


def _log_position(client: TestClient) -> int:
    return records_written(client)


# If-Match -------------------------------------------------------------------------------------


def test_a_patch_with_the_current_version_in_if_match_succeeds(client: TestClient) -> None:
    # Given a freshly registered patient (version 1)
    patient_id = register(client)
    # When a clinician updates the contact with If-Match "1"
    response = client.patch(
        f"/v1/patients/{patient_id}", json=CHANGE, headers={**CLINICIAN, "If-Match": '"1"'}
    )
    # Then the update is accepted and the new version is 2
    assert response.status_code == 200, response.text
    assert response.headers["etag"] == '"2"'
    assert response.json()["version"] == 2 and response.json()["id"] == patient_id
    read = client.get(f"/v1/patients/{patient_id}", headers=CLINICIAN)
    assert read.headers["etag"] == '"2"'
    assert read.json()["contact"]["phone"] == "+1-555-0199"


def test_a_stale_if_match_is_412(client: TestClient) -> None:
    # Given a patient already updated once from version 1
    patient_id = register(client)
    url = f"/v1/patients/{patient_id}"
    first = client.patch(url, json=CHANGE, headers={**CLINICIAN, "If-Match": '"1"'})
    assert first.status_code == 200
    # When another update still claims version 1
    stale = client.patch(url, json={"sex": "other"}, headers={**CLINICIAN, "If-Match": '"1"'})
    # Then the precondition fails and nothing is written
    assert_problem(stale, 412, detail_mentions="version")
    assert chart(client, patient_id)["version"] == 2
    assert chart(client, patient_id)["sex"] == "female"


def test_a_weak_etag_and_a_star_are_accepted_in_if_match(client: TestClient) -> None:
    patient_id = register(client)
    url = f"/v1/patients/{patient_id}"
    weak = client.patch(url, json=CHANGE, headers={**CLINICIAN, "If-Match": 'W/"1"'})
    star = client.patch(url, json={"sex": "other"}, headers={**CLINICIAN, "If-Match": "*"})
    assert weak.status_code == 200 and weak.headers["etag"] == '"2"'
    assert star.status_code == 200 and star.headers["etag"] == '"3"'


@pytest.mark.parametrize("if_match", ["yesterday", '"one"', '"-1"', '"1", "2"'])
def test_a_malformed_if_match_is_422_naming_it(client: TestClient, if_match: str) -> None:
    patient_id = register(client)
    response = client.patch(
        f"/v1/patients/{patient_id}", json=CHANGE, headers={**CLINICIAN, "If-Match": if_match}
    )
    assert_problem(response, 422, "If-Match")
    assert chart(client, patient_id)["version"] == 1


def test_if_match_on_an_entry_pins_the_chart_version(client: TestClient) -> None:
    # Given a patient with one entry (version 2)
    patient_id = register(client)
    record_entry(client, patient_id)
    url = f"/v1/patients/{patient_id}/entries"
    # When one entry is recorded against version 2, and another against version 1
    ok = client.post(url, json=ENTRY_BODY, headers={**CLINICIAN, "If-Match": '"2"'})
    stale = client.post(url, json=ENTRY_BODY, headers={**CLINICIAN, "If-Match": '"1"'})
    # Then the first is written and the second refused
    assert ok.status_code == 201 and ok.headers["etag"] == '"3"'
    assert_problem(stale, 412)
    assert chart(client, patient_id)["entry_count"] == 2


# Idempotency-Key ----------------------------------------------------------------------------


def test_an_idempotent_retry_returns_the_first_result(client: TestClient) -> None:
    # Given a registration sent with an Idempotency-Key
    keyed = {**CLINICIAN, "Idempotency-Key": "register-ada-1"}
    first = client.post("/v1/patients", json=REGISTER_BODY, headers=keyed)
    assert first.status_code == 201, first.text
    position = _log_position(client)
    # When exactly the same request is retried
    retry = client.post("/v1/patients", json=REGISTER_BODY, headers=keyed)
    # Then the same body (same id and position) comes back, marked as replayed
    assert retry.status_code == 201
    assert retry.json() == first.json()
    assert retry.json()["position"] == first.json()["position"]
    assert retry.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    # And the store holds one patient only: the log did not move
    assert _log_position(client) == position
    assert _registrations(client) == 1
    read = client.get(f"/v1/patients/{first.json()['id']}", headers=CLINICIAN)
    assert read.status_code == 200 and read.json()["version"] == 1


def test_an_idempotency_key_reused_with_another_body_is_409(client: TestClient) -> None:
    # Given a registration sent with an Idempotency-Key
    keyed = {**CLINICIAN, "Idempotency-Key": "register-ada-2"}
    first = client.post("/v1/patients", json=REGISTER_BODY, headers=keyed)
    assert first.status_code == 201
    position = _log_position(client)
    # When the key is reused for a different patient
    other = client.post("/v1/patients", json={**REGISTER_BODY, "mrn": "MRN-9"}, headers=keyed)
    # Then it is a conflict, and nothing is written
    assert_problem(other, 409, detail_mentions="Idempotency-Key")
    assert _log_position(client) == position
    assert _registrations(client) == 1


def test_an_idempotent_entry_retry_records_one_entry(client: TestClient) -> None:
    patient_id = register(client)
    keyed = {**CLINICIAN, "Idempotency-Key": "entry-hr-1"}
    url = f"/v1/patients/{patient_id}/entries"
    first = client.post(url, json=ENTRY_BODY, headers=keyed)
    retry = client.post(url, json=ENTRY_BODY, headers=keyed)
    assert first.status_code == retry.status_code == 201
    assert retry.json() == first.json() and retry.headers["idempotent-replayed"] == "true"
    assert chart(client, patient_id)["entry_count"] == 1


def test_an_erasure_retried_after_its_key_was_destroyed_answers_as_it_did(
    client: TestClient,
) -> None:
    # Given an erasure sent with an Idempotency-Key, which destroyed the patient's key
    patient_id = register(client)
    keyed = {**auth("admin", sub="admin-main"), "Idempotency-Key": "erase-1"}
    url, body = f"/v1/patients/{patient_id}/erase", {"legal_basis": "GDPR art. 17"}
    first = client.post(url, json=body, headers=keyed)
    assert first.status_code == 202, first.text
    client.app.state.container.ledger.forget(UUID(patient_id))  # type: ignore[attr-defined]
    # When the client retries it (its answer was lost), Then it gets the same answer
    retry = client.post(url, json=body, headers=keyed)
    assert retry.status_code == 202, retry.text
    assert retry.json() == first.json() and retry.headers["idempotent-replayed"] == "true"
    # And without the key it is told the record is gone
    assert_problem(client.post(url, json=body, headers=auth("admin", sub="admin-main")), 410)


def test_the_same_key_from_another_actor_is_a_new_request(client: TestClient) -> None:
    key = {"Idempotency-Key": "shared-key"}
    first = client.post("/v1/patients", json=REGISTER_BODY, headers={**CLINICIAN, **key})
    # The same request but for another patient (an MRN is registered once per system)
    other = {**REGISTER_BODY, "mrn": "MRN-0002"}
    second = client.post(
        "/v1/patients", json=other, headers={**auth("clinician", sub="dr-2"), **key}
    )
    assert first.status_code == second.status_code == 201
    assert first.json()["id"] != second.json()["id"]
    assert "idempotent-replayed" not in second.headers


@pytest.mark.parametrize("key", ["has space", "x" * 256, "caf\u00e9"])
def test_a_malformed_idempotency_key_is_422(client: TestClient, key: str) -> None:
    headers: dict[str, str | bytes] = {**CLINICIAN, "Idempotency-Key": key.encode()}
    response = client.post("/v1/patients", json=REGISTER_BODY, headers=headers)
    assert_problem(response, 422, "Idempotency-Key")
    assert _registrations(client) == 0


# X-Request-Id ------------------------------------------------------------------------------


def test_a_given_request_id_is_echoed(client: TestClient) -> None:
    response = client.post(
        "/v1/patients", json=REGISTER_BODY, headers={**CLINICIAN, "X-Request-Id": "trace-42"}
    )
    assert response.status_code == 201
    assert response.headers["x-request-id"] == "trace-42"


# A generated request id is a dashed UUID, as every id the API sends.
UUID4 = r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"


def test_a_request_id_is_generated_when_absent(client: TestClient) -> None:
    first = client.post("/v1/patients", json=REGISTER_BODY, headers=CLINICIAN)
    second = client.get("/healthz")
    for response in (first, second):
        assert re.fullmatch(UUID4, response.headers["x-request-id"])
    assert first.headers["x-request-id"] != second.headers["x-request-id"]


def test_a_request_id_is_echoed_on_problems_too(client: TestClient) -> None:
    unauthenticated = client.get(f"/v1/patients/{'0' * 8}", headers={"X-Request-Id": "t-401"})
    invalid = client.post("/v1/patients", json={}, headers={**CLINICIAN, "X-Request-Id": "t-422"})
    assert unauthenticated.headers["x-request-id"] == "t-401"
    assert invalid.headers["x-request-id"] == "t-422"


def test_an_unsafe_request_id_is_replaced_by_a_generated_one(client: TestClient) -> None:
    response = client.get("/healthz", headers={"X-Request-Id": "bad id\twith<html>"})
    assert re.fullmatch(UUID4, response.headers["x-request-id"])


# Purpose of use and break-glass ----------------------------------------------------------------


def test_a_break_glass_justification_shorter_than_20_characters_is_422(
    client: TestClient,
) -> None:
    # Given a registered patient
    patient_id = register(client)
    # When a clinician breaks the glass with a 19-character justification
    response = client.get(
        f"/v1/patients/{patient_id}", headers={**CLINICIAN, "X-Break-Glass": "x" * 19}
    )
    # Then it is invalid input naming the header, and no PHI is disclosed
    assert_problem(response, 422, "X-Break-Glass", detail_mentions="20")
    assert "Example" not in response.text


def test_a_break_glass_justification_of_spaces_is_422(client: TestClient) -> None:
    patient_id = register(client)
    response = client.post(
        f"/v1/patients/{patient_id}/entries",
        json=ENTRY_BODY,
        headers={**CLINICIAN, "X-Break-Glass": " " * 30},
    )
    assert_problem(response, 422, "X-Break-Glass")
    assert chart(client, patient_id)["entry_count"] == 0


def test_a_break_glass_justification_of_substance_is_accepted(client: TestClient) -> None:
    patient_id = register(client)
    response = client.get(
        f"/v1/patients/{patient_id}",
        headers={**CLINICIAN, "X-Break-Glass": "unconscious in ED, allergy history needed"},
    )
    assert response.status_code == 200, response.text


def test_a_break_glass_justification_of_twenty_letters_is_422(client: TestClient) -> None:
    # Length alone is no justification: it needs three different words.
    patient_id = register(client)
    for filler in ("a" * 20, "urgent urgent urgent urgent", "x1 y2 z3 !!!!!!!!!!!!!!!!"):
        response = client.get(
            f"/v1/patients/{patient_id}", headers={**CLINICIAN, "X-Break-Glass": filler}
        )
        # and the refusal says what "a word" is, since "x1 y2 z3" has three of another kind
        assert_problem(response, 422, "X-Break-Glass", detail_mentions="three letters or more")


def test_an_unknown_purpose_of_use_is_422(client: TestClient) -> None:
    patient_id = register(client)
    response = client.get(
        f"/v1/patients/{patient_id}", headers={**CLINICIAN, "X-Purpose-Of-Use": "CURIOSITY"}
    )
    assert_problem(response, 422, "X-Purpose-Of-Use")
    assert "Example" not in response.text


def test_a_known_purpose_of_use_is_accepted(client: TestClient) -> None:
    patient_id = register(client)
    response = client.get(
        f"/v1/patients/{patient_id}", headers={**CLINICIAN, "X-Purpose-Of-Use": "treat"}
    )
    assert response.status_code == 200
