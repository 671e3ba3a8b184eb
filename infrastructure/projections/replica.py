"""The read models served from a PostgreSQL streaming replica (a hot standby).

A standby is a byte-for-byte copy of the primary at some earlier point of its WAL, so
its views, and the projection tracking rows committed with them, are the primary's
as of that point: a view at tracking position p shows exactly what the primary's did
at p. Only the queries of the read models come here; writes, the log, the keys, the
projectors and the access records stay on the primary (docs/operations.md, Read
replicas).

A standby can run neither LISTEN nor NOTIFY, so ``ReplicaPositions`` learns how far
the replica has applied the projections' commits by reading its own copy of the
tracking table, polling with short sleeps until ``min_position`` or the deadline.
"""

from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore

from infrastructure.connection_pool import recovering
from infrastructure.postgres_factory import libpq_options
from infrastructure.projections.live import Positions
from infrastructure.projections.store import ViewStore

# Between two reads of the replica's tracking rows while a min_position read waits:
# short, since a replica usually applies a commit within milliseconds.
POLL_SECONDS = 0.01
# TCP keepalives and libpq's tcp_user_timeout (ms) on the replica's connections.
DEAD_REPLICA = {
    "keepalives": 1,
    "keepalives_idle": 5,
    "keepalives_interval": 2,
    "keepalives_count": 3,
    "tcp_user_timeout": 10_000,
}


def replica_store(env: dict[str, str], primary: ViewStore) -> ViewStore:
    """A ViewStore on the replica that ``env`` (the read URL's environment) names.

    Tables are the primary's (same schema and names: the replica is its copy), so the
    schema is the primary's whatever the read URL says; nothing is created, since a
    standby accepts no DDL.
    """
    datastore = PostgresDatastore(
        dbname=env["POSTGRES_DBNAME"],
        host=env["POSTGRES_HOST"],
        port=env["POSTGRES_PORT"],
        user=env["POSTGRES_USER"],
        password=env["POSTGRES_PASSWORD"],
        connect_timeout=float(env["POSTGRES_CONNECT_TIMEOUT"]),
        pool_size=int(env["POSTGRES_POOL_SIZE"]),
        max_overflow=int(env["POSTGRES_MAX_OVERFLOW"]),
        pre_ping=True,
        schema=primary.schema,
    )
    kwargs = datastore.pool.kwargs
    assert isinstance(kwargs, dict)
    # libpq's own timeouts, as the primary's pool has, and a bound on a connection to a
    # replica that vanished without a word (powered off): its reads then fail in
    # seconds, rather than hold request threads for the kernel's minutes.
    kwargs.update(libpq_options(env), **DEAD_REPLICA)
    recovering(datastore)  # reads resume as soon as the replica is back
    primary_recorder = primary.recorder
    assert isinstance(primary_recorder, PostgresApplicationRecorder)
    recorder = PostgresApplicationRecorder(
        datastore, events_table_name=primary_recorder.events_table_name
    )
    return ViewStore(recorder)


def standby_problem(replica: ViewStore, primary: ViewStore) -> str | None:
    """Why the replica is not a hot standby of this primary, or None if it is: a URL
    naming the primary itself, another cluster, or a restored copy would serve reads
    that no write of this service ever reaches."""
    question = "SELECT pg_is_in_recovery(), system_identifier FROM pg_control_system()"
    with replica.reading() as cursor:
        in_recovery, replica_system = cursor.execute(question).fetchone() or (False, None)
    with primary.reading() as cursor:
        _, primary_system = cursor.execute(question).fetchone() or (None, None)
    if not in_recovery:
        return "names a server that is not a standby (it takes writes)"
    if replica_system != primary_system:
        return "names a standby of another cluster, not of CARELEDGER_DATABASE_URL's"
    return None


class ReplicaPositions(Positions):
    """The views' positions as the replica has applied them, polled (no NOTIFY there).

    The log's head is the primary's: a position a write returned may not have reached
    the replica yet, and that is a wait, not a position past the head (422).
    """

    def __init__(
        self, replica: ViewStore, primary: Positions, poll_seconds: float = POLL_SECONDS
    ) -> None:
        super().__init__(replica, refresh_every=poll_seconds)
        self.primary = primary

    def head(self) -> int:
        return self.primary.head()

    def close(self) -> None:
        self.store.recorder.datastore.close()  # type: ignore[attr-defined]
