"""R1's server variants (benchmark only): the service's own container and app with
auditing switched off (``unaudited``), or probed (``audited`` with
``CARELEDGER_BENCH_PROFILE=<dir>``), on the HTTP stack ``careledger serve`` ships with.

    python -m bench.audit_server unaudited|audited --port P
"""

import argparse
import cProfile
import io
import json
import os
import pstats
import statistics
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg

from api import heap
from api.bootstrap import build
from api.serving import HTTP, LOOP
from bench.support.servers import thread_cpu
from bench.support.statistics import percentile, summary
from bench.support.stores import (
    pg_conninfo,
)

PROFILE_ENV = "CARELEDGER_BENCH_PROFILE"
ACCESS_TOPIC = "%AccessRecord.Recorded"


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
    heap.settle(container)  # as serve's process does at its entry
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
        create_app(container),
        host="127.0.0.1",
        port=port,
        log_config=None,
        access_log=False,
        loop=LOOP,
        http=HTTP,
    )


# Counters and samplers, read by bench.audit while the load runs --------------------


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", choices=("audited", "unaudited"))
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    serve(args.mode, args.port)


if __name__ == "__main__":
    main()
