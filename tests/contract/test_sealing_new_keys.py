"""A new patient's data key is stored before or with the first events sealed under it,
on SQLite and PostgreSQL, never after them (events nobody can decrypt), and never lost
to a failed attempt.

The service takes a new patient's id from the key ring, with its key stored already, a
batch of keys per transaction (``KeyRing.new_patient_id``). Any other new id's key is
written in the same transaction as the first events sealed under it (staged keys).
"""

import os
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from uuid import RFC_4122, UUID, uuid4

import pytest
from eventsourcing.persistence import IntegrityError, OperationalError, StoredEvent

from api.bootstrap import build
from api.container import Container
from domain.patient import Patient
from domain.values import ContactDetails, HumanName, Provenance
from domain.vocabulary import AdministrativeSex
from infrastructure.keys import RESERVE_BATCH, WrappedKey
from tests.conftest import make_settings
from tests.contract.forking import report_from_forked_child
from tests.contract.raw_store import RawStore
from tests.contract.stories import record_heart_rate, register


class Injected(Exception):
    """A failure between writing the key and committing the events."""


@pytest.fixture
def raw(database_url: str) -> RawStore:
    return RawStore(database_url)


@pytest.fixture
def other_process(database_url: str, tmp_path: Path) -> Iterator[Container]:
    """A second service on the same store: its own key ring, cache and staging area."""
    built = build(make_settings(database_url, tmp_path / "var-other"))
    try:
        yield built
    finally:
        built.close()


def _key_rows(raw: RawStore, key_id: UUID) -> list[tuple[Any, ...]]:
    with raw.as_superuser() as conn:
        return raw.run(
            conn,
            f"SELECT wrapped FROM {raw.keys} WHERE key_id = ?",
            (raw.stored_id(key_id),),
        )


def _event_rows(raw: RawStore, stream_id: UUID) -> list[tuple[Any, ...]]:
    with raw.as_superuser() as conn:
        return raw.run(
            conn,
            f"SELECT originator_version FROM {raw.events} WHERE originator_id = ?",
            (raw.stored_id(stream_id),),
        )


def _registration(patient_id: UUID) -> Patient:
    return Patient.register(
        patient_id=patient_id,
        consent_id=uuid4(),
        organisation_id="org-main",
        mrn="MRN-NEW",
        name=HumanName(given="Ada", family="Example"),
        birth_date=date(1984, 7, 12),
        sex=AdministrativeSex.FEMALE,
        contact=ContactDetails(phone="+1-555-0100"),
        by=Provenance("registrar-1", datetime(2026, 3, 2, tzinfo=UTC)),
    )


def _sealed_registration(container: Container) -> tuple[Patient, list[StoredEvent]]:
    """A new patient's events, sealed as a save seals them (which stages the new key)."""
    patient = _registration(uuid4())
    stored = [container.ledger.mapper.to_stored_event(e) for e in patient.collect_events()]
    return patient, stored


def _fail_once_after_the_key(
    monkeypatch: pytest.MonkeyPatch, container: Container, error: Exception
) -> list[int]:
    """Raise ``error`` from the first attempt, inside its transaction: on both backends
    the chain links are computed after the key and the events are written."""
    recorder: Any = container.ledger.recorder
    links = recorder._links
    attempts: list[int] = []

    def failing_once(*args: Any) -> Any:
        attempts.append(1)
        if len(attempts) == 1:
            raise error
        return links(*args)

    monkeypatch.setattr(recorder, "_links", failing_once)
    return attempts


def _all_key_ids(raw: RawStore) -> set[str]:
    with raw.as_superuser() as conn:
        return {str(row[0]) for row in raw.run(conn, f"SELECT key_id FROM {raw.keys}", ())}


def test_a_registration_through_the_service_seals_under_a_key_stored_before_it(
    container: Container, raw: RawStore, other_process: Container
) -> None:
    # When a patient is registered through the service
    patient_id = register(container)
    # Then their key is stored once, nothing stays staged, and another process (which
    # never held the key in memory) reads the chart
    assert len(_key_rows(raw, patient_id)) == 1
    assert container.ledger.recorder.keys.staged(patient_id) is None  # type: ignore[attr-defined]
    assert other_process.ledger.repository.get(patient_id).id == patient_id


def test_new_patients_keys_are_stored_a_batch_at_a_time_ahead_of_their_events(
    container: Container, raw: RawStore
) -> None:
    before = _all_key_ids(raw)
    # When the first new patient's id is taken
    first = container.keys.new_patient_id()
    # Then a batch of keys was stored at once, this id's among them, with no event yet
    stored = _all_key_ids(raw) - before
    assert len(stored) == RESERVE_BATCH and raw.stored_id(first) in stored
    assert _event_rows(raw, first) == []
    # And the rest of the batch is handed out without storing more, each id distinct
    rest = [container.keys.new_patient_id() for _ in range(RESERVE_BATCH - 1)]
    assert _all_key_ids(raw) - before == stored
    assert {raw.stored_id(i) for i in [first, *rest]} == stored
    # And the next id starts a new batch
    container.keys.new_patient_id()
    assert len(_all_key_ids(raw) - before) == 2 * RESERVE_BATCH


def test_new_patients_ids_and_keys_are_random_and_independent(container: Container) -> None:
    # When a batch and more of new patients' ids are taken (one draw from the OS makes
    # a batch's ids and keys)
    ids = [container.keys.new_patient_id() for _ in range(RESERVE_BATCH + 3)]
    keys = [container.keys.raw(patient_id) for patient_id in ids]
    # Then each id is a random (version 4) UUID and each key 256 bits, all distinct
    assert len(set(ids)) == len(ids) and {i.version for i in ids} == {4}
    assert {i.variant for i in ids} == {RFC_4122}
    assert len(set(keys)) == len(keys) and {len(k) for k in keys} == {32}
    # And no key holds six bytes of any id (those the version bits leave alone): neither
    # is cut from the other
    runs = {run for i in ids for run in (i.bytes[:6], i.bytes[10:])}
    assert not any(k[at : at + 6] in runs for k in keys for at in range(27))


def test_a_registration_saved_after_its_key_left_the_cache_seals_under_the_stored_key(
    container: Container, raw: RawStore, other_process: Container
) -> None:
    # Given a reserved id whose unwrapped key has since left the cache (a retry after
    # the time bound, or after many other patients)
    patient_id = container.keys.new_patient_id()
    container.keys._cache.clear()
    # When the registration is saved
    container.ledger.save(_registration(patient_id))
    # Then it is sealed under the key stored for that id, not a fresh one: nothing was
    # staged, one key row, and another process decrypts it
    assert container.ledger.recorder.keys.staged(patient_id) is None  # type: ignore[attr-defined]
    assert len(_key_rows(raw, patient_id)) == 1
    assert other_process.ledger.repository.get(patient_id).id == patient_id


def test_a_forked_process_hands_out_none_of_the_ids_its_parent_reserved(
    container: Container, raw: RawStore
) -> None:
    # Given a pool of reserved ids filled by the parent process
    container.keys.new_patient_id()
    parents_pool = {pooled[0] for pooled in container.keys._pool}
    assert parents_pool
    # When the process forks, the child starts with no pool
    left_in_child = report_from_forked_child(lambda: str(len(container.keys._pool)).encode())
    assert left_in_child == b"0"
    # And when a child takes a new patient's id (its fork hook run here, because a
    # forked child cannot share this process's database connections)
    container.keys._start_in_this_process()
    child_id = container.keys.new_patient_id()
    # Then it is from a batch of its own, stored for it, and none of the parent's
    assert child_id not in parents_pool
    assert not parents_pool & {pooled[0] for pooled in container.keys._pool}
    assert len(_key_rows(raw, child_id)) == 1


def test_a_failure_after_the_key_leaves_neither_key_nor_events_and_a_later_save_writes_both(
    container: Container,
    raw: RawStore,
    other_process: Container,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    recorder: Any = container.ledger.recorder
    patient, stored = _sealed_registration(container)
    _fail_once_after_the_key(monkeypatch, container, Injected())
    # When the first transaction fails after writing the key and the events
    with pytest.raises(Injected):
        recorder.insert_events(stored)
    # Then nothing of it is stored, and the key is still staged, not taken as stored
    assert _key_rows(raw, patient.id) == [] and _event_rows(raw, patient.id) == []
    assert recorder.keys.staged(patient.id) is not None
    # When the same events are saved again
    recorder.insert_events(stored)
    # Then the key is written with them, exactly once, and is no longer staged
    assert len(_key_rows(raw, patient.id)) == 1 and len(_event_rows(raw, patient.id)) == 1
    assert recorder.keys.staged(patient.id) is None
    # And another process, which never saw the staged key, decrypts the events
    assert other_process.ledger.repository.get(patient.id).id == patient.id


def test_a_retried_transaction_writes_the_key_again(
    container: Container, raw: RawStore, other_process: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a first attempt that fails as an outage would (OperationalError)
    recorder: Any = container.ledger.recorder
    patient, stored = _sealed_registration(container)
    attempts = _fail_once_after_the_key(monkeypatch, container, OperationalError("injected"))
    # When the events are saved: PostgreSQL's recorder retries by itself (@retry); on
    # SQLite the library does not, so the caller tries again
    if raw.postgres:
        recorder.insert_events(stored)
    else:
        with pytest.raises(OperationalError):
            recorder.insert_events(stored)
        recorder.insert_events(stored)
    # Then the second attempt wrote the key as well as the events
    assert len(attempts) == 2
    assert len(_key_rows(raw, patient.id)) == 1 and len(_event_rows(raw, patient.id)) == 1
    assert other_process.ledger.repository.get(patient.id).id == patient.id


def test_events_are_refused_if_another_key_is_stored_under_their_key_id(
    container: Container, raw: RawStore
) -> None:
    # Given a key stored already under the new patient's id, not the one staged
    recorder: Any = container.ledger.recorder
    patient, stored = _sealed_registration(container)
    staged = recorder.keys.staged(patient.id)
    recorder.keys.insert_if_absent(WrappedKey(patient.id, staged.kek_id, os.urandom(60)))
    # When the events sealed under the staged key are saved
    # Then they are refused: insert-if-absent alone would leave them undecryptable
    with pytest.raises(IntegrityError, match="data key"):
        recorder.insert_events(stored)
    assert _event_rows(raw, patient.id) == []
    [(wrapped,)] = _key_rows(raw, patient.id)
    assert bytes(wrapped) != staged.wrapped


def test_a_key_stored_by_an_unconfirmed_commit_is_not_a_clash(
    container: Container, raw: RawStore
) -> None:
    # Given a registration whose commit succeeded, but whose key is staged again, as
    # if the commit had not been confirmed (a connection lost during COMMIT)
    recorder: Any = container.ledger.recorder
    patient, stored = _sealed_registration(container)
    recorder.insert_events(stored)
    with raw.as_superuser() as conn:
        [(kek_id, wrapped)] = raw.run(
            conn,
            f"SELECT kek_id, wrapped FROM {raw.keys} WHERE key_id = ?",
            (raw.stored_id(patient.id),),
        )
    recorder.keys.stage(WrappedKey(patient.id, kek_id, bytes(wrapped)))
    # When the patient's next event is saved, writing the key again
    record_heart_rate(container, patient.id, 61)
    # Then the identical stored key is accepted: one row, and nothing left staged
    assert len(_key_rows(raw, patient.id)) == 1 and len(_event_rows(raw, patient.id)) == 2
    assert recorder.keys.staged(patient.id) is None


def test_a_key_handed_out_is_not_held_in_memory_past_the_caches_time_bound(
    container: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given an id handed out, its registration never saved
    ring = container.keys
    now = [ring._clock()]  # on from the clock the service keys were loaded by
    monkeypatch.setattr(ring, "_clock", lambda: now[0])
    forgotten = ring.new_patient_id()
    assert forgotten in ring._reserved and forgotten in ring._cache
    # When more time than the cache's bound has passed and another id is handed out
    # (a second past it: now + bound - now can round to just under the bound in floats)
    now[0] += ring.cache_seconds + 1.0
    kept = ring.new_patient_id()
    # Then the first one's unwrapped key is no longer held, and the new one's is
    assert forgotten not in ring._reserved and kept in ring._reserved
    assert forgotten not in ring._cache and kept in ring._cache
