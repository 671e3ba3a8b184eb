"""Group commit: one committer thread commits, together, whatever queued meanwhile.

The store takes one writer at a time (a table lock, then an fsync per commit), so
callers that queue while a commit runs share the next one rather than wait for one
each. A caller is released only once the commit that holds its item has returned:
nothing is acknowledged before it is durable.

The access log's records (``access_log.GroupCommit``) and commands' saves
(``group_writes.GroupWrites``) are both this batcher, each told what to commit, what
fits in one group, and which failure of a group is one item's own.
"""

import asyncio
import functools
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")  # what a caller queues
R = TypeVar("R")  # what that caller gets back once its item is committed


class BatcherClosed(RuntimeError):
    """The batcher is closed: nothing more is queued."""


class NotCommitted(TimeoutError):
    """The deadline passed while the item was still queued: it was withdrawn, and its
    commit never happens."""


class OutcomeUnknown(TimeoutError):
    """The deadline passed while the item's commit ran: it may yet commit."""


def _kept() -> bool:
    return False


def one(_: object) -> int:
    return 1


def never(_: object) -> bool:
    return False


@dataclass(frozen=True)
class Ticket(Generic[R]):
    """A queued item's claim on its result."""

    done: Future[R]
    deadline: float  # time.monotonic() past which the caller stops waiting
    withdraw: Callable[[], bool] = _kept  # True if the item was still queued, now not

    def wait(self) -> R:
        """The item's result once its commit has returned; raises that commit's error,
        or at the deadline ``NotCommitted`` (withdrawn unseen by the store, so a 503 is
        the whole truth) or ``OutcomeUnknown`` (its commit was under way)."""
        try:
            return self.done.result(timeout=max(self.deadline - time.monotonic(), 0.0))
        except TimeoutError:
            if self.withdraw():
                raise NotCommitted() from None
            raise OutcomeUnknown() from None

    async def outcome(self) -> R:
        """``wait``, awaited on an event loop: the committer's thread resolves it there
        (``wrap_future`` calls back through ``call_soon_threadsafe``), no thread parked."""
        waiting = asyncio.wrap_future(self.done)
        try:
            # Shielded: a timeout must not cancel ``done``, which the committer sets.
            return await asyncio.wait_for(
                asyncio.shield(waiting), max(self.deadline - time.monotonic(), 0.0)
            )
        except TimeoutError:
            if self.withdraw():
                raise NotCommitted() from None
            raise OutcomeUnknown() from None


@dataclass(frozen=True)
class _Queued(Generic[T, R]):
    item: T
    done: Future[R] = field(default_factory=Future)


class Batcher(Generic[T, R]):
    def __init__(
        self,
        commit: Callable[[Sequence[T]], Sequence[R]],
        *,
        name: str,
        max_size: int,
        timeout: float,
        size: Callable[[T], int] = one,
        alone: Callable[[T], bool] = never,
        isolate: type[Exception] | None = None,
    ) -> None:
        """``commit`` writes a group in one transaction and returns each item's result,
        in order. A group is taken in queue order and holds up to ``max_size`` (each
        item counted by ``size``; a first item larger than that is taken whole), and an
        item that ``alone`` names is committed in a group of its own. If a group of
        several fails with ``isolate``, its items are committed again one per
        transaction, so only the item at fault fails; any other failure fails them all.
        """
        self.commit = commit
        self.max_size = max_size
        self.timeout = timeout
        self.size = size
        self.alone = alone
        self.isolate = isolate
        self.commits = 0  # transactions committed
        self.committed = 0  # the size of what they held, counted by ``size``
        self.regrouped = 0  # groups committed again one item at a time (``isolate``)
        self._queue: list[_Queued[T, R]] = []
        self._ready = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, item: T) -> Ticket[R]:
        """Queue the item; its ticket waits for the commit, so the caller may work on
        meanwhile. Raises ``BatcherClosed`` once the batcher is closed."""
        queued: _Queued[T, R] = _Queued(item)
        with self._ready:
            if self._closed:
                raise BatcherClosed(self._thread.name)
            self._queue.append(queued)
            self._ready.notify()
        return Ticket(
            queued.done, time.monotonic() + self.timeout, functools.partial(self._withdraw, queued)
        )

    def submit_all(self, items: Sequence[T]) -> list[Ticket[R]]:
        """Queue the items at once, so that the committer takes them in one group (as
        far as they fit); each ticket as ``submit``'s."""
        queued: list[_Queued[T, R]] = [_Queued(item) for item in items]
        with self._ready:
            if self._closed:
                raise BatcherClosed(self._thread.name)
            self._queue += queued
            self._ready.notify()
        deadline = time.monotonic() + self.timeout
        return [
            Ticket(each.done, deadline, functools.partial(self._withdraw, each)) for each in queued
        ]

    def _withdraw(self, queued: "_Queued[T, R]") -> bool:
        """Take the item out of the queue if the committer has not taken it yet."""
        with self._ready:
            for index, each in enumerate(self._queue):
                if each is queued:
                    del self._queue[index]
                    return True
        return False

    @property
    def waiting(self) -> int:
        """How many items are queued and not yet taken by the committer."""
        with self._ready:
            return len(self._queue)

    def close(self) -> None:
        """Refuse new items; what is queued already is still committed."""
        with self._ready:
            self._closed = True
            self._ready.notify()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while True:
            with self._ready:
                while not self._queue and not self._closed:
                    self._ready.wait()
                if not self._queue:
                    return  # closed, with everything queued committed
                group = self._take()
            self._commit(group)

    def _take(self) -> list[_Queued[T, R]]:
        """The next group: the first item queued, then those behind it that fit."""
        queue = self._queue
        taken, size = 1, self.size(queue[0].item)
        if not self.alone(queue[0].item):
            while taken < len(queue):
                item = queue[taken].item
                if self.alone(item) or size + self.size(item) > self.max_size:
                    break
                size += self.size(item)
                taken += 1
        group = queue[:taken]
        del queue[:taken]
        return group

    def _commit(self, group: Sequence[_Queued[T, R]]) -> None:
        items = [queued.item for queued in group]
        try:
            results = self.commit(items)
            if len(results) != len(items):
                raise ValueError(f"{len(results)} results for {len(items)} items")
        except Exception as error:
            if len(group) > 1 and self.isolate is not None and isinstance(error, self.isolate):
                self.regrouped += 1  # one item's own failure: find whose, one at a time
                for queued in group:
                    self._commit([queued])
                return
            for queued in group:
                queued.done.set_exception(error)
            return
        self.commits += 1
        self.committed += sum(self.size(item) for item in items)
        for queued, result in zip(group, results, strict=True):
            queued.done.set_result(result)
