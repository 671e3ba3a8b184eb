"""The ``careledger`` command."""

import signal
import sys
import threading
import time
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from typing import TYPE_CHECKING, Annotated
from urllib.parse import urlencode
from uuid import UUID

import typer

from api import heap
from api import logging as structured_logging
from api.auth import mint_token
from api.cli_import import import_command
from api.cli_store import audit_cli, keys_cli, migrate_command, patients_cli, projections_cli
from api.console.sessions import login_code
from api.settings import ConfigError, Settings, load_settings, resolve_secrets
from application.context import Role
from application.scopes import OTHER_SCOPES, parse_scope

if TYPE_CHECKING:
    from api.container import Container
    from api.organisations import Organisations

cli = typer.Typer(
    help="CareLedger: event-sourced healthcare records.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _print_version(asked: bool) -> None:
    if asked:
        try:
            typer.echo(f"careledger {package_version('careledger')}")
        except PackageNotFoundError:  # run from a source tree that was never installed
            typer.echo("careledger (not installed)")
        raise typer.Exit()


@cli.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option(
            "--version", help="Print the version and exit", callback=_print_version, is_eager=True
        ),
    ] = False,
) -> None:
    """CareLedger: event-sourced healthcare records."""


def _fail(message: str) -> typer.Exit:
    """One clear line on stderr, no traceback, no secret."""
    typer.echo(f"careledger: {message}", err=True)
    return typer.Exit(code=2)


def _settings() -> Settings:
    try:
        return load_settings()
    except ConfigError as error:
        raise _fail(str(error)) from None


@cli.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = 8000,
    with_projections: Annotated[
        bool, typer.Option(help="Run the log processes in this process (default on SQLite)")
    ] = False,
    create: Annotated[
        bool, typer.Option("--create", help="Start a new store if none is at the SQLite path")
    ] = False,
    workers: Annotated[
        int,
        typer.Option(
            help="HTTP worker processes, each with its own group commit (PostgreSQL; "
            "the projections then run in `careledger worker`)"
        ),
    ] = 1,
) -> None:
    """Serve the HTTP API."""
    from api.bootstrap import build, migrate_store, require_store
    from api.serving import check_workers, run, serve_organisations, settled_app

    settings = _settings()
    structured_logging.configure(settings.log_level)
    embedded = settings.database_url.startswith("sqlite")
    try:
        check_workers(settings, workers, with_projections=with_projections)
        if settings.org_databases:
            served = serve_organisations(
                settings, workers, with_projections=with_projections, create=create
            )
            app = None if served is None else settled_app(served)
        elif workers > 1:
            require_store(settings, create=create, first_run=True)
            # Once here, not N times at once: development secrets are written to var/
            # on first use, and the schema is migrated before any worker opens it.
            resolve_secrets(settings)
            migrate_store(settings)
            app = None
        else:
            require_store(settings, create=create, first_run=True)
            app = settled_app(build(settings, run_processes=embedded or with_projections))
    except ConfigError as error:
        raise _fail(str(error)) from None
    run(app, host=host, port=port, workers=workers)


@cli.command()
def relay() -> None:
    """Run only the NATS JetStream relay (CARELEDGER_NATS_URL) until stopped."""
    from api.bootstrap import build, require_store

    settings = _settings()
    structured_logging.configure(settings.log_level)
    if not settings.nats_url:
        raise _fail("CARELEDGER_NATS_URL: must be set to run the relay")
    try:
        if settings.org_databases:
            from api.organisations import build_organisations

            served: Container | Organisations = build_organisations(settings, run_relay=True)
        else:
            require_store(settings)
            served = build(settings, run_processes=False, run_relay=True)
    except ConfigError as error:
        raise _fail(str(error)) from None
    _run_until_stopped(served, "careledger relay: running; Ctrl-C to stop")


@cli.command()
def worker(
    org: Annotated[
        list[str] | None,
        typer.Option(
            help="With CARELEDGER_ORG_DATABASES: project only this organisation's "
            "database (repeat it); without it, every organisation's"
        ),
    ] = None,
) -> None:
    """Run the projections and the log processes (sponsor discontinuation) until stopped."""
    from api.bootstrap import build, require_store
    from api.organisations import build_organisations

    settings = _settings()
    structured_logging.configure(settings.log_level)
    try:
        if org and not settings.org_databases:
            raise ConfigError("--org needs CARELEDGER_ORG_DATABASES")
        if settings.org_databases:
            served: Container | Organisations = build_organisations(
                settings, run_processes=True, only=org
            )
        else:
            require_store(settings)
            served = build(settings, run_processes=True)
    except ConfigError as error:
        raise _fail(str(error)) from None
    _run_until_stopped(served, "careledger worker: running; Ctrl-C to stop")


def _run_until_stopped(container: "Container | Organisations", banner: str) -> None:
    heap.settle(container)  # built once, kept for the process's life (api/heap.py)
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    container.start_followers()
    typer.echo(banner, err=True)
    stopping.wait()
    container.close()


@cli.command()
def token(
    role: Annotated[Role, typer.Option(help="clinician, auditor, patient, admin or service")],
    sub: Annotated[str, typer.Option(help="The actor's id")],
    org: Annotated[str | None, typer.Option(help="Organisation (default CARELEDGER_ORG)")] = None,
    patient: Annotated[
        str | None,
        typer.Option(help="Patient id: the patient role's, or a staff token's launch patient"),
    ] = None,
    ttl: Annotated[int, typer.Option(help="Lifetime in seconds")] = 3600,
    login: Annotated[
        bool, typer.Option("--login", help="Print a one-time console login URL instead")
    ] = False,
    base_url: Annotated[
        str, typer.Option(help="The server's address, for --login")
    ] = "http://127.0.0.1:8000",
    scope: Annotated[
        list[str] | None,
        typer.Option(
            help="SMART scopes (e.g. 'patient/*.rs', 'user/Observation.rs'); repeat it or "
            "separate with spaces. They narrow what the role may do; without it, no narrowing"
        ),
    ] = None,
) -> None:
    """Print a development token signed with the configured secret (or, with --login, a
    one-time URL that signs its actor in to the web console; it lives 5 minutes)."""
    settings = _settings()
    scopes = [text for given in scope or [] for text in given.split()]
    if scope is not None and login:
        raise _fail("--scope is for API tokens; a console login link carries none")
    if scope is not None and not scopes:
        raise _fail("--scope must name at least one scope")
    unknown = [t for t in scopes if parse_scope(t) is None and t not in OTHER_SCOPES]
    if unknown:
        raise _fail(f"--scope: not a SMART v2 (or v1) scope this server honours: {unknown[0]}")
    patient_id = None
    if patient is not None:
        try:
            patient_id = UUID(patient)
        except ValueError:
            raise _fail("--patient must be a UUID") from None
    if role is Role.PATIENT and patient_id is None:
        raise _fail("a patient token needs --patient")
    if ttl <= 0:
        raise _fail("--ttl must be positive")
    try:
        secret = resolve_secrets(settings).jwt_secret
    except ConfigError as error:
        raise _fail(str(error)) from None
    if not secret:
        raise _fail("tokens can only be minted with CARELEDGER_JWT_SECRET (not with a JWKS)")
    if login:
        code = login_code(
            secret,
            role=role,
            sub=sub,
            org=org or settings.org,
            patient=patient_id,
            now=int(time.time()),
            audience=settings.jwt_audience,
            ttl_seconds=ttl,
        )
        typer.echo(f"{base_url.rstrip('/')}/console/login?{urlencode({'code': code})}")
        return
    typer.echo(
        mint_token(
            secret,
            role=role,
            sub=sub,
            org=org or settings.org,
            patient=patient_id,
            ttl_seconds=ttl,
            now=int(time.time()),
            audience=settings.jwt_audience,
            extra={"scope": " ".join(scopes)} if scope is not None else None,
        )
    )


@cli.command()
def demo(
    patients: Annotated[int, typer.Option(help="How many synthetic patients", min=1)] = 20,
    seed: Annotated[int, typer.Option(help="Random seed, for repeatable data")] = 7,
    create: Annotated[
        bool, typer.Option("--create", help="Start a new store if none is at the SQLite path")
    ] = False,
) -> None:
    """Seed realistic synthetic patients, entries, memberships and consents."""
    from api.bootstrap import build, require_store
    from api.demo import seed_demo

    settings = _settings()
    try:
        require_store(settings, create=create, first_run=True)
        container = build(settings)
    except ConfigError as error:
        raise _fail(str(error)) from None
    try:
        summary = seed_demo(container, patients=patients, seed=seed)
    finally:
        container.close()
    typer.echo(summary)


cli.command("migrate")(migrate_command)
cli.command("import")(import_command)
cli.add_typer(keys_cli, name="keys")
cli.add_typer(audit_cli, name="audit")
cli.add_typer(patients_cli, name="patients")
cli.add_typer(projections_cli, name="projections")


def main() -> None:
    try:
        cli()
    except KeyboardInterrupt:
        sys.exit(130)
