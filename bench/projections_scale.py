"""P1 at scale: one full rebuild of the timeline view over a large log (a million events
in full mode), timed, with the process's peak memory during it (see ``bench.projections``).

The stock runner is not run at this size: at about a thousand events a second it would
take a quarter of an hour, so the ratio stays the one measured on the smaller log.
"""

import time
from pathlib import Path
from typing import Any

from rich.progress import Progress

from api.container import Container
from bench.projections_rebuild import timed_rebuild
from bench.support.charts import Serial, fill, head
from bench.support.stores import projector

STATUS = Path("/proc/self/status")
CLEAR_REFS = Path("/proc/self/clear_refs")


def _status_kib(field: str) -> int:
    for line in STATUS.read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} is not in {STATUS}")


def reset_peak() -> bool:
    """Reset the kernel's high-water mark of this process's RSS (Linux's clear_refs "5");
    False where the kernel refuses, so the peak then includes the fill."""
    try:
        CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return True


def run_scale(
    container: Container, target: int, serial: Serial, progress: Progress
) -> dict[str, Any]:
    """Fill the log on to ``target`` events, then rebuild the timeline view once."""
    before = head(container.ledger)
    started = time.perf_counter()
    fill_info, _ = fill(container.ledger, target, progress, serial)
    fill_seconds = time.perf_counter() - started
    # fill's own rate counts the log's earlier events too; this one counts what it wrote
    fill_info["write_events_per_s"] = round((head(container.ledger) - before) / fill_seconds, 1)
    timeline = projector(container, "timeline")
    covered = head(container.ledger)
    peak_was_reset = reset_peak()
    rss_before = _status_kib("VmRSS")
    seconds, position = timed_rebuild(timeline, progress, f"P1: rebuild at {covered:,} events")
    assert position == covered, (position, covered)
    peak = _status_kib("VmHWM")
    return {
        "log_positions": covered,
        "fill_seconds": round(fill_seconds, 1),
        "fill": fill_info,
        "rebuild_seconds": round(seconds, 2),
        "positions_per_s": round(covered / seconds, 1),
        "rss_before_mib": round(rss_before / 1024, 1),
        "peak_rss_mib": round(peak / 1024, 1),
        "peak_rise_mib": round((peak - rss_before) / 1024, 1),
        "peak_is_the_rebuilds": peak_was_reset,
        "batch_size": timeline.batch_size,
    }


def scale_figure(scale: dict[str, Any]) -> str:
    return (
        f"full rebuild, timeline view, {scale['log_positions']:,} events: "
        f"{scale['positions_per_s']:,.0f} events/s, peak RSS {scale['peak_rss_mib']:,.0f} MiB "
        f"(+{scale['peak_rise_mib']:,.0f} MiB during the rebuild)"
    )
