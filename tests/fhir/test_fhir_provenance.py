"""Provenance: who recorded, amended or entered in error each entry, and when, from the
chart stream's events, as valid R4B; read through the clinical gate (a hidden entry's
provenance is hidden too), one access record per answer that replays byte for byte."""

from typing import Any

import httpx
from fastapi.testclient import TestClient

from tests.api.support import (
    ADMIN,
    AUDITOR,
    CLINICIAN,
    GRANT_BODY,
    OUTSIDER,
    patient_token,
    register,
    under_care,
)
from tests.fhir.support import caught_up, fhir_get, full_chart, outcome, resource_id, validated
from tests.fhir.test_fhir_audit_events import entity, event_of
from tests.fhir.test_fhir_reads import assert_replays

OPERATION = "http://terminology.hl7.org/CodeSystem/v3-DataOperation"


def provenance(response: httpx.Response) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/fhir+json")
    found = validated(response.json())
    assert all(p["resourceType"] == "Provenance" for p in found)
    return found


def activity(resource: dict[str, Any]) -> str:
    coding = resource["activity"]["coding"][0]
    assert coding["system"] == OPERATION
    return str(coding["code"])


def amend_and_withdraw(client: TestClient, patient_id: str, ids: dict[str, str]) -> None:
    base = f"/v1/patients/{patient_id}/entries"
    amended = client.post(
        f"{base}/{ids['heart']}/amendments",
        json={"reason": "misread", "value": {"quantity": 74, "unit": "/min"}},
        headers=CLINICIAN,
    )
    assert amended.status_code == 201, amended.text
    wrong = client.post(
        f"{base}/{ids['procedure']}/entered-in-error",
        json={"reason": "wrong chart"},
        headers=CLINICIAN,
    )
    assert wrong.status_code == 201, wrong.text


def test_an_entry_s_provenance_is_who_recorded_and_amended_it(client: TestClient) -> None:
    patient_id, ids = full_chart(client)
    amend_and_withdraw(client, patient_id, ids)
    heart = f"Observation/{resource_id(patient_id, ids['heart'])}"
    response = fhir_get(client, "/fhir/Provenance", {"target": heart})
    created, updated = provenance(response)
    assert (activity(created), activity(updated)) == ("CREATE", "UPDATE")
    first = int(created["target"][0]["reference"].rsplit("/", 1)[1])
    assert created["target"][0]["reference"] == f"{heart}/_history/{first}"
    assert updated["entity"] == [
        {"role": "revision", "what": {"reference": f"{heart}/_history/{first}"}}
    ]
    [agent] = updated["agent"]
    assert agent["type"]["coding"][0]["code"] == "author"
    assert agent["who"]["identifier"]["value"] == "org-main/dr-main"
    assert agent["onBehalfOf"]["identifier"]["value"] == "org-main"
    assert created["recorded"] <= updated["recorded"]
    assert response.json()["total"] == 2
    assert_replays(client, response)
    # The target's version resolves to the entry as first recorded
    version = fhir_get(client, f"/fhir/{created['target'][0]['reference']}")
    assert version.status_code == 200 and version.json()["valueQuantity"]["value"] == 72
    # One Provenance read by its id, and the version search, are the same resource
    read = fhir_get(client, f"/fhir/Provenance/{updated['id']}")
    assert provenance(read) == [updated]
    assert_replays(client, read)
    audited = event_of(client, read)
    assert (audited["subtype"][0]["code"], audited["action"]) == ("read", "R")
    assert entity(audited, "4")["what"]["reference"] == f"Provenance/{updated['id']}"
    at = fhir_get(client, "/fhir/Provenance", {"target": updated["target"][0]["reference"]})
    assert provenance(at) == [updated]
    # An entry in error is nullified
    procedure = f"Procedure/{resource_id(patient_id, ids['procedure'])}"
    withdrawn = provenance(fhir_get(client, "/fhir/Provenance", {"target": procedure}))
    assert [activity(p) for p in withdrawn] == ["CREATE", "NULLIFY"]


def test_a_patient_s_provenance_leaves_hidden_entries_out(client: TestClient) -> None:
    patient_id, ids = full_chart(client)
    amend_and_withdraw(client, patient_id, ids)
    panic = resource_id(patient_id, ids["panic"])
    response = fhir_get(client, "/fhir/Provenance", {"target": f"Patient/{patient_id}"})
    every = provenance(response)
    targets = {p["target"][0]["reference"].split("/_history/")[0] for p in every}
    assert len(targets) == len(ids) - 1 and f"Condition/{panic}" not in targets
    assert len(every) == len(ids) - 1 + 2  # each visible entry once, and two changes
    versions = [int(p["id"].rsplit("-", 1)[1]) for p in every]
    assert versions == sorted(versions)
    assert_replays(client, response)
    hidden = [
        fhir_get(client, "/fhir/Provenance", {"target": f"Condition/{panic}"}),
        fhir_get(client, f"/fhir/Provenance/{patient_id.replace('-', '')}-6"),
    ]
    assert provenance(hidden[0]) == []
    outcome(hidden[1], 404)
    # The patient reads all of it, and so does the clinician once they may see the label
    own = provenance(
        fhir_get(
            client,
            "/fhir/Provenance",
            {"target": f"Patient/{patient_id}"},
            patient_token(patient_id),
        )
    )
    assert len(own) == len(every) + 1
    directive = {**GRANT_BODY, "grantee": "org:org-main", "labels": ["mental_health"]}
    granted = client.post(
        f"/v1/patients/{patient_id}/consents", json=directive, headers=patient_token(patient_id)
    )
    assert granted.status_code == 201, granted.text
    caught_up(client)
    shown = fhir_get(client, "/fhir/Provenance", {"target": f"Patient/{patient_id}"})
    assert len(provenance(shown)) == len(every) + 1
    assert_replays(client, shown)
    assert_replays(client, response)  # decided again as of then: still without it


def test_a_chart_without_entries_has_no_provenance(client: TestClient) -> None:
    patient_id = register(client)
    under_care(client, patient_id)
    response = fhir_get(client, "/fhir/Provenance", {"target": f"Patient/{patient_id}"})
    assert provenance(response) == [] and response.json()["total"] == 0
    assert_replays(client, response)


def test_provenance_refuses_what_it_must(client: TestClient) -> None:
    patient_id, ids = full_chart(client)
    target = {"target": f"Patient/{patient_id}"}
    outcome(fhir_get(client, "/fhir/Provenance", target, ADMIN), 403)
    outcome(fhir_get(client, "/fhir/Provenance", target, AUDITOR), 403)
    outcome(fhir_get(client, "/fhir/Provenance", target, OUTSIDER), 404)
    heart = resource_id(patient_id, ids["heart"])
    for params in (
        {},
        {"target": patient_id},
        {"target": f"Patient/{patient_id}/_history/1"},
        {"target": f"Observation/{heart}/_history/x"},
        {"target": f"Basic/{heart}"},
        {**target, "_count": "5"},
    ):
        outcome(fhir_get(client, "/fhir/Provenance", params), 422)
    for bad in ("nope", f"{patient_id}-1", f"{heart}", f"{patient_id.replace('-', '')}-1"):
        outcome(fhir_get(client, f"/fhir/Provenance/{bad}"), 404)
