"""The wrapped data keys, stored beside the log: one row per key.

This is the one table rows of which change: destroying a key (crypto-shredding)
overwrites its wrapping with NULL, and rotation re-wraps it. Event rows never change.

New patients' keys are stored ahead, a batch per transaction (``insert_all``, for
``KeyRing.new_patient_id``). The key of any other new patient id is not inserted on its
own: it is staged here, and the recorder writes it in the transaction of the first
events sealed under it (see ``StagedKeys``).
"""

import functools
import threading
from collections.abc import Iterable, Sequence
from typing import Any
from uuid import UUID

from eventsourcing.persistence import IntegrityError, StoredEvent
from eventsourcing.postgres import PostgresDatastore
from eventsourcing.sqlite import SQLiteCursor, SQLiteDatastore
from psycopg.sql import SQL, Composed, Identifier

from infrastructure.keys import WrappedKey
from infrastructure.sealing import sealing_key_id


class StagedKeys:
    """New data keys, each held in memory until a transaction that stores it commits.

    Inserting a new key in a transaction of its own cost a commit per registration.
    Instead the recorder writes the staged keys that a batch of events is sealed under
    in the same transaction as those events, so events never commit without their key,
    and a key is only forgotten here once a commit that stored it has succeeded. A
    failed or retried transaction leaves it staged, and the next one writes it again
    (insert-if-absent, so writing it twice is harmless).
    """

    def __init__(self) -> None:
        self._keys: dict[bytes, WrappedKey] = {}
        self._lock = threading.Lock()

    def stage(self, key: WrappedKey) -> WrappedKey:
        with self._lock:
            return self._keys.setdefault(key.key_id.bytes, key)

    def get(self, key_id: UUID) -> WrappedKey | None:
        return self._keys.get(key_id.bytes)

    def needed_by(self, stored_events: Iterable[StoredEvent]) -> list[WrappedKey]:
        """The staged keys these events are sealed under (read from their headers)."""
        if not self._keys:  # the common case: no new patient's key is waiting
            return []
        needed: dict[bytes, WrappedKey] = {}
        for event in stored_events:
            key_id = sealing_key_id(event.state)
            if key_id is not None and key_id not in needed:
                key = self._keys.get(key_id)
                if key is not None:
                    needed[key_id] = key
        return list(needed.values())

    def stored(self, keys: Iterable[WrappedKey]) -> None:
        """A transaction that wrote these keys has committed."""
        with self._lock:
            for key in keys:
                if self._keys.get(key.key_id.bytes) is key:
                    del self._keys[key.key_id.bytes]

    def discard(self, key_id: UUID) -> None:
        with self._lock:
            self._keys.pop(key_id.bytes, None)


def refuse_clashes(keys: Sequence[WrappedKey], stored: dict[UUID, bytes | None]) -> None:
    """Refuse the transaction if a staged key's id is stored with another wrapping.

    Insert-if-absent alone would then commit events sealed under a key that nobody
    has. Equal bytes are the same key, written by an earlier attempt that committed.
    """
    for key in keys:
        if stored.get(key.key_id, key.wrapped) != key.wrapped:
            raise IntegrityError(f"another data key with id {key.key_id} is stored already")


SQLITE_KEYS_TABLE = "data_keys"
SQLITE_CREATE_KEYS = (
    f"CREATE TABLE IF NOT EXISTS {SQLITE_KEYS_TABLE} ("
    "key_id TEXT PRIMARY KEY, kek_id TEXT NOT NULL, wrapped BLOB, destroyed_at TEXT"
    ") WITHOUT ROWID"
)


class SQLiteKeyTable:
    def __init__(self, datastore: SQLiteDatastore) -> None:
        self.datastore = datastore
        self.staging = StagedKeys()

    def stage(self, key: WrappedKey) -> WrappedKey:
        return self.staging.stage(key)

    def staged(self, key_id: UUID) -> WrappedKey | None:
        return self.staging.get(key_id)

    def write_staged(self, c: SQLiteCursor, keys: Sequence[WrappedKey]) -> None:
        """Insert staged keys in the caller's (the events') transaction."""
        stored: dict[UUID, bytes | None] = {}
        for key in keys:
            c.execute(
                f"INSERT OR IGNORE INTO {SQLITE_KEYS_TABLE} VALUES (?, ?, ?, NULL)",  # noqa: S608
                (key.key_id.hex, key.kek_id, key.wrapped),
            )
            if not c.sqlite_cursor.rowcount:
                c.execute(
                    f"SELECT wrapped FROM {SQLITE_KEYS_TABLE} WHERE key_id = ?",  # noqa: S608
                    (key.key_id.hex,),
                )
                wrapped = c.fetchone()["wrapped"]
                stored[key.key_id] = None if wrapped is None else bytes(wrapped)
        refuse_clashes(keys, stored)

    def get(self, key_id: UUID) -> WrappedKey | None:
        with self.datastore.transaction(commit=False) as c:
            c.execute(
                f"SELECT kek_id, wrapped FROM {SQLITE_KEYS_TABLE} WHERE key_id = ?",  # noqa: S608
                (key_id.hex,),
            )
            row = c.fetchone()
        if row is None:
            return None
        wrapped = row["wrapped"]
        return WrappedKey(key_id, row["kek_id"], None if wrapped is None else bytes(wrapped))

    def insert_if_absent(self, key: WrappedKey) -> bool:
        with self.datastore.transaction(commit=True) as c:
            c.execute(
                f"INSERT OR IGNORE INTO {SQLITE_KEYS_TABLE} VALUES (?, ?, ?, NULL)",  # noqa: S608
                (key.key_id.hex, key.kek_id, key.wrapped),
            )
            return bool(c.sqlite_cursor.rowcount)

    def insert_all(self, keys: Sequence[WrappedKey]) -> None:
        with self.datastore.transaction(commit=True) as c:
            c.executemany(
                f"INSERT INTO {SQLITE_KEYS_TABLE} VALUES (?, ?, ?, NULL)",  # noqa: S608
                [(key.key_id.hex, key.kek_id, key.wrapped) for key in keys],
            )

    def destroy(self, key_id: UUID) -> bool:
        self.staging.discard(key_id)
        with self.datastore.transaction(commit=True) as c:
            c.execute(
                f"UPDATE {SQLITE_KEYS_TABLE} SET wrapped = NULL, "  # noqa: S608
                "destroyed_at = datetime('now') WHERE key_id = ? AND wrapped IS NOT NULL",
                (key_id.hex,),
            )
            return bool(c.sqlite_cursor.rowcount)

    def rewrap(self, keys: list[tuple[str, WrappedKey]]) -> None:
        with self.datastore.transaction(commit=True) as c:
            for old_kek_id, key in keys:
                c.execute(
                    f"UPDATE {SQLITE_KEYS_TABLE} SET kek_id = ?, wrapped = ? "  # noqa: S608
                    "WHERE key_id = ? AND kek_id = ? AND wrapped IS NOT NULL",
                    (key.kek_id, key.wrapped, key.key_id.hex, old_kek_id),
                )

    def not_wrapped_by(self, kek_id: str, limit: int) -> list[WrappedKey]:
        with self.datastore.transaction(commit=False) as c:
            c.execute(
                f"SELECT key_id, kek_id, wrapped FROM {SQLITE_KEYS_TABLE} "  # noqa: S608
                "WHERE kek_id != ? AND wrapped IS NOT NULL ORDER BY key_id LIMIT ?",
                (kek_id, limit),
            )
            rows = c.fetchall()
        return [WrappedKey(UUID(r["key_id"]), r["kek_id"], bytes(r["wrapped"])) for r in rows]

    def count_not_wrapped_by(self, kek_id: str) -> int:
        with self.datastore.transaction(commit=False) as c:
            c.execute(
                f"SELECT count(*) AS n FROM {SQLITE_KEYS_TABLE} "  # noqa: S608
                "WHERE kek_id != ? AND wrapped IS NOT NULL",
                (kek_id,),
            )
            return int(c.fetchone()["n"])


def postgres_keys_table(events_table_name: str) -> str:
    return events_table_name.removesuffix("_events") + "_keys"


def postgres_create_keys(schema: str, table: str) -> Composed:
    return SQL(
        "CREATE TABLE IF NOT EXISTS {schema}.{table} ("
        "key_id uuid PRIMARY KEY, kek_id text NOT NULL, wrapped bytea, "
        "created_at timestamptz NOT NULL DEFAULT now(), destroyed_at timestamptz)"
    ).format(schema=Identifier(schema), table=Identifier(table))


class PostgresKeyTable:
    def __init__(self, datastore: PostgresDatastore, table: str) -> None:
        self.datastore = datastore
        self.table = SQL("{}.{}").format(Identifier(datastore.schema), Identifier(table))
        self.staging = StagedKeys()

    def _sql(self, text: str) -> Composed:
        return SQL(text).format(table=self.table)

    def stage(self, key: WrappedKey) -> WrappedKey:
        return self.staging.stage(key)

    def staged(self, key_id: UUID) -> WrappedKey | None:
        return self.staging.get(key_id)

    # Staged keys, in the events' transaction. The statements list one row per key
    # (usually one): arrays and unnest() made the planner scan the whole table.

    @functools.cache  # noqa: B019 (one table object per recorder, a few sizes)
    def insert_staged_sql(self, n: int) -> bytes:
        """Sent in the events' pipeline with no result read: it costs no round trip."""
        rows = SQL(", ").join([SQL("(%s, %s, %s)")] * n)
        return (
            SQL(
                "INSERT INTO {table} (key_id, kek_id, wrapped) VALUES {rows} "
                "ON CONFLICT (key_id) DO NOTHING"
            )
            .format(table=self.table, rows=rows)
            .as_bytes(None)
        )

    @functools.cache  # noqa: B019
    def count_ours_sql(self, n: int) -> Composed:
        """A scalar subquery, for the recorder's next read: how many are stored as ours."""
        rows = SQL(", ").join([SQL("(%s, %s)")] * n)
        return SQL("(SELECT count(*) FROM {table} WHERE (key_id, wrapped) IN ({rows}))").format(
            table=self.table, rows=rows
        )

    @staticmethod
    def insert_staged_params(keys: Sequence[WrappedKey]) -> list[Any]:
        return [v for k in keys for v in (k.key_id, k.kek_id, k.wrapped)]

    @staticmethod
    def count_ours_params(keys: Sequence[WrappedKey]) -> list[Any]:
        return [v for k in keys for v in (k.key_id, k.wrapped)]

    @staticmethod
    def refuse_unless_ours(keys: Sequence[WrappedKey], ours: int) -> None:
        """After the insert: every key must now be stored exactly as staged.

        Insert-if-absent alone would commit events sealed under a key that nobody has,
        if another key with that id were stored already.
        """
        if ours != len(keys):
            ids = ", ".join(str(k.key_id) for k in keys)
            raise IntegrityError(f"another data key is stored already under one of: {ids}")

    def get(self, key_id: UUID) -> WrappedKey | None:
        with self.datastore.get_connection() as conn:
            row = conn.execute(
                self._sql("SELECT kek_id, wrapped FROM {table} WHERE key_id = %s"), (key_id,)
            ).fetchone()
        if row is None:
            return None
        wrapped = row["wrapped"]
        return WrappedKey(key_id, row["kek_id"], None if wrapped is None else bytes(wrapped))

    def insert_if_absent(self, key: WrappedKey) -> bool:
        with self.datastore.get_connection() as conn:
            cursor = conn.execute(
                self._sql(
                    "INSERT INTO {table} (key_id, kek_id, wrapped) VALUES (%s, %s, %s) "
                    "ON CONFLICT (key_id) DO NOTHING"
                ),
                (key.key_id, key.kek_id, key.wrapped),
            )
            return bool(cursor.rowcount)

    def insert_all(self, keys: Sequence[WrappedKey]) -> None:
        with self.datastore.get_connection() as conn, conn.transaction(), conn.cursor() as c:
            c.execute(
                self._sql(
                    "INSERT INTO {table} (key_id, kek_id, wrapped) "
                    "SELECT * FROM unnest(%b::uuid[], %b::text[], %b::bytea[])"
                ),
                (
                    [key.key_id for key in keys],
                    [key.kek_id for key in keys],
                    [key.wrapped for key in keys],
                ),
            )

    def destroy(self, key_id: UUID) -> bool:
        self.staging.discard(key_id)
        with self.datastore.get_connection() as conn:
            cursor = conn.execute(
                self._sql(
                    "UPDATE {table} SET wrapped = NULL, destroyed_at = now() "
                    "WHERE key_id = %s AND wrapped IS NOT NULL"
                ),
                (key_id,),
            )
            return bool(cursor.rowcount)

    def rewrap(self, keys: list[tuple[str, WrappedKey]]) -> None:
        with self.datastore.get_connection() as conn, conn.transaction(), conn.cursor() as c:
            c.executemany(
                self._sql(
                    "UPDATE {table} SET kek_id = %s, wrapped = %s "
                    "WHERE key_id = %s AND kek_id = %s AND wrapped IS NOT NULL"
                ),
                [(key.kek_id, key.wrapped, key.key_id, old) for old, key in keys],
            )

    def not_wrapped_by(self, kek_id: str, limit: int) -> list[WrappedKey]:
        with self.datastore.get_connection() as conn:
            rows = conn.execute(
                self._sql(
                    "SELECT key_id, kek_id, wrapped FROM {table} "
                    "WHERE kek_id <> %s AND wrapped IS NOT NULL ORDER BY key_id LIMIT %s"
                ),
                (kek_id, limit),
            ).fetchall()
        return [WrappedKey(r["key_id"], r["kek_id"], bytes(r["wrapped"])) for r in rows]

    def count_not_wrapped_by(self, kek_id: str) -> int:
        with self.datastore.get_connection() as conn:
            row = conn.execute(
                self._sql(
                    "SELECT count(*) AS n FROM {table} WHERE kek_id <> %s AND wrapped IS NOT NULL"
                ),
                (kek_id,),
            ).fetchone()
        assert row is not None
        return int(row["n"])
