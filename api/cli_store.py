"""Operator commands on the store: migrate, keys, audit, patients erase."""

import getpass
import json
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from api.settings import ConfigError, Settings, decode_master_key, load_settings, resolve_secrets
from application.context import Actor, RequestContext, Role
from application.errors import ApplicationError
from domain.errors import DomainError
from domain.vocabulary import Purpose
from infrastructure.chain import Head
from infrastructure.keys import LocalKeyEncryptionKey, WrongMasterKey, rotate
from infrastructure.projections.catalogue import NAMES as VIEW_NAMES

keys_cli = typer.Typer(help="Data keys and the key-encryption key.", no_args_is_help=True)
audit_cli = typer.Typer(help="The tamper-evident chain.", no_args_is_help=True)
patients_cli = typer.Typer(help="Patient operations.", no_args_is_help=True)
projections_cli = typer.Typer(help="The read models.", no_args_is_help=True)


def _fail(message: str, code: int = 2) -> typer.Exit:
    typer.echo(f"careledger: {message}", err=True)
    return typer.Exit(code=code)


def _settings() -> Settings:
    try:
        return load_settings()
    except ConfigError as error:
        raise _fail(str(error)) from None


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeRemainingColumn(),
        console=Console(stderr=True),  # stdout carries the JSON result
        transient=False,
    )


def migrate_command() -> None:
    """Create tables, append-only triggers and grants (as CARELEDGER_OWNER_DATABASE_URL)."""
    from api.bootstrap import migrate_store

    try:
        migrate_store(_settings())
    except ConfigError as error:
        raise _fail(str(error)) from None
    typer.echo("careledger: the store is migrated")


@keys_cli.command("rotate")
def rotate_keys(
    new_key_file: Annotated[
        Path, typer.Option(help="File holding the new master key (base64 of 32 bytes)")
    ],
    batch_size: Annotated[int, typer.Option(help="Keys re-wrapped per transaction", min=1)] = 500,
) -> None:
    """Re-wrap every data key under a new KEK. No event row changes; safe to re-run."""
    from api.bootstrap import open_locked, require_store

    settings = _settings()
    try:
        old = LocalKeyEncryptionKey(resolve_secrets(settings).master_key)
        new_text = new_key_file.read_text()
    except ConfigError as error:
        raise _fail(str(error)) from None
    except OSError as error:
        raise _fail(f"--new-key-file: cannot read {new_key_file} ({error.strerror})") from None
    try:
        new = LocalKeyEncryptionKey(decode_master_key(new_text, "--new-key-file"))
        require_store(settings)
        ledger = open_locked(settings)
    except ConfigError as error:
        raise _fail(str(error)) from None
    try:
        with _progress() as progress:
            task = progress.add_task("re-wrapping data keys", total=None, rate="")
            for step in rotate(ledger.recorder.keys, old, new, batch_size=batch_size):  # type: ignore[attr-defined]
                progress.update(task, total=step.total, completed=step.done)
    except ValueError as error:
        raise _fail(str(error)) from None
    except WrongMasterKey as error:
        raise _fail(f"CARELEDGER_MASTER_KEY: {error}") from None
    finally:
        ledger.close()
    typer.echo(
        f"careledger: every data key is wrapped by KEK {new.kek_id}; point "
        f"CARELEDGER_MASTER_KEY_FILE at {new_key_file} and restart"
    )


@audit_cli.command("head")
def audit_head() -> None:
    """Print the chain's head as JSON, to anchor it outside the database."""
    with _opened() as container:
        head = container.chain.head()
    if head is None:
        raise _fail("the log is empty: there is no head to anchor yet", code=1)
    typer.echo(json.dumps(head))


@audit_cli.command("verify")
def audit_verify(
    head_file: Annotated[
        Path | None, typer.Option(help="A head exported by `audit head`, to detect truncation")
    ] = None,
) -> None:
    """Recompute the chain. Exit 0 if it holds, 1 naming the first bad position."""
    anchored = None
    if head_file is not None:
        try:
            anchored = Head.from_json(json.loads(head_file.read_text()))
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise _fail(f"--head-file: not a head exported by `audit head` ({error})") from None
    with _opened() as container:
        total = container.ledger.recorder.max_notification_id() or 0
        with _progress() as progress:
            task = progress.add_task("verifying the chain", total=total, rate="")
            result = container.chain.check(
                anchored, lambda position: progress.update(task, completed=position)
            )
            progress.update(task, completed=total)
    typer.echo(json.dumps(result.as_json()))
    if not result.ok:
        raise typer.Exit(code=1)


@audit_cli.command("replay")
def audit_replay(
    access_id: Annotated[str, typer.Argument(help="The access record's id (X-Access-Id)")],
    org: Annotated[
        str | None, typer.Option(help="The auditor's organisation (default CARELEDGER_ORG)")
    ] = None,
) -> None:
    """Rebuild a disclosed response from the log; exit 0 if its digest matches, else 1.

    As an auditor of one organisation: an access to another's patients is not found."""
    try:
        target = uuid.UUID(access_id)
    except ValueError:
        raise _fail("ACCESS_ID must be a UUID") from None
    with _opened() as container:
        auditor = Actor(f"cli:{getpass.getuser()}", Role.AUDITOR, org or container.settings.org)
        ctx = RequestContext(auditor, Purpose.HOPERAT, request_id=uuid.uuid4().hex, source="cli")
        try:
            replayed = container.replays.replay(ctx, target).json()
        except (ApplicationError, DomainError) as error:
            raise _fail(str(error), code=1) from None
    typer.echo(json.dumps(replayed))
    if not replayed["matches"]:
        raise typer.Exit(code=1)


@patients_cli.command("erase")
def erase_patient(
    patient_id: Annotated[str, typer.Argument(help="The patient's id")],
    legal_basis: Annotated[str, typer.Option(help="Why the record may be erased")],
    org: Annotated[str | None, typer.Option(help="Organisation (default CARELEDGER_ORG)")] = None,
) -> None:
    """Crypto-shred a patient: record `Erased`, then destroy their data key."""
    try:
        target = uuid.UUID(patient_id)
    except ValueError:
        raise _fail("PATIENT_ID must be a UUID") from None
    with _opened() as container:
        actor = Actor(f"cli:{getpass.getuser()}", Role.ADMIN, org or container.settings.org)
        ctx = RequestContext(actor, Purpose.HOPERAT, request_id=uuid.uuid4().hex, source="cli")
        try:
            outcome = container.erasure.erase(ctx, target, legal_basis=legal_basis)
        except (ApplicationError, DomainError) as error:
            raise _fail(str(error), code=1) from None
    typer.echo(json.dumps(outcome.body()))


@projections_cli.command("rebuild")
def rebuild_projections(
    name: Annotated[
        str | None,
        typer.Argument(help=f"One of {', '.join(VIEW_NAMES)} (default all)"),
    ] = None,
) -> None:
    """Build a new version of each view from the log, then switch to it atomically.

    Reads keep being served from the current version until the switch. An interrupted
    rebuild resumes where it stopped when run again.
    """
    from infrastructure.projections.rebuild import rebuild

    with _opened() as container:
        chosen = [p for p in container.projectors if name in (None, p.name)]
        if not chosen:
            names = ", ".join(p.name for p in container.projectors)
            raise _fail(f"no projection named {name!r}; choose from {names}")
        results = {}
        for projector in chosen:
            with _progress() as progress:
                version = rebuild(projector, _rebuild_observer(progress, projector.name))
            results[projector.name] = {
                "version": version,
                "skipped_erased": projector.skipped_erased,
            }
    typer.echo(json.dumps(results))


def _rebuild_observer(progress: Progress, name: str) -> Callable[[Any], None]:
    """Advances the bar by log position, with events/s; rich derives the ETA."""
    task = progress.add_task(f"rebuilding {name}", total=None, rate="")
    started = time.monotonic()

    def observe(step: Any) -> None:
        rate = step.events / max(time.monotonic() - started, 1e-6)
        progress.update(
            task, total=step.head, completed=step.position, rate=f"{rate:,.0f} events/s"
        )

    return observe


@projections_cli.command("status")
def projection_status() -> None:
    """Each view's versions, positions and lag behind the log's head."""
    with _opened() as container:
        head = container.ledger.recorder.max_notification_id() or 0
        status = {
            p.name: {
                "versions": [
                    {"version": v.version, "state": v.state, "position": v.position}
                    for v in p.versions()
                ],
                "lag_events": max(head - p.active().position, 0),
            }
            for p in container.projectors
        }
    typer.echo(json.dumps({"head": head, "projections": status}))


@contextmanager
def _opened() -> Iterator[Any]:
    """The wired container of an existing store, closed afterwards; configuration
    errors as one line."""
    from api.bootstrap import build, require_store

    settings = _settings()
    try:
        require_store(settings)
        container = build(settings)
    except ConfigError as error:
        raise _fail(str(error)) from None
    try:
        yield container
    finally:
        container.close()
