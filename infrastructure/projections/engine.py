"""Batched, exactly-once projection of the log into versioned read models.

The library's ``ProjectionRunner`` commits one transaction per event, too slow to
rebuild a view (docs/benchmarks.md). This projector reads up to ``batch_size``
notifications, decodes them outside any lock, then commits the view rows and the new
position in one transaction whose first statement is a compare-and-set on the
position. A projector killed at any point leaves either the whole batch or none of it,
and two projectors racing on the same view cannot both apply a batch.

Every view row carries the version of the view it belongs to. A rebuild fills a new
version beside the live one, then flips which version is active in one transaction, so
readers (who select the active version in the same snapshot as the rows) never see a
half-built view; that lifecycle is in ``rebuild``.
"""

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol
from uuid import UUID

from eventsourcing.domain import DomainEventProtocol
from eventsourcing.persistence import ApplicationRecorder, Mapper, Notification
from eventsourcing.utils import get_topic

from application.errors import DataKeyDestroyed
from domain.patient import Patient
from infrastructure.projections.store import Cursor, ViewStore

log = logging.getLogger("careledger.projections")

VERSIONS_TABLE = "projection_versions"
ERASED_TOPIC = get_topic(Patient.Erased)

Event = DomainEventProtocol[UUID]


@dataclass(frozen=True)
class Decoded:
    position: int
    event: Event


class Projection(Protocol):
    """One read model: its tables, and how a batch of events changes them."""

    name: str
    topics: tuple[str, ...]  # the event topics it needs (filtered in the database)

    def tables(self) -> list[str]:
        """CREATE TABLE/INDEX IF NOT EXISTS statements; every row has a ``version``."""
        ...

    def table_names(self) -> list[str]: ...

    def apply(self, cursor: Cursor, version: int, batch: Sequence[Decoded]) -> None: ...

    def purge(self, cursor: Cursor, version: int, patient_id: UUID) -> None:
        """Remove every row of an erased patient (the tombstone)."""
        ...


@dataclass(frozen=True)
class ViewVersion:
    name: str
    version: int
    state: str  # building | active | retired
    position: int


def create_tables(store: ViewStore, projections: Sequence[Projection]) -> None:
    """Idempotent: the versions table, each view's tables, and version 1 active."""
    with store.transaction() as cursor:
        if store.is_postgres:  # concurrent first starts would race on CREATE
            cursor.execute("SELECT pg_advisory_xact_lock(hashtext('careledger-migrations'))")
        cursor.execute(
            store.ddl(
                f"CREATE TABLE IF NOT EXISTS {store.table(VERSIONS_TABLE)} ("
                "name TEXT NOT NULL, version INTEGER NOT NULL, state TEXT NOT NULL, "
                "position BIGINT NOT NULL, updated_at BIGINT NOT NULL, "
                "PRIMARY KEY (name, version))"
            )
        )
        for projection in projections:
            for statement in projection.tables():
                cursor.execute(store.ddl(statement))
            _add_columns(store, cursor, projection)
            cursor.execute(
                f"INSERT INTO {store.table(VERSIONS_TABLE)} "
                "(name, version, state, position, updated_at) "
                "SELECT ?, 1, 'active', 0, ? WHERE NOT EXISTS "
                f"(SELECT 1 FROM {store.table(VERSIONS_TABLE)} WHERE name = ?)",
                (projection.name, now_us(), projection.name),
            )


def _add_columns(store: ViewStore, cursor: Cursor, projection: Projection) -> None:
    """Columns a view gained after its table was first created (``added_columns``:
    table, column, type), added to a store made before them; new rows fill them."""
    for table, column, kind in getattr(projection, "added_columns", ()):
        if store.is_postgres:
            cursor.execute(f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {column} {kind}")
            continue
        present = cursor.execute(f"PRAGMA table_info({table})").fetchall()
        if all(row[1] != column for row in present):
            cursor.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")


def active_version(cursor: Cursor, store: ViewStore, name: str) -> int:
    """The version readers use; read in the same snapshot as the rows that follow."""
    row = cursor.execute(
        f"SELECT version FROM {store.table(VERSIONS_TABLE)} WHERE name = ? AND state = 'active'",
        (name,),
    ).fetchone()
    if row is None:
        raise LookupError(f"projection {name} has no active version")
    return int(row[0])


def delete_patient_rows(
    cursor: Cursor, tables: Sequence[str], version: int, patient_id: UUID
) -> None:
    """The tombstone of a crypto-shredded patient: their rows go from these tables."""
    for table in tables:
        cursor.execute(
            f"DELETE FROM {table} WHERE version = ? AND patient_id = ?", (version, patient_id.hex)
        )


def view_tables(projections: Sequence[Projection]) -> list[str]:
    return [VERSIONS_TABLE, *(t for p in projections for t in p.table_names())]


class PositionMoved(Exception):
    """Another projector committed this view first; the batch is discarded."""


class Projector:
    """Moves one projection forward, a batch per transaction."""

    def __init__(
        self,
        store: ViewStore,
        mapper: Mapper[UUID],
        projection: Projection,
        *,
        batch_size: int = 1000,
        on_commit: Callable[[str, int], None] | None = None,
    ) -> None:
        self.store = store
        self.recorder: ApplicationRecorder = store.recorder
        self.mapper = mapper
        self.projection = projection
        self.batch_size = batch_size
        self.on_commit = on_commit
        self.skipped_erased = 0
        # The live version as of this projector's last commit: saves re-reading it on
        # every step. If anyone else moves it, the compare-and-set fails and it is
        # read again.
        self._live: ViewVersion | None = None
        self._passed: ViewVersion | None = None  # ahead of _live over irrelevant events
        self._flushed = self._checked = time.monotonic()
        self.flush_positions = 1000
        self.flush_seconds = 2.0
        self.recheck_seconds = 1.0
        topics = set(projection.topics) | {ERASED_TOPIC}
        self._topics = sorted(topics)

    @property
    def name(self) -> str:
        return self.projection.name

    @property
    def topics(self) -> frozenset[str]:
        return frozenset(self._topics)

    def versions(self) -> list[ViewVersion]:
        with self.store.reading() as cursor:
            rows = cursor.execute(
                f"SELECT name, version, state, position FROM {self.store.table(VERSIONS_TABLE)} "
                "WHERE name = ? ORDER BY version",
                (self.name,),
            ).fetchall()
        return [ViewVersion(r[0], int(r[1]), r[2], int(r[3])) for r in rows]

    def active(self) -> ViewVersion:
        for version in self.versions():
            if version.state == "active":
                return version
        raise LookupError(f"projection {self.name} has no active version")

    def step(self, version: ViewVersion | None = None) -> tuple[ViewVersion, int]:
        """Apply one batch after ``version``'s position (default: the active version).

        Returns the version as it now stands and how many log positions it advanced.

        A live stretch of the log with none of this view's topics (access records, for
        most views) is passed over in memory, with no write: committing a position
        for nothing would cost a transaction per write elsewhere. The position is
        written with the next batch that changes rows, or once the stretch is long or
        old enough, so the lag metrics stay true; readers waiting on a position learn
        from ``covers`` that nothing of theirs lies in between.
        """
        live = version is None
        durable = version or self._live or self.active()
        current = durable
        if live and self._passed is not None and self._passed.version == durable.version:
            current = self._passed
        head = self.recorder.max_notification_id() or 0
        if current.position >= head and live and self._live is not None:
            if current is not durable and self._flush_due(durable, current.position):
                return self._write_position(durable, current.position), 0
            if time.monotonic() - self._checked < self.recheck_seconds:
                return current, 0
            # Idle by our own account: make sure no rebuild switched versions under us.
            self._checked = time.monotonic()
            self._live = self._passed = None
            durable = current = self.active()
        if current.position >= head:
            return current, 0
        notifications = self.recorder.select_notifications(
            start=current.position + 1, limit=self.batch_size, stop=head, topics=self._topics
        )
        # Fewer than a full batch means nothing else with these topics is at or below
        # the head: the library's table lock makes positions commit in order.
        reached = head if len(notifications) < self.batch_size else notifications[-1].id
        if live and not notifications and not self._flush_due(durable, reached):
            self._live = durable
            self._passed = ViewVersion(durable.name, durable.version, durable.state, reached)
            if durable.state == "active" and self.on_commit is not None:
                self.on_commit(self.name, reached)
            return self._passed, reached - current.position
        batch = self._decode(notifications)
        try:
            with self.store.transaction() as cursor:
                self.advance(cursor, durable, reached)
                self._apply(cursor, durable.version, batch)
                if durable.state == "active":
                    self.store.notify(
                        cursor, self.store.positions_channel, f"{self.name} {reached}"
                    )
        except BaseException:
            self._live = self._passed = None  # moved, switched or failed: read it again
            raise
        committed = ViewVersion(durable.name, durable.version, durable.state, reached)
        if live:
            self._live, self._passed = committed, None
            self._flushed = time.monotonic()
        if durable.state == "active" and self.on_commit is not None:
            self.on_commit(self.name, reached)
        return committed, reached - current.position

    def _write_position(self, durable: ViewVersion, reached: int) -> ViewVersion:
        """Store a position passed over in memory, so that lag is measured truly."""
        try:
            with self.store.transaction() as cursor:
                self.advance(cursor, durable, reached)
                self.store.notify(cursor, self.store.positions_channel, f"{self.name} {reached}")
        except BaseException:
            self._live = self._passed = None
            raise
        self._live, self._passed = (
            ViewVersion(durable.name, durable.version, durable.state, reached),
            None,
        )
        self._flushed = time.monotonic()
        return self._live

    def _flush_due(self, durable: ViewVersion, reached: int) -> bool:
        return (
            reached - durable.position >= self.flush_positions
            or time.monotonic() - self._flushed >= self.flush_seconds
        )

    def covers(self, start: int, position: int) -> bool:
        """True if no event of this view's topics lies in ``(start, position]``."""
        found = self.recorder.select_notifications(
            start=start + 1, limit=1, stop=position, topics=self._topics
        )
        return not found

    def _decode(self, notifications: Sequence[Notification]) -> list[Decoded]:
        batch = []
        for notification in notifications:
            try:
                event = self.mapper.to_domain_event(notification)
            except DataKeyDestroyed:
                # A crypto-shredded patient's record: a tombstone, skipped.
                self.skipped_erased += 1
                continue
            batch.append(Decoded(notification.id, event))
        return batch

    def _apply(self, cursor: Cursor, version: int, batch: Sequence[Decoded]) -> None:
        start = 0
        for i, item in enumerate(batch):
            if isinstance(item.event, Patient.Erased):
                self.projection.apply(cursor, version, batch[start:i])
                self.projection.purge(cursor, version, item.event.originator_id)
                start = i + 1
        self.projection.apply(cursor, version, batch[start:])

    def advance(self, cursor: Cursor, current: ViewVersion, reached: int) -> None:
        # The compare-and-set comes first, so it also takes the write lock (SQLite) or
        # the row lock (PostgreSQL) that serialises projectors of the same view.
        cursor.execute(
            f"UPDATE {self.store.table(VERSIONS_TABLE)} SET position = ?, updated_at = ? "
            "WHERE name = ? AND version = ? AND position = ? AND state = ?",
            (reached, now_us(), self.name, current.version, current.position, current.state),
        )
        if cursor.rowcount != 1:
            raise PositionMoved(self.name)

    def lag(self) -> tuple[int, float]:
        """(log positions behind the head, age in seconds of the oldest unprojected event)."""
        active = self.active()
        head = self.recorder.max_notification_id() or 0
        if active.position >= head:
            return 0, 0.0
        oldest = self.recorder.select_notifications(
            start=active.position + 1, limit=1, stop=head, topics=self._topics
        )
        seconds = 0.0
        if oldest:
            try:
                event = self.mapper.to_domain_event(oldest[0])
            except DataKeyDestroyed:
                pass
            else:
                seconds = max(time.time() - event.timestamp.timestamp(), 0.0)
        return head - active.position, seconds


def now_us() -> int:
    return int(time.time() * 1_000_000)
