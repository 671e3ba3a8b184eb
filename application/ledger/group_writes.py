"""Group commit for commands: concurrent saves share one transaction.

The library serialises writers with a table lock, so one commit at a time: about a
thousand single-event saves a second here, however many requests wait. Commands'
saves therefore go through a ``Batcher``, which writes those queued together as one
transaction (``CareLedger.record_saves``). A save that discloses PHI in its answer (a
clinical write) brings its access record along, made in that same transaction once the
save has its position (``attested_writes``): the writes and their records take the
lock once.

One caller's conflict must not fail the others. If the shared transaction is refused
(a stale version, an Idempotency-Key claimed twice), the group is written again one
save per transaction, and only the conflicting caller gets its ``IntegrityError``
(a 409, or a retry on fresh state, as without grouping).
"""

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from eventsourcing.application import ProcessingEvent
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import IntegrityError, Recording

from application.ledger.attested_writes import Attestation
from application.ledger.batcher import Batcher, Ticket
from application.ports import IdempotencyClaim

Recordings = list[Recording[UUID]]


@dataclass(frozen=True)
class PendingSave:
    """One command's save: its events, its claim, its result, and for a clinical write
    the access record to make of that result in the save's transaction."""

    events: ProcessingEvent[UUID]
    claim: IdempotencyClaim | None
    result: dict[str, Any]
    attestation: Attestation | None = None

    @classmethod
    def of(
        cls,
        aggregates: Sequence[Aggregate],
        claim: IdempotencyClaim | None,
        result: dict[str, Any],
        attestation: Attestation | None,
    ) -> "PendingSave":
        events: ProcessingEvent[UUID] = ProcessingEvent()
        for aggregate in aggregates:
            if type(aggregate).collect_events is Aggregate.collect_events:
                # As collect_events() would, without its runtime Protocol checks (two
                # per aggregate, as much CPU as the rest of this save's queueing).
                events.events.extend(aggregate.collect_events())
                events.aggregates[aggregate.id] = aggregate
            else:
                events.collect_events(aggregate)
        if attestation is not None and not events.events:
            raise ValueError("an attested write must save at least one event")
        return cls(events, claim, result, attestation)


class GroupWrites(Batcher[PendingSave, Recordings]):
    """The batcher for commands' saves: a group's conflict is found out one save at a
    time. ``record`` writes a group in one transaction; each save's recordings back."""

    def __init__(
        self,
        record: Callable[[Sequence[PendingSave]], Sequence[Recordings]],
        *,
        max_group: int = 128,
        timeout: float = 30.0,
    ) -> None:
        super().__init__(
            record, name="group-writes", max_size=max_group, timeout=timeout, isolate=IntegrityError
        )
        self._held = threading.local()  # per thread: what ``gather`` holds back

    # An importer plans its files one after another. Queued as each is planned, each
    # would be committed alone while the next is planned; held back and queued
    # together, they share one transaction (its lock, round trips and commit).

    def gather(self) -> None:
        """Hold this thread's saves back (``queue``) until ``release``."""
        self._held.saves = []

    def queue(self, save: PendingSave) -> Callable[[], Recordings]:
        """Queue the save, or hold it back while this thread gathers; the call returned
        waits for its commit (releasing what is held, if it is)."""
        held: list[tuple[PendingSave, list[Ticket[Recordings]]]] | None = getattr(
            self._held, "saves", None
        )
        if held is None:
            return self.submit(save).wait
        slot: list[Ticket[Recordings]] = []
        held.append((save, slot))

        def wait() -> Recordings:
            if not slot:
                self.release(gathering=True)  # its outcome is wanted now
            return slot[0].wait()

        return wait

    def release(self, *, gathering: bool = False) -> None:
        """Queue what this thread holds, together, in the order it was held; then hold
        back no more, unless ``gathering``."""
        held = getattr(self._held, "saves", None) or []
        self._held.saves = [] if gathering else None
        if held:
            tickets = self.submit_all([save for save, _ in held])
            for (_, slot), ticket in zip(held, tickets, strict=True):
                slot.append(ticket)
