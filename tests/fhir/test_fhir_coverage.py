"""``Coverage``: a patient's memberships as valid R4B Coverages (payor the sponsor, or
the patient paying for themself), searched by beneficiary and status and read by id,
admitted by the policy as membership content; each answer is one access record that
replays byte for byte."""

from fastapi.testclient import TestClient

from tests.api.support import (
    ADMIN,
    AUDITOR,
    CLINICIAN,
    OUTSIDER,
    directive,
    enrol,
    patient_token,
    register,
    under_care,
)
from tests.fhir.support import caught_up, fhir_get, outcome, validated
from tests.fhir.test_fhir_reads import assert_replays


def test_memberships_are_coverages_searched_by_status_and_read_by_id(client: TestClient) -> None:
    patient_id = register(client)
    sponsored = enrol(
        client,
        patient_id,
        plan="employer",
        sponsor_id="acme-corp",
        starts_on="2024-01-01",
        ends_on="2024-12-31",
    )
    under_care(client, patient_id)  # individual, from yesterday for a year
    caught_up(client)
    response = fhir_get(client, "/fhir/Coverage", {"beneficiary": f"Patient/{patient_id}"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/fhir+json")
    past, current = validated(response.json())
    assert response.json()["total"] == 2
    assert_replays(client, response)
    # The employer's, in the past: its sponsor pays, and it covers no more
    assert past["id"].endswith(sponsored.replace("-", ""))
    assert past["status"] == "cancelled"
    assert past["payor"] == [
        {
            "identifier": {"system": "urn:careledger:sponsor", "value": "acme-corp"},
            "display": "acme-corp",
        }
    ]
    assert past["period"] == {"start": "2024-01-01", "end": "2024-12-31"}
    assert past["beneficiary"] == {"reference": f"Patient/{patient_id}"}
    # The patient's own, today: active, self-pay
    assert current["status"] == "active"
    assert current["payor"][0]["reference"] == f"Patient/{patient_id}"
    assert current["relationship"]["coding"][0]["code"] == "self"
    # status narrows; a read by id is the same resource, and replays
    active = fhir_get(client, "/fhir/Coverage", {"beneficiary": patient_id, "status": "active"})
    assert [c["id"] for c in validated(active.json())] == [current["id"]]
    read = fhir_get(client, f"/fhir/Coverage/{past['id']}")
    assert read.status_code == 200, read.text
    assert read.json() == past
    assert_replays(client, read)
    # The patient and the organisation's administrator read them through the same policy
    for reader in (patient_token(patient_id), ADMIN):
        theirs = fhir_get(client, "/fhir/Coverage", {"beneficiary": patient_id}, reader)
        assert [c["id"] for c in validated(theirs.json())] == [past["id"], current["id"]]


def test_coverage_refuses_what_it_must(client: TestClient) -> None:
    patient_id = register(client)
    under_care(client, patient_id)
    caught_up(client)
    [coverage] = validated(fhir_get(client, "/fhir/Coverage", {"beneficiary": patient_id}).json())
    for path, params in (
        ("/fhir/Coverage", {"beneficiary": patient_id}),
        (f"/fhir/Coverage/{coverage['id']}", None),
    ):
        outcome(client.get(path, params=params), 401)
        refused = fhir_get(client, path, params, headers=OUTSIDER)
        outcome(refused, 404)
        assert "X-Access-Id" not in refused.headers and coverage["id"] not in refused.text
        outcome(fhir_get(client, path, params, headers=AUDITOR), 403)
    outcome(fhir_get(client, "/fhir/Coverage"), 422)
    outcome(fhir_get(client, "/fhir/Coverage", {"beneficiary": patient_id, "status": "draft"}), 422)
    outcome(fhir_get(client, "/fhir/Coverage", {"patient": patient_id}), 422)
    unknown = patient_id.replace("-", "") + "0" * 32
    outcome(fhir_get(client, f"/fhir/Coverage/{unknown}", headers=CLINICIAN), 404)
    outcome(fhir_get(client, "/fhir/Coverage/short"), 404)


def test_a_directive_or_public_health_opens_the_chart_never_the_plans(
    client: TestClient,
) -> None:
    # Given our patient under care, who names a clinician of another organisation for
    # treatment (found by review: the policy admitted them to memberships too)
    patient_id = register(client)
    under_care(client, patient_id)
    directive(client, patient_id, "practitioner:org-other/dr-other", ["TREAT"])
    caught_up(client)
    coverage = {"beneficiary": patient_id}
    # The named outsider reads the chart, but not the patient's plans and sponsors
    observations = fhir_get(client, "/fhir/Observation", {"patient": patient_id}, OUTSIDER)
    assert observations.status_code == 200, observations.text
    refused = fhir_get(client, "/fhir/Coverage", coverage, headers=OUTSIDER)
    outcome(refused, 403)
    assert "X-Access-Id" not in refused.headers
    everything = fhir_get(client, f"/fhir/Patient/{patient_id}/$everything", None, OUTSIDER)
    assert everything.status_code == 200, everything.text
    kinds = {resource["resourceType"] for resource in validated(everything.json())}
    assert "Coverage" not in kinds and "Patient" in kinds
    # Nor does our own clinician reporting to public health
    public_health = {**CLINICIAN, "X-Purpose-Of-Use": "PUBHLTH"}
    outcome(fhir_get(client, "/fhir/Coverage", coverage, headers=public_health), 403)
    # Both refusals are in our auditor's log of the patient
    settled_at = client.get("/readyz").json()["position"]
    log = client.get(
        "/v1/audit/accesses",
        params={"patient_id": patient_id, "decision": "deny", "min_position": settled_at},
        headers=AUDITOR,
    )
    assert log.status_code == 200, log.text
    assert {(r["actor"]["org"], r["purpose"]) for r in log.json()["items"]} >= {
        ("org-other", "TREAT"),
        ("org-main", "PUBHLTH"),
    }
