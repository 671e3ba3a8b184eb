"""One small SQL seam over the ledger's own database, for the read models.

Views live in the same database as the log so that a batch of view rows and its
tracking position commit in one transaction (exactly once). Statements are written
once with ``?`` placeholders and the portable subset of SQL that SQLite and
PostgreSQL share (``INSERT ... ON CONFLICT``); this class adapts placeholders, types
and table qualification.
"""

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Protocol

from eventsourcing.persistence import ApplicationRecorder
from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.sqlite import SQLiteApplicationRecorder
from psycopg.rows import tuple_row

Row = tuple[Any, ...]


class Cursor(Protocol):
    def execute(self, sql: str, params: Sequence[Any] = ()) -> "Cursor": ...

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None: ...

    def fetchone(self) -> Row | None: ...

    def fetchall(self) -> list[Row]: ...

    @property
    def rowcount(self) -> int: ...


class _PgCursor:
    """psycopg with ``?`` placeholders and tuple rows."""

    def __init__(self, cursor: Any) -> None:
        self._cursor = cursor

    def execute(self, sql: str, params: Sequence[Any] = ()) -> "_PgCursor":
        self._cursor.execute(sql.replace("?", "%s"), params, prepare=bool(params))
        return self

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            self._cursor.executemany(sql.replace("?", "%s"), rows)

    def fetchone(self) -> Row | None:
        row: Row | None = self._cursor.fetchone()
        return row

    def fetchall(self) -> list[Row]:
        return list(self._cursor.fetchall())

    @property
    def rowcount(self) -> int:
        return int(self._cursor.rowcount)


class _SqliteCursor:
    def __init__(self, cursor: Any) -> None:
        self._cursor = cursor

    def execute(self, sql: str, params: Sequence[Any] = ()) -> "_SqliteCursor":
        self._cursor.execute(sql, tuple(params))
        return self

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            self._cursor.executemany(sql, [tuple(r) for r in rows])

    def fetchone(self) -> Row | None:
        row = self._cursor.fetchone()
        return tuple(row) if row is not None else None

    def fetchall(self) -> list[Row]:
        return [tuple(r) for r in self._cursor.fetchall()]

    @property
    def rowcount(self) -> int:
        return int(self._cursor.rowcount)


class ViewStore:
    """Transactions and names on the ledger's database (SQLite file or PostgreSQL)."""

    def __init__(self, recorder: ApplicationRecorder) -> None:
        self.recorder = recorder
        if isinstance(recorder, PostgresApplicationRecorder):
            self.dialect = "postgres"
            self.schema = recorder.datastore.schema
            self.channel = recorder.channel_name
            # Per schema: several stores may share one database (and its channels).
            self.positions_channel = f"careledger_views_{self.schema}"[:63]
        elif isinstance(recorder, SQLiteApplicationRecorder):
            self.dialect = "sqlite"
            self.schema = ""
            self.channel = ""
            self.positions_channel = ""
        else:  # pragma: no cover - the stores module only builds these two
            raise TypeError(f"unsupported recorder {type(recorder).__name__}")

    @property
    def is_postgres(self) -> bool:
        return self.dialect == "postgres"

    def table(self, name: str) -> str:
        """A table name, schema-qualified and quoted on PostgreSQL."""
        if not self.is_postgres:
            return name
        return f'"{self.schema}"."{name}"' if self.schema else f'"{name}"'

    def ddl(self, statement: str) -> str:
        """Portable DDL: ``BLOB`` and ``BIGINT`` are spelled per dialect."""
        if self.is_postgres:
            return statement.replace(" BLOB", " BYTEA")
        return statement

    @contextmanager
    def transaction(self) -> Iterator[Cursor]:
        """Commit on success, roll back on any error."""
        if self.is_postgres:
            datastore = self.recorder.datastore  # type: ignore[attr-defined]
            with datastore.get_connection() as conn, conn.transaction():
                yield _PgCursor(conn.cursor(row_factory=tuple_row))
        else:
            datastore = self.recorder.datastore  # type: ignore[attr-defined]
            with datastore.transaction(commit=True) as cursor:
                yield _SqliteCursor(cursor.sqlite_cursor)

    @contextmanager
    def reading(self) -> Iterator[Cursor]:
        """A read-only snapshot: every statement inside sees the same committed state."""
        if self.is_postgres:
            datastore = self.recorder.datastore  # type: ignore[attr-defined]
            with datastore.get_connection() as conn, conn.transaction(force_rollback=True):
                conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
                yield _PgCursor(conn.cursor(row_factory=tuple_row))
        else:
            datastore = self.recorder.datastore  # type: ignore[attr-defined]
            with datastore.transaction(commit=False) as cursor:
                yield _SqliteCursor(cursor.sqlite_cursor)

    def notify(self, cursor: Cursor, channel: str, payload: str) -> None:
        """Delivered to listeners when (and only if) the transaction commits."""
        if self.is_postgres:
            cursor.execute("SELECT pg_notify(?, ?)", (channel, payload))
