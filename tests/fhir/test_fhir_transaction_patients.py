"""A transaction over several patients: each Patient with the entries that name it,
registered in one commit, all or nothing across patients; each patient has its own
access record of the one answer. A refusal in the second patient's chart leaves
nothing written for the first either."""

import copy
import hashlib
import json
from typing import Any

from fastapi.testclient import TestClient

from tests.api.support import AUDITOR, CLINICIAN, records_written, under_care
from tests.fhir.support import caught_up, fhir_get, outcome, validated
from tests.fhir.test_fhir_transactions import chart_bundle, post_bundle

FHIR = CLINICIAN.with_headers({"Content-Type": "application/fhir+json"})


def second_chart(bundle: dict[str, Any], tag: str) -> list[dict[str, Any]]:
    """The same chart as another patient: its own fullUrls, MRN and name."""
    text = json.dumps(bundle["entry"])
    for entry in bundle["entry"]:
        url = entry.get("fullUrl")
        if url:
            text = text.replace(url, f"{url[:-4]}{tag}")
    entries: list[dict[str, Any]] = json.loads(text)
    patient = entries[0]["resource"]
    patient["identifier"][0]["value"] += f"-{tag}"
    patient["name"][0]["family"] = f"Second{tag}"
    return entries


def two_patients() -> dict[str, Any]:
    bundle = chart_bundle()
    bundle["entry"] += second_chart(copy.deepcopy(bundle), "b002")
    return bundle


def test_two_patients_are_registered_in_one_transaction(client: TestClient) -> None:
    bundle = two_patients()
    size = len(bundle["entry"]) // 2
    response = post_bundle(client, bundle)
    assert response.status_code == 200, response.text
    answer = response.json()
    validated(answer)
    locations = [e["response"]["location"] for e in answer["entry"]]
    first, second = locations[0].split("/")[1], locations[size].split("/")[1]
    assert locations[0].startswith("Patient/") and locations[size].startswith("Patient/")
    assert first != second
    # Each patient's entries are in its own chart, as its own resources
    assert all(first.replace("-", "") in loc for loc in locations[1:size])
    assert all(second.replace("-", "") in loc for loc in locations[size + 1 :])
    for patient_id in (first, second):
        under_care(client, patient_id)
    caught_up(client)
    for patient_id, family in ((first, "Kertzmann286"), (second, "Secondb002")):
        everything = fhir_get(client, f"/fhir/Patient/{patient_id}/$everything", {"_count": 200})
        resources = validated(everything.json())
        assert resources[0]["name"][0]["family"] == family
        entries = [
            r for r in resources if r["resourceType"] not in {"Patient", "Coverage", "Consent"}
        ]
        assert len(entries) == size - 1
    # One access record per patient, each with the digest of the one answer's bytes
    digest = hashlib.sha256(response.content).hexdigest()
    record = client.get(f"/v1/audit/accesses/{response.headers['X-Access-Id']}", headers=AUDITOR)
    assert record.status_code == 200, record.text
    assert record.json()["patient_id"] == first and record.json()["response_sha256"] == digest
    log = client.get("/v1/audit/accesses", params={"patient_id": second}, headers=AUDITOR)
    assert log.status_code == 200, log.text
    writes = [r for r in log.json()["items"] if r["action"] == "write"]
    assert [r["response_sha256"] for r in writes] == [digest]


def test_a_refusal_in_the_second_chart_writes_nothing_for_either(client: TestClient) -> None:
    before = records_written(client)
    bundle = two_patients()
    size = len(bundle["entry"]) // 2
    # An element the chart does not hold, in the second patient's observation
    refused_at = size + 5
    bundle["entry"][refused_at]["resource"]["interpretation"] = [{"text": "high"}]
    refused = outcome(post_bundle(client, bundle), 422)
    assert f"Bundle.entry[{refused_at}]" in refused["issue"][0]["diagnostics"]
    assert records_written(client) == before
    # An entry of the second patient naming the first patient's encounter: a chart's
    # entry names an encounter of its own chart only, so the whole Bundle is refused
    bundle = two_patients()
    encounter = bundle["entry"][1]["fullUrl"]
    bundle["entry"][size + 2]["resource"]["encounter"] = {"reference": encounter}
    refused = outcome(post_bundle(client, bundle), 422)
    assert f"Bundle.entry[{size + 2}]" in refused["issue"][0]["diagnostics"]
    assert records_written(client) == before
    # The same MRN twice in one Bundle: the second Patient is refused
    bundle = two_patients()
    bundle["entry"][size]["resource"]["identifier"] = bundle["entry"][0]["resource"]["identifier"]
    refused = outcome(post_bundle(client, bundle), 422)
    assert f"Bundle.entry[{size}].resource.Patient.identifier" in refused["issue"][0]["diagnostics"]
    assert records_written(client) == before
    # And neither patient was registered: the first one's MRN finds nobody
    mrn = bundle["entry"][0]["resource"]["identifier"][0]
    found = fhir_get(client, "/fhir/Patient", {"identifier": f"{mrn['system']}|{mrn['value']}"})
    assert found.status_code == 200 and found.json().get("total") == 0, found.text
