"""The sealed log, on SQLite and PostgreSQL: encryption at rest, append-only tables,
tamper evidence, key rotation, crypto-shredding and a refused wrong master key."""

import base64
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from uuid import UUID, uuid4

import psycopg
import pytest
from eventsourcing.domain import Snapshot
from eventsourcing.persistence import Mapper
from fastapi.testclient import TestClient
from pydantic import SecretStr

from api.bootstrap import build, open_locked
from api.container import Container
from api.settings import ConfigError, Settings
from application.errors import DataKeyDestroyed, IntegrityViolation
from domain.patient import Patient
from infrastructure.chain import Head
from infrastructure.keys import LocalKeyEncryptionKey, rotate
from infrastructure.sealing import INTEGRITY_VIOLATIONS
from tests.conftest import auth, make_settings
from tests.contract.raw_store import RawStore
from tests.contract.stories import enrol, record_heart_rate, register

AUDITOR = auth("auditor", sub="auditor-1")
CANARY_MRN = "MRN-CANARY-7Q2"
T0 = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


def _settings(database_url: str, tmp_path: Path, master_key: bytes | None = None) -> Settings:
    settings = make_settings(database_url, tmp_path / "var")
    if master_key is not None:
        encoded = SecretStr(base64.b64encode(master_key).decode())
        settings = settings.model_copy(update={"master_key": encoded})
    return settings


@pytest.fixture
def raw(database_url: str) -> RawStore:
    return RawStore(database_url)


@pytest.fixture
def chart(container: Container) -> UUID:
    """A patient with a few entries, a membership and their consent stream."""
    patient_id = register(container, mrn=CANARY_MRN)
    for bpm in (60, 61, 62):
        record_heart_rate(container, patient_id, bpm)
    enrol(container, patient_id)
    return patient_id


def _reload(container: Container, stream_id: UUID) -> object:
    container.ledger.forget(stream_id)
    return container.ledger.repository.get(stream_id)


# Encryption at rest --------------------------------------------------------------------


def test_each_stored_record_carries_format_and_the_patients_key_id(
    container: Container, chart: UUID
) -> None:
    # Given a chart of several streams
    # When its records are read back raw from the store
    stored = container.ledger.recorder.select_events(chart)
    # Then each is format 1, names the patient's key, and holds no plaintext
    assert stored and all(s.state[0] == 1 for s in stored)
    assert {UUID(bytes=s.state[1:17]) for s in stored} == {chart}
    assert all(CANARY_MRN.encode() not in s.state for s in stored)


class _NoteAmended(Patient.Event):
    """An event class at its second version: the library stores its class version."""

    class_version = 2
    note: str


def test_what_is_sealed_is_exactly_what_the_librarys_own_mapper_would_store(
    container: Container, chart: UUID, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the chart's events and a snapshot of it, and the library's plain Mapper
    mapper = container.ledger.mapper
    library = Mapper(mapper.transcoder)
    events = [mapper.to_domain_event(s) for s in container.ledger.recorder.select_events(chart)]
    events.append(Snapshot.take(container.ledger.repository.get(chart)))
    events.append(
        _NoteAmended(
            originator_id=chart,
            originator_version=len(events) + 1,
            timestamp=T0,
            actor_id="clinician-7",
            note="revised",
        )
    )
    sealed_plaintexts: list[bytes] = []
    ring_aead = container.keys.aead

    class Watched:  # the data key's cipher, noting what it is given to seal
        def __init__(self, key_id: UUID, create: bool = False) -> None:
            self.aead = ring_aead(key_id, create=create)

        def encrypt(self, nonce: bytes, data: bytes, associated: bytes) -> bytes:
            sealed_plaintexts.append(data)
            return self.aead.encrypt(nonce, data, associated)

    monkeypatch.setattr(container.keys, "aead", Watched)
    for event in events:
        # When our mapper seals each one
        ours = mapper.to_stored_event(event)
        # Then it sealed the library's stored state, under the library's id, version
        # and topic: sealing changes nothing of the mapping it is given
        theirs = library.to_stored_event(event)
        assert sealed_plaintexts[-1] == theirs.state
        assert (ours.originator_id, ours.originator_version, ours.topic) == (
            theirs.originator_id,
            theirs.originator_version,
            theirs.topic,
        )
    assert len(sealed_plaintexts) == len(events) > 5
    assert b'"class_version":2' in sealed_plaintexts[-1].replace(b" ", b"")


def test_a_ciphertext_moved_to_another_row_is_an_integrity_violation(
    client: TestClient, container: Container, chart: UUID, raw: RawStore
) -> None:
    # Given a chart whose second record's ciphertext is copied over its third
    positions = raw.positions(chart)
    with raw.as_superuser() as conn:
        [(second,)] = raw.run(
            conn, f"SELECT state FROM {raw.events} WHERE {raw.id} = ?", (positions[1],)
        )
        raw.run(
            conn, f"UPDATE {raw.events} SET state = ? WHERE {raw.id} = ?", (second, positions[2])
        )
    before = INTEGRITY_VIOLATIONS._value.get()
    # When the chart is loaded afresh
    with pytest.raises(IntegrityViolation, match="failed authentication"):
        _reload(container, chart)
    # Then it is refused and counted; over HTTP it is a problem naming the violation
    assert INTEGRITY_VIOLATIONS._value.get() == before + 1
    container.ledger.forget(chart)
    response = client.get(f"/v1/patients/{chart}", headers=auth("clinician"))
    assert response.status_code == 500
    assert response.json()["title"] == "Integrity violation"
    assert CANARY_MRN not in response.text


# Append-only -----------------------------------------------------------------------------


def test_the_application_cannot_update_delete_or_truncate_the_log(
    container: Container, chart: UUID, raw: RawStore
) -> None:
    # Given a log with rows in every protected table
    container.ledger.take_snapshot(chart)
    refused = r"append-only|permission denied"
    for table, column in ((raw.events, "state"), (raw.snapshots, "state"), (raw.chain, "link")):
        # When the application role tries to change or remove them, it is refused
        for statement in (f"UPDATE {table} SET {column} = {column}", f"DELETE FROM {table}"):
            with raw.as_application() as conn, pytest.raises(Exception, match=refused):
                raw.run(conn, statement)
        if raw.postgres:
            with raw.as_application() as conn, pytest.raises(Exception, match=refused):
                raw.run(conn, f"TRUNCATE {table}")
            # Nor may it switch the guard off: it owns nothing.
            with raw.as_application() as conn, pytest.raises(Exception, match="owner"):
                raw.run(conn, f"ALTER TABLE {table} DISABLE TRIGGER ALL")
    # And on PostgreSQL even the owner is stopped by the triggers, not only by grants
    if raw.postgres:
        owner = raw.url.replace("careledger_app@", "careledger_owner@").split("?")[0]
        with psycopg.connect(owner, autocommit=True) as conn:
            for statement in (f"UPDATE {raw.events} SET state = state", f"TRUNCATE {raw.chain}"):
                with pytest.raises(psycopg.Error, match="append-only"):
                    conn.execute(statement)
    assert len(raw.positions()) > 0


# Tamper evidence -------------------------------------------------------------------------


def _verify(container: Container, anchored: Head | None = None) -> dict[str, object]:
    return container.chain.verify(anchored.as_json() if anchored else None)


def test_an_untouched_log_verifies_over_http(
    client: TestClient, container: Container, chart: UUID
) -> None:
    response = client.get("/v1/audit/verify", headers=AUDITOR)
    head = client.get("/v1/audit/head", headers=AUDITOR).json()["head"]
    checked_up_to = container.ledger.recorder.max_notification_id()
    forbidden = client.get("/v1/audit/verify", headers=auth("clinician"))  # audited: +1
    body = response.json()
    assert response.status_code == 200 and body["ok"] is True
    assert body["records_checked"] == checked_up_to
    assert body["head"] == head
    assert forbidden.status_code == 403


def test_a_flipped_byte_is_found_at_its_position(
    container: Container, chart: UUID, raw: RawStore
) -> None:
    target = raw.positions()[3]
    raw.flip_byte(target)
    result = _verify(container)
    assert result["ok"] is False and result["first_bad_position"] == target


def test_a_deleted_record_is_found(container: Container, chart: UUID, raw: RawStore) -> None:
    positions = raw.positions()
    # The record alone, or the record and its link: both are found
    raw.delete(positions[2])
    assert _verify(container)["first_bad_position"] == positions[2]
    raw.delete(positions[2], with_link=True)
    assert _verify(container)["first_bad_position"] == positions[3]


def test_a_forged_record_is_found(container: Container, chart: UUID, raw: RawStore) -> None:
    original = container.ledger.recorder.select_events(chart, limit=1)[0]
    forged = raw.forge(str(uuid4()), original.topic, original.state)
    result = _verify(container)
    assert result["ok"] is False and result["first_bad_position"] == forged


def test_two_swapped_records_are_found(container: Container, chart: UUID, raw: RawStore) -> None:
    positions = raw.positions()
    raw.swap(positions[1], positions[4])
    result = _verify(container)
    assert result["ok"] is False and result["first_bad_position"] == positions[1]


def test_a_truncated_tail_is_found_against_the_exported_head(
    container: Container, chart: UUID, raw: RawStore
) -> None:
    head = container.ledger.recorder.chain_head()
    assert head is not None
    for position in raw.positions()[-2:]:
        raw.delete(position, with_link=True)
    # Without the anchor the shortened chain is self-consistent; with it, it is not
    assert _verify(container)["ok"] is True
    result = _verify(container, head)
    assert result["ok"] is False and "tail was removed" in str(result["problem"])


# Key rotation ----------------------------------------------------------------------------


def test_rotation_rewraps_keys_resumably_and_changes_no_event_row(
    database_url: str, tmp_path: Path, raw: RawStore
) -> None:
    old_key, new_key = os.urandom(32), os.urandom(32)
    with _built(_settings(database_url, tmp_path, old_key)) as container:
        patients = [register(container, mrn=f"MRN-R{i}") for i in range(3)]
    rows_before = raw.digest(raw.events, raw.snapshots, raw.chain)
    old, new = LocalKeyEncryptionKey(old_key), LocalKeyEncryptionKey(new_key)
    ledger = open_locked(_settings(database_url, tmp_path, old_key))
    try:
        table = ledger.recorder.keys  # type: ignore[attr-defined]
        # Given a rotation interrupted after its first batch
        steps = rotate(table, old, new, batch_size=2)
        first = next(steps)
        next(steps)
        steps.close()
        assert 0 < table.count_not_wrapped_by(new.kek_id) < first.total
        # When it is run again, it finishes the rest
        finished = list(rotate(table, old, new, batch_size=2))
        assert finished[-1].done == finished[0].total
        assert table.count_not_wrapped_by(new.kek_id) == 0
    finally:
        ledger.close()
    # Then no event, snapshot or link changed, the new key alone opens everything
    assert raw.digest(raw.events, raw.snapshots, raw.chain) == rows_before
    with _built(_settings(database_url, tmp_path, new_key)) as container:
        for patient_id in patients:
            assert isinstance(_reload(container, patient_id), Patient)
        assert _verify(container)["ok"] is True
    # And the old key is refused
    with pytest.raises(ConfigError, match="CARELEDGER_MASTER_KEY"):
        build(_settings(database_url, tmp_path, old_key))


def test_a_wrong_master_key_refuses_to_start(database_url: str, tmp_path: Path) -> None:
    with _built(_settings(database_url, tmp_path, os.urandom(32))) as container:
        register(container)
    with pytest.raises(ConfigError) as refused:
        build(_settings(database_url, tmp_path, os.urandom(32)))
    message = str(refused.value)
    assert message.startswith("CARELEDGER_MASTER_KEY:") and "\n" not in message


# Crypto-shredding ------------------------------------------------------------------------


def test_erasure_shreds_every_stream_and_the_chain_still_verifies(
    client: TestClient, container: Container, chart: UUID, raw: RawStore
) -> None:
    other = register(container, mrn="MRN-OTHER")
    # When an admin erases the patient on legal grounds
    response = client.post(
        f"/v1/patients/{chart}/erase",
        json={"legal_basis": "GDPR art. 17 request REF-1"},
        headers=auth("admin"),
    )
    assert response.status_code == 202, response.text
    # Then every read of them is 410
    for path in (f"/v1/patients/{chart}", f"/v1/patients/{chart}/consents"):
        assert client.get(path, headers=auth("clinician")).status_code == 410
    again = client.post(
        f"/v1/patients/{chart}/erase", json={"legal_basis": "again"}, headers=auth("admin")
    )
    assert again.status_code == 410
    # While another patient is untouched
    assert client.get(f"/v1/patients/{other}", headers=auth("clinician")).status_code == 200
    # And none of their records can be decrypted, in any process
    fresh = container.ledger.mapper
    for stored in container.ledger.recorder.select_events(chart)[:-1]:
        with pytest.raises(DataKeyDestroyed):
            fresh.to_domain_event(stored)
    # The tombstone stays readable, and the chain still verifies
    tombstone = fresh.to_domain_event(container.ledger.recorder.select_events(chart)[-1])
    assert isinstance(tombstone, Patient.Erased)
    with raw.as_superuser() as conn:
        [(wrapped,)] = raw.run(
            conn,
            f"SELECT wrapped FROM {raw.keys} WHERE key_id = ?",
            (raw.stored_id(chart),),
        )
    assert wrapped is None
    assert _verify(container)["ok"] is True


def test_another_process_stops_using_an_erased_patients_key_within_its_cache_bound(
    container: Container,
    chart: UUID,
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a second service on the same store that has read the patient (key cached)
    other = build(make_settings(database_url, tmp_path / "var-other"))
    try:
        now = [1_000.0]
        monkeypatch.setattr(other.keys, "_clock", lambda: now[0])
        sealed = other.ledger.recorder.select_events(chart)[0]
        other.ledger.mapper.to_domain_event(sealed)
        # When this process erases the patient
        container.keys.destroy(chart)
        # Then the other still holds the key until the cache's time bound (a stated
        # limit), and once that has passed it refuses, without a restart
        other.ledger.mapper.to_domain_event(sealed)
        now[0] += other.keys.cache_seconds
        with pytest.raises(DataKeyDestroyed):
            other.ledger.mapper.to_domain_event(sealed)
    finally:
        other.close()


def test_erasure_is_for_admins_of_the_patients_organisation(
    client: TestClient, chart: UUID
) -> None:
    body = {"legal_basis": "request"}
    path = f"/v1/patients/{chart}/erase"
    assert client.post(path, json=body, headers=auth("clinician")).status_code == 403
    outsider = auth("admin", org="org-other")
    assert client.post(path, json=body, headers=outsider).status_code == 404
    assert client.post(path, json={}, headers=auth("admin")).status_code == 422
    assert client.get(f"/v1/patients/{chart}", headers=auth("clinician")).status_code == 200


@contextmanager
def _built(settings: Settings) -> Iterator[Container]:
    """A container for one step of a story, closed afterwards."""
    container = build(settings)
    try:
        yield container
    finally:
        container.close()
