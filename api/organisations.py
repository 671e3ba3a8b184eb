"""Organisations routed to databases of their own (``CARELEDGER_ORG_DATABASES``).

Each organisation named in the setting gets a container of its own: its own event log,
hash chain, keys, views, projectors and group commit. Identity stays global: one token
verifier, and the setting itself is the organisation registry. A request is served by
the container of the organisation in its verified token (or console session), never by
one a header, path or body names; a token whose organisation has no database here is
refused before anything is read or written (docs/scale-out.md).
"""

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from fastapi import Request

from api.auth import TokenVerifier
from api.container import Container
from api.settings import ConfigError, Settings, resolve_secrets
from application.context import Actor
from infrastructure.nats_relay import NatsBroker

log = logging.getLogger("careledger.api")


class OrganisationNotServed(Exception):
    """The verified token's organisation has no database in this deployment: a 403 that
    names nothing (no other organisation, no URL), and writes no record anywhere."""

    def __init__(self) -> None:
        super().__init__("this service holds no records for the token's organisation")


@dataclass
class Organisations:
    settings: Settings
    verifier: TokenVerifier
    containers: dict[str, Container] = field(default_factory=dict)
    # One NATS connection for every database's relay: their batches then take turns on
    # it, and each chains onto the message before it (docs/scale-out.md, step 5).
    broker: NatsBroker | None = None
    closers: list[Callable[[], None]] = field(default_factory=list)

    def shared_broker(self) -> NatsBroker:
        if self.broker is None:
            assert self.settings.nats_url, "a relay needs CARELEDGER_NATS_URL"
            given = self.settings
            self.broker = NatsBroker(given.nats_cluster, replicas=given.nats_replicas)
        return self.broker

    def serving(self, org: str) -> Container:
        found = self.containers.get(org)
        if found is None:
            log.warning("a token of an organisation not served here was refused")
            raise OrganisationNotServed()
        return found

    def start_followers(self) -> None:
        for container in self.containers.values():
            container.start_followers()

    def open_exports(self) -> None:
        for container in self.containers.values():
            if container.exports is not None:
                container.exports.open()

    def close(self) -> None:
        """Every container, even when one fails to close (its pools, its threads)."""
        for container in self.containers.values():
            try:
                container.close()
            except Exception as error:
                log.warning("an organisation's container failed to close: %s", type(error).__name__)
        if self.broker is not None:
            self.broker.close()
        for close in self.closers:
            close()


def settings_for(settings: Settings, org: str) -> Settings:
    """One organisation's settings: its store, and itself as the deployment's org."""
    assert settings.org_databases is not None
    database = settings.org_databases[org]
    return settings.model_copy(
        update={
            "database_url": database.url,
            "owner_database_url": database.owner_url,
            "org": org,
            "org_databases": None,
        }
    )


def build_organisations(
    settings: Settings,
    *,
    run_processes: bool = False,
    embed_sqlite: bool = False,
    run_relay: bool | None = None,
    only: Iterable[str] | None = None,
    create: bool = False,
) -> Organisations:
    """A container per organisation database (``only``: some of them). ``embed_sqlite``
    runs the projections in this process for SQLite stores, as ``serve`` does for one."""
    from api.bootstrap import StoreError, StoreLabel, build, require_store, token_verifier

    table = settings.org_databases or {}
    chosen = list(only) if only else list(table)
    unknown = [org for org in chosen if org not in table]
    if unknown:
        raise ConfigError(f"--org {unknown[0]}: not in CARELEDGER_ORG_DATABASES")
    organisations = Organisations(settings, token_verifier(settings, resolve_secrets(settings)))
    try:
        for org in chosen:
            own = settings_for(settings, org)
            label = StoreLabel.routed(org)
            try:
                require_store(own, create=create, label=label)
                embedded = embed_sqlite and own.database_url.lower().startswith("sqlite")
                organisations.containers[org] = build(
                    own,
                    run_processes=run_processes or embedded,
                    run_relay=run_relay,
                    exports_dir=settings.var_dir / "exports" / org,
                    shared_broker=organisations.shared_broker,
                    label=label,
                )
            except StoreError:
                raise  # named by the organisation's entry already
            except ConfigError as error:
                # Another setting (the master key, say) that this organisation's store refused
                raise ConfigError(f"{label.url}: {error}") from None
    except BaseException:
        organisations.close()
        raise
    return organisations


def routed(request: Request, org: str) -> Container:
    """The container serving ``org``: the single one, or that organisation's."""
    organisations: Organisations | None = getattr(request.app.state, "organisations", None)
    if organisations is None:
        found: Container = request.app.state.container
        return found
    return organisations.serving(org)


def request_actor(request: Request) -> Actor:
    """The verified token's actor, verified once per request."""
    actor: Actor | None = getattr(request.state, "actor", None)
    if actor is None:
        verifier: TokenVerifier = request.app.state.verifier
        actor = verifier.actor(request.headers.get("authorization"))
        request.state.actor = actor
    return actor
