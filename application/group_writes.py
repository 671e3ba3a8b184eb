"""Group commit for commands: concurrent saves share one transaction.

The library serialises writers with a table lock, so one commit at a time: about a
thousand single-event saves a second here, however many requests wait. A committer
thread takes every save queued while the previous commit ran and writes them as one
transaction (one lock, one fsync); each caller waits for that commit, so nothing is
acknowledged before it is durable. A save that discloses PHI in its answer (a clinical
write) brings its access record along, made in that same transaction once the save has
its position (``attested_writes``): the writes and their records take the lock once.

One caller's conflict must not fail the others. If the shared transaction is refused
(a stale version, an Idempotency-Key claimed twice), the group is written again one
save per transaction, and only the conflicting caller gets its ``IntegrityError``
(a 409, or a retry on fresh state, as without grouping).
"""

import threading
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from eventsourcing.application import ProcessingEvent
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import IntegrityError, Recording

from application.attested_writes import Attestation
from application.ports import IdempotencyClaim

Recordings = list[Recording[UUID]]


@dataclass
class PendingSave:
    events: ProcessingEvent[UUID]
    claim: IdempotencyClaim | None
    attestation: Attestation | None = None  # its access record, made in its transaction
    done: Future[Recordings] = field(default_factory=Future)

    @classmethod
    def of(
        cls,
        aggregates: Sequence[Aggregate],
        claim: IdempotencyClaim | None,
        attestation: Attestation | None,
    ) -> "PendingSave":
        events: ProcessingEvent[UUID] = ProcessingEvent()
        events.collect_events(*aggregates)
        if attestation is not None and not events.events:
            raise ValueError("an attested write must save at least one event")
        return cls(events, claim, attestation)


class GroupWrites:
    def __init__(self, ledger: Any, *, max_group: int = 128, timeout: float = 30.0) -> None:
        self.ledger = ledger  # a CareLedger (not imported: the ledger imports this module)
        self.max_group = max_group
        self.timeout = timeout
        self._queue: list[PendingSave] = []
        self._ready = threading.Condition()
        self._closed = False
        self.commits = 0
        self.saves = 0
        self.regrouped = 0  # groups written again one save at a time after a conflict
        self._thread = threading.Thread(target=self._run, name="group-writes", daemon=True)
        self._thread.start()

    def save(
        self,
        aggregates: Sequence[Aggregate],
        claim: IdempotencyClaim | None,
        attestation: Attestation | None = None,
    ) -> Recordings:
        """Durable when it returns, with its access record if attested; raises this
        save's own ``IntegrityError``."""
        queued = PendingSave.of(aggregates, claim, attestation)
        with self._ready:
            if self._closed:
                raise RuntimeError("group writes are closed")
            self._queue.append(queued)
            self._ready.notify()
        return queued.done.result(self.timeout)

    def close(self) -> None:
        with self._ready:
            self._closed = True
            self._ready.notify()
        self._thread.join(5)

    def _run(self) -> None:
        while True:
            with self._ready:
                while not self._queue and not self._closed:
                    self._ready.wait()
                if self._closed and not self._queue:
                    return
                group = self._queue[: self.max_group]
                del self._queue[: self.max_group]
            self._commit(group)

    def _commit(self, group: Sequence[PendingSave]) -> None:
        if len(group) > 1:
            try:
                recordings = self._write(group)
            except IntegrityError:
                self.regrouped += 1  # someone's conflict: each on its own, below
            except Exception as error:  # the store is down: everyone fails closed
                for save in group:
                    save.done.set_exception(error)
                return
            else:
                by_event = {id(r.domain_event): r for r in recordings}
                for save in group:
                    save.done.set_result([by_event[id(e)] for e in save.events.events])
                return
        for save in group:
            try:
                save.done.set_result(self._write([save]))
            except Exception as error:
                save.done.set_exception(error)

    def _write(self, group: Sequence[PendingSave]) -> Recordings:
        recordings: Recordings = self.ledger.record_saves(group)
        self.commits += 1
        self.saves += len(group)
        return recordings
