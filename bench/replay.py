"""Benchmark A2: replaying one access from a 1,000-entry chart.

Run from the project root::

    .venv/bin/python -m bench.replay [--quick] [--backend postgres|sqlite|both]

On PostgreSQL and on SQLite (``--backend``, default both; one row per backend). A
patient under care with a chart of 1,000 entries (a snapshot every 100 events, as the
service keeps them) is written through the domain into a throwaway store (a PostgreSQL
database ``careledger_bench_*``, dropped afterwards, or a SQLite file in a temporary
directory) and projected. A clinician reads a timeline page of 50 (the first page) and a
middle page; each read is an access record. Then an auditor replays each record
``--repeats`` times through ``Replays.replay``, as ``POST
/v1/audit/accesses/{id}/replay`` does: the chart and consent are rebuilt from the log at
the recorded versions, decided again, rendered, hashed and compared, and the replay is
itself recorded (group commit). Figure: p50 and p99 per replay. Goal: p99 <= 50 ms.

Results: a markdown table on stdout, JSON in ``bench/results/replay-<time>.json``.
"""

import argparse
import statistics
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

from rich.console import Console

from api import heap
from api.bootstrap import build
from application.context import Actor, RequestContext, Role
from bench.support import report as bench_report
from bench.support.charts import HEART_RATE, ORG
from bench.support.stores import (
    bench_settings,
    bench_store,
    server_version,
)
from domain.consent import Consent
from domain.membership import Membership
from domain.patient import Patient
from domain.values import Coding, HumanName, Provenance, Quantity, TextValue
from domain.vocabulary import AdministrativeSex, EntryKind, Plan, Purpose

stderr = Console(stderr=True)
CLINICIAN = RequestContext(Actor("dr-bench", Role.CLINICIAN, ORG), Purpose.TREAT, "bench")
AUDITOR = RequestContext(Actor("auditor-bench", Role.AUDITOR, ORG), Purpose.HOPERAT, "bench")


def chart(container: Any, entries: int, *, observations: bool = False) -> UUID:
    """A registered patient under care, with ``entries`` entries in saves of 100: notes,
    or heart-rate observations (a UCUM quantity each)."""
    by = Provenance("dr-bench", datetime.now(UTC))
    patient = Patient.register(
        patient_id=uuid4(),
        consent_id=uuid4(),
        organisation_id=ORG,
        mrn="MRN-A2",
        name=HumanName("Ada", "Replay"),
        birth_date=date(1970, 5, 5),
        sex=AdministrativeSex.FEMALE,
        contact=None,
        by=by,
    )
    today = datetime.now(UTC).date()
    membership = Membership.enrol(
        membership_id=uuid4(),
        patient_id=patient.id,
        organisation_id=ORG,
        plan=Plan.INDIVIDUAL,
        sponsor_id=None,
        annual_fee_cents=0,
        starts_on=today - timedelta(days=1),
        ends_on=today + timedelta(days=365),
        by=by,
    )
    consent = Consent.open(consent_id=patient.consent_id, patient_id=patient.id, by=by)
    container.ledger.save(patient, consent, membership)
    note = Coding("http://loinc.org", "11506-3", "Progress note")
    kind, code = (EntryKind.OBSERVATION, HEART_RATE) if observations else (EntryKind.NOTE, note)
    for start in range(0, entries, 100):
        for i in range(start, min(start + 100, entries)):
            value: Any = TextValue(f"Seen today, plan reviewed ({i}).")
            if observations:
                value = Quantity(Decimal(60 + i % 40), "/min")
            patient.record_entry(
                entry_id=uuid4(),
                kind=kind,
                code=code,
                value=value,
                effective_at=datetime(2024, 1, 1, tzinfo=UTC) + timedelta(hours=i),
                modality=None,
                labels=frozenset(),
                by=by,
            )
        container.ledger.save(patient)
    return patient.id


def run(backend: str, entries: int, repeats: int, progress: Any) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp, bench_store(backend) as url:
        container = build(bench_settings(url, Path(tmp) / "var"))
        heap.settle(container)  # as serve's process does at its entry
        try:
            patient_id = chart(container, entries)
            container.catch_up()
            first = container.charts.timeline(CLINICIAN, patient_id, limit=50)
            cursor = first.json()["next_cursor"]
            for _ in range(entries // 100):  # to the middle of the chart
                page = container.charts.timeline(CLINICIAN, patient_id, cursor=cursor)
                cursor = page.json()["next_cursor"]
            middle = container.charts.timeline(CLINICIAN, patient_id, cursor=cursor, limit=50)
            results: dict[str, Any] = {"backend": backend, "entries": entries, "repeats": repeats}
            task = progress.add_task(f"A2 {backend}: replays", total=2 * repeats)
            for name, access in (("first_page", first), ("middle_page", middle)):
                timings = []
                for _ in range(repeats):
                    began = time.perf_counter()
                    replayed = container.replays.replay(AUDITOR, access.access_id).json()
                    timings.append((time.perf_counter() - began) * 1000)
                    assert replayed["matches"], "a replay must match its record"
                    progress.advance(task)
                ordered = sorted(timings)
                results[name] = {
                    "p50_ms": round(statistics.median(ordered), 2),
                    "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))], 2),
                    "max_ms": round(ordered[-1], 2),
                }
            progress.remove_task(task)
            results["server"] = server_version(container.ledger)
            results["met"] = max(results[n]["p99_ms"] for n in ("first_page", "middle_page")) <= 50
            return results
        finally:
            container.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    bench_report.add_backend_option(parser)
    parser.add_argument("--json-out", type=Path, default=None)
    args = parser.parse_args()
    started = datetime.now(UTC)
    backends = bench_report.backends(args)
    with bench_report.progress(stderr) as progress:
        results = [run(b, 1000, 50 if args.quick else 200, progress) for b in backends]
    info = bench_report.machine("eventsourcing", "psycopg")
    report, out = bench_report.save("replay", started, args, info, results)
    print(f"Command: `{report['command']}`  ")
    servers = ", ".join(r["server"] for r in results)
    print(f"Machine: {info['cpu']} ({info['cpu_count']} CPUs), {servers}\n")
    print("| id | scenario | figure | goal | met |")
    print("|---|---|---|---|---|")
    for r in results:
        first, middle = r["first_page"], r["middle_page"]
        print(
            f"| A2 | replay of a timeline page from a 1,000-entry chart, {r['backend']} | "
            f"first page p50 {first['p50_ms']} ms, p99 {first['p99_ms']} ms; middle page p50 "
            f"{middle['p50_ms']} ms, p99 {middle['p99_ms']} ms | p99 <= 50 ms | "
            f"{bench_report.yes(r['met'])} |"
        )
    print(f"\nJSON: {out}")


if __name__ == "__main__":
    main()
