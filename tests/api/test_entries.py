"""Clinical entries through HTTP: modality rules, amendments, entered-in-error and death."""

from fastapi.testclient import TestClient

from tests.api.support import (
    CLINICIAN,
    ENCOUNTER_BODY,
    UNKNOWN_ID,
    assert_problem,
    chart,
    record_entry,
    register,
)
from tests.conftest import ENTRY_BODY


def test_an_entry_is_recorded_with_its_id_version_and_position(client: TestClient) -> None:
    # Given a registered patient
    patient_id = register(client)
    # When a clinician records an observation
    response = client.post(f"/v1/patients/{patient_id}/entries", json=ENTRY_BODY, headers=CLINICIAN)
    # Then it is created at version 2, with its log position and an ETag
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == {"entry_id", "version", "position"}
    assert body["version"] == 2 and body["position"] >= 1
    assert response.headers["etag"] == '"2"'
    assert chart(client, patient_id)["entry_count"] == 1


def test_an_encounter_without_a_modality_is_422_naming_modality(client: TestClient) -> None:
    # Given a registered patient
    patient_id = register(client)
    encounter = {k: v for k, v in ENCOUNTER_BODY.items() if k != "modality"}
    # When a clinician records an encounter without saying how it was delivered
    response = client.post(f"/v1/patients/{patient_id}/entries", json=encounter, headers=CLINICIAN)
    # Then the problem names modality, and nothing is recorded
    assert_problem(response, 422, "modality")
    assert chart(client, patient_id)["entry_count"] == 0


def test_an_encounter_with_a_modality_is_recorded(client: TestClient) -> None:
    patient_id = register(client)
    record_entry(client, patient_id, ENCOUNTER_BODY)
    assert chart(client, patient_id)["entry_count"] == 1


def test_an_observation_with_a_modality_is_422_naming_modality(client: TestClient) -> None:
    patient_id = register(client)
    response = client.post(
        f"/v1/patients/{patient_id}/entries",
        json={**ENTRY_BODY, "modality": "home"},
        headers=CLINICIAN,
    )
    assert_problem(response, 422, "modality")


def test_an_unknown_modality_is_422_naming_modality(client: TestClient) -> None:
    patient_id = register(client)
    response = client.post(
        f"/v1/patients/{patient_id}/entries",
        json={**ENCOUNTER_BODY, "modality": "telepathy"},
        headers=CLINICIAN,
    )
    assert_problem(response, 422, "modality")


def test_an_entry_for_an_unknown_patient_is_404(client: TestClient) -> None:
    response = client.post(f"/v1/patients/{UNKNOWN_ID}/entries", json=ENTRY_BODY, headers=CLINICIAN)
    assert_problem(response, 404)


def test_an_amendment_supersedes_an_entry(client: TestClient) -> None:
    # Given an entry
    patient_id = register(client)
    entry_id = record_entry(client, patient_id)
    # When it is amended with a new value
    response = client.post(
        f"/v1/patients/{patient_id}/entries/{entry_id}/amendments",
        json={"reason": "misread the monitor", "value": {"quantity": 68, "unit": "/min"}},
        headers=CLINICIAN,
    )
    # Then the amendment is written against the same entry id
    assert response.status_code == 201, response.text
    assert response.json()["entry_id"] == entry_id and response.json()["version"] == 3


def test_an_amendment_of_an_unknown_entry_is_a_409_problem(client: TestClient) -> None:
    # Given a patient with no such entry
    patient_id = register(client)
    # When a clinician amends an entry id that was never recorded
    response = client.post(
        f"/v1/patients/{patient_id}/entries/{UNKNOWN_ID}/amendments",
        json={"reason": "typo"},
        headers=CLINICIAN,
    )
    # Then the rule violation is reported, and the chart is unchanged
    assert_problem(response, 409, detail_mentions="no such entry")
    assert chart(client, patient_id)["version"] == 1


def test_an_amendment_without_a_reason_is_422_naming_reason(client: TestClient) -> None:
    patient_id = register(client)
    entry_id = record_entry(client, patient_id)
    response = client.post(
        f"/v1/patients/{patient_id}/entries/{entry_id}/amendments",
        json={"value": {"quantity": 68, "unit": "/min"}},
        headers=CLINICIAN,
    )
    assert_problem(response, 422, "reason")


def test_an_entry_entered_in_error_can_no_longer_be_amended(client: TestClient) -> None:
    # Given an entry marked as entered in error
    patient_id = register(client)
    entry_id = record_entry(client, patient_id)
    marked = client.post(
        f"/v1/patients/{patient_id}/entries/{entry_id}/entered-in-error",
        json={"reason": "wrong patient"},
        headers=CLINICIAN,
    )
    assert marked.status_code == 201, marked.text
    # When a clinician amends it
    response = client.post(
        f"/v1/patients/{patient_id}/entries/{entry_id}/amendments",
        json={"reason": "fix it anyway", "value": {"quantity": 60, "unit": "/min"}},
        headers=CLINICIAN,
    )
    # Then it is refused as a rule violation, and nothing is written
    assert_problem(response, 409, detail_mentions="entered in error")
    assert chart(client, patient_id)["version"] == 3


def test_an_entry_entered_in_error_cannot_be_marked_again(client: TestClient) -> None:
    patient_id = register(client)
    entry_id = record_entry(client, patient_id)
    url = f"/v1/patients/{patient_id}/entries/{entry_id}/entered-in-error"
    first = client.post(url, json={"reason": "wrong patient"}, headers=CLINICIAN)
    again = client.post(url, json={"reason": "still wrong"}, headers=CLINICIAN)
    assert first.status_code == 201
    assert_problem(again, 409)


def test_no_entry_may_be_recorded_after_death(client: TestClient) -> None:
    # Given a patient whose death is recorded
    patient_id = register(client)
    died = client.post(
        f"/v1/patients/{patient_id}/death",
        json={"deceased_at": "2026-11-01T08:00:00Z"},
        headers=CLINICIAN,
    )
    assert died.status_code == 201, died.text
    # When a clinician records a new entry
    response = client.post(f"/v1/patients/{patient_id}/entries", json=ENTRY_BODY, headers=CLINICIAN)
    # Then the chart is closed
    assert_problem(response, 409, detail_mentions="deceased")
    after = chart(client, patient_id)
    assert after["entry_count"] == 0 and after["deceased_at"] is not None


def test_no_amendment_may_be_made_after_death(client: TestClient) -> None:
    patient_id = register(client)
    entry_id = record_entry(client, patient_id)
    client.post(
        f"/v1/patients/{patient_id}/death",
        json={"deceased_at": "2026-11-21T08:00:00Z"},
        headers=CLINICIAN,
    )
    response = client.post(
        f"/v1/patients/{patient_id}/entries/{entry_id}/amendments",
        json={"reason": "late correction"},
        headers=CLINICIAN,
    )
    assert_problem(response, 409, detail_mentions="deceased")


def test_a_death_in_the_future_is_422_naming_deceased_at(client: TestClient) -> None:
    patient_id = register(client)
    response = client.post(
        f"/v1/patients/{patient_id}/death",
        json={"deceased_at": "2999-01-01T00:00:00Z"},
        headers=CLINICIAN,
    )
    assert_problem(response, 422, "deceased_at")
    assert chart(client, patient_id)["deceased_at"] is None
