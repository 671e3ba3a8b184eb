"""CareLedger's SQLite recorder: the library's, with claims, new keys and chain links
in the events' transaction (see ``recorders``)."""

from collections.abc import Iterator, Sequence
from typing import Any
from uuid import UUID

from eventsourcing.persistence import OperationalError, StoredEvent
from eventsourcing.sqlite import (
    SQLiteAggregateRecorder,
    SQLiteCursor,
    SQLiteDatastore,
    SQLiteProcessRecorder,
)

from application.errors import StoreFull
from infrastructure.chain import GENESIS, ChainRow, record_body
from infrastructure.key_tables import (
    SQLITE_CREATE_KEYS,
    SQLiteKeyTable,
)
from infrastructure.keys import WrappedKey
from infrastructure.recorders import (
    NEW_KEYS,
    CarriesNewKeys,
    LedgerReads,
    Sealing,
    WritesSnapshots,
    claims_of,
)

SQLITE_CHAIN_TABLE = "chain_links"
_SELECT_HEAD = f"SELECT position, link FROM {SQLITE_CHAIN_TABLE} ORDER BY position DESC LIMIT 1"  # noqa: S608


class SQLiteLedgerRecorder(
    CarriesNewKeys, WritesSnapshots, Sealing, LedgerReads, SQLiteProcessRecorder
):
    # audit verify's search for leftover links runs before the walk (ChainSource).
    reads_side_by_side = False

    def __init__(self, datastore: SQLiteDatastore, *, events_table_name: str = "stored_events"):
        super().__init__(datastore, events_table_name=events_table_name)
        self.keys = SQLiteKeyTable(datastore)
        self._select_head = _SELECT_HEAD
        self._select_orphan = (
            f"SELECT min(position) AS p FROM {SQLITE_CHAIN_TABLE} l WHERE NOT EXISTS "  # noqa: S608
            f"(SELECT 1 FROM {self.events_table_name} e WHERE e.rowid = l.position)"
        )
        self._select_claim = (
            "SELECT i.fingerprint, i.result, e.rowid AS position "  # noqa: S608
            f"FROM idempotency_claims i LEFT JOIN {self.events_table_name} e "
            "ON e.originator_id = i.stream_id AND e.originator_version = i.stream_version "
            "WHERE i.scope = ?"
        )

    def construct_create_table_statements(self) -> list[str]:
        return [
            *super().construct_create_table_statements(),
            "CREATE TABLE IF NOT EXISTS idempotency_claims ("
            "scope TEXT PRIMARY KEY, "
            "fingerprint TEXT NOT NULL, "
            "stream_id TEXT NOT NULL, "
            "stream_version INTEGER NOT NULL, "
            "result BLOB NOT NULL) WITHOUT ROWID",
            f"CREATE TABLE IF NOT EXISTS {SQLITE_CHAIN_TABLE} ("
            "position INTEGER PRIMARY KEY, link BLOB NOT NULL)",
            SQLITE_CREATE_KEYS,
        ]

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        try:
            return super().insert_events(stored_events, **kwargs)
        except OperationalError as error:
            if disk_full(error):  # rolled back: a 507 that says so, not an outage
                raise StoreFull() from None
            raise

    def _insert_events(
        self, c: SQLiteCursor, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        new_keys: list[WrappedKey] | None = kwargs.get(NEW_KEYS)
        if new_keys:
            self.keys.write_staged(c, new_keys)
        for claim in claims_of(kwargs):
            c.execute(
                "INSERT INTO idempotency_claims VALUES (?,?,?,?,?)",
                (
                    claim.scope,
                    claim.fingerprint,
                    claim.stream_id.hex,
                    claim.stream_version,
                    claim.result,
                ),
            )
        if snapshots := self._snapshots_in(kwargs):
            self.snapshot_recorder._insert_events(c, snapshots)
        ids = self._insert_rows(c, stored_events)
        if (tracking := kwargs.get("tracking")) is not None:
            self._insert_tracking(c, tracking)  # as the library's process recorder does
        if stored_events:
            assert ids is not None
            chained, chained_ids = self._followed_up(
                stored_events, ids, kwargs, lambda more: self._insert_more(c, more)
            )
            c.execute(_SELECT_HEAD)  # the head's link is the previous one
            row = c.fetchone()
            previous = bytes(row["link"]) if row else GENESIS
            c.executemany(
                f"INSERT INTO {SQLITE_CHAIN_TABLE} VALUES (?, ?)",  # noqa: S608
                self._links(previous, chained_ids, chained),
            )
        return ids

    def _insert_more(self, c: SQLiteCursor, more: Sequence[StoredEvent]) -> Sequence[int] | None:
        """The events' own insert: no tracking, claims or keys."""
        return self._insert_rows(c, more)

    def _insert_rows(self, c: SQLiteCursor, stored_events: Sequence[StoredEvent]) -> list[int]:
        """The library's aggregate recorder's insert, one statement for all the rows,
        where its application recorder inserts one row at a time (a chart is a
        hundred): their positions follow from the last one's, since this transaction
        holds the write lock and a rowid table gives each new row the next rowid."""
        if not stored_events:
            return []
        SQLiteAggregateRecorder._insert_events(self, c, stored_events)
        c.execute("SELECT last_insert_rowid()")
        last = int(c.fetchone()[0])
        return list(range(last - len(stored_events) + 1, last + 1))

    def chain_rows(self) -> Iterator[ChainRow]:
        """Every record in log order, with its signed body and its link (if any)."""
        with self.datastore.transaction(commit=False) as c:
            c.execute(
                "SELECT e.rowid, e.originator_id, e.originator_version, e.topic, e.state, "  # noqa: S608
                f"l.link FROM {self.events_table_name} e "
                f"LEFT JOIN {SQLITE_CHAIN_TABLE} l ON l.position = e.rowid ORDER BY e.rowid"
            )
            for position, stream_id, version, topic, state, stored in c.sqlite_cursor:
                yield position, record_body(position, stream_id, version, topic, state), stored

    def _one_row(self, statement: Any, params: Sequence[Any] = ()) -> Any:
        with self.datastore.transaction(commit=False) as c:
            c.execute(statement, params)
            return c.fetchone()

    def claimed_scopes(self, scopes: Sequence[str]) -> set[str]:
        """Which of these idempotency scopes hold a claim (one query)."""
        return set(self._found_in("SELECT scope FROM idempotency_claims WHERE scope", scopes))

    def existing_streams(self, stream_ids: Sequence[UUID]) -> set[UUID]:
        """Which of these streams have any record (one query, no decryption)."""
        table = self.events_table_name
        select = f"SELECT DISTINCT originator_id FROM {table} WHERE originator_id"  # noqa: S608
        return {UUID(found) for found in self._found_in(select, [s.hex for s in stream_ids])}

    def _found_in(self, select: str, values: Sequence[str]) -> list[Any]:
        """The first column of ``select`` ended by ``IN (values)``; none for no values."""
        if not values:
            return []
        with self.datastore.transaction(commit=False) as c:
            c.execute(f"{select} IN ({', '.join('?' * len(values))})", values)
            return [row[0] for row in c.fetchall()]

    def select_versions(self, stream_id: UUID, versions: Sequence[int]) -> list[StoredEvent]:
        """These versions of one stream, in version order (one query, by primary key)."""
        if not versions:
            return []
        with self.datastore.transaction(commit=False) as c:
            c.execute(
                self.select_events_statement
                + f"AND originator_version IN ({', '.join('?' * len(versions))}) "
                "ORDER BY originator_version",
                [stream_id.hex, *versions],
            )
            return [
                StoredEvent(
                    self.convert_originator_id(row["originator_id"]),
                    row["originator_version"],
                    row["topic"],
                    row["state"],
                )
                for row in c.fetchall()
            ]


SQLITE_FULL = 13


def disk_full(error: BaseException) -> bool:
    """Whether SQLite refused a write because its disk (or the file's quota) is full."""
    cause = error.__cause__ or error
    code = getattr(cause, "sqlite_errorcode", None)
    return code == SQLITE_FULL or "database or disk is full" in str(cause)
