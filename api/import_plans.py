"""The pure part of importing a file: read, parsed and planned, with nothing written.

``careledger import --jobs N`` runs it in N - 1 planning processes (``planner``) while the
importing process builds the charts' events and commits them in file order, so the
parsing and planning use the machine's other cores; what goes in (a path) and comes
back (``PlannedFile``) pickles. Without a planner the same function runs in-process.
"""

import hashlib
import json
import multiprocessing
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

from application.errors import ApplicationError
from application.fhir.bundles import Step, bundle_kind, plan
from domain.errors import DomainError, InvalidValue

# One decoder for every NDJSON line: ``json.loads`` makes one per call, half its cost.
LINE_DECODER = json.JSONDecoder(parse_float=Decimal)
# Files planned ahead of the one being written: two waves, enough to keep the
# planners busy while a wave commits, few enough that a large directory's plans are
# not all held at once.
AHEAD = 16
# Fewer files than this are planned in-process: starting a planning process (an
# interpreter and its imports) costs more than it would save them.
FEW = 32
SETTINGS = "CARELEDGER_"


@dataclass(frozen=True)
class PlannedFile:
    """A file as the importer writes it: its SHA-256 (its Idempotency-Key), and either
    why it cannot be read as a Bundle, or a batch Bundle (written entry by entry), or a
    transaction's plan or the refusal of its first entry that cannot be held."""

    digest: str
    unreadable: str | None = None
    batch: dict[str, Any] | None = None
    steps: list[Step] | None = None
    refused: str | None = None


def bundle_of(path: Path, content: bytes) -> dict[str, Any]:
    """A file as a Bundle: a .json Bundle as it is, an NDJSON chart as a transaction
    whose Patient's ``fullUrl`` is ``Patient/{its id}``, as the other lines name it."""
    if path.suffix == ".json":
        bundle = json.loads(content, parse_float=Decimal)
        if not isinstance(bundle, dict):
            raise ValueError("not a Bundle")
        return bundle
    entries = []
    for number, line in enumerate(content.decode().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            resource = LINE_DECODER.decode(line)
        except ValueError:
            raise ValueError(f"line {number} is not JSON") from None
        if not isinstance(resource, dict) or "resourceType" not in resource:
            raise ValueError(f"line {number} is not a resource")
        kind = str(resource["resourceType"])
        entry: dict[str, Any] = {"resource": {k: v for k, v in resource.items() if k != "id"}}
        if kind == "Patient" and "id" in resource:
            entry["fullUrl"] = f"Patient/{resource['id']}"
        entry["request"] = {"method": "POST", "url": kind}
        entries.append(entry)
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def planned_file(path: Path, new_id: Callable[[], UUID] = uuid4) -> PlannedFile:
    """The file read and planned; errors are kept as their messages (they pickle)."""
    content = path.read_bytes()
    digest = hashlib.sha256(content).hexdigest()
    try:
        bundle = bundle_of(path, content)
        if bundle_kind(bundle) != "transaction":
            return PlannedFile(digest, batch=bundle)
    except (ApplicationError, DomainError, ValueError, UnicodeDecodeError) as error:
        return PlannedFile(digest, unreadable=str(error))
    steps: list[Step] = []
    for step in plan(bundle, new_id):
        if isinstance(step, InvalidValue):
            return PlannedFile(digest, refused=str(step))  # the first refusal names its entry
        steps.append(step)
    return PlannedFile(digest, steps=steps)


def _planning_for(importer: int) -> None:
    """A planner leaves Ctrl-C to the importing process, which stops planning and
    settles what it has queued, and exits once that process is gone (killed)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_exit_without, args=(importer,), daemon=True).start()


def _exit_without(importer: int) -> None:
    while os.getppid() == importer:
        time.sleep(1.0)
    os._exit(0)  # orphaned: nothing to flush, its plans have nowhere to go


def planner(jobs: int | None, files: int | None = None) -> Executor | None:
    """Planning processes so that ``jobs`` processes work in all, this one included
    (default: one per core this process may run on), for ``files`` files; None for
    one job or a few files (fewer than ``FEW``): planned in-process. Spawned, not
    forked: the importer has threads (its group commit)."""
    jobs = jobs if jobs is not None else len(os.sched_getaffinity(0))
    if jobs <= 1 or (files is not None and files < FEW):
        return None
    pool = ProcessPoolExecutor(
        max_workers=jobs - 1,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_planning_for,
        initargs=(os.getpid(),),
    )
    with _without_settings():
        for _ in range(jobs - 1):  # each submit to a pool with none idle spawns one now
            pool.submit(int)
    return pool


@contextmanager
def _without_settings() -> Iterator[None]:
    """The service's settings (its master key, database URLs, token secret) left out of
    the environment a planning process is started with: a planner needs none of them."""
    held = {name: value for name, value in os.environ.items() if name.startswith(SETTINGS)}
    for name in held:
        del os.environ[name]
    try:
        yield
    finally:
        os.environ.update(held)


def planned_in_order(
    files: list[Path], pool: Executor | None, new_id: Callable[[], UUID]
) -> Iterator[PlannedFile]:
    """Each file's plan, in file order: from the pool, a few files ahead, or else
    in-process as each is wanted. Files not yet planned are cancelled if the caller
    stops early."""
    if pool is None:
        for path in files:
            yield planned_file(path, new_id)
        return
    ahead: deque[Future[PlannedFile]] = deque()
    queued = iter(files)
    try:
        for path in queued:
            ahead.append(pool.submit(planned_file, path))
            if len(ahead) >= AHEAD:
                break
        while ahead:
            done = ahead.popleft().result()
            following = next(queued, None)
            if following is not None:
                ahead.append(pool.submit(planned_file, following))
            yield done
    finally:
        for future in ahead:
            future.cancel()
