"""AuditEvent: an organisation's auditors read its access records as IHE BALP
AuditEvents (reads, queries, writes, break-glass, refusals), search them by patient,
date, agent, purpose and outcome, page through them, and nobody else reads them.
Every AuditEvent validates as R4B; reading them is not itself recorded, as on /v1."""

import base64
import hashlib
from typing import Any

import httpx
import orjson
from fastapi.testclient import TestClient

from application.access.audit_trail import ACCESS_VIEWS
from tests.api.support import ADMIN, AUDITOR, CLINICIAN, OUTSIDER, UNKNOWN_ID, patient_token
from tests.conftest import auth
from tests.fhir.support import (
    caught_up,
    fhir_get,
    full_chart,
    next_url,
    outcome,
    resource_id,
    validated,
)

OTHER_AUDITOR = auth("auditor", sub="auditor-other", org="org-other")
GLASS = CLINICIAN.with_headers({"X-Break-Glass": "unconscious on arrival in the emergency room"})
EXT = "urn:careledger:extension:"


def logged(client: TestClient) -> None:
    """The access log's view shows every record written so far."""
    caught_up(client)
    position = client.get("/readyz").json()["position"]
    client.app.state.container.charts.views.caught_up(ACCESS_VIEWS, position)


def events(response: httpx.Response) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/fhir+json")
    assert "X-Access-Id" not in response.headers  # access-log metadata, as on /v1
    bundle = response.json()
    assert bundle["type"] == "searchset"
    return validated(bundle)


def audit(client: TestClient, **params: str) -> list[dict[str, Any]]:
    logged(client)
    return events(fhir_get(client, "/fhir/AuditEvent", params, AUDITOR))


def event_of(client: TestClient, response: httpx.Response) -> dict[str, Any]:
    """The AuditEvent of a response's access record, read by its id."""
    read = fhir_get(client, f"/fhir/AuditEvent/{response.headers['X-Access-Id']}", None, AUDITOR)
    assert read.status_code == 200, read.text
    assert "X-Access-Id" not in read.headers
    [event] = validated(read.json())
    return event


def codes(concepts: list[dict[str, Any]]) -> list[str]:
    return [c["coding"][0]["code"] for c in concepts]


def user(event: dict[str, Any]) -> dict[str, Any]:
    [agent] = [a for a in event["agent"] if codes([a["type"]]) == ["IRCP"]]
    return agent


def entity(event: dict[str, Any], role: str) -> dict[str, Any]:
    [found] = [e for e in event["entity"] if e.get("role", {}).get("code") == role]
    return found


def extension(event: dict[str, Any], name: str) -> dict[str, Any]:
    [found] = [e for e in event["extension"] if e["url"] == EXT + name]
    return found


def parts(ext: dict[str, Any]) -> dict[str, Any]:
    return {
        p["url"]: next(v for k, v in p.items() if k.startswith("value")) for p in ext["extension"]
    }


def test_an_auditor_finds_a_clinician_s_read_and_query_as_balp_audit_events(
    client: TestClient,
) -> None:
    patient_id, ids = full_chart(client)
    caught_up(client)
    rid = resource_id(patient_id, ids["heart"])
    read = fhir_get(client, f"/fhir/Observation/{rid}")
    assert read.status_code == 200, read.text
    query = fhir_get(client, "/fhir/Observation", {"patient": patient_id, "code": "2339-0"})
    assert query.status_code == 200, query.text
    found = {e["id"]: e for e in audit(client, patient=patient_id)}
    # The read: BALP PatientRead
    event = event_of(client, read)
    assert found[event["id"]] == event
    assert event["type"]["code"] == "rest"
    assert [s["code"] for s in event["subtype"]] == ["read"]
    assert (event["action"], event["outcome"]) == ("R", "0")
    agent = user(event)
    assert agent["who"]["identifier"] == {
        "system": "urn:careledger:actor",
        "value": "org-main/dr-main",
    }
    assert agent["requestor"] is True
    assert codes(agent["role"]) == ["clinician"]
    assert codes(agent["purposeOfUse"]) == ["TREAT"]
    assert agent["purposeOfUse"][0]["coding"][0]["system"].endswith("v3-ActReason")
    patient = entity(event, "1")
    assert patient["what"]["reference"] == f"Patient/{patient_id}"
    assert patient["type"]["code"] == "1"
    assert entity(event, "4")["what"]["reference"] == f"Observation/{rid}"
    assert event["source"]["observer"]["display"] == "CareLedger"
    digest = hashlib.sha256(read.content).hexdigest()
    assert extension(event, "response-sha256")["valueString"] == digest
    versions = [parts(e) for e in event["extension"] if e["url"] == EXT + "stream-version"]
    [chart] = [v for v in versions if v["stream"] == patient_id]
    assert chart["version"] == 1 + len(ids)  # registered, then each entry an event
    decision = parts(extension(event, "decision"))
    assert decision["decision"] == "permit" and decision["care-organisation"] == "org-main"
    assert "membership-id" in decision
    # The query: BALP PatientQuery, with what the record kept of it
    searched = event_of(client, query)
    assert [s["code"] for s in searched["subtype"]] == ["search-type"]
    assert searched["action"] == "E"
    kept = orjson.loads(base64.b64decode(entity(searched, "24")["query"]))
    assert kept["params"] == [["patient", patient_id], ["code", "2339-0"]]
    assert "code=2339-0" in entity(searched, "24")["description"]
    assert entity(searched, "1")["what"]["reference"] == f"Patient/{patient_id}"


def test_writes_are_create_and_update_and_a_patient_search_keeps_no_terms(
    client: TestClient,
) -> None:
    registered = client.post(
        "/v1/patients",
        json={
            "mrn": "MRN-AUDIT-1",
            "name": {"given": "Ada", "family": "Example"},
            "birth_date": "1984-07-12",
            "sex": "female",
        },
        headers=CLINICIAN,
    )
    assert registered.status_code == 201, registered.text
    created = event_of(client, registered)
    assert (created["action"], created["subtype"][0]["code"]) == ("C", "create")
    patient_id = registered.json()["id"]
    logged(client)
    found = fhir_get(client, "/fhir/Patient", {"identifier": "MRN-AUDIT-1"})
    assert found.status_code == 200, found.text
    searched = event_of(client, found)
    query = entity(searched, "24")
    assert "MRN-AUDIT-1" not in base64.b64decode(query["query"]).decode()
    assert "MRN-AUDIT-1" not in orjson.dumps(searched).decode()
    assert "not kept" in query["description"]
    assert entity(searched, "1")["what"]["reference"] == f"Patient/{patient_id}"
    renamed = client.patch(
        f"/v1/patients/{patient_id}",
        json={"name": {"given": "Ada", "family": "Lovelace"}},
        headers=CLINICIAN,
    )
    assert renamed.status_code == 200, renamed.text
    updated = event_of(client, renamed)
    assert (updated["action"], updated["subtype"][0]["code"]) == ("U", "update")
    assert entity(updated, "4")["what"]["reference"] == f"Patient/{patient_id}"


def test_break_glass_shows_emergency_treatment_and_its_justification(client: TestClient) -> None:
    patient_id, _ids = full_chart(client)
    glass = client.get(f"/v1/patients/{patient_id}/timeline", headers=GLASS)
    assert glass.status_code == 200, glass.text
    [event] = [
        e for e in audit(client, purpose="ETREAT") if e["id"] == glass.headers["X-Access-Id"]
    ]
    assert codes(user(event)["purposeOfUse"]) == ["ETREAT"]
    assert codes(event["purposeOfEvent"]) == ["ETREAT"]
    assert parts(extension(event, "decision"))["break-glass"] == GLASS["X-Break-Glass"]
    assert entity(event, "24")["type"]["code"] == "2"  # a timeline page is a query
    treat = audit(client, purpose="http://terminology.hl7.org/CodeSystem/v3-ActReason|TREAT")
    assert treat and event["id"] not in {e["id"] for e in treat}
    # Once reviewed, the review shows on it
    reviewed = client.post(
        f"/v1/audit/accesses/{event['id']}/review",
        json={"outcome": "justified", "note": "seen in the ED log"},
        headers=AUDITOR,
    )
    assert reviewed.status_code == 200, reviewed.text
    review = parts(extension(event_of(client, glass), "break-glass-review"))
    assert review["outcome"] == "justified" and review["by"] == "auditor-main"


def test_refusals_show_their_outcome_and_the_outcome_search_narrows(client: TestClient) -> None:
    patient_id, _ids = full_chart(client)
    outcome(fhir_get(client, "/fhir/Observation", {"patient": patient_id}, ADMIN), 403)
    outcome(fhir_get(client, "/fhir/Observation", {"patient": patient_id}, OUTSIDER), 404)
    refused = audit(client, patient=patient_id, outcome="4")
    assert refused and all(e["outcome"] == "4" and e["outcomeDesc"] for e in refused)
    who = {user(e)["who"]["identifier"]["value"] for e in refused}
    assert {"org-main/admin-main", "org-other/dr-other"} <= who
    assert all(parts(extension(e, "decision"))["decision"] == "deny" for e in refused)
    assert all(e["outcome"] == "0" for e in audit(client, patient=patient_id, outcome="0"))
    assert audit(client, outcome="8") == []
    # The agent narrows to a qualified identity; a bare subject to that subject
    outsider = audit(client, agent="org-other/dr-other")
    assert outsider and {user(e)["who"]["identifier"]["value"] for e in outsider} == {
        "org-other/dr-other"
    }
    assert audit(client, agent="org-other/dr-main") == []
    mine = audit(client, agent="dr-main")
    assert mine and {user(e)["who"]["identifier"]["value"] for e in mine} == {"org-main/dr-main"}


def test_date_narrows_and_pages_follow_the_next_link(client: TestClient) -> None:
    patient_id, _ids = full_chart(client)
    for _ in range(4):
        assert fhir_get(client, f"/fhir/Patient/{patient_id}").status_code == 200
    every = audit(client, patient=patient_id)
    assert len(every) >= 5
    assert audit(client, patient=patient_id, date="lt2000-01-01") == []
    day = every[0]["recorded"][:10]
    assert len(audit(client, patient=patient_id, date=day)) == len(every)
    recorded = [e["recorded"] for e in every]
    assert recorded == sorted(recorded, reverse=True)  # newest first
    seen: list[str] = []
    url: str | None = f"/fhir/AuditEvent?patient={patient_id}&_count=2"
    while url is not None:
        response = fhir_get(client, url, None, AUDITOR)
        page = events(response)
        assert len(page) <= 2
        seen += [e["id"] for e in page]
        url = next_url(response.json())
        assert url is None or "_cursor=" in url
    assert seen == [e["id"] for e in every]


def test_bad_parameters_are_422(client: TestClient) -> None:
    for params in (
        {"action": "R"},
        {"outcome": "3"},
        {"date": "yesterday"},
        {"_cursor": "not-a-cursor"},
        {"patient": "nobody"},
        {"purpose": "urn:other|TREAT"},
        {"agent": "/dr-main"},
    ):
        outcome(fhir_get(client, "/fhir/AuditEvent", params, AUDITOR), 422)
    outcome(fhir_get(client, "/fhir/AuditEvent", {"_format": "xml"}, AUDITOR), 406)


def test_only_the_organisation_s_auditors_read_its_audit_events(client: TestClient) -> None:
    patient_id, _ids = full_chart(client)
    read = fhir_get(client, f"/fhir/Patient/{patient_id}")
    assert read.status_code == 200, read.text
    logged(client)
    access = read.headers["X-Access-Id"]
    # Another organisation's auditor: none of ours, and ours is as unknown
    theirs = events(fhir_get(client, "/fhir/AuditEvent", None, OTHER_AUDITOR))
    assert all(user(e)["who"]["identifier"]["value"].startswith("org-other/") for e in theirs)
    assert access not in orjson.dumps(theirs).decode() and patient_id not in str(theirs)
    mine = outcome(fhir_get(client, f"/fhir/AuditEvent/{access}", None, OTHER_AUDITOR), 404)
    unknown = outcome(fhir_get(client, f"/fhir/AuditEvent/{UNKNOWN_ID}", None, OTHER_AUDITOR), 404)
    assert mine == unknown
    outcome(fhir_get(client, "/fhir/AuditEvent", {"patient": patient_id}, OTHER_AUDITOR), 404)
    # Patients and clinicians are refused, even their own record's
    for headers in (CLINICIAN, patient_token(patient_id), ADMIN):
        outcome(fhir_get(client, "/fhir/AuditEvent", {"patient": patient_id}, headers), 403)
        outcome(fhir_get(client, f"/fhir/AuditEvent/{access}", None, headers), 403)
    outcome(fhir_get(client, "/fhir/AuditEvent/not-an-id", None, AUDITOR), 404)
