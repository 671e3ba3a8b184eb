"""The gap check at scale: 16 concurrent writers, and a reader following the log as they
write, which must see every acknowledged event exactly once.

Run from the project root::

    .venv/bin/python -m bench.gap [--events N]     # default 1,000,000

The same check as ``tests/contract/test_gap_free_log.py`` (20,000 events in CI), on a
throwaway PostgreSQL database: each writer records single entries on charts of its own
through ``CareLedger.commit`` (group commit, as commands do), each acknowledged with its
log position; the reader pages through ``select_notifications`` from where it last
was, as the projectors do, and never looks back. Figure: events missed (goal 0), seen
twice (goal 0), and the write rate.
"""

import argparse
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

from rich.console import Console

from api.bootstrap import build
from application.context import Actor, RequestContext, Role
from bench.support import report as bench_report
from bench.support.charts import (
    ORG,
    new_patient,
)
from bench.support.stores import (
    bench_database,
    bench_settings,
)
from domain.patient import Patient
from domain.values import Coding, Provenance, TextValue
from domain.vocabulary import EntryKind, Purpose

WRITERS = 16
stderr = Console(stderr=True)
CLINICIAN = RequestContext(Actor("dr-gap", Role.CLINICIAN, ORG), Purpose.TREAT, "gap")
NOTE = Coding("http://loinc.org", "11506-3", "Progress note")


def run(events: int, progress: Any) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp, bench_database() as url:
        container = build(bench_settings(url, Path(tmp) / "var"))
        try:
            return check(container, events, progress)
        finally:
            container.close()


def check(container: Any, events: int, progress: Any) -> dict[str, Any]:
    ledger, recorder = container.ledger, container.ledger.recorder
    by = Provenance("dr-gap", datetime.now(UTC))
    charts = []
    for n in range(WRITERS * 4):  # four charts per writer, so no two writers race
        patient, consent = new_patient(n, by)
        ledger.save(patient, consent)
        charts.append(patient.id)
    start = (recorder.max_notification_id() or 0) + 1
    acknowledged: list[int] = []
    seen: list[int] = []
    failures: list[BaseException] = []
    writing = threading.Event()
    writing.set()
    task = progress.add_task("gap check: writing and following", total=events)

    def writer(mine: list[UUID], count: int) -> None:
        try:
            for i in range(count):
                patient: Patient = ledger.load(Patient, mine[i % len(mine)], "patient")
                patient.record_entry(
                    entry_id=uuid4(),
                    kind=EntryKind.NOTE,
                    code=NOTE,
                    value=TextValue("seen"),
                    effective_at=datetime(2024, 1, 1, tzinfo=UTC) + timedelta(minutes=i),
                    modality=None,
                    labels=frozenset(),
                    by=Provenance("dr-gap", datetime.now(UTC)),
                )
                acknowledged.append(ledger.commit(CLINICIAN, [patient], {}).position)
        except BaseException as error:
            failures.append(error)

    def reader() -> None:
        after = start - 1
        while True:
            still_writing = writing.is_set()
            found = recorder.select_notifications(start=after + 1, limit=1000)
            seen.extend(n.id for n in found)
            if found:
                after = found[-1].id
                progress.update(task, completed=len(seen))
            elif not still_writing:
                return
            else:
                time.sleep(0.001)

    per_writer = events // WRITERS
    following = threading.Thread(target=reader)
    following.start()
    began = time.perf_counter()
    writers = [
        threading.Thread(target=writer, args=(charts[i::WRITERS], per_writer))
        for i in range(WRITERS)
    ]
    for thread in writers:
        thread.start()
    for thread in writers:
        thread.join()
    seconds = time.perf_counter() - began
    writing.clear()
    following.join()
    progress.remove_task(task)
    missed = len(set(acknowledged) - set(seen))
    doubled = len(seen) - len(set(seen))
    return {
        "events": len(acknowledged),
        "writers": WRITERS,
        "failures": [type(f).__name__ for f in failures[:5]],
        "missed": missed,
        "seen_twice": doubled,
        "in_order": seen == sorted(seen),
        "write_events_per_s": round(len(acknowledged) / seconds, 1),
        "group_commits": container.ledger.group_writes.commits,
        "met": not failures and missed == 0 and doubled == 0 and seen == sorted(seen),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--json-out", type=Path, default=None)
    args = parser.parse_args()
    started = datetime.now(UTC)
    with bench_report.progress(stderr) as progress:
        results = run(args.events, progress)
    info = bench_report.machine("eventsourcing", "psycopg")
    report, out = bench_report.save("gap", started, args, info, results)
    print(f"Command: `{report['command']}`\n")
    print("| id | scenario | figure | goal | met |")
    print("|---|---|---|---|---|")
    print(
        f"| G1 | 16 concurrent writers, a live reader, {results['events']:,} events | "
        f"missed {results['missed']}, seen twice {results['seen_twice']}, in order: "
        f"{bench_report.yes(results['in_order'])}; {results['write_events_per_s']:,.0f} "
        f"writes/s in {results['group_commits']:,} group commits | none missed or doubled | "
        f"{bench_report.yes(results['met'])} |"
    )
    print(f"\nJSON: {out}")


if __name__ == "__main__":
    main()
