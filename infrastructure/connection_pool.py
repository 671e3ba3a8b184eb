"""The PostgreSQL connection pool, made to come back as soon as PostgreSQL does.

psycopg_pool's defaults suit a server that stays up: after a restart, every pooled
connection is dead, and a caller's check discards them one at a time with a growing
sleep between (1 s, 2 s, 4 s...), while reconnections back off the same way. With ten
pooled connections, writes stalled for seconds to minutes after a restart of 0.4 s
(issue 23's fault run). Here a failed check discards every broken idle connection at
once, with no sleep, and reconnection is retried at most ``MAX_RECONNECT_DELAY`` apart,
so writes resume within a second of PostgreSQL accepting connections.
"""

import time
from collections.abc import Callable
from typing import Any, TypeVar

from eventsourcing.persistence import InterfaceError, OperationalError
from eventsourcing.postgres import ConnectionPool, PostgresDatastore
from psycopg_pool import PoolTimeout
from psycopg_pool.base import AttemptWithBackoff

MAX_RECONNECT_DELAY = 0.25  # seconds between attempts to reconnect, at most
RETRY_BUDGET = 2.0  # seconds within which a failed statement is tried again

F = TypeVar("F", bound=Callable[..., Any])


class _CappedBackoff(AttemptWithBackoff):
    INITIAL_DELAY = 0.05

    def update_delay(self, now: float) -> None:
        super().update_delay(now)
        self.delay = min(self.delay, MAX_RECONNECT_DELAY)


class RecoveringPool(ConnectionPool[Any]):
    """The library's pool, recovering from a restart of the server at once."""

    def _getconn_with_check_loop(self, deadline: float) -> Any:
        while True:
            conn = self._getconn_unchecked(deadline - time.monotonic())
            try:
                self._check_connection(conn)
            except Exception:
                self._putconn(conn, from_getconn=True)
                # One broken connection means the server went away, so the others
                # that idled through it are broken too: discard them all now.
                self.check()
                if time.monotonic() >= deadline:
                    raise PoolTimeout() from None
                continue
            return conn

    def _add_connection(self, attempt: AttemptWithBackoff | None, growing: bool = False) -> None:
        super()._add_connection(attempt or _CappedBackoff(timeout=self.reconnect_timeout), growing)


def recovering(datastore: PostgresDatastore) -> None:
    """Make the datastore's pool a ``RecoveringPool`` (idempotent). The class adds no
    state, only the two behaviours above, so the pool keeps its configuration."""
    if not isinstance(datastore.pool, RecoveringPool):
        datastore.pool.__class__ = RecoveringPool


def bounded_retry(method: F) -> F:
    """The library's retry of a statement that failed on a broken connection, bounded
    in time rather than ten attempts (each of which may wait out the pool's timeout):
    a write answers 503 in seconds during an outage rather than after a minute."""
    unwrapped = getattr(method, "__wrapped__", method)

    def attempt(*args: Any, **kwargs: Any) -> Any:
        give_up = time.monotonic() + RETRY_BUDGET
        while True:
            try:
                return unwrapped(*args, **kwargs)
            except (InterfaceError, OperationalError):
                if time.monotonic() >= give_up:
                    raise
                time.sleep(0.05)

    attempt.__wrapped__ = unwrapped  # type: ignore[attr-defined]
    attempt.__name__ = getattr(method, "__name__", "attempt")
    return attempt  # type: ignore[return-value]
