"""A command's save awaited on the event loop rather than waited for in a thread.

A route run in a worker thread costs two thread hops per request, and the thread sits
parked on the group commit's future meanwhile; under load that was about half the
server's CPU (the event loop's hand-offs and the threads' wake-ups). A command whose
chart this process has cached needs no store read before its save, so it can run on the
loop itself and await its ticket, which the committer resolves there.

Only that case runs here: anything that would read the store (a chart not cached, an
Idempotency-Key to look up, a lost race to load fresh state for) answers ``None``
before anything is committed, and the caller runs the blocking path in a thread, as
before. Nothing is acknowledged before its commit has returned.
"""

from collections.abc import Sequence
from typing import Any

from eventsourcing.domain import Aggregate
from eventsourcing.persistence import IntegrityError

from application.context import RequestContext
from application.ledger.attested_writes import Attestation
from application.ledger.group_writes import PendingSave
from application.ledger.ledger import CareLedger, WriteOutcome, failed_commits_answered


def can_await(ledger: CareLedger, ctx: RequestContext) -> bool:
    """Whether a save may be awaited on the loop: a committer runs, and no
    Idempotency-Key asks for a store look-up (nor a claim that may collide)."""
    return ledger.group_writes is not None and not ctx.idempotency_key


async def commit_awaited(
    ledger: CareLedger,
    aggregates: Sequence[Aggregate],
    result: dict[str, Any],
    attestation: Attestation | None,
) -> WriteOutcome | None:
    """``CareLedger.commit`` of a save without an idempotency claim, awaited; None if a
    concurrent writer got to a stream first (nothing committed: the caller's blocking
    path retries on fresh state)."""
    group = ledger.group_writes
    assert group is not None, "can_await checks for a committer"
    save = PendingSave.of(aggregates, None, result, attestation)
    try:
        with failed_commits_answered():
            recordings = await group.submit(save).outcome()
    except IntegrityError:
        return None
    return WriteOutcome(save.result, max(r.notification.id for r in recordings))
