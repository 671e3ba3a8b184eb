"""Access records: sealed with the audit key, group-committed, and failing closed.

Stories on SQLite and PostgreSQL, through the wired container.
"""

import hashlib
import threading
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from api.bootstrap import build
from api.container import Container
from application.access.access_log import AuditUnavailable, DisclosedWrite, Disclosures, GroupCommit
from application.access.policy import Basis, Decision
from application.charts.disclosure_rendering import render
from application.context import Actor, RequestContext, Role
from application.errors import DataKeyDestroyed
from domain.access_record import AccessRecord
from domain.patient import Patient
from domain.values import HumanName
from domain.vocabulary import AdministrativeSex, Purpose
from infrastructure.keys import AUDIT_KEY_ID
from tests.conftest import ORG, make_settings

CLINICIAN = RequestContext(
    Actor("dr-audit", Role.CLINICIAN, ORG), Purpose.TREAT, "req-1", source="127.0.0.1"
)
PERMIT = Decision(True, "treatment within an active membership", Basis(7, None, "m-1"))


@pytest.fixture
def built(database_url: str, tmp_path: Path) -> Iterator[Container]:
    container = build(make_settings(database_url, tmp_path / "var"))
    try:
        yield container
    finally:
        container.close()


def _register(container: Container, ctx: RequestContext, mrn: str) -> DisclosedWrite:
    return container.patients.register(
        ctx,
        mrn=mrn,
        name=HumanName("Ada", "Audit"),
        birth_date=date(1980, 1, 1),
        sex=AdministrativeSex.FEMALE,
        contact=None,
    )


def _disclosures(container: Container) -> tuple[Disclosures, GroupCommit]:
    writer = GroupCommit(container.ledger.save_events)
    return Disclosures(writer, lambda: datetime.now(UTC), uuid.uuid4), writer


def test_a_disclosure_is_recorded_with_the_digest_of_the_exact_bytes(
    built: Container,
) -> None:
    disclosures, writer = _disclosures(built)
    patient_id = uuid.uuid4()
    body: dict[str, Any] = {"patient_id": str(patient_id), "entries": [{"value": 72.5}]}
    try:
        # When a body is disclosed
        disclosed = disclosures.disclose(
            CLINICIAN,
            action="read",
            body=body,
            decision=PERMIT,
            patient_id=patient_id,
            entry_ids=["e-1"],
            stream_versions={str(patient_id): 3},
            request={"limit": 50},
        )
    finally:
        writer.close()
    # Then the bytes returned are the rendering, and the record names their digest
    assert disclosed.body == render(body)
    record = built.ledger.repository.get(disclosed.access_id)
    assert isinstance(record, AccessRecord)
    assert record.response_sha256 == hashlib.sha256(disclosed.body).hexdigest()
    assert record.as_json()["actor"] == {"id": "dr-audit", "role": "clinician", "org": ORG}
    assert record.stream_versions == {str(patient_id): 3}
    assert record.basis == {"consent_version": 7, "membership_id": "m-1"}
    assert record.decision == "permit" and record.source == "127.0.0.1"


def test_records_are_sealed_with_the_audit_key_and_survive_erasure_of_the_patient(
    built: Container,
) -> None:
    disclosures, writer = _disclosures(built)
    registered = _register(built, CLINICIAN, "MRN-AUDIT-1")
    patient_id = uuid.UUID(registered.result["id"])
    try:
        disclosed = disclosures.disclose(
            CLINICIAN, action="read", body={"x": 1}, decision=PERMIT, patient_id=patient_id
        )
    finally:
        writer.close()
    # The stored record names the audit key in its header, never the patient's
    [stored] = built.ledger.recorder.select_events(disclosed.access_id)
    assert bytes(stored.state[1:17]) == AUDIT_KEY_ID.bytes
    # Crypto-shredding the patient leaves the record readable
    assert built.keys.destroy(patient_id)
    built.ledger.forget(disclosed.access_id)
    record = built.ledger.repository.get(disclosed.access_id)
    assert record.patient_id == str(patient_id)
    with pytest.raises(DataKeyDestroyed):
        built.keys.aead(patient_id)
    assert b"dr-audit" not in bytes(stored.state)  # the actor is sealed too


def test_concurrent_records_share_transactions(built: Container) -> None:
    disclosures, writer = _disclosures(built)
    start = threading.Barrier(24)
    ids: list[uuid.UUID] = []
    lock = threading.Lock()

    def read() -> None:
        start.wait()
        for _ in range(10):
            disclosed = disclosures.disclose(
                CLINICIAN, action="read", body={"n": 1}, decision=PERMIT, patient_id=None
            )
            with lock:
                ids.append(disclosed.access_id)

    threads = [threading.Thread(target=read) for _ in range(24)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        writer.close()
    # Every one of 240 records is durable, in fewer transactions than records
    assert len(set(ids)) == 240 and writer.batcher.committed == 240
    assert writer.batcher.commits < 240
    for access_id in ids[::40]:
        assert built.ledger.repository.get(access_id).decision == "permit"


def test_when_the_record_cannot_be_written_nothing_is_disclosed(
    built: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    disclosures, writer = _disclosures(built)

    def broken(*_: object, **__: object) -> None:
        raise OSError("disk full")

    # Given the store refuses the audit write
    monkeypatch.setattr(built.ledger.recorder, "insert_events", broken)
    try:
        # Then the caller gets AuditUnavailable instead of a body
        with pytest.raises(AuditUnavailable):
            disclosures.disclose(
                CLINICIAN, action="read", body={"secret": 1}, decision=PERMIT, patient_id=None
            )
    finally:
        writer.close()
    assert writer.batcher.committed == 0


def test_a_clinical_write_and_its_access_record_commit_together(
    built: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a registered patient (registration is a write, recorded with its answer)
    clinician = RequestContext(Actor("dr-audit", Role.CLINICIAN, ORG), Purpose.TREAT, "req-2")
    registered = _register(built, clinician, "MRN-TXN")
    # Then the answer's access record is the record right after the write's events, in
    # the same transaction, and its digest covers the exact answer, position included
    answer = registered.disclose()
    assert answer.body == render(registered.body())
    notifications = built.ledger.recorder.select_notifications(start=1, limit=100)
    assert notifications[-1].id == registered.position + 1
    assert notifications[-1].originator_id == answer.access_id
    record = built.ledger.load(AccessRecord, answer.access_id, "access record")
    assert record.action == "write"
    assert record.response_sha256 == hashlib.sha256(answer.body).hexdigest()

    # When the record cannot be made, inside the transaction
    patient_id = uuid.UUID(registered.result["id"])
    sealing = built.ledger.mapper.to_stored_event

    def refusing(event: Any) -> Any:
        if isinstance(event, AccessRecord.Event):
            raise OSError("the audit key is unavailable")
        return sealing(event)

    monkeypatch.setattr(built.ledger.mapper, "to_stored_event", refusing)
    with pytest.raises(AuditUnavailable):
        built.patients.update_demographics(
            clinician,
            patient_id,
            name=HumanName("Ada", "Renamed"),
            birth_date=None,
            sex=None,
            contact=None,
        )
    # Then the caller is told the audit is unavailable (503), and the write is not
    # durable either: the chart is as it was
    monkeypatch.undo()
    built.ledger.forget(patient_id)
    assert built.ledger.load(Patient, patient_id, "patient").name == HumanName("Ada", "Audit")
    assert built.ledger.recorder.max_notification_id() == registered.position + 1


def test_an_answer_repeated_from_an_idempotency_claim_is_recorded_on_its_own(
    built: Container,
) -> None:
    # Given a registration retried with the same Idempotency-Key
    keyed = replace(CLINICIAN, idempotency_key="retry-1", request_fingerprint="f1")
    first, second = (_register(built, keyed, "MRN-AGAIN") for _ in range(2))
    # Then the second is the first's outcome, marked as repeated, and nothing is written
    assert second.replayed and not first.replayed
    assert second.body() == first.body()
    assert built.ledger.recorder.max_notification_id() == first.position + 1
    # When it is disclosed
    disclosed = second.disclose()
    # Then it is the first answer's bytes, under an access record of its own that names
    # the same digest, written after the first write's record
    assert disclosed.body == first.disclose().body
    assert disclosed.access_id != first.disclose().access_id
    record = built.ledger.load(AccessRecord, disclosed.access_id, "access record")
    assert record.action == "write"
    assert record.response_sha256 == hashlib.sha256(disclosed.body).hexdigest()
    assert built.ledger.recorder.max_notification_id() == first.position + 2
