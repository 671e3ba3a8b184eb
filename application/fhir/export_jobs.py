"""FHIR Bulk Data export (``$export``): kick-off, a background run, status, manifest,
download, cancel and expiry (docs/fhir.md, Bulk Data).

An export walks the organisation's patients (or a sponsor's roster, a ``Group``) one
page of ids at a time, exports each through ``export_lines.export_patient`` (the
``$everything`` path: the same gate, the same hidden entries left out, one access
record of action ``export`` per patient) and appends their lines to one sealed file
per resource type, so it holds one patient in memory at a time, whatever the count.
It completes only once every patient's record is durable; only then does the manifest
name its files. Jobs live in this process: a restart loses them (their status is
404, and the files, sealed under keys that died with the process, are removed).
"""

import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol
from uuid import UUID

from application.charts.disclosure_rendering import render
from application.context import RequestContext, Role
from application.errors import ApplicationError, Forbidden, Gone, NotFound, TooManyRequests
from application.fhir import search
from application.fhir.everything import since_of, types_wanted
from application.fhir.export_lines import EXPORT_TYPES, export_patient
from application.fhir.reads import FhirReads
from application.fhir.resources import operation_outcome
from application.fhir.type_filter import Filters, type_filters
from application.ports import Clock, NewId
from domain.errors import InvalidValue

log = logging.getLogger("careledger.export")

KICK_OFF_PARAMS = {"_type", "_since", "_outputFormat", "_typeFilter"}
NDJSON_FORMATS = {"application/fhir+ndjson", "application/ndjson", "ndjson"}
ERROR_FILE = "OperationOutcome"
PATIENTS_PER_PAGE = 500
# Records waiting for their commit while the export goes on; then it waits for them.
RECORDS_IN_FLIGHT = 64
SWEEP_SECONDS = 60.0


class ExportFile(Protocol):
    def write(self, data: bytes) -> None: ...

    def finish(self) -> None: ...

    def abandon(self) -> None: ...


class ExportFiles(Protocol):
    """Where an export's files are kept, never as plaintext (``infrastructure``)."""

    def open(self) -> None: ...

    def writer(self, export_id: UUID, name: str) -> ExportFile: ...

    def read(self, export_id: UUID, name: str) -> Iterator[bytes]: ...

    def remove(self, export_id: UUID) -> None: ...


class _Cancelled(Exception):
    pass


@dataclass
class ExportJob:
    id: UUID
    ctx: RequestContext
    request: str  # the kick-off URL, as the manifest repeats it
    base: str
    transaction_time: datetime
    types: list[str]
    since: str | None
    group: str | None
    filters: Filters = field(default_factory=dict)
    state: str = "running"  # running, complete, failed, expired
    patients: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    errors: int = 0
    expires_at: datetime | None = None
    cancelled: threading.Event = field(default_factory=threading.Event)

    def owned_by(self, ctx: RequestContext) -> bool:
        mine = self.ctx.actor
        return (ctx.actor.id, ctx.actor.org, ctx.actor.role) == (mine.id, mine.org, mine.role)


@dataclass(frozen=True)
class ExportStatus:
    """Running (``progress``), or complete (``manifest``)."""

    progress: str | None = None
    manifest: dict[str, Any] | None = None


def kick_off_params(params: search.Params) -> tuple[list[str], str | None, Filters]:
    """``_type``, ``_since`` and ``_typeFilter`` (an unsupported filter is 400);
    ``_outputFormat`` only NDJSON; any other parameter is 422."""
    found = search.known(params, KICK_OFF_PARAMS)
    output = search.single(found, "_outputFormat")
    if output is not None and output.split(";")[0].strip().lower() not in NDJSON_FORMATS:
        raise InvalidValue("_outputFormat", "this server exports application/fhir+ndjson only")
    types = types_wanted(found.get("_type", []))
    filters = type_filters(found.get("_typeFilter", []), types)
    return types, since_of(search.single(found, "_since")), filters


class BulkExports:
    """The exports of this process."""

    def __init__(
        self,
        reads: FhirReads,
        files: ExportFiles,
        clock: Clock,
        new_id: NewId,
        *,
        expiry: timedelta,
        max_running: int,
    ) -> None:
        self.reads = reads
        self.files = files
        self.clock = clock
        self.new_id = new_id
        self.expiry = expiry
        self.max_running = max_running
        self._jobs: dict[UUID, ExportJob] = {}
        self._threads: dict[UUID, threading.Thread] = {}
        self._lock = threading.Lock()
        self._opened = False
        self._stopping = threading.Event()

    # Requests ------------------------------------------------------------------------

    def kick_off(
        self,
        ctx: RequestContext,
        *,
        base: str,
        request: str,
        params: search.Params,
        group: str | None = None,
    ) -> ExportJob:
        if ctx.actor.role is not Role.CLINICIAN:
            raise Forbidden(f"the {ctx.actor.role} role may not export charts")
        if ctx.break_glass is not None:
            raise Forbidden("break-glass opens one patient's chart, never a bulk export")
        types, since, filters = kick_off_params(params)
        now = self.clock()
        if group is not None and not self._group_exists(ctx, group):
            raise NotFound("group")
        self.sweep()
        job = ExportJob(self.new_id(), ctx, request, base, now, types, since, group, filters)
        with self._lock:
            self._open()
            running = [j for j in self._jobs.values() if j.state == "running"]
            if len(running) >= self.max_running:
                raise TooManyRequests("other exports are running; retry later")
            self._jobs[job.id] = job
            thread = threading.Thread(
                target=self._run, args=(job,), name=f"export-{job.id}", daemon=True
            )
            self._threads[job.id] = thread
        thread.start()
        return job

    def status(self, ctx: RequestContext, export_id: UUID) -> ExportStatus:
        job = self._owned(ctx, export_id)
        if job.state == "running":
            return ExportStatus(progress=f"{job.patients} patients exported")
        if job.state == "failed":
            raise ExportFailed()
        return ExportStatus(manifest=self._manifest(job))

    def expires_at(self, export_id: UUID) -> datetime | None:
        with self._lock:
            job = self._jobs.get(export_id)
        return job.expires_at if job is not None else None

    def cancel(self, ctx: RequestContext, export_id: UUID) -> None:
        """Stops a running export (its files are removed) or deletes a finished one."""
        job = self._owned(ctx, export_id)
        with self._lock:  # the run marks itself complete under this lock too
            self._jobs.pop(export_id, None)
            job.cancelled.set()
            finished = job.state != "running"
        if finished:
            self.files.remove(export_id)

    def download(self, ctx: RequestContext, export_id: UUID, name: str) -> Iterator[bytes]:
        job = self._owned(ctx, export_id)
        if job.state != "complete" or name not in [_file(n) for n in self._names(job)]:
            raise NotFound("export file")
        return self.files.read(export_id, name)

    def sweep(self) -> None:
        """Expired exports: their files removed, their status 410 to the requester for
        one more expiry period, then forgotten (404)."""
        now = self.clock()
        removed = []
        with self._lock:
            for job in list(self._jobs.values()):
                if job.expires_at is None or now < job.expires_at:
                    continue
                if job.state in ("complete", "failed"):
                    job.state = "expired"
                    removed.append(job.id)
                elif now >= job.expires_at + self.expiry:
                    del self._jobs[job.id]
        for export_id in removed:
            self.files.remove(export_id)

    def close(self) -> None:
        """Stop every running export and remove every file: nothing outlives the process."""
        self._stopping.set()
        with self._lock:
            jobs, threads = list(self._jobs.values()), list(self._threads.values())
            self._jobs.clear()
        for job in jobs:
            job.cancelled.set()
        for thread in threads:
            thread.join(timeout=10)
        for job in jobs:
            self.files.remove(job.id)

    # The run ----------------------------------------------------------------------------

    def _run(self, job: ExportJob) -> None:
        writers: dict[str, ExportFile] = {}
        try:
            self._export(job, writers)
        except _Cancelled:
            self._discard(job, writers)
        except Exception as error:
            # The type only: a message may quote PHI.
            log.error("export failed", extra={"error": type(error).__name__})
            self._discard(job, writers)
            job.state, job.expires_at = "failed", self.clock() + self.expiry
        finally:
            with self._lock:
                self._threads.pop(job.id, None)

    def _export(self, job: ExportJob, writers: dict[str, ExportFile]) -> None:
        def writer(name: str) -> ExportFile:
            if name not in writers:
                writers[name] = self.files.writer(job.id, _file(name))
            return writers[name]

        in_flight = []
        for patient_id in self._patients(job):
            if job.cancelled.is_set():
                raise _Cancelled()
            try:
                part = export_patient(
                    self.reads,
                    job.ctx,
                    patient_id,
                    export_id=job.id,
                    types=job.types,
                    since=job.since,
                    base=job.base,
                    filters=job.filters,
                )
            except (Forbidden, NotFound, Gone) as refused:
                # Refused by the policy (and recorded by the gate) or erased: left out.
                issue = operation_outcome("forbidden", f"Patient/{patient_id}: {refused}")
                writer(ERROR_FILE).write(render(issue) + b"\n")
                job.errors += 1
                continue
            for kind, line in part.lines:
                writer(kind).write(line)
                job.counts[kind] = job.counts.get(kind, 0) + 1
            in_flight.append(part.durable)
            if len(in_flight) >= RECORDS_IN_FLIGHT:
                _wait(in_flight)
            job.patients += 1
        _wait(in_flight)  # every record durable before any file is named
        for each in writers.values():
            each.finish()
        with self._lock:
            if job.cancelled.is_set():
                raise _Cancelled()
            job.expires_at = self.clock() + self.expiry
            job.state = "complete"

    def _discard(self, job: ExportJob, writers: dict[str, ExportFile]) -> None:
        for each in writers.values():
            each.abandon()
        self.files.remove(job.id)

    def _patients(self, job: ExportJob) -> Iterator[UUID]:
        """The patients to export, one page of ids at a time, in id order."""
        views, org = self.reads.charts.views, job.ctx.actor.org
        day = job.transaction_time.date()
        after: UUID | None = None
        while True:
            if job.group is None:
                page = views.directory.patient_ids(org, after, PATIENTS_PER_PAGE)
            else:
                page = views.roster.member_ids(org, job.group, day, after, PATIENTS_PER_PAGE)
            yield from page
            if len(page) < PATIENTS_PER_PAGE:
                return
            after = page[-1]

    # Helpers ----------------------------------------------------------------------------

    def open(self) -> None:
        """At the server's start: what earlier processes left is cleared, and expired
        files are swept once a minute, whether or not anyone asks for them."""
        with self._lock:
            self._open()

    def _open(self) -> None:
        if not self._opened:
            self.files.open()
            self._opened = True
            threading.Thread(target=self._sweeping, name="export-sweeper", daemon=True).start()

    def _sweeping(self) -> None:
        while not self._stopping.wait(SWEEP_SECONDS):
            try:
                self.sweep()
            except Exception as error:  # the next sweep tries again
                log.error("export sweep failed", extra={"error": type(error).__name__})

    def _group_exists(self, ctx: RequestContext, group: str) -> bool:
        found = self.reads.charts.views.roster.memberships(
            ctx.actor.org, patient_id=None, sponsor_id=group, status=None, limit=1
        )
        return bool(found)

    def _owned(self, ctx: RequestContext, export_id: UUID) -> ExportJob:
        """The requester's own export; anyone else's, like an unknown one, is 404."""
        self.sweep()
        with self._lock:
            job = self._jobs.get(export_id)
        if job is None or not job.owned_by(ctx):
            raise NotFound("export")
        if job.state == "expired":
            raise Gone("this export has expired; its files were removed")
        return job

    def _names(self, job: ExportJob) -> list[str]:
        named = [kind for kind in EXPORT_TYPES if job.counts.get(kind)]
        return named + ([ERROR_FILE] if job.errors else [])

    def _manifest(self, job: ExportJob) -> dict[str, Any]:
        def url(name: str) -> str:
            return f"{job.base}/$export-file/{job.id}/{_file(name)}"

        outputs = [
            {"type": kind, "url": url(kind), "count": job.counts[kind]}
            for kind in EXPORT_TYPES
            if job.counts.get(kind)
        ]
        errors = [{"type": ERROR_FILE, "url": url(ERROR_FILE), "count": job.errors}]
        return {
            "transactionTime": job.transaction_time.isoformat().replace("+00:00", "Z"),
            "request": job.request,
            "requiresAccessToken": True,
            "output": outputs,
            "error": errors if job.errors else [],
        }


class ExportFailed(ApplicationError):
    def __init__(self) -> None:
        super().__init__("the export failed; nothing of it is kept: kick it off again")


def _file(name: str) -> str:
    return name if name.endswith(".ndjson") else f"{name}.ndjson"


def _wait(in_flight: list[Any]) -> None:
    for durable in in_flight:
        durable()
    in_flight.clear()
