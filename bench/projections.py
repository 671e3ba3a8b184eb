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
    timed (median of ``--rebuild-repeats``), and each of the four views once. (With
    ``--scale-events N``, full mode's 1,000,000, the log is afterwards filled on to N
    events and the timeline rebuilt once more, reporting its events per second and the
    process's peak RSS during the rebuild.) The
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
import tempfile
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from rich.console import Console
from rich.progress import (
    Progress,
)

from api.bootstrap import build
from bench.projections_diagnosis import diagnose_p2
from bench.projections_live import P2_GOAL_MS, run_p2
from bench.projections_pages import PAGE, R2_GOAL, run_r2
from bench.projections_rebuild import P1_GOAL, event_mix, run_p1
from bench.projections_scale import run_scale, scale_figure
from bench.support import report as bench_report
from bench.support.charts import (
    Serial,
    fill,
)
from bench.support.stores import (
    bench_settings,
    bench_store,
    server_version,
)
from infrastructure.sealing import SealingMapper

stderr = Console(stderr=True)


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
        serial = Serial()
        fill_info, patient_ids = fill(container.ledger, args.events, progress, serial)
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
        if on_postgres and args.scale_events:
            result["P1_scale"] = run_scale(container, args.scale_events, serial, progress)
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
    if "P1_scale" in r:
        lines.append(f"| P1 | {backend} | {scale_figure(r['P1_scale'])} | - | - | - |")
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
    parser.add_argument(
        "--scale-events",
        type=int,
        help="P1: then fill the log on to N events and rebuild once more (full: 1,000,000)",
    )
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
