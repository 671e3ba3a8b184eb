"""P2's diagnosis: when the live lag misses its goal, a shorter run with the projections
in this process times and profiles the timeline projector's steps."""

import argparse
import cProfile
import os
import pstats
from pathlib import Path
from typing import Any
from uuid import UUID

from rich.progress import (
    Progress,
)

from api.container import Container
from api.settings import Settings
from bench.projections_live import StepProbe, run_p2
from bench.support.report import profile_lines
from bench.support.statistics import percentile


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
