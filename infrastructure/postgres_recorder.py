"""CareLedger's PostgreSQL recorder: the library's, with claims, new keys and chain
links in the events' transaction, under the lock it already takes (see ``recorders``)."""

import contextlib
import functools
from collections.abc import Iterator, Sequence
from typing import Any
from uuid import UUID

import psycopg
from eventsourcing.persistence import IntegrityError, StoredEvent
from eventsourcing.postgres import (
    PostgresAggregateRecorder,
    PostgresApplicationRecorder,
    PostgresDatastore,
    PostgresProcessRecorder,
)
from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg.sql import SQL, Composed, Identifier

from infrastructure.chain import GENESIS, ChainRow
from infrastructure.connection_pool import bounded_retry, recovering
from infrastructure.key_tables import (
    PostgresKeyTable,
    postgres_create_keys,
    postgres_keys_table,
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

_ABANDON = b"DO $$BEGIN RAISE EXCEPTION 'careledger: transaction abandoned'; END$$"


def _binary_insert(statement: Composed | SQL) -> Composed | SQL:
    """The library's insert, with its array of events sent in binary (``%b``, not ``%s``).

    The text form escapes every byte of every sealed state through a regex: a third of
    the Python time of a commit (profiled with py-spy). The statement is otherwise
    the library's own, checked here, so a library upgrade that changes it keeps its own.
    """
    text = statement.as_string()
    if text.count("unnest(%s::") != 1 or "%" in text.replace("unnest(%s::", ""):
        return statement
    return SQL(text.replace("unnest(%s::", "unnest(%b::"))  # type: ignore[arg-type]


class _BoundedRetry(PostgresProcessRecorder):
    """The library's insert, tried again for two seconds rather than ten times: an
    outage answers 503 in seconds. Below ``CarriesNewKeys`` in the MRO, which wraps it."""

    insert_events = bounded_retry(PostgresApplicationRecorder.insert_events)


class PostgresLedgerRecorder(CarriesNewKeys, WritesSnapshots, Sealing, LedgerReads, _BoundedRetry):
    def __init__(
        self,
        datastore: PostgresDatastore,
        *,
        events_table_name: str = "stored_events",
        tracking_table_name: str = "notification_tracking",
    ):
        recovering(datastore)  # writes resume as soon as PostgreSQL is back
        super().__init__(
            datastore,
            events_table_name=events_table_name,
            tracking_table_name=tracking_table_name,
        )
        self.insert_events_statement = _binary_insert(self.insert_events_statement)
        prefix = events_table_name.removesuffix("_events")
        self.claims_table_name = prefix + "_idempotency"
        self.chain_table_name = prefix + "_chain"
        self.keys_table_name = postgres_keys_table(events_table_name)
        for name in (self.claims_table_name, self.chain_table_name, self.keys_table_name):
            self.check_identifier_length(name)
        self.keys = PostgresKeyTable(datastore, self.keys_table_name)
        # Backends this process has written through: their NOTIFYs echo our own
        # commits, which this process has already announced to itself.
        self.writer_pids: set[int] = set()
        claims = Identifier(self.claims_table_name)
        chain = Identifier(self.chain_table_name)
        schema = Identifier(self.datastore.schema)
        self.sql_create_statements.append(
            SQL(
                "CREATE TABLE IF NOT EXISTS {schema}.{chain} ("
                "position bigint PRIMARY KEY, link bytea NOT NULL)"
            ).format(schema=schema, chain=chain)
        )
        self.sql_create_statements.append(
            postgres_create_keys(self.datastore.schema, self.keys_table_name)
        )
        self._last_link_and = SQL(
            "SELECT (SELECT link FROM {schema}.{chain} ORDER BY position DESC LIMIT 1) AS link, "
        ).format(schema=schema, chain=chain)
        # One statement for a batch's links (not one per row, even pipelined).
        self._insert_link = SQL(
            "INSERT INTO {schema}.{chain} SELECT * FROM unnest(%b::bigint[], %b::bytea[])"
        ).format(schema=schema, chain=chain)
        self._select_head = SQL(
            "SELECT position, link FROM {schema}.{chain} ORDER BY position DESC LIMIT 1"
        ).format(schema=schema, chain=chain)
        # The signed body is assembled by the server, byte for byte as record_body() does,
        # so verification does no per-row UUID or string work in Python.
        self._select_chain = SQL(
            "SELECT e.notification_id, int8send(e.notification_id) "
            "|| int8send(e.originator_version::int8) || uuid_send(e.originator_id) "
            "|| int2send(octet_length(e.topic)::int2) || convert_to(e.topic, 'UTF8') "
            "|| e.state, l.link FROM {schema}.{events} e LEFT JOIN {schema}.{chain} l "
            "ON l.position = e.notification_id ORDER BY e.notification_id"
        ).format(schema=schema, chain=chain, events=Identifier(self.events_table_name))
        self._copy_chain = SQL("COPY ({select}) TO STDOUT (FORMAT BINARY)").format(
            select=self._select_chain
        )
        self._select_existing = SQL(
            "SELECT DISTINCT originator_id FROM {schema}.{events} WHERE originator_id = ANY(%s)"
        ).format(schema=schema, events=Identifier(self.events_table_name))
        self._select_versions = self.select_events_statement + SQL(
            " AND originator_version = ANY(%s) ORDER BY originator_version"
        )
        self._select_orphan = SQL(
            "SELECT min(position) AS p FROM {schema}.{chain} l WHERE NOT EXISTS "
            "(SELECT 1 FROM {schema}.{events} e WHERE e.notification_id = l.position)"
        ).format(schema=schema, chain=chain, events=Identifier(self.events_table_name))
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
        self._select_claimed = SQL(
            "SELECT scope FROM {schema}.{claims} WHERE scope = ANY(%s)"
        ).format(schema=schema, claims=claims)

    def _insert_events(
        self, curs: Cursor[DictRow], stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> None:
        self.writer_pids.add(curs.connection.info.backend_pid)
        for claim in claims_of(kwargs):
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
        new_keys: list[WrappedKey] | None = kwargs.get(NEW_KEYS)
        if new_keys:  # checked in _previous_link, once the pipeline has run
            curs.execute(
                self.keys.insert_staged_sql(len(new_keys)),
                self.keys.insert_staged_params(new_keys),
            )
        if snapshots := self._snapshots_in(kwargs):
            self.snapshot_recorder._insert_stored_events(curs, snapshots)
        super()._insert_events(curs, stored_events, **kwargs)

    def _fetch_ids_after_insert_events(
        self, curs: Cursor[DictRow], stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        try:
            # Called only for a non-empty batch. Still inside the transaction and under
            # the library's EXCLUSIVE lock on the events table, so links are written in
            # log order and never left behind.
            ids = super()._fetch_ids_after_insert_events(curs, stored_events, **kwargs)
            assert ids is not None
            chained, chained_ids = self._followed_up(
                stored_events, ids, kwargs, lambda more: self._insert_more(curs, more)
            )
            previous = self._previous_link(curs, kwargs.get(NEW_KEYS))
            links = self._links(previous, chained_ids, chained)
            curs.execute(self._insert_link, ([p for p, _ in links], [link for _, link in links]))
        except BaseException:
            self._abandon(curs)
            raise
        return ids

    def _insert_more(self, curs: Cursor[DictRow], more: Sequence[StoredEvent]) -> Sequence[int]:
        """The library's plain INSERT (the lock is held already), synced by the nested
        pipeline's exit, then the positions it gave."""
        with curs.connection.pipeline():
            PostgresAggregateRecorder._insert_stored_events(self, curs, more)
        ids = super()._fetch_ids_after_insert_events(curs, more)
        assert ids is not None
        return ids

    def _abandon(self, curs: Cursor[DictRow]) -> None:
        """Make sure the transaction rolls back.

        The library catches an exception raised here inside its transaction block, then
        leaves the block normally, which COMMITs: events without their links or their
        new keys. An error on the server first turns that COMMIT into a ROLLBACK.
        """
        with contextlib.suppress(psycopg.Error), curs.connection.pipeline():
            curs.execute(_ABANDON)

    @functools.cache  # noqa: B019 (one per recorder; keyed by how many keys, usually 1)
    def _last_link_and_keys(self, n: int) -> bytes:
        # Rendered once: composing it per save cost more than the query.
        statement = self._last_link_and + self.keys.count_ours_sql(n) + SQL(" AS ours")
        return statement.as_bytes(None)

    def _previous_link(self, curs: Cursor[DictRow], new_keys: list[WrappedKey] | None) -> bytes:
        """The last link; with staged keys, the same read checks they are stored as ours."""
        if not new_keys:
            curs.execute(self._select_head)  # the head's link is the previous one
            row = curs.fetchone()
            return bytes(row["link"]) if row else GENESIS
        curs.execute(self._last_link_and_keys(len(new_keys)), self.keys.count_ours_params(new_keys))
        row = curs.fetchone()
        assert row is not None
        self.keys.refuse_unless_ours(new_keys, row["ours"])
        return GENESIS if row["link"] is None else bytes(row["link"])

    @property
    def reads_side_by_side(self) -> bool:
        """Whether audit verify's search for leftover links may take a second
        connection while the walk holds one (ChainSource)."""
        return bool(self.datastore.pool.max_size >= 2)

    def chain_rows(self) -> Iterator[ChainRow]:
        """Every record in log order, with its signed body and its link (if any).

        Streamed by a binary COPY of the query, one snapshot, because ``audit verify``
        reads every row and a server-side cursor's FETCHes cost more per row.
        Leaving early cancels the COPY, and the read transaction is rolled back.
        """
        with (
            self.datastore.get_connection() as conn,
            conn.transaction(),
            conn.cursor() as curs,
            curs.copy(self._copy_chain) as copy,
        ):
            copy.set_types(("int8", "bytea", "bytea"))
            yield from copy.rows()  # type: ignore[misc]

    def _one_row(self, statement: Any, params: Sequence[Any] = ()) -> DictRow | None:
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(statement, params)
            return curs.fetchone()

    def snapshot_into(self, snapshot_recorder: object) -> None:
        """The snapshot store's recorder, its insert sent in binary as ours is: a
        snapshot holds a whole chart, and its text form was a tenth of an import's
        Python time on PostgreSQL (py-spy)."""
        if isinstance(snapshot_recorder, PostgresAggregateRecorder):
            statement = snapshot_recorder.insert_events_statement
            snapshot_recorder.insert_events_statement = _binary_insert(statement)
        super().snapshot_into(snapshot_recorder)

    def claimed_scopes(self, scopes: Sequence[str]) -> set[str]:
        """Which of these idempotency scopes hold a claim (one query)."""
        return set(self._found_in(self._select_claimed, scopes, "scope"))

    def existing_streams(self, stream_ids: Sequence[UUID]) -> set[UUID]:
        """Which of these streams have any record (one query, no decryption)."""
        return set(self._found_in(self._select_existing, stream_ids, "originator_id"))

    def _found_in(self, statement: Composed, values: Sequence[Any], column: str) -> list[Any]:
        """``column`` of the rows ``statement`` finds for ``values`` (its one ``ANY``
        parameter); none for no values."""
        if not values:
            return []
        with self.datastore.get_connection() as conn:
            rows = conn.execute(statement, (list(values),)).fetchall()
        return [row[column] for row in rows]

    def select_versions(self, stream_id: UUID, versions: Sequence[int]) -> list[StoredEvent]:
        """These versions of one stream, in version order (one query, by primary key)."""
        if not versions:
            return []
        with self.datastore.get_connection() as conn:
            rows = conn.execute(self._select_versions, (stream_id, list(versions))).fetchall()
        return [
            StoredEvent(
                row["originator_id"], row["originator_version"], row["topic"], bytes(row["state"])
            )
            for row in rows
        ]
