"""Replay: a disclosed response comes back byte for byte after the chart, the consent
and the membership have all changed. On SQLite and PostgreSQL.
"""

import hashlib
from typing import Any
from uuid import UUID

import orjson
from eventsourcing.domain import Snapshot
from fastapi.testclient import TestClient

from api.container import Container
from domain.access_record import AccessRecord
from tests.api.support import (
    ADMIN,
    AUDITOR,
    CLINICIAN,
    ENCOUNTER_BODY,
    GRANT_BODY,
    assert_problem,
    patient_token,
    record_entry,
    register,
    settled,
    under_care,
)
from tests.conftest import ENTRY_BODY

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
# The patient's own directive: staff never record one that widens their own access.
OWN_ORG_SUD = {**GRANT_BODY, "grantee": "org:org-main"}


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
        f"/v1/patients/{patient_id}/consents", json=OWN_ORG_SUD, headers=patient_token(patient_id)
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
    granted = client.post(
        f"/v1/patients/{patient_id}/consents", json=OWN_ORG_SUD, headers=patient_token(patient_id)
    )
    assert granted.status_code == 201, granted.text
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


def entry_at(n: int, kind: str = "observation", labels: list[str] | None = None) -> dict[str, Any]:
    """Entries out of time order: the n-th written is not the n-th on the timeline."""
    day = 1 + (n * 37) % 28
    body = {**(ENCOUNTER_BODY if kind == "encounter" else ENTRY_BODY)}
    body["effective_at"] = f"2026-02-{day:02d}T{n % 24:02d}:{n % 60:02d}:00Z"
    if labels:
        body["labels"] = labels
    return body


def pages(client: TestClient, patient_id: str, **params: Any) -> list[Any]:
    """Every page of a timeline query, following the cursors."""
    found = []
    query = {**settled(client), **params}
    while True:
        page = client.get(f"/v1/patients/{patient_id}/timeline", params=query, headers=CLINICIAN)
        assert page.status_code == 200, page.text
        found.append(page)
        cursor = page.json()["next_cursor"]
        if cursor is None:
            return found
        query = {**params, "cursor": cursor}


def test_every_page_of_a_long_amended_chart_replays_byte_for_byte(
    client: TestClient, container: Container
) -> None:
    # Given a chart past its first snapshot (every 100 events): entries out of time
    # order, some encounters, some labelled (hidden from org-main without a directive),
    # some moved in time by an amendment, some entered in error
    patient_id = register(client)
    under_care(client, patient_id)
    ids = []
    for n in range(110):
        kind = "encounter" if n % 5 == 0 else "observation"
        ids.append(
            record_entry(
                client, patient_id, entry_at(n, kind, LABELLED["labels"] if n % 9 == 0 else None)
            )
        )
    for n in range(0, 110, 7):
        moved = client.post(
            f"/v1/patients/{patient_id}/entries/{ids[n]}/amendments",
            json={"reason": "wrong time", "effective_at": f"2026-03-{1 + n % 28:02d}T08:00:00Z"},
            headers=CLINICIAN,
        )
        assert moved.status_code == 201, moved.text
    for n in range(3, 110, 11):
        erred = client.post(
            f"/v1/patients/{patient_id}/entries/{ids[n]}/entered-in-error",
            json={"reason": "wrong patient"},
            headers=CLINICIAN,
        )
        assert erred.status_code in (200, 201), erred.text
    # And every page of several queries was read
    reads = [
        *pages(client, patient_id, limit=9),
        *pages(client, patient_id, limit=4, kind="encounter"),
        *pages(client, patient_id, limit=6, since="2026-02-10", until="2026-03-05"),
    ]
    assert len(reads) > 20

    # When the chart changes afterwards, and the cached chart is forgotten
    change_everything(client, patient_id, ids[1])
    container.ledger.forget(UUID(patient_id))

    # Then every page replays to the bytes that were served
    for page in reads:
        assert replay(client, page.headers["X-Access-Id"])["matches"] is True, page.request.url

    # And so does a chart known only from a snapshot taken before entries kept their
    # times and versions (the replay reads the whole chart instead)
    ledger = container.ledger
    read_at = ledger.load(AccessRecord, UUID(reads[0].headers["X-Access-Id"]), "access")
    as_read = read_at.stream_versions[patient_id]
    snapshot = Snapshot.take(ledger.repository.get(UUID(patient_id), version=as_read))
    snapshot.state.pop("class_version", None)
    snapshot.state["entries"] = {
        entry_hex: {"kind": entry["kind"], "status": entry["status"]}
        for entry_hex, entry in snapshot.state["entries"].items()
    }
    ledger.snapshots.put([snapshot])
    ledger.forget(UUID(patient_id))
    legacy = ledger.repository.get(UUID(patient_id), version=as_read)
    assert legacy.entries[UUID(ids[0]).hex]["versions"] is None
    for page in reads[:3]:
        assert replay(client, page.headers["X-Access-Id"])["matches"] is True, page.request.url
