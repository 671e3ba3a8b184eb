"""Keeping projections live, and waking readers that asked for a position.

- ``Doorbell``: rung when the log may have grown. In-process by the ledger after each
  commit; across processes by PostgreSQL LISTEN on the library's own NOTIFY channel.
  A timeout fallback covers a lost notification; nothing sleep-polls.
- ``Positions``: the committed position of each active view as this process knows it.
  Projectors in this process report their commits directly; projectors in another
  process (the worker) are heard through NOTIFY on ``careledger_projections``. A
  ``min_position`` query waits on a condition variable woken by those reports.
- ``ProjectionHost``: one supervised thread per projection. Any error (a dropped
  connection, a restarted database) is logged without PHI, then the thread backs off
  and resumes from the committed position, so nothing is skipped or applied twice.
"""

import logging
import threading
import time
from collections.abc import Callable, Sequence

import psycopg
from prometheus_client import Gauge

from infrastructure.projections.engine import (
    VERSIONS_TABLE,
    PositionMoved,
    Projector,
)
from infrastructure.projections.store import ViewStore
from infrastructure.retry import Backoff

log = logging.getLogger("careledger.projections")

LAG_EVENTS = Gauge(
    "careledger_projection_lag_events", "Log positions the view is behind the head", ["projection"]
)
LAG_SECONDS = Gauge(
    "careledger_projection_lag_seconds",
    "Age of the oldest event the view has not applied yet",
    ["projection"],
)


def measure_lag(projectors: Sequence[Projector]) -> dict[str, tuple[int, float]]:
    """Read each view's lag from the database (whichever process projects it)."""
    lags = {}
    for projector in projectors:
        events, seconds = projector.lag()
        LAG_EVENTS.labels(projector.name).set(events)
        LAG_SECONDS.labels(projector.name).set(seconds)
        lags[projector.name] = (events, seconds)
    return lags


class Positions:
    """Committed positions of the active views, and waits on them."""

    def __init__(self, store: ViewStore, refresh_every: float = 1.0) -> None:
        self.store = store
        self.refresh_every = refresh_every
        self._known: dict[str, int] = {}
        self._head_seen = 0  # the highest log head read so far
        self._changed = threading.Condition()
        self._projectors: dict[str, Projector] = {}

    def use(self, projectors: Sequence[Projector]) -> None:
        """The projectors whose topics tell when a stretch of the log is not theirs."""
        self._projectors = {p.name: p for p in projectors}

    def advanced(self, name: str, position: int) -> None:
        with self._changed:
            if position > self._known.get(name, -1):
                self._known[name] = position
                self._changed.notify_all()

    def refresh(self) -> dict[str, int]:
        with self.store.reading() as cursor:
            rows = cursor.execute(
                f"SELECT name, position FROM {self.store.table(VERSIONS_TABLE)} "
                "WHERE state = 'active'"
            ).fetchall()
        for name, position in rows:
            self.advanced(name, int(position))
        with self._changed:
            return dict(self._known)

    def _poll(self) -> None:
        """A waiter's look at the stored positions (here, a read of them)."""
        self.refresh()

    def _settle(self, names: Sequence[str], position: int) -> set[str]:
        """The views whose topics do not occur between their position and ``position``.

        Projectors pass over such stretches without writing their position, so the
        stored position alone would keep a reader waiting for nothing. The answer holds
        for this wait only and never moves a known position: only a projector's commit
        does, or a position past the head would count as reached for every later write.
        """
        if not self.within_log(position):
            return set()  # later writes may yet land in the stretch
        settled = set()
        for name in names:
            known = self.known(name)
            projector = self._projectors.get(name)
            if known >= position or (projector is not None and projector.covers(known, position)):
                settled.add(name)
        return settled

    def known(self, name: str) -> int:
        with self._changed:
            return self._known.get(name, 0)

    def wait_for(self, names: Sequence[str], position: int, timeout: float) -> bool:
        """True once every named view has reached ``position``; False after ``timeout``.

        Woken by commits (in this process or NOTIFY from another). The database is
        re-read at most every ``refresh_every`` seconds, as a fallback only.
        """
        deadline = time.monotonic() + timeout
        if self._reached(names, position):
            return True
        self._poll()
        settled = self._settle(names, position)
        while not self._reached(names, position, settled):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            with self._changed:
                self._changed.wait(min(remaining, self.refresh_every))
            if not self._reached(names, position, settled) and time.monotonic() < deadline:
                self._poll()
                settled = self._settle(names, position)
        return True

    def within_log(self, position: int) -> bool:
        """True if ``position`` is at or below the log's head.

        A view can only commit what the log holds, so a position at or below any known
        one needs no query; otherwise the head is read once (an indexed max).
        """
        with self._changed:
            if position <= max(self._head_seen, *self._known.values(), 0):
                return True
        head = self.head()
        with self._changed:
            self._head_seen = max(self._head_seen, head)
        return position <= head

    def head(self) -> int:
        """The log's last position now."""
        return self.store.recorder.max_notification_id() or 0

    def wait_past(self, name: str, position: int, timeout: float) -> int:
        """Wait until the view has moved beyond ``position`` (or ``timeout``); where it is.

        For a long-poll: woken by the projector's commit, in this process or by NOTIFY.
        """
        deadline = time.monotonic() + timeout
        while True:
            with self._changed:
                known = self._known.get(name, 0)
                remaining = deadline - time.monotonic()
                if known > position or remaining <= 0:
                    return known
                self._changed.wait(min(remaining, self.refresh_every))
            if self.known(name) <= position:
                self._poll()

    def _reached(
        self, names: Sequence[str], position: int, settled: set[str] | frozenset[str] = frozenset()
    ) -> bool:
        with self._changed:
            return all(n in settled or self._known.get(n, 0) >= position for n in names)


class Doorbell:
    """An event per projector thread, set when the log may hold something for it.

    In-process commits name their topics, so only the projectors of those topics are
    woken (an access record does not wake the timeline). A NOTIFY from the database
    names nothing, so it wakes every projector.
    """

    def __init__(self) -> None:
        self._events: list[tuple[frozenset[str] | None, threading.Event]] = []

    def subscribe(self, topics: frozenset[str] | None = None) -> threading.Event:
        event = threading.Event()
        self._events.append((topics, event))
        return event

    def ring(self) -> None:
        for _, event in self._events:
            event.set()

    def recorded(self, _position: int, topics: frozenset[str]) -> None:
        for wanted, event in self._events:
            if wanted is None or wanted & topics:
                event.set()


class Listener:
    """PostgreSQL LISTEN on the log's channel and the projections' channel.

    Reconnects with backoff. After a reconnect it rings the doorbell and refreshes
    positions, since notifications sent while disconnected are lost.
    """

    def __init__(
        self,
        conninfo: str,
        store: ViewStore,
        doorbell: Doorbell,
        positions: Positions,
        *,
        max_backoff: float = 5.0,
    ) -> None:
        self.conninfo = conninfo
        self.log_channel = store.channel
        self.own_pids: set[int] = getattr(store.recorder, "writer_pids", set())
        self.positions_channel = store.positions_channel
        self.doorbell = doorbell
        self.positions = positions
        self.max_backoff = max_backoff
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="projection-listener", daemon=True)
        self.connected = threading.Event()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(timeout=3)

    def _run(self) -> None:
        backoff = Backoff(cap=self.max_backoff)
        while not self._stopping.is_set():
            try:
                with psycopg.connect(self.conninfo, autocommit=True, connect_timeout=5) as conn:
                    conn.execute(f'LISTEN "{self.log_channel}"')
                    conn.execute(f'LISTEN "{self.positions_channel}"')
                    self.connected.set()
                    backoff.reset()
                    self.doorbell.ring()
                    self.positions.refresh()
                    while not self._stopping.is_set():
                        for note in conn.notifies(timeout=0.25):
                            self._heard(note.channel, note.payload, note.pid)
            except Exception as error:  # supervised: reconnect with backoff
                self.connected.clear()
                log.warning(
                    "projection listener reconnecting", extra={"error": type(error).__name__}
                )
                backoff.wait(self._stopping)

    def _heard(self, channel: str, payload: str, pid: int) -> None:
        if channel == self.positions_channel:
            name, _, position = payload.partition(" ")
            if position.isdigit():
                self.positions.advanced(name, int(position))
        elif pid not in self.own_pids:  # our own commits rang the doorbell already
            self.doorbell.ring()


class ProjectionHost:
    """Runs projectors, each in a supervised thread, until stopped."""

    def __init__(
        self,
        projectors: Sequence[Projector],
        doorbell: Doorbell,
        *,
        fallback_wait: float = 1.0,
        max_backoff: float = 10.0,
        on_step: Callable[[Projector], None] | None = None,
    ) -> None:
        self.projectors = list(projectors)
        self.doorbell = doorbell
        self.fallback_wait = fallback_wait
        self.max_backoff = max_backoff
        self.on_step = on_step
        self.errors = 0
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        for projector in self.projectors:
            wake = self.doorbell.subscribe(projector.topics)
            thread = threading.Thread(
                target=self._run,
                args=(projector, wake),
                name=f"projection-{projector.name}",
                daemon=True,
            )
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        self.doorbell.ring()
        for thread in self._threads:
            thread.join(timeout)

    def _run(self, projector: Projector, wake: threading.Event) -> None:
        backoff = Backoff(cap=self.max_backoff)
        while not self._stopping.is_set():
            wake.clear()
            try:
                _, advanced = projector.step()
            except PositionMoved:
                continue  # another projector (or a rebuild switch) got there first
            except Exception as error:  # supervised: log, back off, resume from tracking
                self.errors += 1
                log.warning(
                    "projection error; retrying",
                    extra={"projection": projector.name, "error": type(error).__name__},
                )
                backoff.wait(self._stopping)
                continue
            backoff.reset()
            if self.on_step is not None:
                self.on_step(projector)
            if advanced == 0:
                wake.wait(self.fallback_wait)
