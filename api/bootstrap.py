"""The composition root: settings in, a wired container out."""

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID, uuid4

import psycopg
from eventsourcing.persistence import PersistenceError

from api.auth import TokenVerifier
from api.container import Container
from api.settings import ConfigError, Secrets, Settings, check_secrets, resolve_secrets
from application.access.access_log import Disclosures, GroupCommit
from application.access.audit_trail import AuditTrail
from application.access.chart_gate import ChartGate, ReadSide
from application.access.integrity import Integrity
from application.access.replay import Replays
from application.charts.chart_reads import ChartReads
from application.charts.erasure import Erasure
from application.charts.patients import Patients
from application.charts.read_models import ReadModels
from application.consents.consents import Consents
from application.fhir.export_jobs import BulkExports
from application.fhir.reads import FhirReads
from application.ledger.group_writes import GroupWrites
from application.ledger.ledger import CareLedger
from application.memberships.memberships import Memberships
from application.memberships.sponsor_discontinuation import SponsorDiscontinuation
from application.subscriptions.relay import Broker, Relay
from application.subscriptions.subscriptions import Subscriptions
from infrastructure.chain import ChainVerifier
from infrastructure.claims import ClaimIds
from infrastructure.export_files import SealedExportFiles
from infrastructure.follower import LogFollower
from infrastructure.keys import CHAIN_KEY_ID, KeyRing, LocalKeyEncryptionKey, WrongMasterKey
from infrastructure.migrations import migrate, protect, unlock
from infrastructure.nats_relay import LibraryTracking, NatsBroker, RelayHost
from infrastructure.projections.catalogue import Readers, projectors, readers
from infrastructure.projections.live import Doorbell, Listener, Positions, ProjectionHost
from infrastructure.projections.replica import ReplicaPositions, replica_store, standby_problem
from infrastructure.projections.store import ViewStore
from infrastructure.stores import StoreConfigError, conninfo, environment_for, redact


def utc_now() -> datetime:
    return datetime.now(UTC)


class StoreError(ConfigError):
    """A store that cannot be opened, already named by its setting's label."""


@dataclass(frozen=True)
class StoreLabel:
    """How a start-up error names the settings a store came from: the one-store
    settings, or a routed organisation's entry in CARELEDGER_ORG_DATABASES."""

    url: str = "CARELEDGER_DATABASE_URL"
    owner_url: str = "CARELEDGER_OWNER_DATABASE_URL"

    @classmethod
    def routed(cls, org: str) -> "StoreLabel":
        entry = f"CARELEDGER_ORG_DATABASES[{org}]"
        return cls(entry, f"{entry}.owner_url")


ONE_STORE = StoreLabel()


def _environment(url: str, setting: str) -> dict[str, str]:
    try:
        return environment_for(url)
    except StoreConfigError as error:
        raise StoreError(f"{setting}: {error}") from None


@contextmanager
def _reporting(url: str, setting: str, env: dict[str, str]) -> Iterator[None]:
    """Turn a store failure into one line that names the setting and never a password."""
    try:
        yield
    except (PersistenceError, OSError, psycopg.Error) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        password = env.get("POSTGRES_PASSWORD")
        if password:
            reason = reason.replace(password, "***")
        raise StoreError(f"{setting}: cannot open {redact(url)}: {reason}") from None


def require_store(
    settings: Settings,
    *,
    create: bool = False,
    first_run: bool = False,
    label: StoreLabel = ONE_STORE,
) -> None:
    """Refuse to open a SQLite store that is not there, so that a misspelt path is an
    error rather than a new, empty store. ``create`` (``--create``) makes one; so does a
    first-run command (``serve``, ``demo``) on the default path, which ``make serve``
    uses (README, The two commands). The secrets given are checked first. A command
    on one store refuses ``CARELEDGER_ORG_DATABASES``: each organisation's store is
    checked with its own settings (``api.organisations.settings_for``)."""
    check_secrets(settings)
    if settings.org_databases:
        raise ConfigError(
            "CARELEDGER_ORG_DATABASES: this command acts on one database; run it with "
            "CARELEDGER_DATABASE_URL set to that organisation's database and "
            "CARELEDGER_ORG_DATABASES unset"
        )
    url = settings.database_url
    if create or (first_run and "database_url" not in settings.model_fields_set):
        return
    if not url.lower().startswith("sqlite:///") or url.endswith(":memory:"):
        return  # a PostgreSQL database must exist already: connecting says so
    path = Path(url[len("sqlite:///") :])
    if not path.is_file():
        raise StoreError(
            f"{label.url}: no store at {path}; check the path, "
            "or pass --create to start a new one there"
        )


def migrate_store(settings: Settings, label: StoreLabel = ONE_STORE) -> None:
    """Create tables, append-only triggers and grants, as the owner role if configured."""
    app_env = _environment(settings.database_url, label.url)
    owner_url = settings.owner_database_url or settings.database_url
    setting = label.owner_url if settings.owner_database_url else label.url
    owner_env = _environment(owner_url, setting)
    app_role = app_env.get("POSTGRES_USER")
    if app_role == owner_env.get("POSTGRES_USER"):
        app_role = None  # one role for both: nothing to grant
    with _reporting(owner_url, setting, owner_env):
        migrate(owner_env, app_role)


def open_locked(settings: Settings, label: StoreLabel = ONE_STORE) -> CareLedger:
    """Migrate, then open the store as the application role, with its keys still locked.

    With one role for both (SQLite, or no owner URL), the store is opened once and
    migrated through that same connection, rather than opened twice at start-up.
    """
    env = _environment(settings.database_url, label.url)
    with _reporting(settings.database_url, label.url, env):
        if settings.owner_database_url is None:
            ledger = CareLedger({**env, "CREATE_TABLE": "y"})
            try:
                protect(ledger)
            except BaseException:
                ledger.close()
                raise
            return ledger
    migrate_store(settings, label)
    with _reporting(settings.database_url, label.url, env):
        return CareLedger({**env, "CREATE_TABLE": "n"})


def open_ledger(
    settings: Settings, master_key: bytes, label: StoreLabel = ONE_STORE
) -> tuple[CareLedger, KeyRing]:
    """Open the store and unlock its keys; a KEK that is not the store's stops here.
    ``label`` names the store's settings in a start-up error."""
    ledger = open_locked(settings, label)
    try:
        kek = LocalKeyEncryptionKey(master_key)
        with _reporting(settings.database_url, label.url, {}):
            keys = unlock(ledger, kek, cache_size=settings.key_cache_size)
    except WrongMasterKey as error:
        ledger.close()
        raise ConfigError(f"CARELEDGER_MASTER_KEY: {error}") from None
    except BaseException:
        ledger.close()
        raise
    return ledger, keys


# Bulk exports running at once in a process; another kick-off is 429 meanwhile.
EXPORTS_AT_ONCE = 2


def build(
    settings: Settings,
    *,
    clock: Callable[[], datetime] = utc_now,
    new_id: Callable[[], UUID] = uuid4,
    run_processes: bool = False,
    run_relay: bool | None = None,
    exports_dir: Path | None = None,
    shared_broker: Callable[[], NatsBroker] | None = None,
    label: StoreLabel = ONE_STORE,
) -> Container:
    """Wire everything. ``run_processes`` runs the projections and log processes here;
    the NATS relay runs with them when ``CARELEDGER_NATS_URL`` is set, unless
    ``run_relay`` says otherwise. ``exports_dir`` keeps one organisation database's
    sealed exports apart from another's (var_dir/exports by default). ``shared_broker``
    gives the relay a broker that several databases' relays publish through. ``label``
    names the store's settings in a start-up error (a routed organisation's entry)."""
    secrets = resolve_secrets(settings)
    ledger, keys = open_ledger(settings, secrets.master_key, label)
    chain = ChainVerifier(ledger.recorder, keys.raw(CHAIN_KEY_ID))  # type: ignore[arg-type]
    ledger.group_writes = GroupWrites(ledger.record_saves)
    store = ViewStore(ledger.recorder)
    positions = Positions(store)
    doorbell = Doorbell()
    ledger.on_recorded(doorbell.recorded)
    found = readers(store, keys)
    views = _read_models(found, positions, settings)
    # The queries' views: the replica's when one is set. Checks before a write, the
    # gate's policy facts and replays stay on the primary (docs/operations.md).
    replica = _replica(settings, store, positions)
    found_out, views_out = found, views
    if replica is not None:
        found_out = readers(replica.store, keys)
        views_out = _read_models(found_out, replica, settings)
    writer = GroupCommit(ledger.save_events)
    disclosures = Disclosures(writer, clock, new_id)
    gate = ChartGate(ledger, views, disclosures, clock)
    reads = ReadSide(views, gate, disclosures)
    audit = AuditTrail(ledger, views_out, found_out.access_log, clock, gate)
    container = Container(
        settings=settings,
        ledger=ledger,
        verifier=token_verifier(settings, secrets),
        patients=Patients(ledger, clock, new_id, reads, keys.new_patient_id, ClaimIds(keys).mrn),
        memberships=Memberships(ledger, clock, new_id, views_out, gate),
        consents=Consents(ledger, clock, new_id, ReadSide(views_out, gate, disclosures)),
        erasure=Erasure(ledger, keys, clock, gate),
        integrity=Integrity(chain),
        chain=chain,
        keys=keys,
        charts=ChartReads(views_out, gate, disclosures, clock),
        group_commit=writer,
        disclosures=disclosures,
        audit=audit,
        replays=Replays(ledger, disclosures, audit),
        subscriptions=Subscriptions(
            ledger,
            found.deliveries,
            positions,
            disclosures,
            clock,
            new_id,
            wait_seconds=settings.read_wait_seconds,
        ),
        views=store,
        positions=positions,
    )
    container.exports = BulkExports(
        FhirReads(ledger, container.charts),
        SealedExportFiles(
            exports_dir or settings.var_dir / "exports",
            stale_seconds=settings.export_expiry_seconds,
        ),
        clock,
        new_id,
        expiry=timedelta(seconds=settings.export_expiry_seconds),
        max_running=EXPORTS_AT_ONCE,
    )
    if store.is_postgres:
        # Wakes min_position waits on commits by a worker in another process, and
        # this process's projectors on writes by other processes.
        container.listener = Listener(_conninfo(settings.database_url), store, doorbell, positions)
    container.projectors = projectors(
        store,
        ledger.mapper,
        keys,
        batch_size=settings.projection_batch_size,
        on_commit=positions.advanced,
    )
    positions.use(container.projectors)
    if replica is not None:
        replica.use(container.projectors)
        container.closers.append(replica.close)
    if run_processes:
        container.followers.append(LogFollower(ledger, SponsorDiscontinuation(ledger, clock)))
        container.projection_host = ProjectionHost(container.projectors, doorbell)
    if settings.nats_url and (run_processes if run_relay is None else run_relay):
        if shared_broker is None:
            broker = NatsBroker(settings.nats_cluster, replicas=settings.nats_replicas)
            container.closers.insert(0, broker.close)
        else:
            broker = shared_broker()  # closed by its owner, after every relay on it
        relay = relay_for(container, broker)
        container.relay_host = RelayHost(relay, positions)
    return container


def _read_models(found: Readers, positions: Positions, settings: Settings) -> ReadModels:
    return ReadModels(
        found.timeline,
        found.directory,
        found.consents,
        found.roster,
        positions,
        wait_seconds=settings.read_wait_seconds,
    )


def _replica(
    settings: Settings, primary: ViewStore, positions: Positions
) -> ReplicaPositions | None:
    """The read replica's positions (and store), when CARELEDGER_READ_DATABASE_URL is set."""
    url = settings.read_database_url
    if url is None:
        return None
    env = _environment(url, "CARELEDGER_READ_DATABASE_URL")
    replica = ReplicaPositions(replica_store(env, primary), positions)
    try:
        with _reporting(url, "CARELEDGER_READ_DATABASE_URL", env):
            replica.refresh()  # a replica that cannot be read is a start-up error
            problem = standby_problem(replica.store, primary)
        if problem is not None:
            raise ConfigError(f"CARELEDGER_READ_DATABASE_URL: {problem}")
    except BaseException:
        replica.close()
        raise
    return replica


def token_verifier(settings: Settings, secrets: Secrets) -> TokenVerifier:
    return TokenVerifier(
        secrets.jwt_secret,
        settings.jwt_jwks_url,
        settings.jwt_issuer,
        audience=settings.jwt_audience,
        max_lifetime_seconds=settings.jwt_max_lifetime_seconds,
    )


def relay_for(container: Container, broker: Broker) -> Relay:
    """A relay on the container's store, with a group commit of its own: a relay's
    records never share a transaction with a request's, so neither can fail the other
    (and the relay's carry its tracking record)."""
    writer = GroupCommit(container.ledger.save_events)
    container.closers.append(writer.close)
    subscriptions = container.subscriptions
    own = Subscriptions(
        container.ledger,
        subscriptions.view,
        subscriptions.progress,
        Disclosures(writer, subscriptions.clock, subscriptions.new_id),
        subscriptions.clock,
        subscriptions.new_id,
        wait_seconds=subscriptions.wait_seconds,
    )
    return Relay(own, broker, LibraryTracking(container.ledger.recorder))


def _conninfo(url: str) -> str:
    """A libpq connection string from our URL (whose query holds our own options)."""
    return conninfo(environment_for(url))
