"""A transaction that registers a new patient (by ``urn:uuid``) and adds to an existing
chart (``Patient/{id}``) in one Bundle: both charts are written in one commit, each
patient with its own access record of the one answer; a refusal in either chart's
entries, at mapping or in the chart's own rules, writes nothing for either; and the
existing chart still needs its writer admitted by the policy."""

import hashlib
import json
from typing import Any

from fastapi.testclient import TestClient

from tests.api.support import AUDITOR, CLINICIAN, OUTSIDER, records_written, register, under_care
from tests.conftest import REGISTER_BODY
from tests.fhir.bodies import entry_body, patient_body
from tests.fhir.support import caught_up, fhir_get, outcome, validated

FHIR = CLINICIAN.with_headers({"Content-Type": "application/fhir+json"})
NEW = "urn:uuid:7b0c6f3e-52a1-4d8e-9f10-2c3d4e5f6a01"
NEW_VISIT = "urn:uuid:7b0c6f3e-52a1-4d8e-9f10-2c3d4e5f6a02"
OLD_VISIT = "urn:uuid:7b0c6f3e-52a1-4d8e-9f10-2c3d4e5f6a03"
MRN = "MRN-MIXED-1"


def entry(resource: dict[str, Any], url: str | None = None) -> dict[str, Any]:
    found = {"resource": resource, "request": {"method": "POST", "url": resource["resourceType"]}}
    return found | ({"fullUrl": url} if url else {})


def of(resource_type: str, subject: str, text: str) -> dict[str, Any]:
    """``entry_body``'s resource for the Bundle's new patient, or an existing one."""
    body = entry_body(resource_type, "x", text)
    element = "patient" if resource_type in {"AllergyIntolerance", "Immunization"} else "subject"
    body[element] = {"reference": subject}
    return body


def mixed(existing: str) -> dict[str, Any]:
    """Entries 0-2 for the new patient, 3-5 for the existing chart, interleaved."""
    old = f"Patient/{existing}"
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            entry(patient_body(MRN), NEW),
            entry(of("Encounter", NEW, "new visit"), NEW_VISIT),
            entry(of("Encounter", old, "old visit"), OLD_VISIT),
            entry(of("Observation", NEW, "new heart") | {"encounter": {"reference": NEW_VISIT}}),
            entry(of("Condition", old, "old asthma") | {"encounter": {"reference": OLD_VISIT}}),
            entry(of("Immunization", old, "old vaccine")),
        ],
    }


def post(client: TestClient, bundle: dict[str, Any], headers: Any = FHIR) -> Any:
    return client.post("/fhir", content=json.dumps(bundle), headers=headers)


def existing_chart(client: TestClient) -> str:
    patient_id = register(client)
    under_care(client, patient_id)
    return patient_id


def nobody_has_the_new_mrn(client: TestClient) -> None:
    system = patient_body(MRN)["identifier"][0]["system"]
    found = fhir_get(client, "/fhir/Patient", {"identifier": f"{system}|{MRN}"})
    assert found.status_code == 200 and found.json().get("total") == 0, found.text


def test_a_new_patient_and_an_existing_chart_are_written_in_one_commit(
    client: TestClient,
) -> None:
    existing = existing_chart(client)
    response = post(client, mixed(existing))
    assert response.status_code == 200, response.text
    answer = response.json()
    validated(answer)
    locations = [e["response"]["location"] for e in answer["entry"]]
    new = locations[0].split("/")[1]
    assert locations[0].startswith("Patient/") and new != existing
    # Each entry in the chart its subject names, answered in the Bundle's order
    for at in (1, 3):
        assert locations[at].split("/")[1].startswith(new.replace("-", ""))
    for at in (2, 4, 5):
        assert locations[at].split("/")[1].startswith(existing.replace("-", ""))
    assert [loc.split("/")[0] for loc in locations[1:]] == [
        "Encounter",
        "Encounter",
        "Observation",
        "Condition",
        "Immunization",
    ]
    under_care(client, new)
    caught_up(client)
    every = {"new heart", "old asthma", "old vaccine"}
    for patient_id, texts in ((new, {"new heart"}), (existing, {"old asthma", "old vaccine"})):
        bundle = fhir_get(client, f"/fhir/Patient/{patient_id}/$everything", {"_count": 200})
        resources = validated(bundle.json())
        kept = {r.get("valueString") or r.get("note", [{}])[0].get("text") for r in resources}
        assert kept & every == texts
    # The existing chart's Condition names its own encounter, as read back
    condition = fhir_get(client, f"/fhir/{locations[4].rsplit('/_history', 1)[0]}").json()
    assert condition["encounter"]["reference"] == locations[2].rsplit("/_history", 1)[0]
    # Each patient has one write record of the one answer's exact bytes
    digest = hashlib.sha256(response.content).hexdigest()
    for patient_id in (new, existing):
        log = client.get("/v1/audit/accesses", params={"patient_id": patient_id}, headers=AUDITOR)
        assert log.status_code == 200, log.text
        writes = [r for r in log.json()["items"] if r["action"] == "write"]
        assert [r["response_sha256"] for r in writes][:1] == [digest]
    first = client.get(f"/v1/audit/accesses/{response.headers['X-Access-Id']}", headers=AUDITOR)
    assert first.json()["patient_id"] == new


def test_a_retried_mixed_transaction_answers_as_the_first_and_writes_once(
    client: TestClient,
) -> None:
    existing = existing_chart(client)
    keyed = FHIR.with_headers({"Idempotency-Key": "mixed-once"})
    first = post(client, mixed(existing), keyed)
    assert first.status_code == 200, first.text
    written = records_written(client)
    again = post(client, mixed(existing), keyed)
    assert again.status_code == 200 and again.content == first.content
    assert records_written(client) == written


def test_a_refusal_in_either_chart_writes_nothing_for_either(client: TestClient) -> None:
    existing = existing_chart(client)
    before = records_written(client)
    # Refused when mapped: an element the existing chart's Condition cannot hold
    bundle = mixed(existing)
    bundle["entry"][4]["resource"]["severity"] = {"text": "severe"}
    refused = outcome(post(client, bundle), 422)
    assert "Bundle.entry[4].resource.Condition" in refused["issue"][0]["diagnostics"]
    # Refused by the new chart's own rules, after the existing chart's entries were
    # applied: the new patient's Observation names the existing chart's encounter
    bundle = mixed(existing)
    bundle["entry"][3]["resource"]["encounter"] = {"reference": OLD_VISIT}
    refused = outcome(post(client, bundle), 422)
    assert "Bundle.entry[3]" in refused["issue"][0]["diagnostics"]
    # And the other way round: the existing chart's Condition names the new encounter
    bundle = mixed(existing)
    bundle["entry"][4]["resource"]["encounter"] = {"reference": NEW_VISIT}
    refused = outcome(post(client, bundle), 422)
    assert "Bundle.entry[4]" in refused["issue"][0]["diagnostics"]
    assert records_written(client) == before
    nobody_has_the_new_mrn(client)
    caught_up(client)
    chart = fhir_get(client, f"/fhir/Patient/{existing}/$everything").json()
    kinds = {e["resource"]["resourceType"] for e in chart["entry"]}
    assert kinds <= {"Patient", "Coverage", "Consent"}, kinds  # no entry was written
    # And the chart as the next transaction finds it is untouched by the refused ones
    accepted = post(client, mixed(existing))
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["entry"][2]["response"]["etag"] == 'W/"2"'


def test_the_existing_chart_still_needs_its_writer_admitted(client: TestClient) -> None:
    existing = existing_chart(client)
    before = records_written(client)
    # Another organisation's clinician: the existing chart is not theirs (404, as for
    # an unknown patient), so their new patient is not registered either
    foreign = OUTSIDER.with_headers({"Content-Type": "application/fhir+json"})
    outcome(post(client, mixed(existing), foreign), 404)
    assert records_written(client) == before
    nobody_has_the_new_mrn(client)
    # The refusal is recorded where the existing chart's auditors see it
    log = client.get("/v1/audit/accesses", params={"patient_id": existing}, headers=AUDITOR)
    denied = [r for r in log.json()["items"] if r["decision"] == "deny"]
    assert len(denied) == 1 and denied[0]["actor"]["org"] == "org-other", denied
    # Two existing charts in one transaction are still refused, naming the entry
    bundle = mixed(existing)
    other = register(client, {**REGISTER_BODY, "mrn": "MRN-OTHER"})
    bundle["entry"][5]["resource"]["patient"] = {"reference": f"Patient/{other}"}
    refused = outcome(post(client, bundle), 422)
    assert "Bundle.entry[5]" in refused["issue"][0]["diagnostics"]
    assert "one existing chart per transaction" in refused["issue"][0]["diagnostics"]
