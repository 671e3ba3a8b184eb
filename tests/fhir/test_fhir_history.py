"""``_history``: the versions of a Patient and of an entry come from the chart stream's
events, newest first, as valid R4B; a version read goes through the policy like any
read, a label the reader may not see on any version hides them all, and every answer
is one access record that replays byte for byte."""

from typing import Any

import orjson
from fastapi.testclient import TestClient

from tests.api.support import ADMIN, CLINICIAN, GRANT_BODY, OUTSIDER, patient_token
from tests.fhir.support import (
    ASTHMA,
    caught_up,
    fhir_get,
    full_chart,
    outcome,
    resource_id,
    validated,
)
from tests.fhir.test_fhir_reads import assert_replays


def versions(response: Any) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.text
    bundle = response.json()
    assert bundle["type"] == "history"
    found = validated(bundle)
    assert bundle["total"] == len(found)
    etags = [e["response"]["etag"] for e in bundle["entry"]]
    assert etags == [f'W/"{r["meta"]["versionId"]}"' for r in found]
    return found


def test_an_entry_s_history_is_its_events_and_an_old_version_reads_back(
    client: TestClient,
) -> None:
    patient_id, ids = full_chart(client)
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
    heart = resource_id(patient_id, ids["heart"])
    response = fhir_get(client, f"/fhir/Observation/{heart}/_history")
    newest, oldest = versions(response)
    assert (newest["status"], newest["valueQuantity"]["value"]) == ("amended", 74)
    assert (oldest["status"], oldest["valueQuantity"]["value"]) == ("final", 72)
    assert int(newest["meta"]["versionId"]) > int(oldest["meta"]["versionId"])
    assert_replays(client, response)
    # The first version, read by its version id, is the entry as first recorded
    vid = oldest["meta"]["versionId"]
    read = fhir_get(client, f"/fhir/Observation/{heart}/_history/{vid}")
    assert read.status_code == 200, read.text
    assert read.headers["ETag"] == f'W/"{vid}"'
    assert validated(read.json()) == [oldest]
    assert_replays(client, read)
    # The entry in error: completed, then entered-in-error
    procedure = resource_id(patient_id, ids["procedure"])
    statuses = [
        p["status"] for p in versions(fhir_get(client, f"/fhir/Procedure/{procedure}/_history"))
    ]
    assert statuses == ["entered-in-error", "completed"]
    # A version id that is another entry's, or not a version, is not found
    outcome(fhir_get(client, f"/fhir/Procedure/{procedure}/_history/{vid}"), 404)
    outcome(fhir_get(client, f"/fhir/Observation/{heart}/_history/x1"), 404)
    outcome(fhir_get(client, f"/fhir/Encounter/{heart}/_history"), 404)


def test_a_hidden_label_on_any_version_hides_every_version(client: TestClient) -> None:
    patient_id, ids = full_chart(client)
    panic = resource_id(patient_id, ids["panic"])
    asthma = resource_id(patient_id, ids["asthma"])
    first = versions(fhir_get(client, f"/fhir/Condition/{asthma}/_history"))
    [vid] = [r["meta"]["versionId"] for r in first]
    # Asthma is later labelled mental_health: its unlabelled first version hides too
    relabelled = client.post(
        f"/v1/patients/{patient_id}/entries/{ids['asthma']}/amendments",
        json={"reason": "sensitive", "labels": ["mental_health"]},
        headers=CLINICIAN,
    )
    assert relabelled.status_code == 201, relabelled.text
    # Panic loses its label: its labelled first version still hides every version
    unlabelled = client.post(
        f"/v1/patients/{patient_id}/entries/{ids['panic']}/amendments",
        json={"reason": "not sensitive after all", "labels": []},
        headers=CLINICIAN,
    )
    assert unlabelled.status_code == 201, unlabelled.text
    for path in (
        f"/fhir/Condition/{panic}/_history",
        f"/fhir/Condition/{asthma}/_history",
        f"/fhir/Condition/{asthma}/_history/{vid}",
    ):
        hidden = fhir_get(client, path)
        outcome(hidden, 404)
        assert "Panic" not in hidden.text and "Asthma" not in hidden.text
    # Once the patient consents to mental_health for the organisation, all show
    directive = {**GRANT_BODY, "grantee": "org:org-main", "labels": ["mental_health"]}
    granted = client.post(
        f"/v1/patients/{patient_id}/consents", json=directive, headers=patient_token(patient_id)
    )
    assert granted.status_code == 201, granted.text
    caught_up(client)
    shown = fhir_get(client, f"/fhir/Condition/{asthma}/_history")
    labelled, unlabelled = versions(shown)
    assert labelled["meta"]["security"][0]["code"] == "MH"
    assert "security" not in unlabelled["meta"]
    assert unlabelled["code"]["text"] == ASTHMA["code"]["display"]
    assert_replays(client, shown)


def test_a_patient_s_history_is_its_demographic_versions(client: TestClient) -> None:
    patient_id, _ids = full_chart(client)
    renamed = client.patch(
        f"/v1/patients/{patient_id}",
        json={"name": {"given": "Ada", "family": "Lovelace"}},
        headers=CLINICIAN,
    )
    assert renamed.status_code == 200, renamed.text
    response = fhir_get(client, f"/fhir/Patient/{patient_id}/_history")
    newest, oldest = versions(response)
    assert newest["name"][0]["family"] == "Lovelace"
    assert oldest["name"][0]["family"] == "Example"
    assert oldest["meta"]["versionId"] == "1"
    assert_replays(client, response)
    read = fhir_get(client, f"/fhir/Patient/{patient_id}/_history/1")
    assert read.status_code == 200, read.text
    assert validated(read.json()) == [oldest]
    assert read.headers["ETag"] == 'W/"1"'
    assert_replays(client, read)
    current = fhir_get(client, f"/fhir/Patient/{patient_id}").json()
    later = fhir_get(client, f"/fhir/Patient/{patient_id}/_history/{current['meta']['versionId']}")
    assert later.json() == current
    outcome(fhir_get(client, f"/fhir/Patient/{patient_id}/_history/99999"), 404)
    outcome(fhir_get(client, f"/fhir/Patient/{patient_id}/_history/0"), 404)


def test_history_refuses_what_it_must(client: TestClient) -> None:
    patient_id, ids = full_chart(client)
    heart = resource_id(patient_id, ids["heart"])
    for path in (
        f"/fhir/Patient/{patient_id}/_history",
        f"/fhir/Patient/{patient_id}/_history/1",
        f"/fhir/Observation/{heart}/_history",
    ):
        outcome(client.get(path), 401)
        refused = fhir_get(client, path, headers=OUTSIDER)
        outcome(refused, 404)
        assert "X-Access-Id" not in refused.headers
        assert "Heart" not in refused.text and "Example" not in refused.text
        outcome(fhir_get(client, path, headers=ADMIN), 403)
        outcome(fhir_get(client, path, {"_count": "2"}), 422)
    # The patient reads their own versions through the same policy
    own = fhir_get(client, f"/fhir/Observation/{heart}/_history", headers=patient_token(patient_id))
    assert len(versions(own)) == 1
    assert "Heart rate" in orjson.dumps(own.json()).decode()
