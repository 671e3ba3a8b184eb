"""Access records, written before any PHI leaves, in shared transactions.

``Disclosures.disclose`` renders the response body to its exact bytes, hashes them,
and returns them only after the access record naming that hash is durable. If the
record cannot be written, the caller gets ``AuditUnavailable`` (503) and no body.

Group commit: records from concurrent requests are saved together, by a ``Batcher``:
whatever queued while the previous commit ran is saved as one transaction (one table
lock, one fsync), and each waiting request is released only after that commit returns,
so nothing is acknowledged before it is durable.

A clinical write's record is made inside the write's own transaction instead
(``WriteAttestation``, ``attested_writes``), and its answer is a ``DisclosedWrite``.
"""

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any
from uuid import UUID

import orjson
from eventsourcing.persistence import Tracking

from application.access.policy import Decision

# Moved to disclosure_rendering; re-exported until subscriptions, the deliveries view
# and api.responses import it there.
from application.charts.disclosure_rendering import render as render  # noqa: PLC0414
from application.context import RequestContext
from application.errors import AuditUnavailable, Forbidden
from application.ledger.batcher import Batcher, BatcherClosed, Ticket
from application.ledger.ledger import WriteOutcome
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


@dataclass(frozen=True)
class AccessBatch:
    """One caller's records, and a tracking record to commit with them (then alone)."""

    records: Sequence[AccessRecord.Recorded]
    tracking: Tracking | None = None

    def size(self) -> int:
        return len(self.records)

    def tracked(self) -> bool:
        return self.tracking is not None


# Saves new events, and a tracking record if any, in one transaction (the ledger's).
SaveEvents = Callable[[Sequence[AccessRecord.Recorded], Tracking | None], None]


class GroupCommit:
    """The access log's batcher, failing closed: a record not committed is
    ``AuditUnavailable`` (503, no body) for every caller who waits for it."""

    def __init__(self, save: SaveEvents, *, max_batch: int = 512, timeout: float = 10.0):
        self.save = save
        # max_batch: records per commit (one caller's are never split).
        self.batcher: Batcher[AccessBatch, None] = Batcher(
            self._save,
            name="access-group-commit",
            max_size=max_batch,
            timeout=timeout,
            size=AccessBatch.size,
            alone=AccessBatch.tracked,
        )

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
        if not records:
            return _nothing
        try:
            return _Durable(self.batcher.submit(AccessBatch(records, tracking)))
        except BatcherClosed:
            raise AuditUnavailable() from None

    def close(self) -> None:
        self.batcher.close()

    def _save(self, batch: Sequence[AccessBatch]) -> list[None]:
        self.save([record for each in batch for record in each.records], batch[0].tracking)
        return [None] * len(batch)


def _nothing() -> None:
    return None


@dataclass(frozen=True)
class _Durable:
    ticket: Ticket[None]

    def __call__(self) -> None:
        try:
            self.ticket.wait()
        except Exception:
            raise AuditUnavailable() from None


@dataclass(frozen=True)
class WriteAttestation:
    """A clinical write's access record (an ``attested_writes.Attestation``): all of it
    known before the write but the position the write reaches, which only the write's
    own transaction knows."""

    access_id: UUID
    ctx: RequestContext
    patient_id: UUID
    clock: Clock

    def record(self, result: dict[str, Any], position: int) -> AccessRecord.Recorded:
        """Made in the write's transaction: its digest covers the answer, position and all."""
        return access_record(
            self.clock(),
            self.access_id,
            self.ctx,
            "write",
            # Writes are admitted only within the actor's own organisation.
            replace(WRITE_ADMITTED, care_organisation=self.ctx.actor.org),
            self.patient_id,
            (),
            {str(self.patient_id): int(result.get("version", 0))},
            {"view": "write"},
            hashlib.sha256(render(WriteOutcome(result, position).body())).hexdigest(),
        )


@dataclass(frozen=True)
class DisclosedWrite(WriteOutcome):
    """A clinical write's outcome, and its answer as it is disclosed (``disclose``)."""

    attestation: WriteAttestation = field(kw_only=True)
    writer: GroupCommit = field(kw_only=True)

    def disclose(self) -> Disclosed:
        """The answer's exact bytes, which its access record hashed. The record committed
        with the write, unless this answer is repeated from an idempotency claim (its
        write committed earlier): that is a disclosure of its own, recorded now, before
        the bytes leave."""
        if self.replayed:
            self.writer.write(self.attestation.record(self.result, self.position))
        return Disclosed(render(self.body()), self.attestation.access_id)


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
            self._record_of(
                ctx, access_id, action, decision, patient_id, entry_ids, stream_versions,
                request, rendered,
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
            access_record(
                self.clock(),
                self.new_id(),
                ctx,
                action,
                decision,
                patient_id,
                (),
                stream_versions,
                request,
                sha256,
            )
            for patient_id in each
        ]
        self.writer.write(*records)
        return Disclosed(rendered, records[0].originator_id)

    def submit_bytes(
        self,
        ctx: RequestContext,
        *,
        action: str,
        body: bytes,
        decision: Decision,
        patient_id: UUID,
        entry_ids: Sequence[str],
        stream_versions: dict[str, int],
        request: dict[str, Any],
    ) -> tuple[UUID, Callable[[], None]]:
        """The record of bytes that are not one JSON document (a bulk export's NDJSON
        lines), queued; the call returned waits until it is durable, so an exporter goes
        on while it commits and serves nothing before every wait has returned."""
        access_id = self.new_id()
        record = self._record_of(
            ctx, access_id, action, decision, patient_id, entry_ids, stream_versions, request, body
        )
        return access_id, self.writer.submit(record)

    def attest_write(self, ctx: RequestContext, patient_id: UUID) -> WriteAttestation:
        """The access record of a clinical write, for the ledger to make inside the
        write's own transaction once its position is known (``CareLedger.commit``)."""
        return WriteAttestation(self.new_id(), ctx, patient_id, self.clock)

    def answer_write(self, attestation: WriteAttestation, outcome: WriteOutcome) -> DisclosedWrite:
        """A clinical write's outcome, with the answer to disclose of it."""
        return DisclosedWrite(
            outcome.result,
            outcome.position,
            outcome.replayed,
            attestation=attestation,
            writer=self.writer,
        )

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
        record = self._record_of(
            ctx, access_id, action, decision, patient_id, entry_ids, stream_versions, request,
            rendered,
        )  # fmt: skip
        return Delivery(rendered, access_id, record)

    def _record_of(
        self,
        ctx: RequestContext,
        access_id: UUID,
        action: str,
        decision: Decision,
        patient_id: UUID | None,
        entry_ids: Sequence[str],
        stream_versions: dict[str, int] | None,
        request: dict[str, Any] | None,
        disclosed: bytes,
    ) -> AccessRecord.Recorded:
        """The record of one patient's disclosure of exactly these bytes, made now."""
        sha256 = hashlib.sha256(disclosed).hexdigest()
        return access_record(
            self.clock(), access_id, ctx, action, decision, patient_id, entry_ids,
            stream_versions, request, sha256,
        )  # fmt: skip

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
        record = access_record(
            self.clock(), self.new_id(), ctx, action, decision, patient_id, (), None, request, None
        )
        self.writer.write(record)
        refusal = Forbidden(decision.reason)
        refusal.recorded = True
        return refusal


def access_record(
    at: datetime,
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
        by=Provenance(ctx.actor.id, at),
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
        channel=ctx.channel,
    )
