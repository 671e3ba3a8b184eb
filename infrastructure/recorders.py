"""The library's process recorders, extended to write idempotency claims atomically.

A claim rides in the same transaction as the events it guards (passed through
``Application.save(..., idempotency=claim)``), so a retried request either finds the
first outcome or writes nothing.
"""

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from eventsourcing.persistence import IntegrityError, StoredEvent
from eventsourcing.postgres import PostgresDatastore, PostgresProcessRecorder
from eventsourcing.sqlite import SQLiteCursor, SQLiteDatastore, SQLiteProcessRecorder
from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg.sql import SQL, Identifier

from application.ports import IdempotencyClaim, IdempotentOutcome


class SQLiteLedgerRecorder(SQLiteProcessRecorder):
    def __init__(self, datastore: SQLiteDatastore, *, events_table_name: str = "stored_events"):
        super().__init__(datastore, events_table_name=events_table_name)

    def construct_create_table_statements(self) -> list[str]:
        return [
            *super().construct_create_table_statements(),
            "CREATE TABLE IF NOT EXISTS idempotency_claims ("
            "scope TEXT PRIMARY KEY, "
            "fingerprint TEXT NOT NULL, "
            "stream_id TEXT NOT NULL, "
            "stream_version INTEGER NOT NULL, "
            "result BLOB NOT NULL) WITHOUT ROWID",
        ]

    def _insert_events(
        self, c: SQLiteCursor, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        claim: IdempotencyClaim | None = kwargs.get("idempotency")
        if claim is not None:
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
        return super()._insert_events(c, stored_events, **kwargs)

    def find_outcome(self, scope: str) -> IdempotentOutcome | None:
        with self.datastore.transaction(commit=False) as c:
            c.execute(
                f"SELECT i.fingerprint, i.result, e.rowid AS position "  # noqa: S608
                f"FROM idempotency_claims i LEFT JOIN {self.events_table_name} e "
                "ON e.originator_id = i.stream_id AND e.originator_version = i.stream_version "
                "WHERE i.scope = ?",
                (scope,),
            )
            row = c.fetchone()
        if row is None:
            return None
        return IdempotentOutcome(row["fingerprint"], bytes(row["result"]), row["position"])


class PostgresLedgerRecorder(PostgresProcessRecorder):
    def __init__(
        self,
        datastore: PostgresDatastore,
        *,
        events_table_name: str = "stored_events",
        tracking_table_name: str = "notification_tracking",
    ):
        super().__init__(
            datastore,
            events_table_name=events_table_name,
            tracking_table_name=tracking_table_name,
        )
        self.claims_table_name = events_table_name.removesuffix("_events") + "_idempotency"
        self.check_identifier_length(self.claims_table_name)
        claims = Identifier(self.claims_table_name)
        schema = Identifier(self.datastore.schema)
        self.sql_create_statements.append(
            SQL(
                "CREATE TABLE IF NOT EXISTS {schema}.{claims} ("
                "scope text PRIMARY KEY, "
                "fingerprint text NOT NULL, "
                "stream_id uuid NOT NULL, "
                "stream_version bigint NOT NULL, "
                "result bytea NOT NULL)"
            ).format(schema=schema, claims=claims)
        )
        # DO NOTHING + RETURNING, because a plain unique violation inside the library's
        # pipeline surfaces as PipelineAborted (an OperationalError), which would make a
        # concurrent retry of the same request look like an outage.
        self._insert_claim = SQL(
            "INSERT INTO {schema}.{claims} VALUES (%s, %s, %s, %s, %s) "
            "ON CONFLICT (scope) DO NOTHING RETURNING scope"
        ).format(schema=schema, claims=claims)
        self._select_claim = SQL(
            "SELECT i.fingerprint, i.result, e.notification_id AS position "
            "FROM {schema}.{claims} i LEFT JOIN {schema}.{events} e "
            "ON e.originator_id = i.stream_id AND e.originator_version = i.stream_version "
            "WHERE i.scope = %s"
        ).format(schema=schema, claims=claims, events=Identifier(self.events_table_name))

    def _insert_events(
        self, curs: Cursor[DictRow], stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> None:
        claim: IdempotencyClaim | None = kwargs.get("idempotency")
        if claim is not None:
            curs.execute(
                self._insert_claim,
                (
                    claim.scope,
                    claim.fingerprint,
                    claim.stream_id,
                    claim.stream_version,
                    claim.result,
                ),
            )
            if curs.fetchone() is None:
                raise IntegrityError("the idempotency key was claimed by a concurrent request")
        super()._insert_events(curs, stored_events, **kwargs)

    def find_outcome(self, scope: str) -> IdempotentOutcome | None:
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(self._select_claim, (scope,))
            row = curs.fetchone()
        if row is None:
            return None
        return IdempotentOutcome(row["fingerprint"], bytes(row["result"]), row["position"])


def stream_uuid(value: UUID | str) -> UUID:
    return value if isinstance(value, UUID) else UUID(value)
