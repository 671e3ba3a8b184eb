"""Ports the application needs from outside. Adapters live in ``infrastructure``."""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable
from uuid import UUID

from eventsourcing.persistence import StoredEvent

Clock = Callable[[], datetime]
"""Returns the current time in UTC. Injected so that tests control time."""

NewId = Callable[[], UUID]
"""Returns a fresh random id (uuid4 in production)."""

NewPatientId = Callable[[], UUID]
"""Returns a fresh random id for a new patient, whose data key the store may already
hold (``KeyRing.new_patient_id`` in production)."""


@dataclass(frozen=True)
class IdempotencyClaim:
    """Written in the same transaction as the events it guards."""

    scope: str  # sha256 of actor id and Idempotency-Key: no raw key at rest
    fingerprint: str  # sha256 of the request, to detect a reused key
    stream_id: UUID  # the last stream written, to find its log position on replay
    stream_version: int
    result: bytes  # the JSON result, minus the log position


@dataclass(frozen=True)
class IdempotentOutcome:
    fingerprint: str
    result: bytes
    position: int | None


@runtime_checkable
class IdempotencyRecords(Protocol):
    """Looks up claims written atomically with events by the recorder."""

    def find_outcome(self, scope: str) -> IdempotentOutcome | None: ...

    def claimed_scopes(self, scopes: Sequence[str]) -> set[str]:
        """Which of these scopes hold a claim, in one lookup."""


@runtime_checkable
class StreamLookup(Protocol):
    def existing_streams(self, stream_ids: Sequence[UUID]) -> set[UUID]:
        """Which of these streams have any record in the log."""
        ...

    def select_versions(self, stream_id: UUID, versions: Sequence[int]) -> list[StoredEvent]:
        """These versions of one stream, in version order (missing ones are left out)."""
        ...


@runtime_checkable
class PatientKeys(Protocol):
    """The per-patient data keys. Destroying one crypto-shreds the patient."""

    def destroy(self, patient_id: UUID) -> bool:
        """Destroy the key; True if it existed. Idempotent."""
        ...


SNAPSHOTS = "careledger_snapshots"
"""The keyword a save passes the snapshots its events bring due to a
``SnapshotsAlongside`` recorder with: a call that returns them sealed, made once the
save's events are."""


@runtime_checkable
class SnapshotsAlongside(Protocol):
    """A recorder that inserts a save's snapshots in the save's own transaction: no
    commit (and no fsync) of their own, and no write acknowledged whose snapshot then
    failed."""

    def snapshot_into(self, snapshot_recorder: object) -> None:
        """Where the snapshots go: the snapshot store's recorder, on the same database."""
        ...


FOLLOW_UP = "follow_up"
"""The keyword a save passes its ``FollowUp`` to the recorder with."""


class FollowUp(Protocol):
    """Records that can only be made once a transaction's events have their positions,
    written in that same transaction: the access record of a write, whose digest covers
    the response that names the write's position. One transaction, one lock, one commit
    for a write and its record, rather than two."""

    def events(self, positions: Sequence[int]) -> Sequence[StoredEvent]:
        """Given the positions of the transaction's events, in order: what to add."""
        ...

    def recorded(self, positions: Sequence[int]) -> None:
        """The positions the added records were given (before the commit)."""
        ...
