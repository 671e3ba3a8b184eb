"""Benchmark the read models: full rebuild (P1), live lag (P2) and timeline paging (R2).

Run from the project root::

    .venv/bin/python -m bench.projections [--events N] [--quick]
                                          [--backend postgres|sqlite|both]

P1 and P2 run on PostgreSQL only, R2 on PostgreSQL and on SQLite (``--backend``,
default both; one row per backend). On each backend everything runs in one throwaway
store (a PostgreSQL database ``careledger_bench_*``, dropped afterwards, or a SQLite
file in a temporary directory), opened exactly as the service opens it
(``api.bootstrap.build``: SealingMapper, key ring, chain key, the four projectors), and
filled with the same log (P1's workload) first.

P1  Full rebuild. The store is filled with ``--events`` events through the domain
    (registrations with their consent records, clinical entries, amendments, entries
    marked in error, consent directives, memberships; ``ledger.save`` of ~10 patients'
    aggregates at a time, sealed as in service). Then
    ``infrastructure.projections.rebuild.rebuild(projector)`` of the timeline view is
    timed (median of ``--rebuild-repeats``), and each of the four views once. The
    baseline is the library's stock ``ProjectionRunner`` over the same log: its
    application is ``CareLedger`` constructed with the same environment, so it has our
    SealingMapper, bound to the same key ring; its view is a ``PostgresTrackingRecorder``
    subclass whose ``process_event`` writes the same timeline row (the same
    ``TimelineProjection`` row code, batch of one) and its tracking record in one
    transaction per event: the stock pattern. Both read the same topics. Rates are log
    positions covered per second. Figure: ours / stock. Goal: >= 10x. PostgreSQL only:
    the stock runner follows the log through the application recorder's
    ``subscribe()``, which the library's SQLite recorder does not implement.

P2  Live lag. A ``careledger worker`` process (the service's own projection host,
    woken by NOTIFY) projects while this process records entries through
    ``Patients.record_entry`` (one event per save) at ``--rate`` events/s for
    ``--seconds``. A listener thread here LISTENs on the views' channel and stamps the
    arrival of each ``timeline <position>`` commit notification. Lag of a write = first
    arrival of a position >= the write's position, minus the moment ``record_entry``
    returned (position known); an arrival that beats the return counts as 0. Writes
    come from ``--writers`` threads (one thread cannot keep 300 saves/s here). Goal:
    p99 <= 50 ms. If missed, a shorter run with the projections in this process times
    and profiles the timeline projector's steps (``diagnosis`` in the JSON).
    PostgreSQL only: on SQLite there is no worker process and no NOTIFY to listen to
    (``careledger serve`` projects in its own process, woken in-process).

R2  Timeline page. A chart of ``--small-chart`` entries and one of ``--big-chart``
    entries are written and projected; ``ChartReads.timeline`` (a clinician of the
    organisation, page of 50) is timed on the first page and on a middle page (cursor
    at half the chart), ``--page-repeats`` times each, interleaved. Figure:
    p99(big) / p99(small), per page. Goal: <= 1.5x. On both backends.

Results are printed as a markdown table and written as JSON to
``bench/results/projections-<timestamp>.json`` (or ``--json-out``). A goal that is not
met is profiled (cProfile) and the top of the profile is printed and kept in the JSON.
"""

import argparse
import base64
import bisect
import cProfile
import gc
import io
import os
import pstats
import secrets
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from uuid import UUID, uuid4

import psycopg
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import Tracking
from eventsourcing.postgres import PostgresDatastore, PostgresTrackingRecorder
from eventsourcing.projection import Projection, ProjectionRunner
from eventsourcing.sqlite import SQLiteApplicationRecorder
from eventsourcing.utils import EnvType
from psycopg.rows import tuple_row
from psycopg.sql import SQL, Identifier
from rich.console import Console
from rich.progress import (
    Progress,
)

from api.bootstrap import build
from api.container import Container
from api.settings import Settings
from application.charts.chart_reads import encode_cursor
from application.context import Actor, RequestContext, Role
from application.ledger.ledger import CareLedger
from bench import report as bench_report
from domain.consent import Consent
from domain.membership import Membership
from domain.patient import Patient
from domain.values import (
    CodedValue,
    Coding,
    ConsentEvidence,
    ContactDetails,
    HumanName,
    Period,
    Provenance,
    Quantity,
    TextValue,
)
from domain.vocabulary import (
    AdministrativeSex,
    EntryKind,
    Modality,
    Plan,
    Purpose,
    SensitivityLabel,
    SigningMethod,
)
from infrastructure.keys import KeyRing
from infrastructure.projections.engine import Decoded, Projector, active_version
from infrastructure.projections.rebuild import RebuildProgress, rebuild
from infrastructure.projections.row_cipher import RowCipher
from infrastructure.projections.store import ViewStore
from infrastructure.projections.timeline import TABLE as TIMELINE_TABLE
from infrastructure.projections.timeline import TimelineProjection
from infrastructure.sealing import SealingMapper
from infrastructure.stores import environment_for

P1_GOAL = 10.0
P2_GOAL_MS = 50.0
R2_GOAL = 1.5
PAGE = 50
ORG = "org-main"
PG_ADMIN_URL = os.environ.get(
    "CARELEDGER_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres"
)
DB_PREFIX = "careledger_bench_"
STOCK_NAME = "StockTimeline"
STOCK_TABLE = "stock_view_timeline"

HEART_RATE = Coding(system="http://loinc.org", code="8867-4", display="Heart rate")
DIAGNOSIS = Coding(system="http://snomed.info/sct", code="38341003", display="Hypertension")
FINDING = Coding(system="http://snomed.info/sct", code="271737000", display="Anaemia")
NOTE = Coding(system="http://loinc.org", code="11506-3", display="Progress note")
VISIT = Coding(system="http://snomed.info/sct", code="185349003", display="Encounter")
NO_LABELS: frozenset[SensitivityLabel] = frozenset()
CLINICIAN = RequestContext(
    actor=Actor(id="clinician-7", role=Role.CLINICIAN, org=ORG),
    purpose=Purpose.TREAT,
    request_id="bench-projections",
)
ADMIN = RequestContext(
    actor=Actor(id="admin-7", role=Role.ADMIN, org=ORG),
    purpose=Purpose.TREAT,
    request_id="bench-projections",
)

stderr = Console(stderr=True)


def now() -> datetime:
    return datetime.now(UTC)


# The workload, through the domain ---------------------------------------------------


class Serial:
    def __init__(self) -> None:
        self.n = 0

    def __call__(self) -> int:
        self.n += 1
        return self.n


def new_patient(n: int, by: Provenance) -> tuple[Patient, Consent]:
    patient = Patient.register(
        patient_id=uuid4(),
        consent_id=uuid4(),
        organisation_id=ORG,
        mrn=f"MRN-{n:07d}",
        name=HumanName(given="Ada", family=f"Example{n % 97}"),
        birth_date=date(1950 + n % 50, 1 + n % 12, 1 + n % 28),
        sex=AdministrativeSex.FEMALE if n % 2 else AdministrativeSex.MALE,
        contact=ContactDetails(phone="+1-555-0100"),
        by=by,
    )
    return patient, Consent.open(consent_id=patient.consent_id, patient_id=patient.id, by=by)


def record_entry(patient: Patient, n: int, by: Provenance) -> UUID:
    """One of five kinds of entry, in turn; every 9th is labelled."""
    entry_id = uuid4()
    kind, code, value, modality = [
        (EntryKind.OBSERVATION, HEART_RATE, Quantity(Decimal(60 + n % 40), "/min"), None),
        (EntryKind.CONDITION, DIAGNOSIS, CodedValue(DIAGNOSIS), None),
        (EntryKind.NOTE, NOTE, TextValue(f"Seen today, plan reviewed ({n})."), None),
        (EntryKind.ENCOUNTER, VISIT, None, Modality.IN_OFFICE),
        (EntryKind.LAB_RESULT, FINDING, Quantity(Decimal("13.1"), "g/dL"), None),
    ][n % 5]
    patient.record_entry(
        entry_id=entry_id,
        kind=kind,
        code=code,
        value=value,
        effective_at=datetime(2024, 1, 1, tzinfo=UTC) + timedelta(minutes=7 * n),
        modality=modality,
        labels=frozenset({SensitivityLabel.MENTAL_HEALTH}) if n % 9 == 0 else NO_LABELS,
        by=by,
    )
    return entry_id


def patient_story(
    n: int, serial: Serial, entries: int, by: Provenance
) -> tuple[list[Aggregate], Patient]:
    """A registration with its consent record, entries, corrections, a directive and
    (every other patient) a membership: about 15 events."""
    patient, consent = new_patient(n, by)
    entry_ids = [record_entry(patient, serial(), by) for _ in range(entries)]
    patient.amend_entry(
        entry_id=entry_ids[0],
        reason="transcription error",
        value=Quantity(Decimal(72), "/min"),
        labels=NO_LABELS,
        by=by,
    )
    if n % 3 == 0:
        patient.mark_entered_in_error(entry_id=entry_ids[-1], reason="wrong patient", by=by)
    consent.grant_directive(
        directive_id=uuid4(),
        grantee=ORG,
        purposes=frozenset({Purpose.TREAT}),
        labels=frozenset({SensitivityLabel.MENTAL_HEALTH}),
        period=Period(start=date(2024, 1, 1)),
        evidence=ConsentEvidence(
            form_id="consent-form-1",
            form_version="2024-01",
            text_sha256="0" * 64,
            method=SigningMethod.ELECTRONIC,
            recorded_by=by.actor_id,
        ),
        by=by,
    )
    aggregates: list[Aggregate] = [patient, consent]
    if n % 2 == 0:
        aggregates.append(
            Membership.enrol(
                membership_id=uuid4(),
                patient_id=patient.id,
                organisation_id=ORG,
                plan=Plan.INDIVIDUAL,
                sponsor_id=None,
                annual_fee_cents=12_000,
                starts_on=date(2026, 1, 1),
                ends_on=date(2027, 1, 1),
                by=by,
            )
        )
    return aggregates, patient


def head(ledger: CareLedger) -> int:
    return ledger.recorder.max_notification_id() or 0


def fill(
    ledger: CareLedger, target: int, progress: Progress, serial: Serial
) -> tuple[dict[str, Any], list[UUID]]:
    """Patients' stories, ~10 patients per save, until the log holds ``target`` events."""
    task = progress.add_task("P1: writing the log", total=target)
    patient_ids: list[UUID] = []
    started = time.perf_counter()
    while (have := head(ledger)) < target:
        by = Provenance("clinician-7", now())
        batch: list[Aggregate] = []
        for _ in range(10):
            aggregates, patient = patient_story(serial(), serial, 10, by)
            batch += aggregates
            patient_ids.append(patient.id)
        ledger.save(*batch)
        progress.update(task, completed=min(head(ledger), target))
    seconds = time.perf_counter() - started
    progress.remove_task(task)
    have = head(ledger)
    return {
        "events_in_log": have,
        "patients": len(patient_ids),
        "write_events_per_s": round(have / seconds, 1),
    }, patient_ids


def event_mix(ledger: CareLedger) -> dict[str, int]:
    recorder: Any = ledger.recorder
    table = SQL("{0}.{1}").format(
        Identifier(recorder.datastore.schema), Identifier(recorder.events_table_name)
    )
    with recorder.datastore.get_connection() as conn:
        rows = conn.execute(
            SQL("SELECT topic, count(*) AS n FROM {0} GROUP BY topic ORDER BY 2 DESC").format(table)
        ).fetchall()
    return {r["topic"].rsplit(":", 1)[-1]: int(r["n"]) for r in rows}


def last_position_of(ledger: CareLedger, topics: Sequence[str]) -> int:
    recorder: Any = ledger.recorder
    table = SQL("{0}.{1}").format(
        Identifier(recorder.datastore.schema), Identifier(recorder.events_table_name)
    )
    with recorder.datastore.get_connection() as conn:
        row = conn.execute(
            SQL("SELECT max(notification_id) AS m FROM {0} WHERE topic = ANY(%s)").format(table),
            (list(topics),),
        ).fetchone()
    return int(row["m"] or 0)


# The store ----------------------------------------------------------------------------


@contextmanager
def bench_database() -> Iterator[str]:
    """A new, empty database on the server, dropped afterwards (whatever happens)."""
    name = f"{DB_PREFIX}{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(SQL("CREATE DATABASE {0}").format(Identifier(name)))
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(SQL("DROP DATABASE IF EXISTS {0} WITH (FORCE)").format(Identifier(name)))


@contextmanager
def bench_store(backend: str) -> Iterator[str]:
    """A new, empty store on ``backend``: a throwaway PostgreSQL database, or a SQLite
    file in a temporary directory. Either is removed afterwards."""
    if backend == "postgres":
        with bench_database() as url:
            yield url
        return
    with tempfile.TemporaryDirectory(prefix="cl-bench-sqlite-") as tmp:
        yield f"sqlite:///{Path(tmp) / 'careledger.db'}"


def bench_settings(url: str, var_dir: Path) -> Settings:
    return Settings(
        database_url=url,
        master_key=base64.b64encode(secrets.token_bytes(32)).decode(),
        jwt_secret=secrets.token_urlsafe(40),
        var_dir=var_dir,
        org=ORG,
        log_level="WARNING",
    )


def server_version(ledger: CareLedger) -> str:
    recorder: Any = ledger.recorder
    if isinstance(recorder, SQLiteApplicationRecorder):
        return f"SQLite {sqlite3.sqlite_version}"
    with recorder.datastore.get_connection() as conn:
        row = conn.execute("SHOW server_version").fetchone()
    return f"PostgreSQL {next(iter(row.values()))}"


def projector(container: Container, name: str) -> Projector:
    return next(p for p in container.projectors if p.name == name)


# P1: ours -----------------------------------------------------------------------------


def timed_rebuild(p: Projector, progress: Progress, label: str) -> tuple[float, int]:
    task = progress.add_task(label, total=head_of(p))

    def observe(state: RebuildProgress) -> None:
        progress.update(task, total=state.head, completed=state.position)

    gc.collect()
    started = time.perf_counter()
    rebuild(p, observe)
    seconds = time.perf_counter() - started
    progress.remove_task(task)
    return seconds, p.active().position


def head_of(p: Projector) -> int:
    return p.recorder.max_notification_id() or 0


def timeline_rows(store: ViewStore, table: str, version: int | None) -> list[tuple[Any, ...]]:
    """(patient, entry, effective_at, kind, status, position) of every row, sorted."""
    with store.reading() as cursor:
        if version is None:
            version = active_version(cursor, store, TimelineProjection.name)
        rows = cursor.execute(
            f"SELECT patient_id, entry_id, effective_at, kind, status, position FROM {table} "  # noqa: S608
            "WHERE version = ? ORDER BY patient_id, entry_id",
            (version,),
        ).fetchall()
    return rows


# P1: the stock runner -------------------------------------------------------------------


class TupleCursor:
    """Our projections' ``Cursor`` over a psycopg cursor: ``?`` placeholders, tuple rows."""

    def __init__(self, cursor: Any) -> None:
        self._cursor = cursor

    def execute(self, sql: str, params: Sequence[Any] = ()) -> "TupleCursor":
        self._cursor.execute(sql.replace("?", "%s"), params, prepare=bool(params))
        return self

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            self._cursor.executemany(sql.replace("?", "%s"), rows)

    def fetchone(self) -> tuple[Any, ...] | None:
        row: tuple[Any, ...] | None = self._cursor.fetchone()
        return row

    def fetchall(self) -> list[tuple[Any, ...]]:
        return list(self._cursor.fetchall())

    @property
    def rowcount(self) -> int:
        return int(self._cursor.rowcount)


class StockTimelineView(PostgresTrackingRecorder):
    """The library's pattern: a tracking recorder whose every write commits its tracking.

    The row written is the timeline's own (``TimelineProjection``'s row code, sealed
    the same way), so the two sides differ in how they move through the log only.
    """

    rows: TimelineProjection  # bound by the runner's factory (it needs the key ring)

    def __init__(self, datastore: PostgresDatastore, **kwargs: Any) -> None:
        super().__init__(datastore, **kwargs)
        table = SQL("{0}.{1}").format(Identifier(datastore.schema), Identifier(STOCK_TABLE))
        self.sql_create_statements += [
            SQL(
                "CREATE TABLE IF NOT EXISTS {0} (version INTEGER NOT NULL, "
                "patient_id TEXT NOT NULL, entry_id TEXT NOT NULL, effective_at TEXT NOT NULL, "
                "kind TEXT NOT NULL, status TEXT NOT NULL, position BIGINT NOT NULL, "
                "sealed BYTEA NOT NULL, PRIMARY KEY (version, patient_id, entry_id))"
            ).format(table),
            SQL(
                "CREATE INDEX IF NOT EXISTS {0} ON {1} "
                "(version, patient_id, effective_at, entry_id)"
            ).format(Identifier(f"{STOCK_TABLE}_by_time"), table),
        ]

    def process(self, event: Any, tracking: Tracking) -> None:
        """One event: its row and its tracking record, in one transaction."""
        with self.datastore.transaction(commit=True) as curs:
            rows = TupleCursor(curs.connection.cursor(row_factory=tuple_row))
            self.rows.apply(rows, 1, [Decoded(tracking.notification_id, event)])
            self._insert_tracking(curs, tracking)


class StockTimeline(Projection[StockTimelineView]):
    name = STOCK_NAME
    topics = TimelineProjection.topics

    def process_event(self, domain_event: Any, tracking: Tracking) -> None:
        self.view.process(domain_event, tracking)


def stock_classes(
    keys: KeyRing, store: ViewStore
) -> tuple[type[CareLedger], type[StockTimelineView]]:
    """The runner's application (our CareLedger, its mapper bound to our key ring as
    ``infrastructure.migrations.unlock`` binds it) and its view (rows encrypted likewise)."""
    rows = TimelineProjection(store, RowCipher(keys))
    rows.table = store.table(STOCK_TABLE)

    class SealedCareLedger(CareLedger):
        name = CareLedger.name  # the same tables, and the same tracking name

        def __init__(self, env: EnvType | None = None) -> None:
            super().__init__(env)
            mapper = self.mapper
            assert isinstance(mapper, SealingMapper)
            mapper.bind(keys, self.recorder)

    class View(StockTimelineView):
        pass

    View.rows = rows
    return SealedCareLedger, View


def run_stock(
    container: Container, url: str, target: int, progress: Progress
) -> tuple[float, int, Any]:
    """Time the stock runner from construction until its tracking reaches ``target``."""
    app_class, view_class = stock_classes(container.keys, container.views)
    env = {
        **environment_for(url),
        "CREATE_TABLE": "n",  # the application's tables exist (migrated by the service)
        f"{STOCK_NAME.upper()}_CREATE_TABLE": "y",  # the view's tables
    }
    task = progress.add_task("P1: stock ProjectionRunner", total=target)
    gc.collect()
    started = time.perf_counter()
    reached = 0
    with ProjectionRunner(
        application_class=app_class,
        projection_class=StockTimeline,
        view_class=view_class,
        env=env,
    ) as runner:
        while reached < target:
            if runner.is_interrupted.is_set():
                runner.run_forever(timeout=0)  # raises the processing thread's error
                raise RuntimeError("the stock runner stopped")
            time.sleep(0.02)
            reached = runner.view.max_tracking_id(CareLedger.name) or 0
            progress.update(task, completed=reached)
        seconds = time.perf_counter() - started
    progress.remove_task(task)
    return seconds, reached, view_class


def run_p1(
    container: Container, url: str, args: argparse.Namespace, progress: Progress, fill_info: Any
) -> dict[str, Any]:
    ledger = container.ledger
    timeline = projector(container, "timeline")
    covered = head(ledger)
    ours: list[float] = []
    for i in range(args.rebuild_repeats):
        seconds, position = timed_rebuild(
            timeline, progress, f"P1: rebuild timeline ({i + 1}/{args.rebuild_repeats})"
        )
        assert position == covered, (position, covered)
        ours.append(seconds)
    ours_rate = covered / statistics.median(ours)

    all_four: dict[str, float] = {}
    for p in container.projectors:
        seconds, _ = timed_rebuild(p, progress, f"P1: rebuild {p.name}")
        all_four[p.name] = round(seconds, 4)

    target = last_position_of(ledger, TimelineProjection.topics)
    stock_seconds, reached, _ = run_stock(container, url, target, progress)
    stock_rate = covered / stock_seconds

    # The two views must agree row for row.
    ours_rows = timeline_rows(container.views, container.views.table(TIMELINE_TABLE), None)
    stock_rows = timeline_rows(container.views, container.views.table(STOCK_TABLE), 1)
    same = ours_rows == stock_rows

    ratio = ours_rate / stock_rate
    applied = sum(
        n for topic, n in fill_info["event_mix"].items() if topic.startswith("Patient.Entry")
    )
    result: dict[str, Any] = {
        "log_positions": covered,
        "timeline_events_in_log": applied,
        "timeline_rows": len(ours_rows),
        "views_identical": same,
        "ours": {
            "rebuild_seconds": [round(s, 4) for s in ours],
            "median_positions_per_s": round(ours_rate, 1),
            "timeline_events_per_s": round(applied / statistics.median(ours), 1),
            "batch_size": timeline.batch_size,
            "all_four_rebuild_seconds": all_four,
            "all_four_positions_per_s": round(4 * covered / sum(all_four.values()), 1),
        },
        "stock": {
            "seconds": round(stock_seconds, 4),
            "positions_per_s": round(stock_rate, 1),
            "timeline_events_per_s": round(applied / stock_seconds, 1),
            "tracking_reached": reached,
            "how": (
                "eventsourcing.projection.ProjectionRunner(application_class=CareLedger "
                "(same env: SealingMapper bound to the same key ring), "
                "projection_class=Projection subclass, view_class=PostgresTrackingRecorder "
                "subclass); one transaction per event holding the timeline row (same row "
                "code and sealing as ours) and the tracking record; same topic filter; "
                "timed from the runner's construction to its tracking reaching the last "
                "timeline event (polled every 20 ms)"
            ),
        },
        "ratio_ours_over_stock": round(ratio, 2),
        "goal": f">= {P1_GOAL:g}x",
        "met": ratio >= P1_GOAL and same,
    }
    if not same:
        result["mismatch"] = {"ours_rows": len(ours_rows), "stock_rows": len(stock_rows)}
    if args.profile or not result["met"]:
        profiler = cProfile.Profile()
        profiler.enable()
        rebuild(timeline)
        profiler.disable()
        result["profile_rebuild_timeline"] = profile_lines(profiler)
    return result


# P2: live lag ---------------------------------------------------------------------------


def listen(conninfo: str, channel: str, view: str) -> None:
    """The listener process: one line ``<CLOCK_MONOTONIC seconds> <position>`` per
    commit notification of ``view``, stamped on arrival, until terminated."""
    prefix = view + " "
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(SQL("LISTEN {0}").format(Identifier(channel)))
        print("ready", flush=True)
        for note in conn.notifies():
            stamp = time.monotonic()
            if note.payload.startswith(prefix):
                sys.stdout.write(f"{stamp!r} {note.payload[len(prefix) :]}\n")
                sys.stdout.flush()


class CommitListener:
    """LISTEN on the views' channel from a process of its own, so that no thread of
    this one (writers holding the GIL) can delay the stamps. CLOCK_MONOTONIC is one
    clock for every process on the machine, so its stamps and ours compare."""

    def __init__(self, conninfo: str, channel: str, view: str = "timeline") -> None:
        code = "import sys; from bench.projections import listen; listen(*sys.argv[1:])"
        self.process = subprocess.Popen(  # noqa: S603
            [sys.executable, "-c", code, conninfo, channel, view],
            stdout=subprocess.PIPE,
            text=True,
            cwd=Path(__file__).resolve().parent.parent,
        )
        self.arrivals: list[tuple[float, int]] = []
        assert self.process.stdout is not None
        if self.process.stdout.readline().strip() != "ready":
            self.process.kill()
            raise RuntimeError("the listener process did not start")
        self._thread = threading.Thread(target=self._read, name="bench-listener", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            stamp, position = line.split()
            self.arrivals.append((float(stamp), int(position)))

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(5)
        self._thread.join(2)

    def wait_for(self, position: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(p >= position for _, p in self.arrivals[-50:]):
                return True
            time.sleep(0.005)
        return False


class StepProbe:
    """Wraps a projector's ``step`` (in this process) to time and profile each call."""

    def __init__(self, projector: Projector) -> None:
        self.inner = projector.step
        self.profiler = cProfile.Profile()
        self.busy: list[tuple[float, float]] = []  # (start, ms) of steps that applied
        self.idle = 0
        projector.step = self  # type: ignore[method-assign]

    def __call__(self, version: Any = None) -> Any:
        started = time.monotonic()
        self.profiler.enable()
        try:
            result = self.inner(version)
        finally:
            self.profiler.disable()
        if result[1] > 0:
            self.busy.append((started, (time.monotonic() - started) * 1000))
        else:
            self.idle += 1
        return result


@contextmanager
def worker_process(settings: Settings, log_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``careledger worker`` on the same store (the service's projection process)."""
    assert settings.master_key is not None and settings.jwt_secret is not None
    env = {
        **os.environ,
        "CARELEDGER_DATABASE_URL": settings.database_url,
        "CARELEDGER_MASTER_KEY": settings.master_key.get_secret_value(),
        "CARELEDGER_JWT_SECRET": settings.jwt_secret.get_secret_value(),
        "CARELEDGER_VAR_DIR": str(settings.var_dir),
        "CARELEDGER_ORG": ORG,
        "CARELEDGER_LOG_LEVEL": "WARNING",
    }
    command = [str(Path(sys.executable).parent / "careledger"), "worker"]
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)  # noqa: S603
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def in_process_projections(
    settings: Settings, probe: list[StepProbe] | None = None
) -> Iterator[Container]:
    """Alternatively: the projection host in this process (build(run_processes=True)),
    with the timeline projector's steps probed if asked."""
    projecting = build(settings, run_processes=True)
    if probe is not None:
        probe.append(StepProbe(projector(projecting, "timeline")))
    projecting.start_followers()
    try:
        yield projecting
    finally:
        projecting.close()


def conninfo(url: str) -> str:
    parts = urlsplit(url)
    return psycopg.conninfo.make_conninfo(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 5432,
        dbname=parts.path.lstrip("/"),
        user=parts.username or "postgres",
    )


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def paced(
    write: Callable[[int], tuple[float, int]],
    rate: float,
    count: int,
    writers: int,
    advance: Callable[[], None],
) -> tuple[list[tuple[float, int]], int, float]:
    """``count`` writes at ``rate`` per second, open loop (a late write does not shift
    the schedule), by ``writers`` threads: thread k makes writes k, k + writers, ...

    Returns (return time, position) of each write, how many started later than one
    interval after their due time, and the wall time.
    """
    interval = 1.0 / rate
    done: list[tuple[float, int]] = [(0.0, 0)] * count
    late = [0] * writers
    errors: list[BaseException] = []
    started = time.perf_counter() + 0.01

    def writer(k: int) -> None:
        try:
            for i in range(k, count, writers):
                pause = started + i * interval - time.perf_counter()
                if pause > 0:
                    time.sleep(pause)
                elif pause < -interval:
                    late[k] += 1
                done[i] = write(i)
                advance()
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return done, sum(late), time.perf_counter() - started


def write_lags(
    arrivals: Sequence[tuple[float, int]], writes: Sequence[tuple[float, int]]
) -> tuple[list[float], int]:
    """Lag (ms) of each write: first arrival of a position >= its own, minus its return.

    Also how many arrivals beat the return (counted as 0 ms)."""
    stamps = [t for t, _ in arrivals]
    reached_so_far: list[int] = []
    top = 0
    for _, position in arrivals:
        top = max(top, position)
        reached_so_far.append(top)
    lags_ms: list[float] = []
    early = 0
    for saved_at, position in writes:
        lag = stamps[bisect.bisect_left(reached_so_far, position)] - saved_at
        early += lag < 0
        lags_ms.append(max(lag, 0.0) * 1000)
    return lags_ms, early


def run_p2(
    container: Container,
    settings: Settings,
    args: argparse.Namespace,
    progress: Progress,
    patient_ids: list[UUID],
    log_path: Path,
    *,
    mode: str,
    seconds: float,
    probe: list[StepProbe] | None = None,
) -> dict[str, Any]:
    store = container.views
    patients = container.patients
    # Each writer thread keeps to its own patients (write i goes to patient i mod n).
    n = max(args.writers, min(200, len(patient_ids)) // args.writers * args.writers)
    chosen = patient_ids[:n]
    serial = Serial()

    saves: list[float] = []

    def write(i: int) -> tuple[float, int]:
        before = time.monotonic()
        outcome = patients.record_entry(
            CLINICIAN,
            chosen[i % len(chosen)],
            kind=EntryKind.OBSERVATION,
            code=HEART_RATE,
            value=Quantity(Decimal(60 + i % 40), "/min"),
            effective_at=datetime(2025, 1, 1, tzinfo=UTC) + timedelta(seconds=serial()),
            modality=None,
            labels=NO_LABELS,
        )
        after = time.monotonic()
        saves.append(after - before)
        return after, outcome.position

    load_before = os.getloadavg()
    listener = CommitListener(conninfo(settings.database_url), store.positions_channel)
    with ExitStack() as stack:
        stack.callback(listener.stop)
        if mode == "worker":
            stack.enter_context(worker_process(settings, log_path))
        else:
            stack.enter_context(in_process_projections(settings, probe))
        # Ready when a write is seen projected; then a paced warm-up, unmeasured.
        _, position = write(0)
        if not listener.wait_for(position, 60):
            raise RuntimeError(f"the projections did not start; see {log_path}")
        warmup = int(args.rate * 2)
        total = int(args.rate * seconds)
        task = progress.add_task("P2: live writes", total=warmup + total)
        advance = partial(progress.advance, task)
        paced(write, args.rate, warmup, args.writers, advance)
        writes, late, wall = paced(write, args.rate, total, args.writers, advance)
        last = max(p for _, p in writes)
        caught_up = listener.wait_for(last, 30)
        progress.remove_task(task)
    if not caught_up:
        raise RuntimeError(f"the timeline never reached {last}; see {log_path}")

    lags_ms, early = write_lags(listener.arrivals, writes)
    p99 = percentile(lags_ms, 0.99)
    notifications = sum(1 for t, _ in listener.arrivals if writes[0][0] <= t)
    return {
        "window": (writes[0][0], max(t for t, _ in writes)),
        "mode": mode,
        "load_average_1m_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
        "target_rate_events_per_s": args.rate,
        "achieved_rate_events_per_s": round(len(writes) / wall, 1),
        "writer_threads": args.writers,
        "writes": len(writes),
        "late_writes": late,
        "seconds": round(wall, 2),
        "commit_notifications": notifications,
        "events_per_commit": round(len(writes) / max(notifications, 1), 2),
        "arrived_before_save_returned": early,
        "lag_ms": {
            "p50": round(percentile(lags_ms, 0.5), 2),
            "p90": round(percentile(lags_ms, 0.9), 2),
            "p99": round(p99, 2),
            "max": round(max(lags_ms), 2),
            "mean": round(statistics.fmean(lags_ms), 2),
        },
        "record_entry_ms": {
            "p50": round(percentile(saves[-len(writes) :], 0.5) * 1000, 2),
            "p99": round(percentile(saves[-len(writes) :], 0.99) * 1000, 2),
        },
        "goal": f"p99 <= {P2_GOAL_MS:g} ms",
        "met": p99 <= P2_GOAL_MS,
        "how": (
            "writes: Patients.record_entry (one event per save) paced open-loop; lag: "
            "arrival here of the timeline projector's NOTIFY (sent in its commit) for a "
            "position >= the write's, minus record_entry's return"
        ),
    }


def diagnose_p2(
    container: Container,
    settings: Settings,
    args: argparse.Namespace,
    progress: Progress,
    patient_ids: list[UUID],
) -> dict[str, Any]:
    """A shorter live run with the projections in this process, the timeline
    projector's steps timed and profiled (cProfile, that thread only)."""
    probes: list[StepProbe] = []
    seconds = min(args.seconds, 8.0)
    run = run_p2(
        container,
        settings,
        args,
        progress,
        patient_ids,
        Path(os.devnull),
        mode="in-process",
        seconds=seconds,
        probe=probes,
    )
    probe = probes[0]
    first, last = run["window"]
    busy = [ms for started, ms in probe.busy if first <= started <= last]
    return {
        "in_process_run": {k: run[k] for k in ("achieved_rate_events_per_s", "lag_ms", "met")},
        "timeline_steps": {
            "applying": len(busy),
            "idle": probe.idle,
            "ms_p50": round(percentile(busy, 0.5), 2),
            "ms_p99": round(percentile(busy, 0.99), 2),
            "ms_max": round(max(busy), 2) if busy else None,
            "busy_fraction_of_measured_window": round(sum(busy) / 1000 / (last - first), 3),
        },
        "per_step_ms": step_breakdown(probe.profiler, len(probe.busy) + probe.idle),
        "profile_timeline_steps": profile_lines(probe.profiler),
    }


STEP_PARTS = {
    "active() (versions read, own transaction)": ("engine.py", "active"),
    "max_notification_id()": ("postgres.py", "max_notification_id"),
    "select_notifications()": ("postgres.py", "select_notifications"),
    "_decode() (AES-GCM open + JSON)": ("engine.py", "_decode"),
    "_advance() (compare-and-set UPDATE)": ("engine.py", "_advance"),
    "_apply() (rows, sealed)": ("engine.py", "_apply"),
    "notify() (pg_notify)": ("store.py", "notify"),
    "psycopg transaction exit (COMMIT/ROLLBACK)": ("transaction.py", "__exit__"),
    "pool check_connection (pre-ping)": ("pool.py", "check_connection"),
    "psycopg wait (socket round trips)": ("connection.py", "wait"),
}


def step_breakdown(profiler: cProfile.Profile, steps: int) -> dict[str, Any]:
    """Cumulative ms per step of the parts of ``Projector.step``, and calls per step."""
    stats: Any = pstats.Stats(profiler).stats
    parts: dict[str, Any] = {}
    for label, (file, function) in STEP_PARTS.items():
        calls = cumulative = 0.0
        for (filename, _, name), (_, ncalls, _, cum, _) in stats.items():
            if name == function and filename.endswith(file):
                calls += ncalls
                cumulative += cum
        parts[label] = {
            "ms_per_step": round(cumulative * 1000 / max(steps, 1), 3),
            "calls_per_step": round(calls / max(steps, 1), 2),
        }
    return parts


# R2: timeline pages ---------------------------------------------------------------------


def write_chart(ledger: CareLedger, entries: int, serial: Serial, progress: Progress) -> UUID:
    by = Provenance("clinician-7", now())
    patient, consent = new_patient(serial(), by)
    ledger.save(patient, consent)
    task = progress.add_task(f"R2: chart of {entries:,} entries", total=entries)
    written = 0
    while written < entries:
        chunk = min(500, entries - written)
        by = Provenance("clinician-7", now())
        for _ in range(chunk):
            n = serial()
            patient.record_entry(
                entry_id=uuid4(),
                kind=EntryKind.OBSERVATION,
                code=HEART_RATE,
                value=Quantity(Decimal(60 + n % 40), "/min"),
                effective_at=datetime(2020, 1, 1, tzinfo=UTC) + timedelta(minutes=n),
                modality=None,
                labels=NO_LABELS,
                by=by,
            )
        ledger.save(patient)
        written += chunk
        progress.update(task, completed=written)
    progress.remove_task(task)
    return patient.id


def middle_cursor(store: ViewStore, patient_id: UUID, entries: int) -> str:
    with store.reading() as cursor:
        version = active_version(cursor, store, TimelineProjection.name)
        row = cursor.execute(
            f"SELECT effective_at, entry_id FROM {store.table(TIMELINE_TABLE)} "  # noqa: S608
            "WHERE version = ? AND patient_id = ? ORDER BY effective_at, entry_id "
            "LIMIT 1 OFFSET ?",
            (version, patient_id.hex, entries // 2 - 1),
        ).fetchone()
    assert row is not None
    return encode_cursor((row[0], row[1]))


def run_r2(container: Container, args: argparse.Namespace, progress: Progress) -> dict[str, Any]:
    serial = Serial()
    serial.n = 10_000_000
    small = write_chart(container.ledger, args.small_chart, serial, progress)
    big = write_chart(container.ledger, args.big_chart, serial, progress)
    for patient_id in (small, big):  # clinicians read a chart within a care relationship
        today = datetime.now(UTC).date()
        container.memberships.enrol(
            ADMIN,
            patient_id=patient_id,
            plan=Plan.INDIVIDUAL,
            sponsor_id=None,
            annual_fee_cents=0,
            starts_on=today - timedelta(days=1),
            ends_on=today + timedelta(days=365),
        )
    container.catch_up()
    charts = container.charts
    cases: dict[str, Callable[[], dict[str, Any]]] = {}
    for label, patient_id, entries in (
        ("small", small, args.small_chart),
        ("big", big, args.big_chart),
    ):
        middle = middle_cursor(container.views, patient_id, entries)
        cases[f"{label}_first"] = lambda p=patient_id: charts.timeline(
            CLINICIAN, p, limit=PAGE
        ).json()
        cases[f"{label}_middle"] = lambda p=patient_id, c=middle: charts.timeline(
            CLINICIAN, p, cursor=c, limit=PAGE
        ).json()
    for name, call in cases.items():  # correct pages, and warm
        for _ in range(20):
            page = call()
        assert len(page["entries"]) == PAGE, name
    samples: dict[str, list[float]] = {name: [] for name in cases}
    task = progress.add_task("R2: timeline pages", total=args.page_repeats * len(cases))
    clock = time.perf_counter
    for _ in range(args.page_repeats):
        for name, call in cases.items():
            t = clock()
            call()
            samples[name].append((clock() - t) * 1000)
            progress.advance(task)
    progress.remove_task(task)

    summary = {
        name: {
            "p50_ms": round(percentile(values, 0.5), 3),
            "p99_ms": round(percentile(values, 0.99), 3),
            "max_ms": round(max(values), 3),
        }
        for name, values in samples.items()
    }
    result: dict[str, Any] = {
        "charts": {"small": args.small_chart, "big": args.big_chart},
        "page": PAGE,
        "repeats": args.page_repeats,
        "cases": summary,
        "goal": f"p99(big)/p99(small) <= {R2_GOAL:g}",
    }
    met = True
    for page in ("first", "middle"):
        ratio = summary[f"big_{page}"]["p99_ms"] / summary[f"small_{page}"]["p99_ms"]
        result[f"ratio_p99_{page}"] = round(ratio, 3)
        result[f"ratio_p50_{page}"] = round(
            summary[f"big_{page}"]["p50_ms"] / summary[f"small_{page}"]["p50_ms"], 3
        )
        met = met and ratio <= R2_GOAL
    result["met"] = met
    if args.profile or not met:
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(100):
            cases["big_middle"]()
        profiler.disable()
        result["profile_big_middle_x100"] = profile_lines(profiler)
    return result


# Running --------------------------------------------------------------------------------


def profile_lines(profiler: cProfile.Profile, top: int = 25) -> list[str]:
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("cumulative").print_stats(top)
    stats.sort_stats("tottime").print_stats(top)
    return [line.rstrip() for line in out.getvalue().splitlines() if line.strip()]


def run(backend: str, args: argparse.Namespace, progress: Progress) -> dict[str, Any]:
    """P1, P2 and R2 on PostgreSQL; R2 alone on SQLite (see the module docstring)."""
    on_postgres = backend == "postgres"
    with ExitStack() as stack:
        url = stack.enter_context(bench_store(backend))
        var_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="cl-bench-var-")))
        settings = bench_settings(url, var_dir)
        container = build(settings)  # as the API process: projectors wired, not running
        stack.callback(container.close)
        assert isinstance(container.ledger.mapper, SealingMapper)
        result: dict[str, Any] = {
            "backend": backend,
            "server": server_version(container.ledger),
            "database": urlsplit(url).path.lstrip("/") if on_postgres else "sqlite",
        }
        # The same log on both backends, so that R2's views hold the same other charts.
        fill_info, patient_ids = fill(container.ledger, args.events, progress, Serial())
        if on_postgres:
            fill_info["event_mix"] = event_mix(container.ledger)
        result["workload"] = fill_info
        if on_postgres:
            result["P1"] = run_p1(container, url, args, progress, fill_info)
            log_path = var_dir / "worker.log"
            p2 = run_p2(
                container,
                settings,
                args,
                progress,
                patient_ids,
                log_path,
                mode=args.live,
                seconds=args.seconds,
            )
            del p2["window"]
            if args.profile or not p2["met"]:
                p2["diagnosis"] = diagnose_p2(container, settings, args, progress, patient_ids)
            result["P2"] = p2
        result["R2"] = run_r2(container, args, progress)
        return result


def machine() -> dict[str, Any]:
    return bench_report.machine("eventsourcing", "psycopg")


def command_line() -> str:
    return bench_report.command_line("bench.projections")


def yes(flag: bool) -> str:
    return bench_report.yes(flag)


def table(results: list[dict[str, Any]]) -> str:
    lines = [
        "| id | backend | scenario | figure | baseline | ratio / goal | met? |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines += table_rows(r)
    return "\n".join(lines)


def table_rows(r: dict[str, Any]) -> list[str]:
    """One backend's rows: P1 and P2 where they ran (PostgreSQL), R2's two pages."""
    backend, lines = r["backend"], []
    if "P1" in r:
        p1 = r["P1"]
        lines.append(
            f"| P1 | {backend} | full rebuild, timeline view, {p1['log_positions']:,} events | "
            f"{p1['ours']['median_positions_per_s']:,.0f} events/s (engine.rebuild, median of "
            f"{len(p1['ours']['rebuild_seconds'])}) | "
            f"{p1['stock']['positions_per_s']:,.0f} events/s (stock ProjectionRunner, one txn "
            f"per event) | {p1['ratio_ours_over_stock']:.1f}x / >= {P1_GOAL:g}x | "
            f"{yes(p1['met'])} |"
        )
    if "P2" in r:
        p2 = r["P2"]
        lag = p2["lag_ms"]
        lines.append(
            f"| P2 | {backend} | live lag, {p2['achieved_rate_events_per_s']:,.0f} events/s "
            f"for {p2['seconds']:.0f} s ({p2['mode']}) | p50 {lag['p50']:.1f} ms, p99 "
            f"{lag['p99']:.1f} ms, max {lag['max']:.1f} ms | - | p99 {lag['p99']:.1f} ms / "
            f"<= {P2_GOAL_MS:g} ms | {yes(p2['met'])} |"
        )
    r2 = r["R2"]
    for page in ("first", "middle"):
        big, small = r2["cases"][f"big_{page}"], r2["cases"][f"small_{page}"]
        lines.append(
            f"| R2 | {backend} | timeline {page} page of {r2['page']}, "
            f"{r2['charts']['big']:,} vs {r2['charts']['small']:,} entries | "
            f"{r2['charts']['big']:,}: p50 {big['p50_ms']:.2f} ms, p99 {big['p99_ms']:.2f} ms | "
            f"{r2['charts']['small']:,}: p50 {small['p50_ms']:.2f} ms, p99 "
            f"{small['p99_ms']:.2f} ms | {r2[f'ratio_p99_{page}']:.2f}x / <= {R2_GOAL:g}x | "
            f"{yes(r2[f'ratio_p99_{page}'] <= R2_GOAL)} |"
        )
    return lines


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.projections",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--events", type=int, help="P1: events in the log (default 20,000)")
    parser.add_argument("--quick", action="store_true", help="a smaller, shorter run")
    bench_report.add_backend_option(parser, "P1, P2 and R2 on PostgreSQL; R2 on SQLite")
    parser.add_argument("--rebuild-repeats", type=int, help="P1: timed rebuilds (default 3)")
    parser.add_argument("--rate", type=float, default=300.0, help="P2: writes per second")
    parser.add_argument("--seconds", type=float, help="P2: measured seconds (default 20)")
    parser.add_argument("--writers", type=int, default=4, help="P2: writer threads")
    parser.add_argument(
        "--live",
        choices=("worker", "in-process"),
        default="worker",
        help="P2: project in a `careledger worker` process, or in this one",
    )
    parser.add_argument("--small-chart", type=int, default=100, help="R2: entries")
    parser.add_argument("--big-chart", type=int, default=10_000, help="R2: entries")
    parser.add_argument("--page-repeats", type=int, help="R2: timed pages per case (300)")
    parser.add_argument("--profile", action="store_true", help="profile even goals that are met")
    parser.add_argument(
        "--json-out", type=Path, help="default: bench/results/projections-<ts>.json"
    )
    args = parser.parse_args(argv)
    quick = args.quick
    defaults = {
        "events": 3_000 if quick else 20_000,
        "rebuild_repeats": 2 if quick else 3,
        "seconds": 10.0 if quick else 20.0,
        "page_repeats": 200 if quick else 300,
    }
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.events < 100 or args.rebuild_repeats < 1 or args.writers < 1:
        parser.error("--events >= 100, --rebuild-repeats and --writers >= 1")
    if args.rate <= 0 or args.seconds <= 0:
        parser.error("--rate and --seconds must be positive")
    if args.small_chart < 2 * PAGE or args.big_chart < 2 * PAGE or args.page_repeats < 1:
        parser.error(f"charts need at least {2 * PAGE} entries; --page-repeats >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = datetime.now(UTC)
    backends = bench_report.backends(args)
    with bench_report.progress(stderr) as progress:
        results = [run(backend, args, progress) for backend in backends]
    report, out = bench_report.save("projections", started, args, machine(), results)
    elapsed = report["elapsed_seconds"]

    info = report["machine"]
    print(table(results))
    print()
    print(f"Command: `{report['command']}`")
    print(
        f"Machine: {info['platform']}, {info['cpu']}, {info['cpu_count']} CPUs, "
        f"Python {info['python']}, eventsourcing {info['eventsourcing']}; "
        f"{', '.join(r['server'] for r in results)}. Elapsed {elapsed:.0f} s. JSON: {out}"
    )
    for r in results:
        print_details(r)
    return 0


def print_details(r: dict[str, Any]) -> None:
    """What the table leaves out: P1's views and P2's writes, and any profiles."""
    p1, p2 = r.get("P1"), r.get("P2", {})
    if p1:
        print(
            f"P1: {p1['timeline_events_in_log']:,} of the {p1['log_positions']:,} events are "
            f"timeline events; views identical: {p1['views_identical']}; all four views "
            f"rebuilt in {sum(p1['ours']['all_four_rebuild_seconds'].values()):.2f} s "
            f"({p1['ours']['all_four_rebuild_seconds']})"
        )
    if p2:
        print(
            f"P2: {p2['writes']:,} writes by {p2['writer_threads']} threads, "
            f"{p2['late_writes']:,} late; record_entry p50 {p2['record_entry_ms']['p50']} ms, "
            f"p99 {p2['record_entry_ms']['p99']} ms; {p2['events_per_commit']} events per "
            f"timeline commit; load average {p2['load_average_1m_before_after']}"
        )
    if "diagnosis" in p2:
        d = p2["diagnosis"]
        print(f"P2 diagnosis (in-process run): {d['in_process_run']}; {d['timeline_steps']}")
        for label, part in d["per_step_ms"].items():
            print(f"  timeline step, {label}: {part}")
    sections = (("P1", p1 or {}), ("P2", p2.get("diagnosis", {})), ("R2", r["R2"]))
    for section, found in sections:
        for key, lines in found.items():
            if key.startswith("profile_") and lines:
                print(f"\n{section} {r['backend']} {key}:")
                print("\n".join(lines))


if __name__ == "__main__":
    raise SystemExit(main())
