"""The read models served from a PostgreSQL streaming replica (a hot standby).

A standby is a byte-for-byte copy of the primary at some earlier point of its WAL, so
its views, and the projection tracking rows committed with them, are the primary's
as of that point: a view at tracking position p shows exactly what the primary's did
at p. Only the queries of the read models come here; writes, the log, the keys, the
projectors and the access records stay on the primary (docs/operations.md, Read
replicas).

A standby can run neither LISTEN nor NOTIFY, so ``ReplicaPositions`` learns how far
the replica has applied the projections' commits by reading its own copy of the
tracking table: one poller per process reads it every few milliseconds while any
request waits (``min_position``), and wakes every waiter when a position moves.
"""

import copy
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore

from infrastructure.connection_pool import recovering
from infrastructure.postgres_factory import libpq_options
from infrastructure.projections.live import Positions
from infrastructure.projections.store import ViewStore

log = logging.getLogger("careledger.projections")

# Between two reads of the replica's tracking rows while a min_position read waits:
# short, since a replica usually applies a commit within milliseconds.
POLL_SECONDS = 0.01
# TCP keepalives and libpq's tcp_user_timeout (ms) on the replica's connections.
DEAD_REPLICA = {
    "keepalives": 1,
    "keepalives_idle": 5,
    "keepalives_interval": 2,
    "keepalives_count": 3,
    "tcp_user_timeout": 10_000,
}


def replica_store(env: dict[str, str], primary: ViewStore) -> ViewStore:
    """A ViewStore on the replica that ``env`` (the read URL's environment) names.

    Tables are the primary's (same schema and names: the replica is its copy), so the
    schema is the primary's whatever the read URL says; nothing is created, since a
    standby accepts no DDL.
    """
    datastore = PostgresDatastore(
        dbname=env["POSTGRES_DBNAME"],
        host=env["POSTGRES_HOST"],
        port=env["POSTGRES_PORT"],
        user=env["POSTGRES_USER"],
        password=env["POSTGRES_PASSWORD"],
        connect_timeout=float(env["POSTGRES_CONNECT_TIMEOUT"]),
        pool_size=int(env["POSTGRES_POOL_SIZE"]),
        max_overflow=int(env["POSTGRES_MAX_OVERFLOW"]),
        pre_ping=True,
        schema=primary.schema,
    )
    kwargs = datastore.pool.kwargs
    assert isinstance(kwargs, dict)
    # libpq's own timeouts, as the primary's pool has, and a bound on a connection to a
    # replica that vanished without a word (powered off): its reads then fail in
    # seconds, rather than hold request threads for the kernel's minutes.
    kwargs.update(libpq_options(env), **DEAD_REPLICA)
    recovering(datastore)  # reads resume as soon as the replica is back
    primary_recorder = primary.recorder
    assert isinstance(primary_recorder, PostgresApplicationRecorder)
    recorder = PostgresApplicationRecorder(
        datastore, events_table_name=primary_recorder.events_table_name
    )
    return ViewStore(recorder)


def standby_problem(replica: ViewStore, primary: ViewStore) -> str | None:
    """Why the replica is not a hot standby of this primary, or None if it is: a URL
    naming the primary itself, another cluster, or a restored copy would serve reads
    that no write of this service ever reaches."""
    question = "SELECT pg_is_in_recovery(), system_identifier FROM pg_control_system()"
    with replica.reading() as cursor:
        in_recovery, replica_system = cursor.execute(question).fetchone() or (False, None)
    with primary.reading() as cursor:
        _, primary_system = cursor.execute(question).fetchone() or (None, None)
    if not in_recovery:
        return "names a server that is not a standby (it takes writes)"
    if replica_system != primary_system:
        return "names a standby of another cluster, not of CARELEDGER_DATABASE_URL's"
    return None


class SharedPoller:
    """One thread that calls ``read`` every ``every`` seconds while anyone waits.

    Started by the first waiter, it ends once none is left (or at ``close``), so an
    idle process reads nothing; a failed read is kept for the waiters to raise, as
    their own read would have.
    """

    def __init__(self, read: Callable[[], object], every: float, name: str = "poller") -> None:
        self._read = read
        self._every = every
        self._name = name
        self._lock = threading.Lock()
        self._waiters = 0
        self._thread: threading.Thread | None = None
        self._closing = threading.Event()
        self._failure: Exception | None = None
        self.reads = 0  # how many reads it has made, for tests and benchmarks

    @contextmanager
    def waiting(self) -> Iterator[None]:
        """While inside, the poller runs (started now if it was not)."""
        with self._lock:
            if self._thread is None and not self._closing.is_set():
                self._failure = None
                thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                thread.start()  # if it cannot start, nothing is left to block the next waiter
                self._thread = thread  # under the lock, which the thread takes first
            self._waiters += 1
        try:
            yield
        finally:
            with self._lock:
                self._waiters -= 1

    def check(self) -> None:
        """Raise the last read's failure, if the last read failed: a copy per waiter,
        so that no request's traceback carries another's frames."""
        failure = self._failure
        if failure is not None:
            raise copy.copy(failure).with_traceback(None) from failure

    @property
    def running(self) -> bool:
        with self._lock:
            return self._thread is not None

    def close(self) -> None:
        self._closing.set()
        with self._lock:
            thread = self._thread
        if thread is not None:
            thread.join(timeout=5)

    def _run(self) -> None:
        try:
            self._poll_while_waited_for()
        finally:
            with self._lock:  # however it ends, the next waiter starts another
                if self._thread is threading.current_thread():
                    self._thread = None

    def _poll_while_waited_for(self) -> None:
        while True:
            with self._lock:
                if self._waiters == 0 or self._closing.is_set():
                    # Cleared under the lock that saw no waiter: a waiter arriving before
                    # ``_run``'s ``finally`` would otherwise find a poller that is leaving.
                    self._thread = None
                    return
            try:
                self._read()
                self._failure = None
            except Exception as error:
                if self._failure is None:
                    log.warning(
                        "the read replica's positions could not be read: %s", type(error).__name__
                    )
                self._failure = error
            self.reads += 1
            self._closing.wait(self._every)


class ReplicaPositions(Positions):
    """The views' positions as the replica has applied them, polled (no NOTIFY there)
    by one poller for every waiting request of the process.

    The log's head is the primary's: a position a write returned may not have reached
    the replica yet, and that is a wait, not a position past the head (422).
    """

    def __init__(
        self, replica: ViewStore, primary: Positions, poll_seconds: float = POLL_SECONDS
    ) -> None:
        super().__init__(replica, refresh_every=poll_seconds)
        self.primary = primary
        self.poller = SharedPoller(self.refresh, poll_seconds, name="replica-positions")

    def head(self) -> int:
        return self.primary.head()

    def wait_for(self, names: Sequence[str], position: int, timeout: float) -> bool:
        if self._reached(names, position):
            return True  # no poller is started for a position already known
        with self.poller.waiting():
            return super().wait_for(names, position, timeout)

    def wait_past(self, name: str, position: int, timeout: float) -> int:
        with self.poller.waiting():
            return super().wait_past(name, position, timeout)

    def _poll(self) -> None:
        # The shared poller reads; a waiter only learns whether that read failed.
        self.poller.check()

    def close(self) -> None:
        self.poller.close()
        self.store.recorder.datastore.close()  # type: ignore[attr-defined]
