"""Replay: a disclosed response comes back byte for byte after the chart, the consent
and the membership have all changed. On SQLite and PostgreSQL.
"""

import hashlib
from typing import Any
from uuid import UUID, uuid4

import orjson
from eventsourcing.domain import Snapshot
from fastapi.testclient import TestClient

from api.container import Container
from domain.access_record import AccessRecord
from domain.values import Provenance
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


def labelled_chart(client: TestClient, directive: dict[str, Any]) -> tuple[str, Any]:
    """A patient under care with a plain and a substance-use entry, and the directive
    they granted themself; the chart's id and the grant's response."""
    patient_id = register(client)
    under_care(client, patient_id)
    record_entry(client, patient_id)
    record_entry(client, patient_id, LABELLED)
    granted = client.post(
        f"/v1/patients/{patient_id}/consents", json=directive, headers=patient_token(patient_id)
    )
    assert granted.status_code == 201, granted.text
    return patient_id, granted


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
    patient_id, _ = labelled_chart(client, OWN_ORG_SUD)
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


def _as_written_by_policy_1(client: TestClient, access_id: str, **changes: Any) -> str:
    """A copy of an access record as the first policy wrote it: the same bytes and
    streams, no ``policy`` in its request, and the given fields changed."""
    container = client.app.state.container  # type: ignore[attr-defined]
    record = container.ledger.load(AccessRecord, UUID(access_id), "access record")
    request = {k: v for k, v in record.request.items() if k != "policy"}
    fields = {
        "actor_id": record.actor["id"],
        "actor_role": record.actor["role"],
        "actor_org": record.actor["org"],
        "purpose": record.purpose,
        "basis": record.basis,
        **changes,
    }
    old = AccessRecord.record(
        access_id=uuid4(),
        by=Provenance(fields.pop("actor_id"), record.occurred_at),
        action=record.action,
        patient_id=record.patient_id,
        entry_ids=record.entry_ids,
        decision="permit",
        reason=record.reason,
        stream_versions=record.stream_versions,
        response_sha256=record.response_sha256,
        request=request,
        request_id=record.request_id,
        source=record.source,
        care_org=None,
        **fields,
    )
    container.group_commit.write(old)
    return str(old.originator_id)


def test_a_page_disclosed_under_the_first_policy_replays_by_its_rules(
    client: TestClient,
) -> None:
    # Given a chart with a plain and a substance-use entry, and a directive the patient
    # gave, as the first policy read it, to one clinician by their bare subject
    patient_id, granted = labelled_chart(client, {**GRANT_BODY, "grantee": "dr-main"})
    # And the page as it showed then: both entries (a break-glass read shows them today)
    shown = client.get(
        f"/v1/patients/{patient_id}/timeline",
        params=settled(client),
        headers={**CLINICIAN, "X-Break-Glass": "unconscious in ED, history needed"},
    )
    assert len(shown.json()["entries"]) == 2
    glass = shown.headers["X-Access-Id"]
    # When that page was disclosed under the first policy, to the clinician for TREAT
    # (their bare subject named by the directive), or by a break-glass justification of
    # 20 characters that today's rule refuses
    consent_version = granted.json()["consent_version"]
    by_subject = _as_written_by_policy_1(
        client,
        glass,
        purpose="TREAT",
        basis={"consent_version": consent_version, "directive_id": granted.json()["directive_id"]},
    )
    by_length = _as_written_by_policy_1(client, glass, basis={"break_glass": "emergency!!" * 2})
    # Then each replays byte for byte, by the first policy's rules
    for access_id in (by_subject, by_length):
        replayed = replay(client, access_id)
        assert replayed["matches"] is True, access_id
        assert len(replayed["body"]["entries"]) == 2
    # And today's policy shows that clinician nothing labelled
    today = client.get(
        f"/v1/patients/{patient_id}/timeline", params=settled(client), headers=CLINICIAN
    )
    assert [e["labels"] for e in today.json()["entries"]] == [[]]
