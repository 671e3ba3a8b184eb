"""FHIR writes: a clinician creates and updates Patients and entries through /fhir, and
each write is the /v1 command underneath (policy, If-Match, Idempotency-Key, access
record); a blood pressure panel keeps its components, a test-data tag its code, and
what the chart cannot hold is refused naming the element, with nothing written."""

from typing import Any
from uuid import UUID

from fastapi.testclient import TestClient

from application.fhir.capability import ENTRY_TYPES
from domain.patient import Patient
from tests.api.support import (
    CLINICIAN,
    patient_token,
    records_written,
    register,
    settled,
    under_care,
)
from tests.conftest import REGISTER_BODY
from tests.fhir.bodies import entry_body
from tests.fhir.support import caught_up, fhir_get, outcome, validated
from tests.fhir.test_fhir_reads import assert_replays

FHIR = CLINICIAN.with_headers({"Content-Type": "application/fhir+json"})
LOINC = "http://loinc.org"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
HTEST = {"system": ACT_REASON, "code": "HTEST", "display": "test health data"}


def blood_pressure(patient_id: str, **changes: Any) -> dict[str, Any]:
    """A US Core blood pressure panel: systolic and diastolic under 85354-9."""

    def part(code: str, display: str, value: int) -> dict[str, Any]:
        concept = {"coding": [{"system": LOINC, "code": code, "display": display}]}
        return {
            "code": {**concept, "text": display},
            "valueQuantity": {
                "value": value,
                "unit": "mm[Hg]",
                "system": "http://unitsofmeasure.org",
                "code": "mm[Hg]",
            },
        }

    return {
        "resourceType": "Observation",
        "meta": {"security": [HTEST]},
        "status": "final",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                        "code": "vital-signs",
                    }
                ]
            }
        ],
        "code": {
            "coding": [{"system": LOINC, "code": "85354-9", "display": "Blood pressure panel"}],
            "text": "Blood pressure panel",
        },
        "subject": {"reference": f"Patient/{patient_id}"},
        "effectiveDateTime": "2026-11-20T09:30:00+00:00",
        "component": [
            part("8480-6", "Systolic blood pressure", 128),
            part("8462-6", "Diastolic blood pressure", 81),
        ],
        **changes,
    }


PATIENT = {
    "resourceType": "Patient",
    "identifier": [{"system": "urn:oid:2.16.840.1.113883.19.5", "value": "FHIR-0001"}],
    "name": [{"family": "Quint", "given": ["Odile"]}],
    "gender": "female",
    "birthDate": "1979-03-04",
    "telecom": [{"system": "phone", "value": "+1-555-0199"}],
}


def created(response: Any, resource_type: str) -> tuple[str, int]:
    """A 201 (or 200) with Location .../{type}/{id}/_history/{vid} and ETag W/"vid"."""
    assert response.status_code in (200, 201), response.text
    *_, kind, found, history, vid = response.headers["location"].split("/")
    assert (kind, history) == (resource_type, "_history"), response.headers["location"]
    assert response.headers["etag"] == f'W/"{vid}"'
    assert response.headers["x-access-id"]
    return found, int(vid)


def chart_version(client: TestClient, patient_id: str) -> int:
    ledger = client.app.state.container.ledger  # type: ignore[attr-defined]
    return int(ledger.load(Patient, UUID(patient_id), "patient").version)


def test_a_blood_pressure_panel_keeps_its_components_and_its_test_data_tag(
    client: TestClient,
) -> None:
    patient_id = register(client)
    under_care(client, patient_id)
    # When a clinician posts a US Core blood pressure Observation marked as test data
    response = client.post("/fhir/Observation", json=blood_pressure(patient_id), headers=FHIR)
    resource_id, version = created(response, "Observation")
    assert response.status_code == 201 and response.content == b""
    assert resource_id.startswith(UUID(patient_id).hex)
    caught_up(client)
    # Then the read gives it back as components, with HTEST in meta.security
    read = fhir_get(client, f"/fhir/Observation/{resource_id}")
    [observation] = validated(read.json())
    assert observation["meta"]["security"] == [HTEST]
    assert "valueQuantity" not in observation
    assert [
        (c["code"]["coding"][0]["code"], c["valueQuantity"]["value"], c["valueQuantity"]["code"])
        for c in observation["component"]
    ] == [("8480-6", 128, "mm[Hg]"), ("8462-6", 81, "mm[Hg]")]
    assert_replays(client, read)
    # And /v1's timeline shows the panel's components and the tag
    timeline = client.get(f"/v1/patients/{patient_id}/timeline", headers=CLINICIAN).json()
    [entry] = timeline["entries"]
    assert entry["value"]["components"][0] == {
        "code": {"system": LOINC, "code": "8480-6", "display": "Systolic blood pressure"},
        "value": {"quantity": 128, "unit": "mm[Hg]"},
    }
    assert entry["tags"] == [HTEST]
    # And the resource's version is the chart stream's, as its history says
    history = fhir_get(client, f"/fhir/Observation/{resource_id}/_history").json()
    assert history["entry"][0]["resource"]["meta"]["versionId"] == str(version)


def test_v1_records_a_panel_and_refuses_components_on_a_condition(client: TestClient) -> None:
    patient_id = register(client)
    under_care(client, patient_id)
    panel = {
        "kind": "observation",
        "code": {"system": LOINC, "code": "85354-9", "display": "Blood pressure panel"},
        "value": {
            "components": [
                {
                    "code": {"system": LOINC, "code": "8480-6", "display": "Systolic"},
                    "value": {"quantity": "120.5", "unit": "mm[Hg]"},
                }
            ]
        },
        "effective_at": "2026-11-20T09:30:00Z",
    }
    written = client.post(f"/v1/patients/{patient_id}/entries", json=panel, headers=CLINICIAN)
    assert written.status_code == 201, written.text
    on_condition = {**panel, "kind": "condition"}
    refused = client.post(
        f"/v1/patients/{patient_id}/entries", json=on_condition, headers=CLINICIAN
    )
    assert refused.status_code == 422, refused.text
    assert "components" in refused.text
    timeline = client.get(
        f"/v1/patients/{patient_id}/timeline", params=settled(client), headers=CLINICIAN
    ).json()
    [entry] = timeline["entries"]
    assert entry["value"]["components"][0]["value"] == {"quantity": 120.5, "unit": "mm[Hg]"}
    assert "tags" not in entry


def test_a_patient_is_created_found_again_by_its_identifier_and_updated_with_if_match(
    client: TestClient,
) -> None:
    # When a clinician creates a Patient through FHIR
    response = client.post("/fhir/Patient", json=PATIENT, headers=FHIR)
    patient_id, version = created(response, "Patient")
    assert response.status_code == 201
    under_care(client, patient_id)
    # Then it reads back as written
    read = fhir_get(client, f"/fhir/Patient/{patient_id}").json()
    validated(read)
    for element in ("identifier", "name", "gender", "birthDate", "telecom"):
        assert read[element] == PATIENT[element], element
    # And a conditional create with its identifier answers 200 with that Patient
    criteria = {"If-None-Exist": "identifier=urn:oid:2.16.840.1.113883.19.5|FHIR-0001"}
    caught_up(client)
    again = client.post("/fhir/Patient", json=PATIENT, headers={**FHIR, **criteria})
    assert again.status_code == 200, again.text
    assert again.json()["id"] == patient_id
    assert_replays(client, again)
    # When it is updated with a stale version: 412, and nothing changes
    current = chart_version(client, patient_id)
    renamed = {**PATIENT, "id": patient_id, "name": [{"family": "Quint", "given": ["Odette"]}]}
    stale = client.put(
        f"/fhir/Patient/{patient_id}",
        json=renamed,
        headers={**FHIR, "If-Match": f'W/"{current + 5}"'},
    )
    outcome(stale, 412)
    assert chart_version(client, patient_id) == current
    # With the current version: 200, a new version
    fresh = client.put(
        f"/fhir/Patient/{patient_id}", json=renamed, headers={**FHIR, "If-Match": f'W/"{current}"'}
    )
    _, newer = created(fresh, "Patient")
    assert fresh.status_code == 200 and newer == current + 1
    assert fhir_get(client, f"/fhir/Patient/{patient_id}").json()["name"][0]["given"] == ["Odette"]
    # And an update that would change the MRN is refused, naming the element
    moved = {**renamed, "identifier": [{"system": "urn:x", "value": "OTHER"}]}
    refused = outcome(client.put(f"/fhir/Patient/{patient_id}", json=moved, headers=FHIR), 422)
    assert "Patient.identifier" in refused["issue"][0]["diagnostics"]
    assert version == 1


def test_an_entry_update_checks_its_own_version_and_can_mark_it_entered_in_error(
    client: TestClient,
) -> None:
    patient_id = register(client)
    under_care(client, patient_id)
    response = client.post("/fhir/Observation", json=blood_pressure(patient_id), headers=FHIR)
    resource_id, version = created(response, "Observation")
    # Another entry moves the chart on; the observation's own version stays
    client.post("/fhir/Observation", json=blood_pressure(patient_id), headers=FHIR)
    path = f"/fhir/Observation/{resource_id}"
    changed = blood_pressure(patient_id, id=resource_id, meta={})
    stale = client.put(path, json=changed, headers={**FHIR, "If-Match": f'W/"{version + 1}"'})
    outcome(stale, 412)
    amended = client.put(path, json=changed, headers={**FHIR, "If-Match": f'W/"{version}"'})
    _, amended_version = created(amended, "Observation")
    caught_up(client)
    read = fhir_get(client, path).json()
    assert read["status"] == "amended" and "meta" not in read  # the tag went with the update
    in_error = client.put(
        path,
        json={**changed, "status": "entered-in-error"},
        headers={**FHIR, "If-Match": f'W/"{amended_version}"'},
    )
    created(in_error, "Observation")
    caught_up(client)
    assert fhir_get(client, path).json()["status"] == "entered-in-error"


def test_what_the_chart_cannot_hold_is_refused_naming_the_element(client: TestClient) -> None:
    patient_id = register(client)
    under_care(client, patient_id)
    before = records_written(client)
    cases = {
        "Observation.encounter": blood_pressure(patient_id, encounter={"reference": "Encounter/1"}),
        "Observation.interpretation": blood_pressure(patient_id, interpretation=[{}]),
        "Observation.effectiveDateTime": blood_pressure(patient_id, effectiveDateTime="2026-11"),
        "Observation.component[0].valueQuantity.unit": blood_pressure(
            patient_id,
            component=[
                {
                    "code": {"coding": [{"system": LOINC, "code": "8480-6", "display": "S"}]},
                    "valueQuantity": {"value": 1, "unit": "mmHg", "code": "mm[Hg]"},
                }
            ],
        ),
        "Observation.status": blood_pressure(patient_id, status="preliminary"),
    }
    for element, body in cases.items():
        refused = outcome(client.post("/fhir/Observation", json=body, headers=FHIR), 422)
        assert element in refused["issue"][0]["diagnostics"], (element, refused)
    assert records_written(client) == before


def test_an_idempotency_key_answers_a_retried_create_as_the_first(client: TestClient) -> None:
    patient_id = register(client)
    under_care(client, patient_id)
    keyed = {**FHIR, "Idempotency-Key": "bp-once"}
    first = client.post("/fhir/Observation", json=blood_pressure(patient_id), headers=keyed)
    second = client.post("/fhir/Observation", json=blood_pressure(patient_id), headers=keyed)
    assert created(first, "Observation") == created(second, "Observation")
    assert second.headers["idempotent-replayed"] == "true"
    assert second.headers["x-access-id"] != first.headers["x-access-id"]
    caught_up(client)
    bundle = fhir_get(client, "/fhir/Observation", {"patient": patient_id}).json()
    assert bundle["total"] == 1


def test_a_patient_may_not_write_to_their_own_chart_through_fhir(client: TestClient) -> None:
    patient_id = register(client)
    under_care(client, patient_id)
    headers = {**patient_token(patient_id), "Content-Type": "application/fhir+json"}
    response = client.post("/fhir/Observation", json=blood_pressure(patient_id), headers=headers)
    outcome(response, 403)


def test_every_entry_type_written_reads_back_as_written_and_writes_again(
    client: TestClient,
) -> None:
    patient_id = register(client)
    under_care(client, patient_id)
    for resource_type in ENTRY_TYPES:
        body = entry_body(resource_type, patient_id, f"written as {resource_type}")
        resource_id, version = created(
            client.post(f"/fhir/{resource_type}", json=body, headers=FHIR), resource_type
        )
        caught_up(client)
        [read] = validated(fhir_get(client, f"/fhir/{resource_type}/{resource_id}").json())
        # What was written comes back element for element (the server adds its id).
        assert {k: v for k, v in read.items() if k != "id"} == body, resource_type
        # And the resource read is a valid update of itself.
        again = client.put(
            f"/fhir/{resource_type}/{resource_id}",
            json=read,
            headers={**FHIR, "If-Match": f'W/"{version}"'},
        )
        created(again, resource_type)


def test_return_representation_answers_the_new_version_as_a_replayable_read(
    client: TestClient,
) -> None:
    patient_id = register(client)
    under_care(client, patient_id)
    prefer = {**FHIR, "Prefer": "return=representation"}
    response = client.post("/fhir/Observation", json=blood_pressure(patient_id), headers=prefer)
    resource_id, version = created(response, "Observation")
    [observation] = validated(response.json())
    assert observation["id"] == resource_id
    assert observation["meta"]["versionId"] == str(version)
    assert [c["code"]["coding"][0]["code"] for c in observation["component"]] == [
        "8480-6",
        "8462-6",
    ]
    assert_replays(client, response)
    # A writer who may not read the chart yet (no care relationship) gets no body
    stranger = register(client, {**REGISTER_BODY, "mrn": "MRN-NO-CARE"})
    minimal = client.post("/fhir/Observation", json=blood_pressure(stranger), headers=prefer)
    created(minimal, "Observation")
    assert minimal.content == b""
