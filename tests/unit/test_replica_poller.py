"""The read replica's ``min_position`` waits share one poller per process
(``infrastructure.projections.replica``): however many requests wait, the replica's
tracking rows are read once per interval, every waiter is woken when its position is
reached, and nothing is read while no one waits."""

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, cast

import pytest

from infrastructure.projections.live import Positions
from infrastructure.projections.replica import ReplicaPositions, SharedPoller
from infrastructure.projections.store import ViewStore

EVERY = 0.01


class FakeTracking:
    """The replica's tracking rows: a position per view, counted reads."""

    def __init__(self) -> None:
        self.positions = {"timeline": 0}
        self.reads = 0
        self.failure: Exception | None = None

    def rows(self) -> dict[str, int]:
        self.reads += 1
        if self.failure is not None:
            raise self.failure
        return dict(self.positions)


class FakePrimary:
    def head(self) -> int:
        return 100


class FakeReplica(ReplicaPositions):
    """ReplicaPositions whose replica is FakeTracking instead of a standby."""

    def __init__(self, tracking: FakeTracking) -> None:
        super().__init__(cast(ViewStore, None), cast(Positions, FakePrimary()), EVERY)
        self.tracking = tracking

    def refresh(self) -> dict[str, int]:
        for name, position in self.tracking.rows().items():
            self.advanced(name, position)
        return dict(self._known)

    def close(self) -> None:
        self.poller.close()


def in_threads(count: int, call: Callable[[], Any]) -> tuple[list[threading.Thread], list[Any]]:
    results: list[Any] = []
    threads = [threading.Thread(target=lambda: results.append(call())) for _ in range(count)]
    for thread in threads:
        thread.start()
    return threads, results


def stopped(poller: SharedPoller, seconds: float = 2.0) -> bool:
    deadline = time.monotonic() + seconds
    while poller.running and time.monotonic() < deadline:
        time.sleep(EVERY)
    return not poller.running


@pytest.fixture
def positions() -> Iterator[FakeReplica]:
    made = FakeReplica(FakeTracking())
    try:
        yield made
    finally:
        made.close()


def test_many_waiters_share_one_read_per_interval_and_all_wake(positions: FakeReplica) -> None:
    tracking = positions.tracking
    # Given 40 requests waiting for position 5, which the replica has not applied
    threads, results = in_threads(40, lambda: positions.wait_for(["timeline"], 5, 5.0))
    time.sleep(0.3)
    waited_reads = tracking.reads
    # When the replica applies it
    tracking.positions["timeline"] = 5
    started = time.monotonic()
    for thread in threads:
        thread.join(5)
    # Then every waiter answers, soon after
    assert results == [True] * 40
    assert time.monotonic() - started < 2.0  # woken by the change, not their 5 s timeout
    # And the rows were read about once per interval, not once per waiter per
    # interval (40 waiters polling alone would have made some 1,200 reads)
    assert 0 < waited_reads <= 0.3 / EVERY + 5, waited_reads
    # And once no one waits, the poller stops and reads nothing more
    assert stopped(positions.poller)
    idle = tracking.reads
    time.sleep(0.1)
    assert tracking.reads == idle


def test_the_poller_starts_again_for_a_later_waiter(positions: FakeReplica) -> None:
    tracking = positions.tracking
    tracking.positions["timeline"] = 3
    assert positions.wait_for(["timeline"], 3, 2.0)
    assert stopped(positions.poller)
    assert not positions.wait_for(["timeline"], 4, 0.1)  # not applied: a timeout
    tracking.positions["timeline"] = 4
    assert positions.wait_for(["timeline"], 4, 2.0)


def test_a_failed_read_reaches_the_waiters_as_their_own_read_would(
    positions: FakeReplica,
) -> None:
    tracking = positions.tracking
    tracking.failure = ConnectionError("replica gone")
    with pytest.raises(ConnectionError):
        positions.wait_for(["timeline"], 5, 2.0)
    # And reads resume, without the old failure, once the replica answers again
    assert stopped(positions.poller)
    tracking.failure = None
    tracking.positions["timeline"] = 5
    assert positions.wait_for(["timeline"], 5, 2.0)


def test_close_stops_a_poller_that_has_waiters() -> None:
    tracking = FakeTracking()
    positions = FakeReplica(tracking)
    threads, results = in_threads(3, lambda: positions.wait_for(["timeline"], 9, 0.5))
    time.sleep(0.05)
    assert positions.poller.running
    positions.close()
    assert not positions.poller.running
    for thread in threads:
        thread.join(2)
    assert results == [False] * 3  # never reached: they time out, nothing hangs


def test_each_waiter_raises_its_own_copy_of_a_failed_read(positions: FakeReplica) -> None:
    tracking = positions.tracking
    tracking.failure = ConnectionError("replica gone")
    raised: list[BaseException] = []

    def wait() -> None:
        try:
            positions.wait_for(["timeline"], 5, 2.0)
        except ConnectionError as error:
            raised.append(error)

    threads, _ = in_threads(2, wait)
    for thread in threads:
        thread.join(5)
    # Then both fail as their own read would have, each with an exception of its own,
    # so that no request's traceback carries the other's frames
    assert len(raised) == 2 and raised[0] is not raised[1]
    assert all(error.__cause__ is tracking.failure for error in raised)


def test_a_position_already_known_starts_no_poller(positions: FakeReplica) -> None:
    tracking = positions.tracking
    tracking.positions["timeline"] = 5
    assert positions.wait_for(["timeline"], 5, 2.0)
    assert stopped(positions.poller)
    reads = tracking.reads
    for _ in range(50):
        assert positions.wait_for(["timeline"], 5, 2.0)
    assert not positions.poller.running and tracking.reads == reads


def test_a_poller_that_could_not_start_leaves_the_next_waiter_one_that_can(
    positions: FakeReplica, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_start = threading.Thread.start

    def refused(self: threading.Thread) -> None:
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr(threading.Thread, "start", refused)
    with pytest.raises(RuntimeError):
        positions.wait_for(["timeline"], 5, 0.5)
    monkeypatch.setattr(threading.Thread, "start", real_start)
    positions.tracking.positions["timeline"] = 5
    assert positions.wait_for(["timeline"], 5, 2.0)
