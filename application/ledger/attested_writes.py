"""A clinical write and its access record, in one transaction.

The answer to a write names the position the write reached, and its access record
holds the SHA-256 of that answer, so the record can only be made once the write's
events have their positions. Written separately, that cost every write a second
transaction: a second table lock, a second commit to wait for. Instead the recorder
hands the positions to ``Attestations`` inside the write's own transaction (see
``ports.FollowUp``): it asks each write's ``Attestation`` for its record there, and
the recorder inserts and chains the records before the one commit. A write is then
never durable without its record, nor its record without the write.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol
from uuid import UUID

from eventsourcing.persistence import Mapper, Notification, Recording, StoredEvent

from application.errors import AuditUnavailable
from domain.access_record import AccessRecord


class Attestation(Protocol):
    """One write's access record, all but its position known before the write
    (``access_log.WriteAttestation``)."""

    def record(
        self, result: dict[str, Any], position: int
    ) -> AccessRecord.Recorded | list[AccessRecord.Recorded]:
        """The record of the answer ``result`` at ``position`` (one per patient of a
        write over several). A transaction refused
        and written again asks again: the record is of the attempt that commits."""
        ...


@dataclass(frozen=True)
class Attested:
    """A write in the transaction that its access record is made for."""

    last: int  # the index, among the transaction's events, of the write's last event
    result: dict[str, Any]
    attestation: Attestation


class Attestations:
    """The records of the attested writes in one transaction (a ``ports.FollowUp``)."""

    def __init__(self, mapper: Mapper[UUID], writes: Sequence[Attested]) -> None:
        self.mapper = mapper
        self.writes = writes
        self._made: list[tuple[AccessRecord.Recorded, StoredEvent]] = []
        self._positions: list[int] = []

    def events(self, positions: Sequence[int]) -> Sequence[StoredEvent]:
        try:
            records = []
            for w in self.writes:
                made = w.attestation.record(w.result, positions[w.last])
                # A write over several patients has one record per patient.
                records += made if isinstance(made, list) else [made]
            self._made = [(record, self.mapper.to_stored_event(record)) for record in records]
        except Exception as error:
            # The whole transaction rolls back: no write without its record, and the
            # callers get 503 with nothing disclosed.
            raise AuditUnavailable() from error
        self._positions = []
        return [stored for _, stored in self._made]

    def recorded(self, positions: Sequence[int]) -> None:
        self._positions = list(positions)

    def recordings(self) -> list[Recording[UUID]]:
        """The records as the library reports saved events, for the ledger's followers."""
        return [
            Recording(
                record,
                Notification(
                    id=position,
                    originator_id=stored.originator_id,
                    originator_version=stored.originator_version,
                    topic=stored.topic,
                    state=stored.state,
                ),
            )
            for (record, stored), position in zip(self._made, self._positions, strict=True)
        ]
