"""Access records, written before any PHI leaves, in shared transactions.

``Disclosures.disclose`` renders the response body to its exact bytes, hashes them,
and returns them only after the access record naming that hash is durable. If the
record cannot be written, the caller gets ``AuditUnavailable`` (503) and no body.

Group commit: records from concurrent requests are saved together. One committer
thread takes whatever queued while the previous commit ran and saves it as one
transaction (one table lock, one fsync); each waiting request is released only after
that commit returns, so nothing is acknowledged before it is durable.
"""

import hashlib
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, replace
from typing import Any
from uuid import UUID

import orjson
from eventsourcing.persistence import Tracking

from application.context import RequestContext

# Moved to disclosure_rendering; re-exported until subscriptions, the deliveries view
# and api.responses import it there.
from application.disclosure_rendering import render as render  # noqa: PLC0414
from application.errors import AuditUnavailable, Forbidden
from application.ledger import CareLedger, WriteOutcome
from application.policy import Decision
from application.ports import Clock, NewId
from domain.access_record import AccessRecord
from domain.values import Provenance

WRITE_ADMITTED = Decision(True, "a clinical write admitted by the chart's rules")


@dataclass(frozen=True)
class Disclosed:
    body: bytes
    access_id: UUID
    version: int | None = None  # the stream version the body shows, for an ETag

    def json(self) -> Any:
        """The body parsed again, for callers inside the process (the CLI, tests)."""
        return orjson.loads(self.body)


@dataclass(frozen=True)
class Delivery:
    """One delivered message: its exact bytes and the access record naming their hash."""

    body: bytes
    access_id: UUID
    record: AccessRecord.Recorded


# Records, their waiter, and a tracking record to commit with them (then alone).
Submission = tuple[Sequence[AccessRecord.Recorded], Future[None], Tracking | None]


class GroupCommit:
    def __init__(self, ledger: CareLedger, *, max_batch: int = 512, timeout: float = 10.0):
        self.ledger = ledger
        self.max_batch = max_batch  # records per commit (one submission is never split)
        self.timeout = timeout
        self._queue: list[Submission] = []
        self._ready = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="access-group-commit", daemon=True)
        self._thread.start()
        self.commits = 0
        self.records = 0

    def write(self, *records: AccessRecord.Recorded) -> None:
        """Returns once every record is durable; raises ``AuditUnavailable`` otherwise."""
        self.submit(*records)()

    def submit(
        self, *records: AccessRecord.Recorded, tracking: Tracking | None = None
    ) -> Callable[[], None]:
        """Queue the records; the returned call waits until they are durable (or raises
        ``AuditUnavailable``), so a caller may work on while they commit. They commit
        together, in one transaction, possibly with other callers' records; with
        ``tracking``, alone, and with that tracking record in the same transaction."""
        done: Future[None] = Future()
        if not records:
            done.set_result(None)
        else:
            with self._ready:
                if self._closed:
                    raise AuditUnavailable()
                self._queue.append((records, done, tracking))
                self._ready.notify()
        deadline = time.monotonic() + self.timeout

        def durable() -> None:
            try:
                done.result(timeout=max(deadline - time.monotonic(), 0.0))
            except Exception:
                raise AuditUnavailable() from None

        return durable

    def close(self) -> None:
        with self._ready:
            self._closed = True
            self._ready.notify()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while True:
            with self._ready:
                while not self._queue and not self._closed:
                    self._ready.wait()
                if self._closed and not self._queue:
                    return
                taken, size = 0, 0
                while taken < len(self._queue) and (
                    taken == 0
                    or (
                        size + len(self._queue[taken][0]) <= self.max_batch
                        and self._queue[0][2] is None
                        and self._queue[taken][2] is None
                    )
                ):
                    size += len(self._queue[taken][0])
                    taken += 1
                batch = self._queue[:taken]
                del self._queue[:taken]
            self._commit(batch)

    def _commit(self, batch: Sequence[Submission]) -> None:
        records = [record for submitted, _, _ in batch for record in submitted]
        try:
            self.ledger.save_tracked(records, tracking=batch[0][2])
        except Exception as error:  # every waiter fails closed: 503, no body
            for _, done, _ in batch:
                done.set_exception(error)
            return
        self.commits += 1
        self.records += len(records)
        for _, done, _ in batch:
            done.set_result(None)


class Disclosures:
    """Writes the access record for each disclosure (and each denial)."""

    def __init__(self, writer: GroupCommit, clock: Clock, new_id: NewId) -> None:
        self.writer = writer
        self.clock = clock
        self.new_id = new_id

    def disclose(
        self,
        ctx: RequestContext,
        *,
        action: str,
        body: Any,
        decision: Decision,
        patient_id: UUID | None,
        entry_ids: Sequence[str] = (),
        stream_versions: dict[str, int] | None = None,
        request: dict[str, Any] | None = None,
        version: int | None = None,
    ) -> Disclosed:
        rendered = render(body)
        access_id = self.new_id()
        self.writer.write(
            self._record(
                access_id, ctx, action, decision, patient_id, entry_ids, stream_versions,
                request, hashlib.sha256(rendered).hexdigest(),
            )
        )  # fmt: skip
        return Disclosed(rendered, access_id, version)

    def disclose_each(
        self,
        ctx: RequestContext,
        *,
        action: str,
        body: Any,
        decision: Decision,
        patient_ids: Sequence[UUID],
        stream_versions: dict[str, int],
        request: dict[str, Any],
    ) -> Disclosed:
        """A response that discloses several patients: one access record for each of
        them (one, naming no patient, if it discloses none), all naming the same bytes,
        written together. The response names the first."""
        rendered = render(body)
        sha256 = hashlib.sha256(rendered).hexdigest()
        each: list[UUID | None] = list(patient_ids) or [None]
        records = [
            self._record(
                self.new_id(), ctx, action, decision, patient_id, (), stream_versions, request,
                sha256,
            )
            for patient_id in each
        ]  # fmt: skip
        self.writer.write(*records)
        return Disclosed(rendered, records[0].originator_id)

    def attest_write(
        self, ctx: RequestContext, patient_id: UUID
    ) -> Callable[[WriteOutcome], tuple[AccessRecord.Recorded, Disclosed]]:
        """The access record of a clinical write, made by the ledger inside the write's
        own transaction once its position is known (``CareLedger.commit``)."""

        def attest(outcome: WriteOutcome) -> tuple[AccessRecord.Recorded, Disclosed]:
            made = self.prepare(
                ctx,
                access_id=self.new_id(),
                action="write",
                body=outcome.body(),
                # Writes are admitted only within the actor's own organisation.
                decision=replace(WRITE_ADMITTED, care_organisation=ctx.actor.org),
                patient_id=patient_id,
                entry_ids=(),
                stream_versions={str(patient_id): int(outcome.result.get("version", 0))},
                request={"view": "write"},
            )
            return made.record, Disclosed(made.body, made.access_id)

        return attest

    def disclose_write(
        self, ctx: RequestContext, patient_id: UUID, outcome: WriteOutcome
    ) -> Disclosed:
        """A write's answer recorded on its own: one repeated from an idempotency claim,
        whose write committed earlier. The same record ``attest_write`` makes."""
        record, disclosed = self.attest_write(ctx, patient_id)(outcome)
        self.writer.write(record)
        return disclosed

    def prepare(
        self,
        ctx: RequestContext,
        *,
        access_id: UUID,
        action: str,
        body: Any,
        decision: Decision,
        patient_id: UUID,
        entry_ids: Sequence[str],
        stream_versions: dict[str, int],
        request: dict[str, Any],
    ) -> Delivery:
        """A message rendered and its record made, to be written with ``record_all``."""
        rendered = render(body)
        record = self._record(
            access_id, ctx, action, decision, patient_id, entry_ids, stream_versions, request,
            hashlib.sha256(rendered).hexdigest(),
        )  # fmt: skip
        return Delivery(rendered, access_id, record)

    def record_all(self, deliveries: Sequence[Delivery]) -> None:
        """Durable before any of them is sent (group-committed); else AuditUnavailable."""
        self.record_later(deliveries)()

    def record_later(
        self, deliveries: Sequence[Delivery], tracking: Tracking | None = None
    ) -> Callable[[], None]:
        """``record_all`` in two halves: queue now, wait for durability when called."""
        return self.writer.submit(*(d.record for d in deliveries), tracking=tracking)

    def refuse(
        self,
        ctx: RequestContext,
        *,
        action: str,
        decision: Decision,
        patient_id: UUID | None,
        request: dict[str, Any] | None = None,
    ) -> Forbidden:
        """Record a denied attempt; returns the 403 to raise, marked as recorded."""
        self.writer.write(
            self._record(self.new_id(), ctx, action, decision, patient_id, (), None, request, None)
        )
        refusal = Forbidden(decision.reason)
        refusal.recorded = True
        return refusal

    def _record(
        self,
        access_id: UUID,
        ctx: RequestContext,
        action: str,
        decision: Decision,
        patient_id: UUID | None,
        entry_ids: Sequence[str],
        stream_versions: dict[str, int] | None,
        request: dict[str, Any] | None,
        sha256: str | None,
    ) -> AccessRecord.Recorded:
        return AccessRecord.record(
            access_id=access_id,
            by=Provenance(ctx.actor.id, self.clock()),
            actor_role=str(ctx.actor.role),
            actor_org=ctx.actor.org,
            purpose=str(ctx.purpose),
            action=action,
            patient_id=str(patient_id) if patient_id else None,
            entry_ids=list(entry_ids),
            decision="permit" if decision.permit else "deny",
            reason=decision.reason,
            basis=decision.basis.as_json(),
            stream_versions=stream_versions or {},
            response_sha256=sha256,
            request=request or {},
            request_id=ctx.request_id,
            source=ctx.source,
            care_org=decision.care_organisation,
        )
