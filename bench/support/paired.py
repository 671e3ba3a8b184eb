"""A page against its reference page, on the same app in the same run (C1, F1): the
turns they take, what each backend reports, and the command line they share."""

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import Progress

from bench.support import report as bench_report
from bench.support.statistics import taking_turns

stderr = Console(stderr=True)


@dataclass(frozen=True)
class Pair:
    figure: str  # the table's id, C1 or F1
    module: str  # bench.<module>, and its results' file name
    scenario: str
    ours: str  # the page measured, and the reference page, as the results name them
    theirs: str
    goal: float  # the largest ratio of the medians that meets it


def timed(
    pair: Pair, calls: dict[str, Callable[[], Any]], repeats: int, progress: Progress, backend: str
) -> dict[str, Any]:
    """Both pages ``repeats`` times each, taking turns: each one's p50 and p99, and the
    ratio of the medians."""
    task = progress.add_task(f"{pair.figure} {backend}: pages", total=2 * repeats)
    found = taking_turns(calls, repeats, lambda: progress.advance(task))
    progress.remove_task(task)
    ratio = round(found[pair.ours]["p50_ms"] / found[pair.theirs]["p50_ms"], 3)
    return {"backend": backend, **found, "ratio_p50": ratio, "met": ratio <= pair.goal}


def main(
    pair: Pair,
    doc: str,
    run: Callable[[str, int, argparse.Namespace, Progress], dict[str, Any]],
    packages: tuple[str, ...],
    flags: dict[str, str] | None = None,
) -> list[dict[str, Any]]:
    """Parse ``--quick``, ``--backend``, ``--json-out`` and ``flags``; run each backend;
    save the JSON and print the table. The results, for a module to add to."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    bench_report.add_backend_option(parser)
    for flag, text in (flags or {}).items():
        parser.add_argument(flag, action="store_true", help=text)
    parser.add_argument("--json-out", type=Path, default=None)
    args = parser.parse_args()
    started = datetime.now(UTC)
    repeats = 100 if args.quick else 400
    with bench_report.progress(stderr) as progress:
        results = [run(b, repeats, args, progress) for b in bench_report.backends(args)]
    info = bench_report.machine("eventsourcing", "psycopg", *packages)
    report, out = bench_report.save(pair.module, started, args, info, results)
    bench_report.print_head(report, info, results)
    for r in results:
        ours, theirs = r[pair.ours], r[pair.theirs]
        print(
            f"| {pair.figure} | {pair.scenario}, {r['backend']} | "
            f"p50 {ours['p50_ms']} vs {theirs['p50_ms']} ms: {r['ratio_p50']}x "
            f"(p99 {ours['p99_ms']} vs {theirs['p99_ms']} ms) | <= {pair.goal}x | "
            f"{bench_report.yes(r['met'])} |"
        )
    print(f"\nJSON: {out}")
    return results
