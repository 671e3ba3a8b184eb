"""An erased patient: the new FHIR reads ($everything, _history, a version read,
Coverage, Consent) answer 410 within reach, and their earlier disclosures can no
longer be rebuilt (410), while the access records themselves survive."""

from fastapi.testclient import TestClient

from tests.api.support import ADMIN, AUDITOR, grant
from tests.fhir.support import caught_up, fhir_get, full_chart, outcome, resource_id


def test_an_erased_patient_is_gone_from_every_new_route_and_replay(client: TestClient) -> None:
    patient_id, ids = full_chart(client)
    grant(client, patient_id)
    caught_up(client)
    heart = resource_id(patient_id, ids["heart"])
    paths = [
        (f"/fhir/Patient/{patient_id}/$everything", None),
        (f"/fhir/Patient/{patient_id}/_history", None),
        (f"/fhir/Patient/{patient_id}/_history/1", None),
        (f"/fhir/Observation/{heart}/_history", None),
        ("/fhir/Coverage", {"beneficiary": patient_id}),
        ("/fhir/Consent", {"patient": patient_id}),
    ]
    accesses = []
    for path, params in paths:
        response = fhir_get(client, path, params)
        assert response.status_code == 200, (path, response.text)
        accesses.append(response.headers["X-Access-Id"])
    erased = client.post(
        f"/v1/patients/{patient_id}/erase", json={"legal_basis": "GDPR art. 17"}, headers=ADMIN
    )
    assert erased.status_code == 202, erased.text
    caught_up(client)
    for path, params in paths:
        gone = fhir_get(client, path, params)
        outcome(gone, 410)
        assert "Example" not in gone.text
    for access_id in accesses:
        replay = client.post(f"/v1/audit/accesses/{access_id}/replay", headers=AUDITOR)
        assert replay.status_code == 410, (access_id, replay.text)
        kept = client.get(f"/v1/audit/accesses/{access_id}", headers=AUDITOR)
        assert kept.status_code == 200 and kept.json()["patient_id"] == patient_id
