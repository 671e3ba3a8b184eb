"""A clinical write and its access record, in one transaction.

The answer to a write names the position the write reached, and its access record
holds the SHA-256 of that answer, so the record can only be made once the write's
events have their positions. Written separately, that cost every write a second
transaction: a second table lock, a second commit to wait for. Instead the recorder
hands the positions to an ``Attestations`` inside the write's own transaction (see
``ports.FollowUp``); it makes each write's record there, and the recorder inserts and
chains the records before the one commit. A write is then never durable without its
record, nor its record without the write.
"""

from collections.abc import Callable, Sequence
from typing import Any
from uuid import UUID

from eventsourcing.persistence import Mapper, Notification, Recording, StoredEvent

from application.errors import AuditUnavailable
from domain.access_record import AccessRecord

# Given the position a write reached: its access record, and what the caller answers
# with (the exact bytes the record's digest covers).
Attest = Callable[[int], tuple[AccessRecord.Recorded, Any]]


class Attestation:
    """One write's access record, made when its position is known.

    A transaction that is refused and written again makes it again; what the caller
    reads afterwards is from the attempt that committed, the last one.
    """

    def __init__(self, attest: Attest) -> None:
        self._attest = attest
        self.receipt: Any = None  # what the caller answers with, from the last attempt

    def make(self, position: int) -> AccessRecord.Recorded:
        record, self.receipt = self._attest(position)
        return record


class Attestations:
    """The records of the writes in one transaction (a ``ports.FollowUp``).

    ``pending`` pairs each attested write with the index, among the transaction's
    events, of its last event: the write's position is that event's.
    """

    def __init__(self, mapper: Mapper[UUID], pending: Sequence[tuple[int, Attestation]]) -> None:
        self.mapper = mapper
        self.pending = pending
        self._made: list[tuple[AccessRecord.Recorded, StoredEvent]] = []
        self._positions: list[int] = []

    def events(self, positions: Sequence[int]) -> Sequence[StoredEvent]:
        try:
            records = [attestation.make(positions[last]) for last, attestation in self.pending]
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
