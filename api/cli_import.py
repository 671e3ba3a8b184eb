"""``careledger import FILE|DIR``: FHIR Bundles and NDJSON charts, in-process.

Each file goes through the same application path as ``POST /fhir``: a transaction
Bundle (or an NDJSON chart, one patient's resources a line each, imported as one
transaction) is written all or nothing; a batch Bundle entry by entry. A file's
Idempotency-Key is its SHA-256, so importing a file again answers as the first time
and writes nothing. docs/fhir.md, "Import", says more.
"""

import functools
import getpass
import itertools
import json
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Annotated, Any

import typer

from api import heap
from api.cli_store import _fail, _opened, _progress
from api.import_plans import PlannedFile, planned_in_order, planner
from api.routers.fhir_bundles import batch_entry
from application.context import Actor, RequestContext, Role
from application.errors import ApplicationError
from application.fhir.reads import FhirReads
from application.fhir.transactions import Transactions
from application.fhir.writes import FhirWrites
from domain.errors import DomainError
from domain.vocabulary import Purpose

SUFFIXES = (".json", ".ndjson")


@dataclass
class Summary:
    files: int = 0
    imported: int = 0
    resources: int = 0
    not_kept: int = 0  # entries accepted and not kept (docs/fhir.md, "Import: what is kept")
    repeated: int = 0
    failed: dict[str, str] = field(default_factory=dict)  # file -> why


def files_of(paths: Iterable[Path]) -> list[Path]:
    """The files named, and those under the directories named, in name order."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.suffix in SUFFIXES and p.is_file())
        elif path.is_file():
            found.append(path)
        else:
            raise FileNotFoundError(str(path))
    return found


# Files planned one after another and then committed together, in one transaction,
# while the next as many are planned (docs/fhir.md, "Import").
WAVE = 8
Outcomes = list[dict[str, Any]]


@dataclass(frozen=True)
class _Begun:
    """A file planned and queued: ``answered`` waits for its commit and gives its
    entries' outcomes (None: imported before), or raises why the file failed."""

    path: Path
    digest: str
    batch: bool
    answered: Callable[[], Outcomes | None]


def import_files(
    container: Any,
    ctx: RequestContext,
    files: list[Path],
    advance: Callable[[int], None],
    wave: int = WAVE,
    planners: Executor | None = None,
) -> Summary:
    """Import each file through the application; ``advance`` is told each file's
    resources. A failed file is named with its reason, and the next one goes on.

    Files are read and planned by ``planners`` (processes, ``import_plans.planner``)
    a few files ahead, or else here. Their saves are queued in waves of ``wave``,
    together when the wave is planned (so they share a commit), and answered while
    the next wave is planned. Each file is a save of its own, all or nothing, and is
    counted, in file order, only once its commit has returned."""
    summary = Summary()
    transactions = Transactions(container.patients)
    reads = FhirReads(container.ledger, container.charts)
    writes = FhirWrites(container.patients, container.charts, reads)
    group_writes = container.ledger.group_writes
    if group_writes is None:
        wave = 1  # saves are written when answered: in file order only one at a time
    new_id = container.patients.new_id
    if new_id is not uuid.uuid4:
        planners = None  # the container's own ids (a test's) are made in this process
    pending: deque[_Begun] = deque()

    def settle(keep: int) -> None:
        while len(pending) > keep:
            _settle(summary, pending.popleft())
            advance(1)

    begun_digests: set[str] = set()  # a file begun may have committed since its lookup
    plans = planned_in_order(files, planners, new_id)
    try:
        for planned in _waves(zip(files, plans, strict=True), wave):
            keyed = [_keyed(ctx, file) for _, file in planned]
            # One lookup for the wave: a file imported before is answered from its claim.
            claimed = container.ledger.claimed(keyed)
            if group_writes is not None:
                group_writes.gather()
            for (path, file), file_ctx, claimed_before in zip(planned, keyed, claimed, strict=True):
                summary.files += 1
                seen = file.digest in begun_digests  # the same file again in this run
                if any(begun.digest == file.digest for begun in pending):
                    settle(0)  # answered as imported once the first copy is
                batch = file.batch is not None
                try:
                    if file.unreadable is not None:
                        raise ValueError(file.unreadable)
                    if batch:
                        settle(0)  # written entry by entry, after the files before it
                    answered = _begin(
                        container, transactions, writes, file_ctx, file, claimed_before or seen
                    )
                except (ApplicationError, DomainError, ValueError, UnicodeDecodeError) as error:
                    answered, batch = functools.partial(_raise, error), False
                pending.append(_Begun(path, file.digest, batch, answered))
                begun_digests.add(file.digest)
            if group_writes is not None:
                group_writes.release()
            settle(len(planned))  # the wave before this one
    finally:
        plans.close()  # files planned ahead and not written are cancelled
        if group_writes is not None:
            group_writes.release()
        settle(0)
    return summary


def _waves(planned: Iterable[tuple[Path, PlannedFile]], size: int) -> Iterator[list[Any]]:
    """The planned files, ``size`` at a time."""
    planned = iter(planned)
    while wave := list(itertools.islice(planned, size)):
        yield wave


def _keyed(ctx: RequestContext, file: PlannedFile) -> RequestContext:
    """The file's request: its Idempotency-Key is its content's digest."""
    return replace(
        ctx,
        request_id=uuid.uuid4().hex,
        idempotency_key=f"import:{file.digest}",
        request_fingerprint=file.digest,
    )


def _begin(
    container: Any,
    transactions: Transactions,
    writes: FhirWrites,
    keyed: RequestContext,
    file: PlannedFile,
    claimed: bool,
) -> Callable[[], Outcomes | None]:
    """The file begun: written, or answered from its claim when ``claimed`` (its key
    was found claimed, or it may be now: the same file was begun earlier in the run)."""
    if file.batch is not None:
        fresh = replace(keyed, idempotency_key=None)
        entries = file.batch.get("entry", [])
        outcomes = [
            batch_entry(fresh, writes, index, entry)["response"]
            for index, entry in enumerate(entries)
        ]
        return lambda: outcomes
    if claimed and container.ledger.repeated(keyed):
        return lambda: None  # imported before: answered as then, nothing written
    if file.refused is not None:
        raise ValueError(file.refused)
    assert file.steps is not None
    begun = transactions.begin_planned(keyed, file.steps, looked_up=True)

    def answered() -> Outcomes:
        answer = json.loads(begun().body)
        return [e["response"] for e in answer.get("entry", [])]

    return answered


def _raise(error: Exception) -> Outcomes:
    raise error


def _settle(summary: Summary, begun: _Begun) -> None:
    """Count a file once its commit has returned: imported, repeated or failed."""
    name = str(begun.path)
    try:
        outcomes = begun.answered()
    except (ApplicationError, DomainError, ValueError, UnicodeDecodeError) as error:
        summary.failed[name] = str(error)
        return
    if outcomes is None:
        summary.repeated += 1
        return
    refused = [o for o in outcomes if not o["status"].startswith("2")]
    if begun.batch and refused:
        summary.failed[name] = f"{len(refused)} of {len(outcomes)} entries refused"
    # Written: an entry answered with its location; 2xx without one: not kept.
    summary.resources += sum(1 for o in outcomes if "location" in o)
    summary.not_kept += sum(
        1 for o in outcomes if o["status"].startswith("2") and "location" not in o
    )
    summary.imported += 1 if name not in summary.failed else 0


def import_command(
    paths: Annotated[
        list[Path], typer.Argument(help="Bundle (.json) or NDJSON files, or directories of them")
    ],
    org: Annotated[str | None, typer.Option(help="Organisation (default CARELEDGER_ORG)")] = None,
    clinician: Annotated[
        str | None, typer.Option(help="The importing clinician's id (default cli:<user>)")
    ] = None,
    jobs: Annotated[
        int | None,
        typer.Option(
            help="Processes at work, this one and those that read and plan files "
            "(default: one per core; 1 plans here)",
            min=1,
        ),
    ] = None,
) -> None:
    """Import FHIR charts: transactions all or nothing, batches entry by entry."""
    try:
        files = files_of(paths)
    except FileNotFoundError as missing:
        raise _fail(f"no such file or directory: {missing}") from None
    planners = planner(jobs, len(files))
    try:
        with _opened() as container:
            heap.settle(container)  # a bulk import is a long-lived process (api/heap.py)
            who = clinician or f"cli:{getpass.getuser()}"
            actor = Actor(who, Role.CLINICIAN, org or container.settings.org)
            ctx = RequestContext(actor, Purpose.TREAT, request_id=uuid.uuid4().hex, source="cli")
            started = time.monotonic()
            with _progress() as progress:
                task = progress.add_task("importing", total=len(files), rate="")
                summary = import_files(
                    container,
                    ctx,
                    files,
                    lambda n: progress.update(task, advance=n),
                    planners=planners,
                )
            seconds = time.monotonic() - started
    except BrokenProcessPool:
        # Each file written so far is whole; importing the files again writes the rest.
        raise _fail("a planning process stopped; run the import again to finish") from None
    finally:
        if planners is not None:
            # Not waited for: on Ctrl-C a planner may still be starting; it exits once
            # its file is planned, and that plan is dropped.
            planners.shutdown(wait=False, cancel_futures=True)
    for name, why in summary.failed.items():
        typer.echo(f"careledger: {name}: {why}", err=True)
    typer.echo(
        json.dumps(
            {
                "files": summary.files,
                "imported": summary.imported,
                "failed": len(summary.failed),
                "already_imported": summary.repeated,
                "resources": summary.resources,
                "not_kept": summary.not_kept,
                "seconds": round(seconds, 3),
                "resources_per_second": round(summary.resources / seconds, 1) if seconds else None,
            }
        )
    )
    if summary.failed:
        raise typer.Exit(code=1)
