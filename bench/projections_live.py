"""P2: the live lag of a ``careledger worker`` behind writes at a steady rate, and
the step-by-step diagnosis when it misses its goal (see ``bench.projections``).
"""

import argparse
import bisect
import cProfile
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg
from psycopg.sql import SQL, Identifier
from rich.progress import (
    Progress,
)

from api.bootstrap import build
from api.container import Container
from api.settings import Settings
from bench.support.charts import (
    CLINICIAN,
    HEART_RATE,
    NO_LABELS,
    ORG,
    Serial,
)
from bench.support.statistics import percentile
from bench.support.stores import (
    pg_conninfo,
    projector,
)
from domain.values import (
    Quantity,
)
from domain.vocabulary import (
    EntryKind,
)
from infrastructure.projections.engine import Projector

P2_GOAL_MS = 50.0


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
        code = "import sys; from bench.projections_live import listen; listen(*sys.argv[1:])"
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
    listener = CommitListener(pg_conninfo(settings.database_url), store.positions_channel)
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
