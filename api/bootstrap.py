"""The composition root: settings in, a wired container out."""

from collections.abc import Callable
from datetime import UTC, datetime
from uuid import UUID, uuid4

from eventsourcing.persistence import PersistenceError

from api.auth import TokenVerifier
from api.container import Container
from api.settings import ConfigError, Settings, resolve_secrets
from application.consents import Consents
from application.ledger import CareLedger
from application.memberships import Memberships
from application.patients import Patients
from application.sponsor_discontinuation import SponsorDiscontinuation
from infrastructure.follower import LogFollower
from infrastructure.stores import StoreConfigError, environment_for, redact


def utc_now() -> datetime:
    return datetime.now(UTC)


def open_ledger(database_url: str) -> CareLedger:
    """Open the store, creating its tables; one clear error if that is impossible."""
    try:
        env = environment_for(database_url)
    except StoreConfigError as error:
        raise ConfigError(f"CARELEDGER_DATABASE_URL: {error}") from None
    try:
        return CareLedger(env)
    except (PersistenceError, OSError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        password = env.get("POSTGRES_PASSWORD")
        if password:
            reason = reason.replace(password, "***")
        raise ConfigError(
            f"CARELEDGER_DATABASE_URL: cannot open {redact(database_url)}: {reason}"
        ) from None


def build(
    settings: Settings,
    *,
    clock: Callable[[], datetime] = utc_now,
    new_id: Callable[[], UUID] = uuid4,
    run_processes: bool = False,
) -> Container:
    secrets = resolve_secrets(settings)
    ledger = open_ledger(settings.database_url)
    container = Container(
        settings=settings,
        ledger=ledger,
        verifier=TokenVerifier(secrets.jwt_secret, settings.jwt_jwks_url, settings.jwt_issuer),
        patients=Patients(ledger, clock, new_id),
        memberships=Memberships(ledger, clock, new_id),
        consents=Consents(ledger, clock, new_id),
    )
    if run_processes:
        container.followers.append(LogFollower(ledger, SponsorDiscontinuation(ledger, clock)))
    return container
