"""W2: bulk import through ``careledger import``'s application path, against plain
``eventsourcing`` saves of the same events in batches of 100.

Run from the project root (``bench.writes`` runs it too, as its W2 rows)::

    .venv/bin/python -m bench.imports [--quick] [--backend postgres|sqlite|both] [--profile]

CareLedger: ``api.cli_import.import_files``, what ``careledger import DIR`` runs once
its container is open (no process start-up timed), over a directory of NDJSON charts
written beforehand, each one Patient and 99 heart-rate Observations: each file is
parsed, planned, saved all or nothing (the chart's 100 events with its consent, MRN
claim, idempotency claim and access record, sealed and chained; a wave of files
shares a commit) and answered. Files are read and planned by the planning processes
the command starts by default for a bulk import (one per core, ``--jobs``; started,
like the container, before timing); a second row plans in-process (``--jobs 1``).
Baseline: ``bench.plain_app.PlainLedger`` saving, per chart, a ``Patient`` registered
with 99 entries (``chart_of_100``, the same 100 events) on the library's stock
recorder. A second CareLedger row, ``ledger.save(chart_of_100)`` on the same ledger,
shows the store's share apart from the import's. Rounds alternate. Events per second
count the charts' 100 events on both sides. Goal: import >= 1.0x the baseline.

With ``--profile``, one more round of the import is profiled (cProfile, with each save
recorded in the importing thread, planned in-process) and the top of the profile
printed.
"""

import argparse
import cProfile
import json
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console

from api import heap
from api.bootstrap import build
from api.cli_import import import_files
from api.import_plans import planner
from application.context import Actor, RequestContext, Role
from bench.plain_app import PlainLedger, plain_env
from bench.support import report as bench_report
from bench.support.charts import ORG, chart_of_100
from bench.support.stores import bench_settings, bench_store, server_version
from domain.vocabulary import Purpose

stderr = Console(stderr=True)
EVENTS_PER_CHART = 100  # a registration and 99 entries, on both sides
VITAL_SIGNS = {
    "coding": [
        {
            "system": "http://terminology.hl7.org/CodeSystem/observation-category",
            "code": "vital-signs",
        }
    ]
}
HEART_RATE = {"coding": [{"system": "http://loinc.org", "code": "8867-4", "display": "Heart rate"}]}


def ndjson_chart(n: int) -> str:
    """One patient's NDJSON chart: a Patient and 99 heart-rate Observations."""
    patient = {
        "resourceType": "Patient",
        "id": f"w2-{n}",
        "identifier": [{"system": "urn:bench:w2", "value": f"W2-{n}"}],
        "name": [{"family": f"Import{n}", "given": ["Ada"]}],
        "gender": "female",
        "birthDate": f"1960-01-{1 + n % 28:02d}",
    }
    lines = [json.dumps(patient)]
    for i in range(EVENTS_PER_CHART - 1):
        observation = {
            "resourceType": "Observation",
            "id": f"o-{n}-{i}",
            "status": "final",
            "category": [VITAL_SIGNS],
            "code": HEART_RATE,
            "subject": {"reference": f"Patient/w2-{n}"},
            "effectiveDateTime": f"2024-01-{1 + i // 24:02d}T{i % 24:02d}:00:00Z",
            "valueQuantity": {
                "value": 60 + i % 40,
                "unit": "/min",
                "system": "http://unitsofmeasure.org",
                "code": "/min",
            },
        }
        lines.append(json.dumps(observation))
    return "\n".join(lines) + "\n"


def write_charts(directory: Path, charts: int, start: int) -> list[Path]:
    directory.mkdir(parents=True)
    files = []
    for n in range(start, start + charts):
        path = directory / f"chart-{n:06d}.ndjson"
        path.write_text(ndjson_chart(n))
        files.append(path)
    return files


def importer() -> RequestContext:
    """The clinician ``careledger import`` acts as."""
    actor = Actor("cli:bench", Role.CLINICIAN, ORG)
    return RequestContext(actor, Purpose.TREAT, request_id=uuid.uuid4().hex, source="cli")


def timed_import(container: Any, files: list[Path], planners: Any = None) -> float:
    began = time.perf_counter()
    summary = import_files(container, importer(), files, lambda _n: None, planners=planners)
    seconds = time.perf_counter() - began
    if summary.failed or summary.imported != len(files):
        raise RuntimeError(f"import failed: {summary.failed or summary}")
    return seconds


def timed_saves(ledger: Any, charts: int, start: int) -> float:
    ready = [chart_of_100(start + i) for i in range(charts)]
    began = time.perf_counter()
    for chart in ready:
        ledger.save(chart)
    return time.perf_counter() - began


def profile_of(container: Any, run: Callable[[], object]) -> list[str]:
    """The profile of ``run`` with the group commit's work in this thread (cProfile
    sees one thread): each save is recorded inline, as without a committer."""
    group_writes, container.ledger.group_writes = container.ledger.group_writes, None
    profiler = cProfile.Profile()
    try:
        profiler.runcall(run)
    finally:
        container.ledger.group_writes = group_writes
    return bench_report.profile_lines(profiler, 30)


def run_w2(
    backend: str,
    charts: int,
    rounds: int,
    workdir: Path,
    progress: Any,
    profile: bool = False,
) -> dict[str, Any]:
    task = progress.add_task(f"W2 {backend}: import, save, plain, alternating", total=4 * rounds)
    workdir = workdir / f"w2-{backend}"
    directories = [
        write_charts(workdir / f"round-{r}", charts, 1000 * r) for r in range(2 * rounds + 3)
    ]
    # What `careledger import` starts for a bulk import by default (a directory of 32
    # files or more), started before timing as the CLI does before its first file.
    planners = planner(None)
    with bench_store(backend) as ours_url, bench_store(backend) as plain_url:
        container = build(bench_settings(ours_url, workdir / "var"))
        heap.settle(container)  # as `careledger import` does once its container is open
        plain = PlainLedger(plain_env(plain_url))
        try:
            timed_import(container, directories[-1][:5])  # warm-up, unmeasured
            timed_import(container, directories[-2][:10], planners)
            timed_saves(container.ledger, 5, 0)
            timed_saves(plain, 5, 0)
            seconds: dict[str, list[float]] = {"import": [], "import1": [], "save": [], "plain": []}
            for r in range(rounds):
                seconds["import"].append(timed_import(container, directories[r], planners))
                progress.advance(task)
                seconds["import1"].append(timed_import(container, directories[rounds + r]))
                progress.advance(task)
                seconds["save"].append(timed_saves(container.ledger, charts, 100_000 * (r + 1)))
                progress.advance(task)
                seconds["plain"].append(timed_saves(plain, charts, 100_000 * (r + 1)))
                progress.advance(task)
            profiled = (
                profile_of(container, lambda: timed_import(container, directories[2 * rounds]))
                if profile
                else []
            )
            server = server_version(container.ledger)
        finally:
            container.close()
            plain.close()
            if planners is not None:
                planners.shutdown()
    progress.remove_task(task)
    events = charts * EVENTS_PER_CHART
    rate = {side: events / statistics.median(s) for side, s in seconds.items()}
    return {
        "charts_per_round": charts,
        "rounds": rounds,
        "seconds": seconds,
        "jobs": os.cpu_count() or 1,
        "careledger_events_per_s": round(rate["import"], 1),
        "single_process_events_per_s": round(rate["import1"], 1),
        "save_events_per_s": round(rate["save"], 1),
        "plain_events_per_s": round(rate["plain"], 1),
        "ratio": round(rate["import"] / rate["plain"], 3),
        "single_process_ratio": round(rate["import1"] / rate["plain"], 3),
        "save_ratio": round(rate["save"] / rate["plain"], 3),
        "server": server,
        "profile": profiled,
    }


def table_rows(backend: str, w2: dict[str, Any]) -> list[str]:
    met = bench_report.yes(w2["ratio"] >= 1.0)
    return [
        f"| W2 | `careledger import` of NDJSON charts (1 Patient + 99 Observations each), "
        f"{backend} | {w2['careledger_events_per_s']:,.0f} vs {w2['plain_events_per_s']:,.0f} "
        f"events/s: **{w2['ratio']}x** ({w2['jobs']} planning processes, the default) "
        f"| >= 1.0x | {met} |",
        f"| W2 | the same import planned in-process (`--jobs 1`), {backend} | "
        f"{w2['single_process_events_per_s']:,.0f} vs {w2['plain_events_per_s']:,.0f} "
        f"events/s: **{w2['single_process_ratio']}x** | reference | — |",
        f"| W2 | `ledger.save` of the same 100-event charts in-process, {backend} | "
        f"{w2['save_events_per_s']:,.0f} vs {w2['plain_events_per_s']:,.0f} events/s: "
        f"**{w2['save_ratio']}x** | reference | — |",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer charts and rounds")
    parser.add_argument("--profile", action="store_true", help="profile one more import round")
    bench_report.add_backend_option(parser)
    args = parser.parse_args()
    charts, rounds = (10, 3) if args.quick else (40, 5)
    with bench_report.progress(stderr) as progress, tempfile.TemporaryDirectory() as tmp:
        results = {
            b: run_w2(b, charts, rounds, Path(tmp), progress, args.profile)
            for b in bench_report.backends(args)
        }
    print("| id | scenario | figure | goal | met |")
    print("|---|---|---|---|---|")
    for backend, w2 in results.items():
        print("\n".join(table_rows(backend, w2)))
    for backend, w2 in results.items():
        print(f"\n{backend} ({w2['server']}) seconds per round: {w2['seconds']}")
        if w2["profile"]:
            print("\n".join(w2["profile"]))


if __name__ == "__main__":
    main()
