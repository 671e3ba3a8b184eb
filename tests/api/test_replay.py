"""Replay: a disclosed response comes back byte for byte after the chart, the consent
and the membership have all changed. On SQLite and PostgreSQL.
"""

import hashlib
from typing import Any

import orjson
from fastapi.testclient import TestClient

from tests.api.support import (
    ADMIN,
    AUDITOR,
    CLINICIAN,
    GRANT_BODY,
    assert_problem,
    record_entry,
    register,
    settled,
    under_care,
)

LABELLED = {
    "kind": "condition",
    "code": {
        "system": "http://snomed.info/sct",
        "code": "66590003",
        "display": "Alcohol dependence",
    },
    "effective_at": "2026-11-21T09:00:00Z",
    "labels": ["substance_use"],
}
OWN_ORG_SUD = {**GRANT_BODY, "grantee": "org-main"}


def replay(client: TestClient, access_id: str) -> dict[str, Any]:
    response = client.post(f"/v1/audit/accesses/{access_id}/replay", headers=AUDITOR)
    assert response.status_code == 200, response.text
    assert response.headers["X-Access-Id"] != access_id  # the replay is recorded itself
    body: dict[str, Any] = response.json()
    return body


def change_everything(client: TestClient, patient_id: str, entry_id: str) -> None:
    """Amend the chart, add to it, revoke the consent, rename, and cancel the membership."""
    amended = client.post(
        f"/v1/patients/{patient_id}/entries/{entry_id}/amendments",
        json={"reason": "wrong value", "value": {"quantity": 80, "unit": "/min"}},
        headers=CLINICIAN,
    )
    assert amended.status_code == 201, amended.text
    record_entry(client, patient_id)
    renamed = client.patch(
        f"/v1/patients/{patient_id}",
        json={"name": {"given": "Ada", "family": "Renamed"}},
        headers=CLINICIAN,
    )
    assert renamed.status_code == 200, renamed.text
    consents = client.get(
        f"/v1/patients/{patient_id}/consents", params=settled(client), headers=CLINICIAN
    ).json()
    for directive in consents["directives"]:
        revoked = client.post(
            f"/v1/patients/{patient_id}/consents/{directive['directive_id']}/revoke",
            json={"reason": "withdrawn"},
            headers=CLINICIAN,
        )
        assert revoked.status_code == 200, revoked.text
    listed = client.get(
        "/v1/memberships", params={"patient_id": patient_id, **settled(client)}, headers=ADMIN
    ).json()
    for membership in listed["items"]:
        cancelled = client.post(
            f"/v1/memberships/{membership['id']}/cancel", json={"reason": "moved"}, headers=ADMIN
        )
        assert cancelled.status_code == 200, cancelled.text


def test_every_kind_of_read_replays_byte_for_byte_after_everything_changed(
    client: TestClient,
) -> None:
    # Given a patient under care, with a labelled entry their consent shows to org-main
    patient_id = register(client)
    under_care(client, patient_id)
    entry_id = record_entry(client, patient_id)
    record_entry(client, patient_id, LABELLED)
    granted = client.post(
        f"/v1/patients/{patient_id}/consents", json=OWN_ORG_SUD, headers=CLINICIAN
    )
    assert granted.status_code == 201, granted.text
    seen = settled(client)
    # And four disclosures: the record, the consents, a timeline page and a search
    reads = {
        "demographics": client.get(f"/v1/patients/{patient_id}", headers=CLINICIAN),
        "consents": client.get(
            f"/v1/patients/{patient_id}/consents", params=seen, headers=CLINICIAN
        ),
        "timeline": client.get(
            f"/v1/patients/{patient_id}/timeline", params={**seen, "limit": 1}, headers=CLINICIAN
        ),
        "search": client.get("/v1/patients", params={"mrn": "MRN-0001", **seen}, headers=CLINICIAN),
    }
    for name, response in reads.items():
        assert response.status_code == 200, (name, response.text)
    assert len(reads["timeline"].json()["entries"]) == 1
    assert reads["timeline"].json()["next_cursor"] is not None

    # When the chart is amended, the consent revoked, the name changed, the membership ended
    change_everything(client, patient_id, entry_id)

    # Then each replay rebuilds the exact bytes that were disclosed
    for name, response in reads.items():
        replayed = replay(client, response.headers["X-Access-Id"])
        assert replayed["matches"] is True, name
        assert replayed["replayed_sha256"] == hashlib.sha256(response.content).hexdigest(), name
        assert orjson.dumps(replayed["body"]) == response.content, name
    # And today's reads differ: the consent is revoked, the name changed
    assert client.get(f"/v1/patients/{patient_id}", headers=CLINICIAN).content != (
        reads["demographics"].content
    )


def test_the_second_page_of_a_labelled_timeline_replays_with_the_consent_then(
    client: TestClient,
) -> None:
    patient_id = register(client)
    under_care(client, patient_id)
    record_entry(client, patient_id)
    record_entry(client, patient_id, LABELLED)
    client.post(f"/v1/patients/{patient_id}/consents", json=OWN_ORG_SUD, headers=CLINICIAN)
    first = client.get(
        f"/v1/patients/{patient_id}/timeline",
        params={**settled(client), "limit": 1},
        headers=CLINICIAN,
    ).json()
    second = client.get(
        f"/v1/patients/{patient_id}/timeline",
        params={"cursor": first["next_cursor"], "limit": 1},
        headers=CLINICIAN,
    )
    assert second.json()["entries"][0]["labels"] == ["substance_use"]
    change_everything(client, patient_id, first["entries"][0]["entry_id"])
    assert replay(client, second.headers["X-Access-Id"])["matches"] is True


def test_only_auditors_replay_and_an_erased_patient_cannot_be_rebuilt(
    client: TestClient,
) -> None:
    patient_id = register(client)
    read = client.get(f"/v1/patients/{patient_id}", headers=CLINICIAN)
    access_id = read.headers["X-Access-Id"]
    assert_problem(client.post(f"/v1/audit/accesses/{access_id}/replay", headers=CLINICIAN), 403)
    erased = client.post(
        f"/v1/patients/{patient_id}/erase", json={"legal_basis": "GDPR art. 17"}, headers=ADMIN
    )
    assert erased.status_code == 202, erased.text
    gone = client.post(f"/v1/audit/accesses/{access_id}/replay", headers=AUDITOR)
    assert_problem(gone, 410, detail_mentions="erased")
    # The access record itself survives the erasure
    kept = client.get(f"/v1/audit/accesses/{access_id}", headers=AUDITOR)
    assert kept.status_code == 200 and kept.json()["patient_id"] == patient_id
