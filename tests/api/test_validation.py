"""Invalid input is a 422 problem that names the bad field; oversized bodies are a 413."""

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from tests.api.support import (
    ADMIN,
    CLINICIAN,
    GRANT_BODY,
    assert_problem,
    enrol_body,
    record_entry,
    register,
)
from tests.conftest import ENTRY_BODY, REGISTER_BODY

JSON_CONTENT = {"content-type": "application/json"}
MAX_BODY = 1024 * 1024


# Malformed JSON -----------------------------------------------------------------------


def test_a_malformed_json_body_is_422_naming_body(client: TestClient) -> None:
    # Given a clinician
    # When they send a body that is not JSON at all
    response = client.post(
        "/v1/patients", content=b'{"mrn": "MRN-1", ', headers={**CLINICIAN, **JSON_CONTENT}
    )
    # Then it is an invalid-input problem about the body, not a 400 or a 500
    assert_problem(response, 422, "body", detail_mentions="not valid JSON")


def test_an_entry_before_1900_is_422_naming_effective_at(client: TestClient) -> None:
    # Given a registered patient (found by the schemathesis suite: year 114 went out
    # as "114-12-09T..." and sorted after 2026)
    patient_id = register(client)
    # When a clinician records an entry dated in the year 114
    response = client.post(
        f"/v1/patients/{patient_id}/entries",
        json={**ENTRY_BODY, "effective_at": "0114-12-09T10:16:55Z"},
        headers=CLINICIAN,
    )
    # Then it is refused, naming the field; 1900 itself is a clinical time
    assert_problem(response, 422, "effective_at", detail_mentions="1900")
    # So are the first and last instants whose offset takes them out of the calendar
    for edge in ("0001-01-01T00:00:01+02:00", "9999-12-31T23:00:00-05:00"):
        body = {**ENTRY_BODY, "effective_at": edge}
        response = client.post(f"/v1/patients/{patient_id}/entries", json=body, headers=CLINICIAN)
        assert_problem(response, 422, "effective_at", detail_mentions="1900")
    ok = {**ENTRY_BODY, "effective_at": "1900-01-01T00:00:00Z"}
    accepted = client.post(f"/v1/patients/{patient_id}/entries", json=ok, headers=CLINICIAN)
    assert accepted.status_code == 201, accepted.text


def test_a_body_that_is_not_utf8_is_422_naming_body_not_400(client: TestClient) -> None:
    # When a clinician sends bytes that do not decode (found by the schemathesis suite)
    response = client.post(
        "/v1/patients", content=b"\xff\xfe\x00{", headers={**CLINICIAN, **JSON_CONTENT}
    )
    # Then it is the same invalid-input problem as any body that is not JSON
    assert_problem(response, 422, "body", detail_mentions="not valid JSON")


def test_a_malformed_json_entry_is_422_naming_body(client: TestClient) -> None:
    # Given a registered patient
    patient_id = register(client)
    # When a clinician posts a truncated JSON entry
    response = client.post(
        f"/v1/patients/{patient_id}/entries",
        content=b'{"kind": "observation", "code": {',
        headers={**CLINICIAN, **JSON_CONTENT},
    )
    # Then the problem names the body
    assert_problem(response, 422, "body")


# Wrong types ---------------------------------------------------------------------------


def test_a_fee_that_is_not_a_number_is_422_naming_annual_fee_cents(client: TestClient) -> None:
    # Given a registered patient
    patient_id = register(client)
    # When an admin enrols them with a fee of "abc"
    body = enrol_body(patient_id, annual_fee_cents="abc")
    response = client.post("/v1/memberships", json=body, headers=ADMIN)
    # Then the problem names annual_fee_cents
    assert_problem(response, 422, "annual_fee_cents")


def test_a_name_that_is_a_number_is_422_naming_name(client: TestClient) -> None:
    # Given a clinician
    # When they register a patient whose name is 5
    response = client.post("/v1/patients", json={**REGISTER_BODY, "name": 5}, headers=CLINICIAN)
    # Then the problem names name
    assert_problem(response, 422, "name")


def test_a_given_name_that_is_a_number_is_422_naming_name_given(client: TestClient) -> None:
    # Given a clinician
    # When they register a patient whose given name is 5
    body = {**REGISTER_BODY, "name": {"given": 5, "family": "Example"}}
    response = client.post("/v1/patients", json=body, headers=CLINICIAN)
    # Then the problem names name.given exactly
    problem = assert_problem(response, 422, "name.given")
    assert [error["field"] for error in problem["errors"]] == ["name.given"]


def test_a_body_that_is_a_list_is_422_naming_body(client: TestClient) -> None:
    # Given a clinician
    # When they post a JSON array instead of an object
    response = client.post("/v1/patients", json=[REGISTER_BODY], headers=CLINICIAN)
    # Then the problem names the body
    assert_problem(response, 422, "body")


# Unknown enum values --------------------------------------------------------------------


def test_an_unknown_sex_is_422_naming_sex(client: TestClient) -> None:
    response = client.post(
        "/v1/patients", json={**REGISTER_BODY, "sex": "robot"}, headers=CLINICIAN
    )
    assert_problem(response, 422, "sex")


def test_an_unknown_entry_kind_is_422_naming_kind(client: TestClient) -> None:
    # Given a registered patient
    patient_id = register(client)
    # When a clinician records an entry of kind "horoscope"
    response = client.post(
        f"/v1/patients/{patient_id}/entries",
        json={**ENTRY_BODY, "kind": "horoscope"},
        headers=CLINICIAN,
    )
    # Then the problem names kind
    assert_problem(response, 422, "kind")


def test_an_unknown_plan_is_422_naming_plan(client: TestClient) -> None:
    patient_id = register(client)
    response = client.post(
        "/v1/memberships", json=enrol_body(patient_id, plan="platinum"), headers=ADMIN
    )
    assert_problem(response, 422, "plan")


def test_an_unknown_purpose_of_use_in_a_consent_is_422_naming_purposes(
    client: TestClient,
) -> None:
    patient_id = register(client)
    body = {**GRANT_BODY, "purposes": ["TREAT", "GOSSIP"]}
    response = client.post(f"/v1/patients/{patient_id}/consents", json=body, headers=CLINICIAN)
    assert_problem(response, 422, "purposes")


def test_an_unknown_sensitivity_label_on_an_entry_is_422_naming_labels(
    client: TestClient,
) -> None:
    patient_id = register(client)
    response = client.post(
        f"/v1/patients/{patient_id}/entries",
        json={**ENTRY_BODY, "labels": ["spicy"]},
        headers=CLINICIAN,
    )
    assert_problem(response, 422, "labels")


def test_an_unknown_sensitivity_label_in_a_consent_is_422_naming_labels(
    client: TestClient,
) -> None:
    patient_id = register(client)
    body = {**GRANT_BODY, "labels": ["gossip"]}
    response = client.post(f"/v1/patients/{patient_id}/consents", json=body, headers=CLINICIAN)
    assert_problem(response, 422, "labels")


def test_an_unknown_membership_status_filter_is_422_naming_status(client: TestClient) -> None:
    response = client.get("/v1/memberships", params={"status": "dormant"}, headers=ADMIN)
    assert_problem(response, 422, "status")


# Dates ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "birth_date",
    [(datetime.now(UTC) + timedelta(days=2)).date().isoformat(), "2999-01-01"],
    ids=["the-day-after-tomorrow", "year-2999"],
)
def test_a_birth_date_in_the_future_is_422_naming_birth_date(
    client: TestClient, birth_date: str
) -> None:
    # Given a clinician
    # When they register a patient born in the future
    body = {**REGISTER_BODY, "birth_date": birth_date}
    response = client.post("/v1/patients", json=body, headers=CLINICIAN)
    # Then the problem names birth_date and says why
    problem = assert_problem(response, 422, "birth_date", detail_mentions="future")
    assert [error["field"] for error in problem["errors"]] == ["birth_date"]


def test_a_future_birth_date_in_a_demographics_update_is_422(client: TestClient) -> None:
    patient_id = register(client)
    response = client.patch(
        f"/v1/patients/{patient_id}", json={"birth_date": "2999-01-01"}, headers=CLINICIAN
    )
    assert_problem(response, 422, "birth_date")
    # And nothing changed
    assert client.get(f"/v1/patients/{patient_id}", headers=CLINICIAN).json()["version"] == 1


def test_an_effective_time_without_a_time_zone_is_422_naming_effective_at(
    client: TestClient,
) -> None:
    patient_id = register(client)
    response = client.post(
        f"/v1/patients/{patient_id}/entries",
        json={**ENTRY_BODY, "effective_at": "2026-11-20T09:30:00"},
        headers=CLINICIAN,
    )
    assert_problem(response, 422, "effective_at")


# Path parameters ------------------------------------------------------------------------


def test_a_bad_patient_uuid_in_the_path_is_422_naming_patient_id(client: TestClient) -> None:
    response = client.get("/v1/patients/not-a-uuid", headers=CLINICIAN)
    assert_problem(response, 422, "patient_id")


def test_a_bad_patient_uuid_on_a_write_is_422_naming_patient_id(client: TestClient) -> None:
    response = client.post("/v1/patients/12345/entries", json=ENTRY_BODY, headers=CLINICIAN)
    assert_problem(response, 422, "patient_id")


def test_a_bad_entry_uuid_in_the_path_is_422_naming_entry_id(client: TestClient) -> None:
    patient_id = register(client)
    response = client.post(
        f"/v1/patients/{patient_id}/entries/nope/amendments",
        json={"reason": "typo"},
        headers=CLINICIAN,
    )
    assert_problem(response, 422, "entry_id")


# Unknown fields ---------------------------------------------------------------------------


def test_an_unknown_top_level_field_is_422_naming_it(client: TestClient) -> None:
    body = {**REGISTER_BODY, "favourite_colour": "blue"}
    response = client.post("/v1/patients", json=body, headers=CLINICIAN)
    problem = assert_problem(response, 422, "favourite_colour")
    assert "known field" in problem["detail"]


def test_an_unknown_nested_field_is_422_naming_its_path(client: TestClient) -> None:
    body = {**REGISTER_BODY, "name": {"given": "Ada", "family": "Example", "middle": "K"}}
    response = client.post("/v1/patients", json=body, headers=CLINICIAN)
    assert_problem(response, 422, "name.middle")


def test_an_unknown_field_on_an_entry_is_422_naming_it(client: TestClient) -> None:
    patient_id = register(client)
    response = client.post(
        f"/v1/patients/{patient_id}/entries",
        json={**ENTRY_BODY, "mood": "cheerful"},
        headers=CLINICIAN,
    )
    assert_problem(response, 422, "mood")


def test_an_unknown_field_on_an_enrolment_is_422_naming_it(client: TestClient) -> None:
    patient_id = register(client)
    response = client.post(
        "/v1/memberships", json=enrol_body(patient_id, discount="50%"), headers=ADMIN
    )
    assert_problem(response, 422, "discount")


def test_invalid_input_writes_nothing(client: TestClient) -> None:
    # Given a patient with one entry
    patient_id = register(client)
    record_entry(client, patient_id)
    recorder = client.app.state.container.ledger.recorder  # type: ignore[attr-defined]
    before = recorder.max_notification_id()
    # When a batch of invalid writes is refused
    for body in ({**ENTRY_BODY, "kind": "x"}, {**ENTRY_BODY, "extra": 1}, {}):
        response = client.post(f"/v1/patients/{patient_id}/entries", json=body, headers=CLINICIAN)
        assert_problem(response, 422)
    # Then the log did not move
    assert recorder.max_notification_id() == before


# Body size --------------------------------------------------------------------------------


def _padded_registration(size: int) -> bytes:
    """A valid registration, padded with JSON whitespace to exactly ``size`` bytes."""
    core = json.dumps(REGISTER_BODY).encode()
    assert len(core) < size
    return core[:-1] + b" " * (size - len(core)) + b"}"


def test_a_body_over_one_mebibyte_with_a_content_length_is_413(client: TestClient) -> None:
    # Given a body one byte over the 1 MiB cap, declared with Content-Length
    body = _padded_registration(MAX_BODY + 1)
    # When it is posted
    response = client.post("/v1/patients", content=body, headers={**CLINICIAN, **JSON_CONTENT})
    # Then it is refused as too large, as problem+json, and nothing is written
    assert_problem(response, 413, detail_mentions="exceeds")
    assert "x-request-id" in response.headers


def test_a_body_of_exactly_one_mebibyte_is_accepted(client: TestClient) -> None:
    # Given a valid registration padded to exactly the cap
    body = _padded_registration(MAX_BODY)
    # When it is posted
    response = client.post("/v1/patients", content=body, headers={**CLINICIAN, **JSON_CONTENT})
    # Then the size is fine and the patient is registered
    assert response.status_code == 201, response.text


def test_a_huge_body_is_413_even_with_an_idempotency_key(client: TestClient) -> None:
    body = b'{"mrn": "' + b"x" * (MAX_BODY + 10) + b'"}'
    response = client.post(
        "/v1/patients",
        content=body,
        headers={**CLINICIAN, **JSON_CONTENT, "Idempotency-Key": "huge-1"},
    )
    assert_problem(response, 413)


def _chunks(total: int, size: int = 64 * 1024) -> Iterator[bytes]:
    yield b'{"mrn": "'
    sent = 0
    while sent < total:
        yield b"x" * size
        sent += size
    yield b'"}'


def test_a_streamed_body_over_one_mebibyte_is_413(client: TestClient) -> None:
    # Given a body streamed in chunks without a Content-Length
    # When it grows past the 1 MiB cap
    response = client.post(
        "/v1/patients", content=_chunks(MAX_BODY + 1), headers={**CLINICIAN, **JSON_CONTENT}
    )
    # Then it is refused as too large
    assert "content-length" not in {k.lower() for k in response.request.headers}
    assert_problem(response, 413)


def test_a_streamed_oversized_body_is_never_a_500_and_writes_nothing(
    client: TestClient,
) -> None:
    # A streamed huge body is refused before anything is written
    recorder = client.app.state.container.ledger.recorder  # type: ignore[attr-defined]
    before = recorder.max_notification_id()
    response = client.post(
        "/v1/patients", content=_chunks(MAX_BODY + 1), headers={**CLINICIAN, **JSON_CONTENT}
    )
    assert 400 <= response.status_code < 500
    assert response.headers["content-type"] == "application/problem+json"
    assert recorder.max_notification_id() == before


def test_a_deeply_nested_body_is_a_client_error_not_a_500(client: TestClient) -> None:
    depth = 50_000
    body = b'{"mrn": ' + b"[" * depth + b"]" * depth + b"}"
    response = client.post("/v1/patients", content=body, headers={**CLINICIAN, **JSON_CONTENT})
    assert 400 <= response.status_code < 500, response.text
    assert response.headers["content-type"] == "application/problem+json"
