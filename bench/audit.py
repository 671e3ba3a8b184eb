"""Benchmark the access log's cost on reads (R1): audited vs unaudited timeline pages.

Run from the project root::

    .venv/bin/python -m bench.audit [--quick] [--backend postgres|sqlite|both]

R1  Timeline reads over real HTTP. A patient under care (an active membership) with a
    chart of ``--entries`` entries is written through the domain into a throwaway store
    (PostgreSQL ``careledger_bench_*``, dropped afterwards; or a SQLite file) and
    projected. Then, one server at a time, on that same store:

    audited    ``careledger serve --with-projections``: the service as shipped; every
               read waits for its access record to be durable (``GroupCommit``).
    unaudited  ``python -m bench.audit --serve unaudited``: the same container
               (``api.bootstrap.build(run_processes=True)``, ``create_app``, uvicorn, the
               same settings), except that ``container.charts`` is a ``ChartReads`` whose
               ``Disclosures`` has a writer that writes nothing. The switch exists only
               here, in the benchmark.

    A load generator in a process of its own (``httpx.AsyncClient``, exactly
    ``--connections`` connections, each a closed loop) issues
    ``GET /v1/patients/{id}/timeline?limit=50`` as a clinician of the organisation, the
    cursor chosen at random among the chart's pages (the first page included), for
    ``--seconds`` after ``--warmup`` seconds. Phases alternate A B A B to cancel drift.
    Before each phase the server's views are caught up (``min_position`` on a first
    read, then ``/readyz`` until every projection's lag is 0).

    Figure: throughput(audited) / throughput(unaudited). Goal: >= 0.7.
    The access records each audited phase wrote are counted in the events table by
    topic, and its commits as the distinct transaction ids (``xmin``) of those rows.

If the goal is missed (or with ``--profile``), one more audited phase runs against
``python -m bench.audit --serve audited`` (the real writer) with
``CARELEDGER_BENCH_PROFILE`` set: the server times each ``GroupCommit.write`` wait and
each commit (batch size, duration), profiles the request threads and the committer
thread with cProfile, and the benchmark samples ``pg_stat_activity`` wait events.

Results: a markdown table on stdout, JSON in ``bench/results/audit-<timestamp>.json``.
"""

import argparse
import asyncio
import contextlib
import cProfile
import io
import json
import os
import pstats
import random
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from uuid import UUID, uuid4

import httpx
import psycopg
from rich.console import Console
from rich.progress import Progress

from api.auth import mint_token
from api.bootstrap import build
from api.settings import Settings
from application.context import Actor, RequestContext, Role
from application.ledger.ledger import CareLedger
from bench import report as bench_report
from bench.projections import (
    HEART_RATE,
    NO_LABELS,
    ORG,
    bench_settings,
    bench_store,
    new_patient,
    percentile,
    server_version,
)
from domain.values import Provenance, Quantity
from domain.vocabulary import EntryKind, Plan, Purpose

GOAL = 0.7
PAGE = 50
ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
ACCESS_TOPIC = "%AccessRecord.Recorded"
PROFILE_ENV = "CARELEDGER_BENCH_PROFILE"
ADMIN = RequestContext(
    actor=Actor(id="admin-7", role=Role.ADMIN, org=ORG),
    purpose=Purpose.TREAT,
    request_id="bench-audit",
)
SEED_READER = RequestContext(
    actor=Actor(id="clinician-7", role=Role.CLINICIAN, org=ORG),
    purpose=Purpose.TREAT,
    request_id="bench-audit",
)

stderr = Console(stderr=True)


# The unaudited switch, and the profiled server (benchmark only) -------------------------


class NoWrite:
    """A writer for ``Disclosures`` that writes nothing: auditing switched off."""

    def write(self, *records: Any) -> None:
        return None

    def submit(self, *records: Any, **_: Any) -> Callable[[], None]:
        return lambda: None

    def close(self) -> None:
        return None


class ServerProbe:
    """Inside the profiled audited server: times ``GroupCommit.write`` waits and each
    commit, and profiles request threads and the committer thread (one cProfile per
    thread, merged at shutdown into ``<dir>/stats.json`` and ``<dir>/profile.txt``)."""

    def __init__(self, container: Any, out_dir: Path) -> None:
        self.out_dir = out_dir
        self.lock = threading.Lock()
        self.profiles: list[cProfile.Profile] = []
        self.local = threading.local()
        self.waits_ms: list[float] = []
        self.requests_ms: list[float] = []
        self.commits: list[tuple[int, float]] = []  # (batch size, ms)
        self.committer_busy_s = 0.0
        self.started = time.monotonic()
        writer = container.group_commit
        inner_write, inner_commit = writer.write, writer.batcher.commit

        def write(*records: Any) -> None:
            t = time.perf_counter()
            try:
                inner_write(*records)
            finally:
                ms = (time.perf_counter() - t) * 1000
                with self.lock:
                    self.waits_ms.append(ms)

        def commit(batch: Sequence[Any]) -> Sequence[None]:
            t = time.perf_counter()
            done: Sequence[None] = self._profiled(inner_commit, batch)
            ms = (time.perf_counter() - t) * 1000
            with self.lock:
                self.commits.append((sum(len(each.records) for each in batch), ms))
                self.committer_busy_s += ms / 1000
            return done

        writer.write = write
        writer.batcher.commit = commit
        charts = container.charts
        inner_timeline = charts.timeline

        def timeline(*args: Any, **kwargs: Any) -> Any:
            t = time.perf_counter()
            try:
                return self._profiled(inner_timeline, *args, **kwargs)
            finally:
                ms = (time.perf_counter() - t) * 1000
                with self.lock:
                    self.requests_ms.append(ms)

        charts.timeline = timeline
        for projector in container.projectors:
            projector.step = self._wrap(projector.step)
        self.cpu0 = thread_cpu()
        inner_close = container.close

        def close() -> None:
            self.dump()
            inner_close()

        container.close = close

    def _wrap(self, call: Callable[..., Any]) -> Callable[..., Any]:
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            return self._profiled(call, *args, **kwargs)

        return wrapped

    def _profiled(self, call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        profile = getattr(self.local, "profile", None)
        if profile is None:
            profile = self.local.profile = cProfile.Profile()
            with self.lock:
                self.profiles.append(profile)
        profile.enable()
        try:
            return call(*args, **kwargs)
        finally:
            profile.disable()

    def dump(self) -> None:
        with self.lock:
            profiles = list(self.profiles)
            waits, requests, commits = (
                list(self.waits_ms),
                list(self.requests_ms),
                list(self.commits),
            )
        wall = time.monotonic() - self.started
        cpu = thread_cpu()
        threads = {k: round(v - self.cpu0.get(k, 0.0), 3) for k, v in cpu.items()}
        sizes = [n for n, _ in commits]
        durations = [ms for _, ms in commits]
        stats: dict[str, Any] = {
            "timeline_calls": len(requests),
            "timeline_ms": summary(requests),
            "write_wait_ms": summary(waits),
            "commits": len(commits),
            "records": sum(sizes),
            "batch_size": {
                "mean": round(statistics.fmean(sizes), 2) if sizes else None,
                "p50": percentile(sizes, 0.5) if sizes else None,
                "max": max(sizes) if sizes else None,
            },
            "commit_ms": summary(durations),
            "committer_busy_fraction": round(self.committer_busy_s / max(wall, 1e-9), 3),
            "server_wall_s": round(wall, 2),
            "thread_cpu_seconds": dict(sorted(threads.items(), key=lambda kv: -kv[1])),
        }
        (self.out_dir / "stats.json").write_text(json.dumps(stats, indent=2))
        if profiles:
            out = io.StringIO()
            merged = pstats.Stats(profiles[0], stream=out)
            for profile in profiles[1:]:
                merged.add(profile)
            merged.sort_stats("cumulative").print_stats(35)
            merged.sort_stats("tottime").print_stats(25)
            (self.out_dir / "profile.txt").write_text(out.getvalue())


def serve(mode: str, port: int) -> None:
    """A server entry point for the benchmark: the service's own container and app,
    with auditing switched off (``unaudited``) or probed (``audited`` with
    ``CARELEDGER_BENCH_PROFILE=<dir>``)."""
    import uvicorn

    from api import logging as structured_logging
    from api.app import create_app
    from api.settings import load_settings
    from application.access.access_log import Disclosures
    from application.charts.chart_reads import ChartReads

    settings = load_settings()
    structured_logging.configure(settings.log_level)
    container = build(settings, run_processes=True)
    if mode == "unaudited":
        charts = container.charts
        container.charts = ChartReads(
            charts.views,
            charts.gate,
            Disclosures(NoWrite(), charts.disclosures.clock, charts.disclosures.new_id),  # type: ignore[arg-type]
            charts.clock,
        )
    elif os.environ.get(PROFILE_ENV):
        ServerProbe(container, Path(os.environ[PROFILE_ENV]))
    uvicorn.run(
        create_app(container), host="127.0.0.1", port=port, log_config=None, access_log=False
    )


# The load generator (a process of its own) ----------------------------------------------


async def _load(spec: dict[str, Any]) -> dict[str, Any]:
    base, path, connections = spec["base"], spec["path"], spec["connections"]
    cursors: list[str | None] = spec["cursors"]
    headers = {"Authorization": f"Bearer {spec['token']}"}
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    measuring = False
    total = [0]
    clock = time.perf_counter
    rng = random.Random(7)  # noqa: S311 - which page to ask for
    async with httpx.AsyncClient(
        base_url=base, limits=limits, headers=headers, timeout=30.0
    ) as client:

        async def worker(stop: asyncio.Event) -> None:
            while not stop.is_set():
                cursor = rng.choice(cursors)
                params: dict[str, Any] = {"limit": PAGE}
                if cursor:
                    params["cursor"] = cursor
                t = clock()
                response = await client.get(path, params=params)
                ms = (clock() - t) * 1000
                total[0] += 1
                if measuring:
                    key = str(response.status_code)
                    statuses[key] = statuses.get(key, 0) + 1
                    if response.status_code == 200:
                        latencies.append(ms)

        stop = asyncio.Event()
        cpu_start, wall_start = time.process_time(), clock()
        tasks = [asyncio.create_task(worker(stop)) for _ in range(connections)]
        await asyncio.sleep(spec["warmup"])
        cpu0, t0 = time.process_time(), clock()
        measuring = True
        await asyncio.sleep(spec["seconds"])
        measuring = False
        wall, cpu = clock() - t0, time.process_time() - cpu0
        stop.set()
        await asyncio.gather(*tasks)
        cpu_total, wall_total = time.process_time() - cpu_start, clock() - wall_start
    return {
        "requests_total": total[0],
        "client_cpu_total": cpu_total,
        "wall_total": wall_total,
        "seconds": round(wall, 3),
        "ok": len(latencies),
        "statuses": statuses,
        "throughput": len(latencies) / wall,
        "latencies_ms": [round(x, 3) for x in latencies],
        "client_cpu_fraction": round(cpu / wall, 3),
    }


def load_main(spec_json: str) -> None:
    result = asyncio.run(_load(json.loads(spec_json)))
    sys.stdout.write(json.dumps(result))
    sys.stdout.flush()


# The store and the chart ------------------------------------------------------------------


def write_chart(ledger: CareLedger, entries: int, progress: Progress) -> UUID:
    by = Provenance("clinician-7", datetime.now(UTC))
    patient, consent = new_patient(1, by)
    ledger.save(patient, consent)
    task = progress.add_task(f"seed: chart of {entries:,} entries", total=entries)
    written = 0
    while written < entries:
        chunk = min(250, entries - written)
        by = Provenance("clinician-7", datetime.now(UTC))
        for _ in range(chunk):
            written += 1
            patient.record_entry(
                entry_id=uuid4(),
                kind=EntryKind.OBSERVATION,
                code=HEART_RATE,
                value=Quantity(Decimal(60 + written % 40), "/min"),
                effective_at=datetime(2020, 1, 1, tzinfo=UTC) + timedelta(minutes=written),
                modality=None,
                labels=NO_LABELS,
                by=by,
            )
        ledger.save(patient)
        progress.update(task, completed=written)
    progress.remove_task(task)
    return patient.id


def seed(settings: Settings, entries: int, progress: Progress) -> dict[str, Any]:
    """The chart, its membership, the views caught up, and every page's cursor."""
    container = build(settings)
    try:
        patient_id = write_chart(container.ledger, entries, progress)
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
        cursors: list[str | None] = [None]
        while True:
            page = container.charts.timeline(
                SEED_READER, patient_id, cursor=cursors[-1], limit=PAGE
            ).json()
            assert len(page["entries"]) == PAGE, len(page["entries"])
            if not page["next_cursor"]:
                break
            cursors.append(page["next_cursor"])
        head = container.ledger.recorder.max_notification_id() or 0
        recorder: Any = container.ledger.recorder
        info = {
            "patient_id": str(patient_id),
            "cursors": cursors,
            "head": head,
            "events_table": recorder.events_table_name,
            "server": server_version(container.ledger),
        }
    finally:
        container.close()
    return info


class AccessCounter:
    """Access records and their commits, counted in the events table."""

    def __init__(self, url: str, table: str) -> None:
        self.url, self.table = url, table

    def position(self) -> int:
        sql = f"SELECT coalesce(max({self._id}), 0) FROM {self.table}"  # noqa: S608
        return int(self._one(sql)[0])

    @property
    def _id(self) -> str:
        return "notification_id" if self.url.startswith("postgres") else "rowid"

    def since(self, position: int) -> dict[str, Any]:
        if self.url.startswith("postgres"):
            count, commits = self._one(
                f"SELECT count(*), count(DISTINCT xmin::text) FROM {self.table} "  # noqa: S608
                f"WHERE notification_id > %s AND topic LIKE %s",
                (position, ACCESS_TOPIC),
            )
            return {"records": int(count), "commits": int(commits)}
        (count,) = self._one(
            f"SELECT count(*) FROM {self.table} WHERE rowid > ? AND topic LIKE ?",  # noqa: S608
            (position, ACCESS_TOPIC),
        )
        return {"records": int(count), "commits": None}

    def _one(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...]:
        if self.url.startswith("postgres"):
            with psycopg.connect(pg_conninfo(self.url), autocommit=True) as conn:
                row = conn.execute(sql, params).fetchone()
        else:
            import sqlite3

            conn = sqlite3.connect(urlsplit(self.url).path)
            try:
                row = conn.execute(sql, params).fetchone()
            finally:
                conn.close()
        assert row is not None
        return tuple(row)


def pg_conninfo(url: str) -> str:
    parts = urlsplit(url)
    return psycopg.conninfo.make_conninfo(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 5432,
        dbname=parts.path.lstrip("/"),
        user=parts.username or "postgres",
    )


# CPU accounting ---------------------------------------------------------------------------

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(stat_path: str) -> tuple[str, float]:
    """(comm, utime + stime in seconds) from a /proc stat file."""
    text = Path(stat_path).read_text()
    comm = text[text.index("(") + 1 : text.rindex(")")]
    fields = text[text.rindex(")") + 2 :].split()
    return comm, (int(fields[11]) + int(fields[12])) / TICK


def postgres_cpu() -> float:
    """CPU seconds of every PostgreSQL process on the machine (backends, WAL writer...)."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            comm, seconds = cpu_seconds(str(stat))
            if comm == "postgres":
                total += seconds
    return total


def thread_cpu() -> dict[str, float]:
    """CPU seconds of this process's threads, by Python thread name (numbers dropped)."""
    by_name: dict[str, float] = {}
    names = {t.native_id: t.name for t in threading.enumerate()}
    for stat in Path("/proc/self/task").glob("*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            tid = int(stat.parent.name)
            _, seconds = cpu_seconds(str(stat))
            name = names.get(tid, "(non-Python thread)")
            name = name.split(" (")[0].rstrip("_-0123456789") or name
            by_name[name] = by_name.get(name, 0.0) + seconds
    return by_name


# The servers ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def server_env(settings: Settings, extra: dict[str, str] | None = None) -> dict[str, str]:
    assert settings.master_key is not None and settings.jwt_secret is not None
    return {
        **os.environ,
        "CARELEDGER_DATABASE_URL": settings.database_url,
        "CARELEDGER_MASTER_KEY": settings.master_key.get_secret_value(),
        "CARELEDGER_JWT_SECRET": settings.jwt_secret.get_secret_value(),
        "CARELEDGER_VAR_DIR": str(settings.var_dir),
        "CARELEDGER_ORG": ORG,
        "CARELEDGER_LOG_LEVEL": "WARNING",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        **(extra or {}),
    }


def server_command(variant: str, port: int) -> list[str]:
    if variant == "audited":
        return [str(BIN / "careledger"), "serve", "--with-projections", "--port", str(port)]
    if variant == "audited-no-projections":  # diagnosis: the projection host elsewhere
        return [str(BIN / "careledger"), "serve", "--port", str(port)]
    mode = "audited" if variant == "audited-profiled" else "unaudited"
    return [sys.executable, "-m", "bench.audit", "--serve", mode, "--port", str(port)]


@contextmanager
def running_server(
    variant: str, settings: Settings, workdir: Path, extra_env: dict[str, str] | None = None
) -> Iterator[tuple[str, int]]:
    port = free_port()
    command = server_command(variant, port)
    log_path = workdir / f"server-{variant}-{port}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(  # noqa: S603
            command,
            cwd=workdir,
            env=server_env(settings, extra_env),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{variant} server exited: {log_path.read_text()[-3000:]}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{variant} server not healthy in 60 s")
            time.sleep(0.1)
        yield base, process.pid
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def settle(base: str, path: str, token: str, head: int, projecting: bool = True) -> None:
    """A first read at ``min_position`` (the views reached the seeded head), then
    ``/readyz`` until no projection lags (none catching up during the measurement)."""
    headers = {"Authorization": f"Bearer {token}"}
    response = httpx.get(
        base + path, params={"limit": PAGE, "min_position": head}, headers=headers, timeout=60
    )
    assert response.status_code == 200, response.text
    assert len(response.json()["entries"]) == PAGE
    if not projecting:
        return
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        ready = httpx.get(f"{base}/readyz", timeout=10).json()
        if all(p["lag_events"] == 0 for p in ready["projections"].values()):
            return
        time.sleep(0.2)
    raise RuntimeError(f"projections did not catch up: {ready}")


def run_load(spec: dict[str, Any]) -> dict[str, Any]:
    code = "import sys; from bench.audit import load_main; load_main(sys.argv[1])"
    done = subprocess.run(  # noqa: S603
        [sys.executable, "-c", code, json.dumps(spec)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
        timeout=spec["warmup"] + spec["seconds"] + 120,
    )
    if done.returncode != 0:
        raise RuntimeError(f"load generator failed: {done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


class WaitSampler:
    """Samples ``pg_stat_activity`` (the bench database's other backends) every 20 ms:
    the share of samples each state / wait event holds, while the load runs."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.counts: dict[str, int] = {}
        self.samples = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="bench-waits", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        dbname = urlsplit(self.url).path.lstrip("/")
        with psycopg.connect(pg_conninfo(self.url), autocommit=True) as conn:
            while not self.stop.is_set():
                rows = conn.execute(
                    "SELECT state, wait_event_type, wait_event, left(query, 40) "
                    "FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid() "
                    "AND backend_type = 'client backend'",
                    (dbname,),
                ).fetchall()
                self.samples += 1
                for state, wtype, wevent, query in rows:
                    if state == "active":
                        key = f"active {wtype or 'CPU'}:{wevent or '-'} [{query}]"
                    else:
                        key = f"{state}"
                    self.counts[key] = self.counts.get(key, 0) + 1
                time.sleep(0.02)

    def finish(self) -> dict[str, Any]:
        self.stop.set()
        self.thread.join(5)
        top = sorted(self.counts.items(), key=lambda kv: -kv[1])[:15]
        return {
            "samples": self.samples,
            "backends_per_sample": {k: round(v / max(self.samples, 1), 3) for k, v in top},
        }


# The run -------------------------------------------------------------------------------


def summary(values: Sequence[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p99": None, "max": None, "mean": None}
    return {
        "p50": round(percentile(values, 0.5), 3),
        "p99": round(percentile(values, 0.99), 3),
        "max": round(max(values), 3),
        "mean": round(statistics.fmean(values), 3),
    }


def phase(
    variant: str,
    settings: Settings,
    workdir: Path,
    seeded: dict[str, Any],
    counter: AccessCounter,
    args: argparse.Namespace,
    token: str,
    extra_env: dict[str, str] | None = None,
    sample_waits: bool = False,
) -> dict[str, Any]:
    path = f"/v1/patients/{seeded['patient_id']}/timeline"
    with running_server(variant, settings, workdir, extra_env) as (base, pid):
        settle(base, path, token, seeded["head"], variant != "audited-no-projections")
        before = counter.position()
        server0, pg0 = cpu_seconds(f"/proc/{pid}/stat")[1], postgres_cpu()
        spec = {
            "base": base,
            "path": path,
            "token": token,
            "cursors": seeded["cursors"],
            "connections": args.connections,
            "warmup": args.warmup,
            "seconds": args.seconds,
        }
        load_before = os.getloadavg()[0]
        sampler = WaitSampler(settings.database_url) if sample_waits else None
        load = run_load(spec)
        waits = sampler.finish() if sampler else None
        server_cpu = cpu_seconds(f"/proc/{pid}/stat")[1] - server0
        pg_cpu = postgres_cpu() - pg0
        written = counter.since(before)
    latencies = load.pop("latencies_ms")
    # CPU per request over warm-up and measurement together (requests of both)
    served = load["requests_total"]
    on_postgres = settings.database_url.startswith("postgres")
    result: dict[str, Any] = {
        "variant": variant,
        "throughput_rps": round(load["throughput"], 1),
        "latency_ms": summary(latencies),
        "ok": load["ok"],
        "statuses": load["statuses"],
        "seconds": load["seconds"],
        "client_cpu_fraction": load["client_cpu_fraction"],
        "access_records_written": written["records"],
        "access_commits": written["commits"],
        "load_average_1m_before": round(load_before, 2),
        "cpu_ms_per_request": {
            "server": round(server_cpu * 1000 / served, 3),
            "postgres": round(pg_cpu * 1000 / served, 3) if on_postgres else None,
            "load_generator": round(load["client_cpu_total"] * 1000 / served, 3),
        },
        "server_cpu_fraction": round(server_cpu / load["wall_total"], 3),
        "postgres_cpu_fraction": round(pg_cpu / load["wall_total"], 3) if on_postgres else None,
        "_latencies": latencies,
    }
    if written["commits"]:
        result["records_per_commit"] = round(written["records"] / written["commits"], 2)
    if waits is not None:
        result["pg_stat_activity"] = waits
    return result


def run_backend(backend: str, args: argparse.Namespace, progress: Progress) -> dict[str, Any]:
    with ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="cl-bench-audit-")))
        url = stack.enter_context(bench_store(backend))
        settings = bench_settings(url, workdir / "var")
        seeded = seed(settings, args.entries, progress)
        assert settings.jwt_secret is not None
        token = mint_token(
            settings.jwt_secret.get_secret_value().encode(),
            role=Role.CLINICIAN,
            sub="dr-bench",
            org=ORG,
            patient=None,
            ttl_seconds=6 * 3600,
            now=int(time.time()),
        )
        counter = AccessCounter(url, seeded["events_table"])
        order = ["audited", "unaudited"] * args.rounds
        task = progress.add_task(f"R1 {backend}: phases (A B A B)", total=len(order))
        phases = []
        for variant in order:
            progress.update(task, description=f"R1 {backend}: {variant} ({args.seconds:g} s)")
            phases.append(phase(variant, settings, workdir, seeded, counter, args, token))
            progress.advance(task)
        progress.remove_task(task)

        result: dict[str, Any] = {
            "backend": backend,
            "server": seeded["server"],
            "database": urlsplit(url).path.lstrip("/") if backend == "postgres" else "sqlite",
            "entries": args.entries,
            "pages": len(seeded["cursors"]),
            "connections": args.connections,
            "order": order,
        }
        totals: dict[str, Any] = {}
        for variant in ("audited", "unaudited"):
            mine = [p for p in phases if p["variant"] == variant]
            latencies = [x for p in mine for x in p["_latencies"]]
            ok = sum(p["ok"] for p in mine)
            seconds = sum(p["seconds"] for p in mine)
            totals[variant] = {
                "throughput_rps": round(ok / seconds, 1),
                "per_phase_rps": [p["throughput_rps"] for p in mine],
                "latency_ms": summary(latencies),
                "requests": ok,
                "errors": sum(
                    n for p in mine for status, n in p["statuses"].items() if status != "200"
                ),
                "access_records_written": sum(p["access_records_written"] for p in mine),
                "access_commits": (
                    sum(p["access_commits"] for p in mine)
                    if all(p["access_commits"] is not None for p in mine)
                    else None
                ),
                "client_cpu_fraction": [p["client_cpu_fraction"] for p in mine],
            }
        for p in phases:
            del p["_latencies"]
        result["phases"] = phases
        result["totals"] = totals
        ratio = totals["audited"]["throughput_rps"] / totals["unaudited"]["throughput_rps"]
        result["ratio_audited_over_unaudited"] = round(ratio, 3)
        result["goal"] = f">= {GOAL:g}"
        result["met"] = ratio >= GOAL
        if args.profile or not result["met"]:
            progress.add_task(f"R1 {backend}: profiled audited phase", total=None)
            out_dir = workdir / "profile"
            out_dir.mkdir()
            profiled = phase(
                "audited-profiled",
                settings,
                workdir,
                seeded,
                counter,
                args,
                token,
                extra_env={PROFILE_ENV: str(out_dir)},
                sample_waits=backend == "postgres",
            )
            del profiled["_latencies"]
            stats_path = out_dir / "stats.json"
            if stats_path.exists():
                profiled["server_stats"] = json.loads(stats_path.read_text())
                profiled["server_profile"] = [
                    line.rstrip()
                    for line in (out_dir / "profile.txt").read_text().splitlines()
                    if line.strip()
                ]
            result["diagnosis"] = profiled
            if backend == "postgres":
                # The same audited service with no projection host in the process: how
                # much of the cost is the projectors' reaction to each access commit.
                progress.add_task(f"R1 {backend}: audited, no projections", total=None)
                bare = phase(
                    "audited-no-projections", settings, workdir, seeded, counter, args, token
                )
                del bare["_latencies"]
                bare["ratio_over_unaudited"] = round(
                    bare["throughput_rps"] / totals["unaudited"]["throughput_rps"], 3
                )
                result["diagnosis_no_projections"] = bare
        return result


def machine() -> dict[str, Any]:
    return {
        **bench_report.machine("eventsourcing", "psycopg", "fastapi", "uvicorn", "httpx"),
        "memory_max_rss_mb_bench": round(
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1
        ),
    }


def command_line() -> str:
    return bench_report.command_line("bench.audit")


def yes(flag: bool) -> str:
    return bench_report.yes(flag)


def table(results: list[dict[str, Any]]) -> str:
    lines = [
        "| backend | variant | req/s (per phase) | p50 ms | p99 ms | max ms | access records "
        "(commits, per commit) | audited/unaudited / goal | met? |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        for variant in ("audited", "unaudited"):
            t = r["totals"][variant]
            lat = t["latency_ms"]
            phases = ", ".join(f"{x:,.0f}" for x in t["per_phase_rps"])
            records = f"{t['access_records_written']:,}"
            if t["access_commits"]:
                per = t["access_records_written"] / t["access_commits"]
                records += f" ({t['access_commits']:,}, {per:.1f})"
            ratio = met = ""
            if variant == "audited":
                ratio = f"{r['ratio_audited_over_unaudited']:.2f}x / >= {GOAL:g}x"
                met = yes(r["met"])
            lines.append(
                f"| {r['backend']} | {variant} | {t['throughput_rps']:,.0f} ({phases}) | "
                f"{lat['p50']:.1f} | {lat['p99']:.1f} | {lat['max']:.1f} | {records} | "
                f"{ratio} | {met} |"
            )
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.audit",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="shorter phases (5 s)")
    bench_report.add_backend_option(parser)
    parser.add_argument("--entries", type=int, default=1000, help="entries in the chart")
    parser.add_argument("--connections", type=int, default=16, help="concurrent connections")
    parser.add_argument("--seconds", type=float, help="measured seconds per phase (15)")
    parser.add_argument("--warmup", type=float, help="unmeasured seconds per phase (3)")
    parser.add_argument("--rounds", type=int, default=2, help="A B rounds (2: A B A B)")
    parser.add_argument("--profile", action="store_true", help="profile even if the goal is met")
    parser.add_argument("--json-out", type=Path, help="default: bench/results/audit-<ts>.json")
    parser.add_argument("--serve", choices=("audited", "unaudited"), help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=8000, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    defaults = {"seconds": 5.0 if args.quick else 15.0, "warmup": 1.0 if args.quick else 3.0}
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.entries < 2 * PAGE or args.connections < 1 or args.rounds < 1 or args.seconds <= 0:
        parser.error(f"--entries >= {2 * PAGE}, --connections, --rounds >= 1, --seconds > 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.serve:
        serve(args.serve, args.port)
        return 0
    started = datetime.now(UTC)
    backends = bench_report.backends(args)
    with bench_report.progress(stderr) as progress:
        results = [run_backend(backend, args, progress) for backend in backends]
    report, out = bench_report.save("audit", started, args, machine(), results)
    elapsed = report["elapsed_seconds"]

    info = report["machine"]
    print(table(results))
    print()
    print(f"Command: `{report['command']}`")
    print(
        f"Machine: {info['platform']}, {info['cpu']}, {info['cpu_count']} CPUs, "
        f"Python {info['python']}; {', '.join(r['server'] for r in results)}. "
        f"{args.connections} connections, {args.seconds:g} s per phase after "
        f"{args.warmup:g} s warm-up, order {' '.join(results[0]['order'])}. "
        f"Elapsed {elapsed:.0f} s. JSON: {out}"
    )
    for r in results:
        for variant, t in r["totals"].items():
            print(
                f"{r['backend']} {variant}: {t['requests']:,} requests, {t['errors']} errors, "
                f"load generator CPU {t['client_cpu_fraction']}"
            )
        if "diagnosis" in r:
            d = r["diagnosis"]
            print(
                f"\n{r['backend']} diagnosis (profiled audited server, "
                f"{d['throughput_rps']:,.0f} req/s under the probe):"
            )
            print(json.dumps(d.get("server_stats"), indent=2))
            if "pg_stat_activity" in d:
                print("pg_stat_activity:", json.dumps(d["pg_stat_activity"], indent=2))
            print("\n".join(d.get("server_profile", [])[:90]))
        if "diagnosis_no_projections" in r:
            bare = r["diagnosis_no_projections"]
            print(
                f"\n{r['backend']} audited without --with-projections: "
                f"{bare['throughput_rps']:,.0f} req/s "
                f"({bare['ratio_over_unaudited']:.2f}x unaudited), "
                f"CPU ms/request {bare['cpu_ms_per_request']}"
            )
        for p in r["phases"]:
            print(f"{r['backend']} {p['variant']}: CPU ms/request {p['cpu_ms_per_request']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
