"""Direct access to a store's tables, as the application role or as a superuser.

The superuser is the attacker of the tamper stories: on PostgreSQL it disables the
triggers for its session (``session_replication_role = replica``); on SQLite, where
whoever holds the file is all-powerful, it drops them.
"""

import hashlib
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from typing import Any
from urllib.parse import urlsplit
from uuid import UUID

import psycopg

from tests.conftest import APP_ROLE, role_url


class RawStore:
    def __init__(self, database_url: str) -> None:
        self.url = database_url
        self.postgres = database_url.startswith("postgres")
        if self.postgres:
            self.events, self.snapshots = "careledger_events", "careledger_snapshots"
            self.chain, self.keys, self.id = (
                "careledger_chain",
                "careledger_keys",
                "notification_id",
            )
        else:
            self.events, self.snapshots = "stored_events", "stored_snapshots"
            self.chain, self.keys, self.id = "chain_links", "data_keys", "rowid"
            self.path = database_url[len("sqlite:///") :]

    # Connections ---------------------------------------------------------------------

    @contextmanager
    def as_superuser(self) -> Iterator[Any]:
        if self.postgres:
            url = role_url(self.url.split("?")[0], "postgres")
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("SET session_replication_role = replica")
                yield conn
        else:
            with closing(sqlite3.connect(self.path, isolation_level=None)) as conn:
                for (name,) in conn.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'trigger'"
                ).fetchall():
                    conn.execute(f"DROP TRIGGER {name}")
                yield conn

    @contextmanager
    def as_application(self) -> Iterator[Any]:
        if self.postgres:
            assert urlsplit(self.url).username == APP_ROLE
            with psycopg.connect(self.url.split("?")[0], autocommit=True) as conn:
                yield conn
        else:
            with closing(sqlite3.connect(self.path, isolation_level=None)) as conn:
                yield conn

    def run(self, conn: Any, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        if self.postgres:
            sql = sql.replace("?", "%s")
        cursor = conn.execute(sql, params)
        return list(cursor.fetchall()) if cursor.description else []

    def stored_id(self, id_: UUID) -> str:
        """An id as this store's columns hold it in text: a UUID's text on PostgreSQL,
        its hex on SQLite (for parameters, and for comparing with what is read)."""
        return str(id_) if self.postgres else id_.hex

    # Tampering -----------------------------------------------------------------------

    def positions(self, stream_id: UUID | None = None) -> list[int]:
        """Every record's position in log order, or only those of one stream."""
        where, params = "", ()
        if stream_id is not None:
            where = "WHERE originator_id = ? "
            params = (self.stored_id(stream_id),)
        with self.as_superuser() as conn:
            rows = self.run(conn, f"SELECT {self.id} FROM {self.events} {where}ORDER BY 1", params)
        return [r[0] for r in rows]

    def flip_byte(self, position: int, offset: int = 40) -> None:
        with self.as_superuser() as conn:
            [(state,)] = self.run(
                conn,
                f"SELECT state FROM {self.events} WHERE {self.id} = ?",
                (position,),
            )
            state = bytearray(state)
            state[offset] ^= 0x01
            self.run(
                conn,
                f"UPDATE {self.events} SET state = ? WHERE {self.id} = ?",
                (bytes(state), position),
            )

    def delete(self, position: int, *, with_link: bool = False) -> None:
        with self.as_superuser() as conn:
            self.run(conn, f"DELETE FROM {self.events} WHERE {self.id} = ?", (position,))
            if with_link:
                self.run(conn, f"DELETE FROM {self.chain} WHERE position = ?", (position,))

    def forge(self, stream_id: str, topic: str, state: bytes) -> int:
        """Insert a record the application never wrote; return its position."""
        with self.as_superuser() as conn:
            self.run(
                conn,
                f"INSERT INTO {self.events} (originator_id, originator_version, topic, state) "
                "VALUES (?, 1, ?, ?)",
                (stream_id, topic, state),
            )
            [(position,)] = self.run(conn, f"SELECT max({self.id}) FROM {self.events}")
        return int(position)

    def swap(self, first: int, second: int) -> None:
        """Exchange the contents of two positions (through a placeholder version)."""
        columns = "originator_id, originator_version, topic, state"
        with self.as_superuser() as conn:
            query = f"SELECT {columns} FROM {self.events} WHERE {self.id} = ?"
            [a] = self.run(conn, query, (first,))
            [b] = self.run(conn, query, (second,))
            update = (
                f"UPDATE {self.events} SET originator_id = ?, originator_version = ?, "
                f"topic = ?, state = ? WHERE {self.id} = ?"
            )
            self.run(conn, update, (a[0], -1, a[2], a[3], first))  # frees a's (stream, version)
            self.run(conn, update, (*a, second))
            self.run(conn, update, (*b, first))

    def digest(self, *tables: str) -> str:
        """A digest of every byte of the given tables, in a stable order."""
        sha = hashlib.sha256()
        with self.as_superuser() as conn:
            for table in tables:
                for row in self.run(conn, f"SELECT * FROM {table} ORDER BY 1, 2"):
                    sha.update(
                        repr([bytes(v) if isinstance(v, memoryview) else v for v in row]).encode()
                    )
        return sha.hexdigest()
