"""Schema ownership, append-only protection, and unlocking an opened store's keys.

On PostgreSQL the tables belong to an owner role, which runs these migrations. The
service connects as an application role that owns nothing: it may read and append,
and the triggers below refuse UPDATE, DELETE and TRUNCATE of the log even where a
privilege has to be granted (the library's ``LOCK TABLE ... IN EXCLUSIVE MODE``
requires UPDATE on the events table).
"""

from collections.abc import Mapping

from eventsourcing.persistence import AggregateRecorder
from eventsourcing.sqlite import SQLiteAggregateRecorder
from psycopg.sql import SQL, Identifier

from application.ledger.ledger import CareLedger
from infrastructure.keys import CHAIN_KEY_ID, KeyEncryptionKey, KeyRing
from infrastructure.postgres_recorder import PostgresLedgerRecorder
from infrastructure.projections.catalogue import projections, table_names
from infrastructure.projections.engine import create_tables
from infrastructure.projections.row_cipher import RowCipher
from infrastructure.projections.store import ViewStore
from infrastructure.sealing import SealingMapper
from infrastructure.sqlite_recorder import SQLITE_CHAIN_TABLE


def append_only_tables(ledger: CareLedger) -> list[str]:
    events = ledger.recorder
    assert isinstance(events, AggregateRecorder)
    names = [events.events_table_name]  # type: ignore[attr-defined]
    if ledger.snapshots is not None:
        names.append(ledger.snapshots.recorder.events_table_name)  # type: ignore[attr-defined]
    if isinstance(events, PostgresLedgerRecorder):
        names.append(events.chain_table_name)
    else:
        names.append(SQLITE_CHAIN_TABLE)
    return names


def protect(ledger: CareLedger, app_role: str | None = None) -> None:
    """Install the append-only triggers, and grant the application role what it needs."""
    recorder = ledger.recorder
    tables = append_only_tables(ledger)
    store = ViewStore(recorder)
    create_tables(store, projections(store, RowCipher(None)))
    if isinstance(recorder, SQLiteAggregateRecorder):
        with recorder.datastore.transaction(commit=True) as c:
            for table in tables:
                for operation in ("UPDATE", "DELETE"):
                    c.execute(
                        f"CREATE TRIGGER IF NOT EXISTS {table}_refuse_{operation.lower()} "
                        f"BEFORE {operation} ON {table} BEGIN "
                        f"SELECT RAISE(ABORT, 'careledger: {operation} on {table} is refused: "
                        "the log is append-only'); END"
                    )
        return
    assert isinstance(recorder, PostgresLedgerRecorder)
    _protect_postgres(recorder, tables, app_role)


def _protect_postgres(
    recorder: PostgresLedgerRecorder, tables: list[str], app_role: str | None
) -> None:
    schema = Identifier(recorder.datastore.schema)
    refuse = Identifier("careledger_refuse_change")
    statements = [
        SQL(
            "CREATE OR REPLACE FUNCTION {schema}.{refuse}() RETURNS trigger "
            "LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION "
            "'careledger: % on % is refused: the log is append-only', TG_OP, TG_TABLE_NAME "
            "USING ERRCODE = 'insufficient_privilege'; END $$"
        ).format(schema=schema, refuse=refuse)
    ]
    for table in tables:
        fields = {
            "schema": schema,
            "refuse": refuse,
            "table": Identifier(table),
            "rows": Identifier(f"{table}_append_only"),
            "truncate": Identifier(f"{table}_no_truncate"),
        }
        statements += [
            SQL(
                "CREATE OR REPLACE TRIGGER {rows} BEFORE UPDATE OR DELETE ON {schema}.{table} "
                "FOR EACH ROW EXECUTE FUNCTION {schema}.{refuse}()"
            ).format(**fields),
            SQL(
                "CREATE OR REPLACE TRIGGER {truncate} BEFORE TRUNCATE ON {schema}.{table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION {schema}.{refuse}()"
            ).format(**fields),
        ]
    if app_role:
        role = Identifier(app_role)
        events = Identifier(recorder.events_table_name)
        keys = Identifier(recorder.keys_table_name)
        statements += [
            SQL("GRANT USAGE ON SCHEMA {schema} TO {role}").format(schema=schema, role=role),
            SQL("GRANT SELECT, INSERT ON ALL TABLES IN SCHEMA {schema} TO {role}").format(
                schema=schema, role=role
            ),
            # Needed by the library's table lock; the trigger refuses actual updates.
            SQL("GRANT UPDATE ON {schema}.{events} TO {role}").format(
                schema=schema, events=events, role=role
            ),
            # Crypto-shredding and key rotation change a key's wrapping in place, and
            # the library keeps one tracking row per process, advanced by upsert.
            SQL("GRANT UPDATE ON {schema}.{keys}, {schema}.{tracking} TO {role}").format(
                schema=schema,
                keys=keys,
                tracking=Identifier(recorder.tracking_table_name),
                role=role,
            ),
            SQL("GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {schema} TO {role}").format(
                schema=schema, role=role
            ),
        ]
        # Read models are derived, not records: they are rewritten and rebuilt.
        statements += [
            SQL("GRANT SELECT, INSERT, UPDATE, DELETE ON {schema}.{view} TO {role}").format(
                schema=schema, view=Identifier(view), role=role
            )
            for view in table_names(ViewStore(recorder))
        ]
    with recorder.datastore.get_connection() as conn, conn.transaction():
        # Concurrent first starts would race on CREATE OR REPLACE; serialise them.
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('careledger-migrations'))")
        for statement in statements:
            conn.execute(statement)


def migrate(owner_env: Mapping[str, str], app_role: str | None) -> None:
    """Create every table, trigger and grant, connected as the owner role."""
    ledger = CareLedger({**owner_env, "CREATE_TABLE": "y"})
    try:
        protect(ledger, app_role)
    finally:
        ledger.close()


def unlock(ledger: CareLedger, kek: KeyEncryptionKey, *, cache_size: int = 10_000) -> KeyRing:
    """Bind the key ring to the mapper and the chain key to the recorder.

    Raises ``WrongMasterKey`` when the KEK does not open this store's keys.
    """
    recorder = ledger.recorder
    keys = KeyRing(recorder.keys, kek, cache_size=cache_size)  # type: ignore[attr-defined]
    keys.open()
    recorder.seal_with(keys.raw(CHAIN_KEY_ID))  # type: ignore[attr-defined]
    mapper = ledger.mapper
    assert isinstance(mapper, SealingMapper), "the store is not configured with SealingMapper"
    mapper.bind(keys, recorder)
    return keys
