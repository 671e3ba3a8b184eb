"""The one batcher behind both group commits, on both backends: what queues together is
committed together, in queue order; a caller is answered only once its commit has
returned; and a failure reaches only the callers it concerns.

Each story holds the committer at a gate inside a first commit, so that what is queued
meanwhile is taken as one group when the gate opens.
"""

import asyncio
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
from eventsourcing.persistence import IntegrityError, Tracking

from api.container import Container
from application.access.access_log import AccessBatch, GroupCommit, access_record
from application.access.policy import Decision
from application.context import Actor, RequestContext, Role
from application.errors import AuditUnavailable
from application.ledger.batcher import Batcher, BatcherClosed, NotCommitted, OutcomeUnknown
from application.ledger.group_writes import GroupWrites, PendingSave
from domain.access_record import AccessRecord
from domain.patient import Patient
from domain.values import Coding, Provenance, TextValue
from domain.vocabulary import EntryKind, Purpose
from tests.conftest import ORG
from tests.contract.read_model_support import register

READER = RequestContext(Actor("dr-batch", Role.CLINICIAN, ORG), Purpose.TREAT, "req-batch")


class Held:
    """A commit step that waits at a gate on its first call, and notes what each call
    was given."""

    def __init__(self, commit: Callable[..., Any]) -> None:
        self.commit = commit
        self.entered = threading.Event()
        self.gate = threading.Event()
        self.calls: list[tuple[Any, ...]] = []

    def __call__(self, *args: Any) -> Any:
        self.entered.set()
        self.gate.wait(10)
        self.calls.append(args)
        return self.commit(*args)


def until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def a_record() -> AccessRecord.Recorded:
    permit = Decision(True, "a test read")
    return access_record(
        datetime.now(UTC), uuid.uuid4(), READER, "read", permit, None, (), None, None, None
    )


def stored(container: Container, record: AccessRecord.Recorded) -> bool:
    return bool(container.ledger.recorder.select_events(record.originator_id))


def an_entry_on(container: Container, patient_id: uuid.UUID) -> PendingSave:
    """A command's save, decided on the chart as the store holds it now."""
    chart = container.ledger.repository.get(patient_id)
    assert isinstance(chart, Patient)
    chart.record_entry(
        entry_id=uuid.uuid4(),
        kind=EntryKind.NOTE,
        code=Coding("http://loinc.org", "11506-3", "Progress note"),
        value=TextValue("seen"),
        effective_at=datetime(2026, 3, 1, tzinfo=UTC),
        modality=None,
        labels=frozenset(),
        by=Provenance("dr-batch", datetime.now(UTC)),
    )
    return PendingSave.of([chart], None, {}, None)


def test_what_queues_together_commits_together_in_queue_order(container: Container) -> None:
    charts = [register(container, f"MRN-O{i}") for i in range(5)]
    held = Held(container.ledger.record_saves)
    writes = GroupWrites(held)
    saves = [an_entry_on(container, chart) for chart in charts]
    try:
        # Given a first save held in its commit, and four more queued behind it in turn
        tickets = [writes.submit(saves[0])]
        assert held.entered.wait(10)
        tickets += [writes.submit(save) for save in saves[1:]]
        until(lambda: writes.waiting == 4)
        # When the commit is let go
        held.gate.set()
        results = [ticket.wait() for ticket in tickets]
    finally:
        writes.close()
    # Then the four were taken together, in the order they were queued, in one commit
    assert [group for (group,) in held.calls] == [saves[:1], saves[1:]]
    assert writes.commits == 2 and writes.committed == 5
    # And each caller got its own save's position, in the log in queue order
    assert [[r.domain_event.originator_id for r in result] for result in results] == [
        [chart] for chart in charts
    ]
    positions = [result[0].notification.id for result in results]
    assert positions == sorted(positions) and len(set(positions)) == 5


def test_no_caller_is_answered_before_its_commit_has_returned(container: Container) -> None:
    held = Held(container.ledger.save_events)
    writer = GroupCommit(held)
    records = [a_record() for _ in range(6)]
    answered: list[bool] = []
    try:
        # Given six callers' records, one held in its commit and five queued behind it
        tickets = [writer.batcher.submit(AccessBatch(records[:1]))]
        assert held.entered.wait(10)
        tickets += [writer.batcher.submit(AccessBatch((record,))) for record in records[1:]]
        until(lambda: writer.batcher.waiting == 5)
        # Then while the commit waits, none of them has an answer
        assert not any(ticket.done.done() for ticket in tickets)
        for ticket, record in zip(tickets, records, strict=True):
            # (noted at the moment each is answered: is its record in the store?)
            ticket.done.add_done_callback(
                lambda _, record=record: answered.append(stored(container, record))
            )
        held.gate.set()
        for ticket in tickets:
            ticket.wait()
    finally:
        writer.close()
    # And each was answered only once its record could be read back from the store
    assert answered == [True] * 6
    assert writer.batcher.commits == 2 and writer.batcher.committed == 6


def test_a_conflict_in_a_group_fails_only_its_own_caller(container: Container) -> None:
    first, second, third = (register(container, f"MRN-C{i}") for i in range(3))
    held = Held(container.ledger.record_saves)
    writes = GroupWrites(held)
    try:
        blocker = writes.submit(an_entry_on(container, third))
        assert held.entered.wait(10)
        # Given two commands decided on the same version of one chart, and one on another,
        # queued together
        stale = [an_entry_on(container, first), an_entry_on(container, first)]
        tickets = [writes.submit(save) for save in [*stale, an_entry_on(container, second)]]
        until(lambda: writes.waiting == 3)
        held.gate.set()
        results: list[object] = []
        for ticket in tickets:
            try:
                results.append(ticket.wait())
            except IntegrityError as error:
                results.append(error)
        blocker.wait()
    finally:
        writes.close()
    # Then the group was written again one save at a time, and only the second of the
    # two stale commands lost; the unrelated one is unaffected
    assert writes.regrouped == 1
    assert [type(result).__name__ for result in results] == ["list", "IntegrityError", "list"]
    assert len(container.ledger.repository.get(first).entries) == 1
    assert len(container.ledger.repository.get(second).entries) == 1


def test_a_failed_commit_fails_every_caller_in_it_and_the_next_commit_succeeds(
    container: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    held = Held(container.ledger.save_events)
    writer = GroupCommit(held)
    insert, calls = container.ledger.recorder.insert_events, []

    def refusing_the_second(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 2:
            raise OSError("disk full")
        return insert(*args, **kwargs)

    monkeypatch.setattr(container.ledger.recorder, "insert_events", refusing_the_second)
    first, second, third, fourth = (a_record() for _ in range(4))
    try:
        # Given a first commit held, and two callers queued behind it
        durable_first = writer.submit(first)
        assert held.entered.wait(10)
        queued = [writer.submit(second), writer.submit(third)]
        until(lambda: writer.batcher.waiting == 2)
        # When the store refuses the commit that holds the two
        held.gate.set()
        durable_first()
        for durable in queued:
            # Then each of them fails closed, and nothing of theirs is stored
            with pytest.raises(AuditUnavailable):
                durable()
        assert not stored(container, second) and not stored(container, third)
        # And the next caller's commit succeeds
        writer.write(fourth)
    finally:
        writer.close()
    assert stored(container, first) and stored(container, fourth)
    assert writer.batcher.commits == 2


def test_a_tracked_batch_commits_alone_with_its_tracking_record(container: Container) -> None:
    held = Held(container.ledger.save_events)
    writer = GroupCommit(held)
    before, tracked, after = [a_record()], [a_record(), a_record()], [a_record()]
    try:
        durable = [writer.submit(a_record())]
        assert held.entered.wait(10)
        # Given a relay's batch with its tracking record, between two other callers'
        durable += [
            writer.submit(*before),
            writer.submit(*tracked, tracking=Tracking("relay-test", 7)),
            writer.submit(*after),
        ]
        until(lambda: writer.batcher.waiting == 3)
        held.gate.set()
        for wait in durable:
            wait()
    finally:
        writer.close()
    # Then the tracked batch had a commit of its own, with its tracking record, and the
    # others were not taken past it
    assert [(list(records), tracking) for records, tracking in held.calls[1:]] == [
        (before, None),
        (tracked, Tracking("relay-test", 7)),
        (after, None),
    ]
    assert container.ledger.recorder.max_tracking_id("relay-test") == 7
    assert all(stored(container, record) for record in [*before, *tracked, *after])


def test_a_closed_batcher_commits_what_was_queued_and_refuses_more() -> None:
    gate, sizes = threading.Event(), []

    def doubled(items: Sequence[int]) -> list[int]:
        gate.wait(10)
        sizes.append(len(items))
        return [item * 2 for item in items]

    batcher: Batcher[int, int] = Batcher(doubled, name="doubling", max_size=4, timeout=10)
    # Given six items queued while the committer waits at the gate
    tickets = [batcher.submit(n) for n in range(1, 7)]
    # When the batcher is closed meanwhile
    closing = threading.Thread(target=batcher.close)
    closing.start()
    while True:  # (what is queued before the close takes effect is committed too)
        try:
            tickets.append(batcher.submit(0))
        except BatcherClosed:
            break
    gate.set()
    closing.join()
    # Then everything queued before it was committed, four at most to a commit
    assert [ticket.wait() for ticket in tickets] == [2, 4, 6, 8, 10, 12] + [0] * (len(tickets) - 6)
    assert max(sizes) <= 4 and sum(sizes) == batcher.committed == len(tickets)
    # And nothing more is taken
    with pytest.raises(BatcherClosed):
        batcher.submit(7)


def test_a_write_past_its_deadline_is_withdrawn_if_queued_or_said_to_be_unknown() -> None:
    """Issue 23: a write answered after its deadline committed later anyway (a 500,
    then a duplicate on the client's retry). Now a queued one is withdrawn and never
    commits; one whose commit is under way is told its outcome is unknown."""
    gate, committed = threading.Event(), []

    def slow(items: Sequence[int]) -> list[int]:
        gate.wait(10)
        committed.extend(items)
        return list(items)

    batcher: Batcher[int, int] = Batcher(slow, name="slow", max_size=1, timeout=0.3)
    # Given a commit held at the gate, and a second write queued behind it
    under_way = batcher.submit(1)
    while batcher.waiting:  # the committer has taken the first
        time.sleep(0.01)
    queued = batcher.submit(2)
    # When both deadlines pass with the store silent
    with pytest.raises(OutcomeUnknown):
        under_way.wait()
    with pytest.raises(NotCommitted):
        queued.wait()
    gate.set()
    batcher.close()
    # Then the one under way committed, and the withdrawn one never did
    assert committed == [1]


def test_an_awaited_ticket_is_answered_once_its_commit_returns_and_withdrawn_at_its_deadline() -> (
    None
):
    """``Ticket.outcome`` is ``wait`` for a caller on an event loop: answered by the
    committer's thread only once the commit has returned, and past the deadline
    withdrawn if still queued, or said to be unknown if under way."""
    gate, committed = threading.Event(), []

    def held(items: Sequence[int]) -> list[int]:
        gate.wait(10)
        committed.extend(items)
        return [item * 10 for item in items]

    async def story() -> None:
        batcher: Batcher[int, int] = Batcher(held, name="awaited", max_size=1, timeout=0.3)
        # Given a commit held at the gate, and a second item queued behind it
        under_way = asyncio.ensure_future(batcher.submit(1).outcome())
        while batcher.waiting:
            await asyncio.sleep(0.01)
        queued = asyncio.ensure_future(batcher.submit(2).outcome())
        # When both deadlines pass with the store silent
        with pytest.raises(OutcomeUnknown):
            await under_way
        with pytest.raises(NotCommitted):
            await queued
        # Then once the gate opens, the next caller is answered after its commit
        gate.set()
        assert await batcher.submit(3).outcome() == 30
        batcher.close()

    asyncio.run(story())
    # And the withdrawn item was never committed
    assert committed == [1, 3]
