"""R2: a timeline page of a 10,000-entry chart against one of a 100-entry chart
(see ``bench.projections``).
"""

import argparse
import cProfile
import time
from collections.abc import Callable
from typing import Any
from uuid import UUID

from rich.progress import (
    Progress,
)

from api.container import Container
from application.charts.chart_reads import encode_cursor
from bench.support.charts import (
    CLINICIAN,
    Serial,
    under_care,
    write_chart,
)
from bench.support.report import profile_lines
from bench.support.statistics import percentile
from infrastructure.projections.engine import active_version
from infrastructure.projections.store import ViewStore
from infrastructure.projections.timeline import TABLE as TIMELINE_TABLE
from infrastructure.projections.timeline import TimelineProjection

R2_GOAL = 1.5
PAGE = 50


# R2: timeline pages ---------------------------------------------------------------------


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
        under_care(container, patient_id)
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
