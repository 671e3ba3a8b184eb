"""The wrapped data keys, stored beside the log: one row per key.

This is the one table rows of which change: destroying a key (crypto-shredding)
overwrites its wrapping with NULL, and rotation re-wraps it. Event rows never change.
"""

from uuid import UUID

from eventsourcing.postgres import PostgresDatastore
from eventsourcing.sqlite import SQLiteDatastore
from psycopg.sql import SQL, Composed, Identifier

from infrastructure.keys import WrappedKey

SQLITE_KEYS_TABLE = "data_keys"
SQLITE_CREATE_KEYS = (
    f"CREATE TABLE IF NOT EXISTS {SQLITE_KEYS_TABLE} ("
    "key_id TEXT PRIMARY KEY, kek_id TEXT NOT NULL, wrapped BLOB, destroyed_at TEXT"
    ") WITHOUT ROWID"
)


class SQLiteKeyTable:
    def __init__(self, datastore: SQLiteDatastore) -> None:
        self.datastore = datastore

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

    def destroy(self, key_id: UUID) -> bool:
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

    def _sql(self, text: str) -> Composed:
        return SQL(text).format(table=self.table)

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

    def destroy(self, key_id: UUID) -> bool:
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
