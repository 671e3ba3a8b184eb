"""``Consent``: a patient's consent directives as valid R4B Consents, searched by
patient and status and read by id, through the consent gate of /v1; each answer is
one access record that replays byte for byte."""

import base64

from fastapi.testclient import TestClient

from tests.api.support import (
    ADMIN,
    GRANT_BODY,
    OUTSIDER,
    SHA256,
    grant,
    patient_token,
    register,
    revoke,
    under_care,
)
from tests.fhir.support import fhir_get, outcome, validated
from tests.fhir.test_fhir_reads import assert_replays


def test_directives_are_consents_searched_by_status_and_read_by_id(client: TestClient) -> None:
    patient_id = register(client)
    under_care(client, patient_id)
    pharmacy = grant(client, patient_id)  # org-pharmacy, TREAT, substance_use, from 2020
    own = {**GRANT_BODY, "grantee": "org:org-main", "labels": ["mental_health"]}
    granted = client.post(
        f"/v1/patients/{patient_id}/consents", json=own, headers=patient_token(patient_id)
    )
    assert granted.status_code == 201, granted.text
    revoke(client, patient_id, pharmacy)
    response = fhir_get(client, "/fhir/Consent", {"patient": patient_id})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/fhir+json")
    first, second = validated(response.json())
    assert response.json()["total"] == 2
    assert_replays(client, response)
    # The pharmacy's directive, revoked: inactive, its grantee the provision's actor
    assert first["status"] == "inactive"
    assert first["patient"] == {"reference": f"Patient/{patient_id}"}
    provision = first["provision"]
    assert provision["actor"][0]["reference"]["display"] == "org-pharmacy"
    assert provision["purpose"] == [
        {"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "TREAT"}
    ]
    assert provision["securityLabel"][0]["code"] == "ETH"
    assert provision["period"] == {"start": "2020-01-01"}
    digest = base64.b64decode(first["sourceAttachment"]["hash"]).hex()
    assert digest == SHA256
    assert second["status"] == "active"
    assert second["provision"]["securityLabel"][0]["code"] == "MH"
    # status narrows; a read by id is the same resource, and replays
    active = fhir_get(client, "/fhir/Consent", {"patient": patient_id, "status": "active"})
    assert [c["id"] for c in validated(active.json())] == [second["id"]]
    assert_replays(client, active)
    read = fhir_get(client, f"/fhir/Consent/{first['id']}")
    assert read.status_code == 200, read.text
    assert read.json() == first
    assert_replays(client, read)
    # The patient reads their own consents through the same gate
    mine = fhir_get(client, "/fhir/Consent", {"patient": patient_id}, patient_token(patient_id))
    assert [c["id"] for c in validated(mine.json())] == [first["id"], second["id"]]


def test_consent_refuses_what_it_must(client: TestClient) -> None:
    patient_id = register(client)
    under_care(client, patient_id)
    directive = grant(client, patient_id)
    consent_id = patient_id.replace("-", "") + directive.replace("-", "")
    for path, params in (
        ("/fhir/Consent", {"patient": patient_id}),
        (f"/fhir/Consent/{consent_id}", None),
    ):
        outcome(client.get(path, params=params), 401)
        refused = fhir_get(client, path, params, headers=OUTSIDER)
        outcome(refused, 404)
        assert "X-Access-Id" not in refused.headers and "pharmacy" not in refused.text
        outcome(fhir_get(client, path, params, headers=ADMIN), 403)
    outcome(fhir_get(client, "/fhir/Consent"), 422)
    outcome(fhir_get(client, "/fhir/Consent", {"patient": patient_id, "status": "draft"}), 422)
    outcome(fhir_get(client, "/fhir/Consent", {"patient": patient_id, "_count": "5"}), 422)
    unknown = patient_id.replace("-", "") + "0" * 32
    outcome(fhir_get(client, f"/fhir/Consent/{unknown}"), 404)
    outcome(fhir_get(client, "/fhir/Consent/short"), 404)
