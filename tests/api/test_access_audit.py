"""Every PHI disclosure leaves exactly one access record; denials are recorded too.

Stories over HTTP, on SQLite and PostgreSQL.
"""

import hashlib
from typing import Any

from fastapi.testclient import TestClient

from tests.api.support import (
    ADMIN,
    AUDITOR,
    CLINICIAN,
    OUTSIDER,
    access_records,
    assert_problem,
    patient_token,
    record_entry,
    register,
    settled,
    under_care,
)

GLASS = CLINICIAN.with_headers({"X-Break-Glass": "unconscious on arrival, no history available"})


def test_a_timeline_read_names_its_access_record_and_the_record_hashes_the_body(
    client: TestClient,
) -> None:
    # Given a patient under care with an entry
    patient_id = register(client)
    under_care(client, patient_id)
    entry_id = record_entry(client, patient_id)
    # When a clinician reads the timeline
    read = client.get(
        f"/v1/patients/{patient_id}/timeline", params=settled(client), headers=CLINICIAN
    )
    assert read.status_code == 200, read.text
    access_id = read.headers["X-Access-Id"]
    # Then exactly one access record names this response, with the digest of its bytes
    [record] = [
        r for r in access_records(client, patient_id=patient_id) if r["access_id"] == access_id
    ]
    assert record["response_sha256"] == hashlib.sha256(read.content).hexdigest()
    assert record["decision"] == "permit" and record["action"] == "read"
    assert record["entry_ids"] == [entry_id]
    assert record["actor"] == {"id": "dr-main", "role": "clinician", "org": "org-main"}
    assert "membership_id" in record["basis"] and patient_id in record["stream_versions"]
    # And the auditor can fetch it by id
    one = client.get(f"/v1/audit/accesses/{access_id}", headers=AUDITOR)
    assert one.status_code == 200 and one.json()["response_sha256"] == record["response_sha256"]


def test_each_kind_of_phi_read_is_recorded_once(client: TestClient) -> None:
    patient_id = register(client)
    under_care(client, patient_id)
    seen = settled(client)
    responses = [
        client.get(f"/v1/patients/{patient_id}", headers=CLINICIAN),
        client.get(f"/v1/patients/{patient_id}/consents", params=seen, headers=CLINICIAN),
        client.get(f"/v1/patients/{patient_id}/timeline", params=seen, headers=CLINICIAN),
        client.get("/v1/patients", params={"mrn": "MRN-0001", **seen}, headers=CLINICIAN),
    ]
    ids = []
    for response in responses:
        assert response.status_code == 200, response.text
        ids.append(response.headers["X-Access-Id"])
    logged = {r["access_id"]: r for r in access_records(client)}
    assert len(set(ids)) == 4 and set(ids) <= set(logged)
    for response, access_id in zip(responses, ids, strict=True):
        assert logged[access_id]["response_sha256"] == hashlib.sha256(response.content).hexdigest()


def test_a_treatment_read_without_a_care_relationship_is_refused_and_audited(
    client: TestClient,
) -> None:
    # Given a patient with no membership
    patient_id = register(client)
    # When a clinician of the organisation reads the timeline, Then 403
    refused = client.get(
        f"/v1/patients/{patient_id}/timeline", params=settled(client), headers=CLINICIAN
    )
    assert_problem(refused, 403, detail_mentions="membership")
    assert "X-Access-Id" not in refused.headers
    # And a clinician of another organisation is told 404: the chart is not theirs
    assert_problem(client.get(f"/v1/patients/{patient_id}/timeline", headers=OUTSIDER), 404)
    # And both attempts are in the log as denials, with no digest
    denied = access_records(client, patient_id=patient_id, decision="deny")
    assert {r["actor"]["id"] for r in denied} == {"dr-main", "dr-other"}
    assert all(r["response_sha256"] is None for r in denied)


def test_break_glass_reads_without_membership_and_queues_for_review(client: TestClient) -> None:
    # Given a patient with no membership
    patient_id = register(client)
    record_entry(client, patient_id)
    # When a clinician breaks the glass, Then the chart is disclosed
    read = client.get(f"/v1/patients/{patient_id}/timeline", params=settled(client), headers=GLASS)
    assert read.status_code == 200, read.text
    access_id = read.headers["X-Access-Id"]
    # And the access waits in the review queue with its justification
    queue = client.get("/v1/audit/break-glass", params=settled(client), headers=AUDITOR).json()
    [item] = [i for i in queue["items"] if i["access_id"] == access_id]
    assert item["purpose"] == "ETREAT" and item["basis"]["break_glass"].startswith("unconscious")
    assert item["review"] is None and queue["pending"] >= 1
    # When an auditor reviews it, Then the queue shows the outcome
    reviewed = client.post(
        f"/v1/audit/accesses/{access_id}/review",
        json={"outcome": "justified", "note": "ED admission confirmed"},
        headers=AUDITOR,
    )
    assert reviewed.status_code == 200, reviewed.text
    after = client.get(
        "/v1/audit/break-glass",
        params={"min_position": reviewed.json()["position"]},
        headers=AUDITOR,
    ).json()
    [item] = [i for i in after["items"] if i["access_id"] == access_id]
    assert item["review"]["outcome"] == "justified"
    # And a clinician may not review
    assert_problem(
        client.post(
            f"/v1/audit/accesses/{access_id}/review",
            json={"outcome": "justified"},
            headers=CLINICIAN,
        ),
        403,
    )


def test_a_patient_sees_who_read_their_record_and_nothing_of_others(
    client: TestClient,
) -> None:
    mine = register(client)
    theirs = register(
        client,
        {
            "mrn": "MRN-0002",
            "name": {"given": "B", "family": "C"},
            "birth_date": "1990-01-01",
            "sex": "male",
        },
    )
    under_care(client, mine)
    under_care(client, theirs)
    assert client.get(f"/v1/patients/{mine}", headers=CLINICIAN).status_code == 200
    assert client.get(f"/v1/patients/{theirs}", headers=CLINICIAN).status_code == 200
    me = patient_token(mine)
    log = client.get("/v1/me/access-log", params=settled(client), headers=me)
    assert log.status_code == 200, log.text
    patients = {item["patient_id"] for item in log.json()["items"]}
    assert patients == {mine}
    assert any(item["actor"]["id"] == "dr-main" for item in log.json()["items"])
    # Asking the auditors' endpoint for someone else still gives only their own rows
    other = client.get(
        "/v1/audit/accesses", params={"patient_id": theirs, **settled(client)}, headers=me
    )
    assert {i["patient_id"] for i in other.json()["items"]} <= {mine}
    # And only patients have an access log of their own
    assert_problem(client.get("/v1/me/access-log", headers=CLINICIAN), 403)


def test_the_accounting_of_disclosures_lists_public_health_reports_not_treatment(
    client: TestClient,
) -> None:
    patient_id = register(client)
    under_care(client, patient_id)
    # A treatment read (exempt) and a public-health report (accountable)
    client.get(f"/v1/patients/{patient_id}", headers=CLINICIAN)
    report = client.get(
        f"/v1/patients/{patient_id}", headers={**CLINICIAN, "X-Purpose-Of-Use": "PUBHLTH"}
    )
    assert report.status_code == 200, report.text
    accounting = client.get(
        f"/v1/patients/{patient_id}/disclosures", params=settled(client), headers=AUDITOR
    )
    assert accounting.status_code == 200, accounting.text
    listed = accounting.json()["items"]
    assert [d["access_id"] for d in listed] == [report.headers["X-Access-Id"]]
    assert listed[0]["purpose"] == "PUBHLTH" and listed[0]["recipient"] == "org-main"
    # The patient may read their own accounting; another patient may not
    own = client.get(f"/v1/patients/{patient_id}/disclosures", headers=patient_token(patient_id))
    assert own.status_code == 200
    assert_problem(client.get(f"/v1/patients/{patient_id}/disclosures", headers=CLINICIAN), 403)


def test_when_the_access_record_cannot_be_written_no_phi_is_sent(
    client: TestClient, container: Any
) -> None:
    patient_id = register(client)
    under_care(client, patient_id)
    record_entry(client, patient_id)
    seen = settled(client)

    def broken(*_: object, **__: object) -> None:
        raise OSError("the audit write failed")

    # Given the audit write fails
    recorder = container.ledger.recorder
    recorder.insert_events = broken
    try:
        response = client.get(f"/v1/patients/{patient_id}/timeline", params=seen, headers=CLINICIAN)
    finally:
        del recorder.insert_events  # the class's method again
    # Then the client gets 503 and no PHI
    assert_problem(response, 503)
    assert "X-Access-Id" not in response.headers
    assert b"Heart rate" not in response.content and b"entries" not in response.content


def test_every_403_is_audited_even_a_role_that_may_never_do_it(client: TestClient) -> None:
    patient_id = register(client)
    # An admin may never read clinical content; a clinician may never enrol
    assert_problem(client.get(f"/v1/patients/{patient_id}/timeline", headers=ADMIN), 403)
    refused = client.post(
        "/v1/memberships",
        headers=CLINICIAN,
        json={
            "patient_id": patient_id,
            "plan": "individual",
            "annual_fee_cents": 0,
            "starts_on": "2026-01-01",
            "ends_on": "2026-12-31",
        },
    )
    assert_problem(refused, 403)
    denied = access_records(client, decision="deny")
    by_actor = {(r["actor"]["id"], r["action"]) for r in denied}
    assert ("admin-main", "read") in by_actor and ("dr-main", "write") in by_actor
    [admin_read] = [r for r in denied if r["actor"]["id"] == "admin-main"]
    assert admin_read["patient_id"] == patient_id and admin_read["response_sha256"] is None


def test_a_clinical_write_is_answered_with_its_access_record(client: TestClient) -> None:
    patient_id = register(client)
    written = client.post(
        f"/v1/patients/{patient_id}/entries",
        json={
            "kind": "observation",
            "code": {"system": "http://loinc.org", "code": "8867-4", "display": "Heart rate"},
            "effective_at": "2026-11-20T09:30:00Z",
        },
        headers=CLINICIAN,
    )
    assert written.status_code == 201, written.text
    [record] = [
        r
        for r in access_records(client, action="write")
        if r["access_id"] == written.headers["X-Access-Id"]
    ]
    assert record["response_sha256"] == hashlib.sha256(written.content).hexdigest()
    assert record["stream_versions"] == {patient_id: written.json()["version"]}
