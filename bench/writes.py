"""Benchmark the write path side by side: W1 (HTTP), W2 (bulk import), L1 (raw psycopg).

Run from the project root::

    .venv/bin/python -m bench.writes [--quick] [--backend postgres|sqlite|both]

W1 and W2 run on PostgreSQL and on SQLite (``--backend``, default both; one row per
backend), L1 on PostgreSQL only. Each app writes to a throwaway store of its own on the
backend (a PostgreSQL database ``careledger_bench_*``, dropped afterwards, or a SQLite
file in a temporary directory); ratios compare the two apps on the same backend,
measured in the same run.

W1  ``POST /v1/patients/{id}/entries`` over real HTTP from wrk (``bench/lua/entries.lua``,
    16 connections, one patient per connection, so no two requests race for one chart),
    at 1 and 2 server processes on PostgreSQL and at 1 on SQLite (where several
    ``careledger serve`` workers are refused). CareLedger: ``careledger serve --workers
    N`` as shipped (JWT, policy, sealing, hash chain, an access record per write, group
    commit per process); on PostgreSQL the projections are not running (a worker would
    run them), on SQLite ``careledger serve`` runs them in its own process, as it ships.
    Baseline: ``bench.plain_app`` on the same HTTP stack and the same number of
    processes, the same aggregate and request schema in a plain FastAPI + eventsourcing
    app (the library's stock recorder, no encryption, no audit). Phases alternate A B A
    B; wrk's CPU share is reported beside them. Goal: throughput >= 1.5x the baseline's
    on PostgreSQL, >= 1.0x on SQLite, p99 <= the baseline's.

W2  Bulk import (``bench.imports``, which says more): ``careledger import``'s application
    path in-process over a directory of NDJSON charts (one Patient and 99 Observations
    each) vs the plain application saving the same 100 events per chart on the stock
    recorder of the same backend; beside it, ``ledger.save`` of those charts. Rounds
    alternate. Goal: >= 1.0x.

L1  The physical reference: raw psycopg inserts of rows shaped like the event table's
    (uuid, version, topic, 700 bytes of state), no table lock, 16 writer threads, one row
    per transaction (for W1) and 100 rows per transaction (for W2). W1 and W2 on
    PostgreSQL are reported as a fraction of it. PostgreSQL only: it is raw psycopg.

Results: a markdown table on stdout, JSON in ``bench/results/writes-<time>.json``.
"""

import argparse
import json
import os
import statistics
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx
import psycopg
from rich.console import Console

from api.auth import mint_token
from application.context import Role
from bench.imports import run_w2
from bench.imports import table_rows as w2_rows
from bench.support import report as bench_report
from bench.support.charts import ORG
from bench.support.load import require_wrk, wrk
from bench.support.servers import (
    careledger_serve,
    plain_serve,
    python_path,
    running_server,
    server_env,
)
from bench.support.stores import bench_database, bench_settings, bench_store

ROOT = Path(__file__).resolve().parent.parent
stderr = Console(stderr=True)
CONNECTIONS = 16
PATIENTS = 2 * CONNECTIONS  # one per connection, in the warm-up and in the measured run
WARMUP = 1.0
# W1's process counts: several `careledger serve` workers need PostgreSQL
# (docs/operations.md), so SQLite is measured at one.
PROCESSES = {"postgres": (1, 2), "sqlite": (1,)}
# W1's measured seconds per phase, quick and full, on either backend (quick mode keeps
# `make bench`, which runs W1 on both, within its few minutes).
PHASE_SECONDS = (5.0, 20.0)
ENTRY = {
    "kind": "observation",
    "code": {"system": "http://loinc.org", "code": "8867-4", "display": "Heart rate"},
    "value": {"quantity": 72, "unit": "/min"},
    "effective_at": "2026-11-20T09:30:00Z",
}
REGISTRATION = {
    "mrn": "MRN-W1",
    "name": {"given": "Ada", "family": "Example"},
    "birth_date": "1984-07-12",
    "sex": "female",
}


# W1 ------------------------------------------------------------------------------------


def patients_of(base: str, headers: dict[str, str], admin: dict[str, str] | None) -> list[str]:
    """PATIENTS registered patients (under care, for CareLedger's treatment writes)."""
    ids = []
    today = datetime.now(UTC).date()
    with httpx.Client(base_url=base, timeout=30) as client:
        for n in range(PATIENTS):
            body = {**REGISTRATION, "mrn": f"MRN-W1-{n}"}
            registered = client.post("/v1/patients", json=body, headers=headers)
            assert registered.status_code == 201, registered.text
            ids.append(registered.json()["id"])
            if admin is not None:
                enrolled = client.post(
                    "/v1/memberships",
                    headers=admin,
                    json={
                        "patient_id": ids[-1],
                        "plan": "individual",
                        "annual_fee_cents": 0,
                        "starts_on": (today - timedelta(days=1)).isoformat(),
                        "ends_on": (today + timedelta(days=365)).isoformat(),
                    },
                )
                assert enrolled.status_code == 201, enrolled.text
    return ids


def phase(base: str, token: str, patients: list[str], seconds: float) -> dict[str, Any]:
    env = {"BENCH_PATIENTS": ",".join(patients), "BENCH_BODY": json.dumps(ENTRY)}
    env["BENCH_TOKEN"] = token
    return wrk(base, "entries.lua", env, connections=CONNECTIONS, seconds=seconds, warmup=WARMUP)


def tokens(secret: bytes) -> tuple[str, str]:
    """A clinician's token and an administrator's, both of the organisation."""
    now = int(time.time())
    return tuple(  # type: ignore[return-value]
        mint_token(secret, role=role, sub=sub, org=ORG, patient=None, ttl_seconds=7200, now=now)
        for role, sub in ((Role.CLINICIAN, "dr-bench"), (Role.ADMIN, "admin-bench"))
    )


def run_w1(
    backend: str, processes: int, seconds: float, workdir: Path, progress: Any
) -> dict[str, Any]:
    """CareLedger and the plain baseline, each on ``processes`` processes of the same
    HTTP stack, phases alternating A B A B."""
    task = progress.add_task(f"W1 {backend}, {processes} process(es): A B A B", total=4)
    with bench_store(backend) as ours_url, bench_store(backend) as plain_url:
        settings = bench_settings(ours_url, workdir / f"var-{processes}")
        secret = settings.jwt_secret.get_secret_value().encode()  # type: ignore[union-attr]
        clinician, admin = tokens(secret)
        plain_env = {**os.environ, "PLAIN_DATABASE_URL": plain_url, "PYTHONPATH": python_path()}
        with (
            running_server(
                "careledger",
                careledger_serve("--create", workers=processes),
                server_env(settings),
                workdir,
            ) as (ours, _),
            running_server("plain", plain_serve(processes), plain_env, workdir, "/docs") as (
                plain,
                _,
            ),
        ):
            ours_patients = patients_of(ours, bearer(clinician), bearer(admin))
            plain_patients = patients_of(plain, {}, None)
            phases: dict[str, list[dict[str, Any]]] = {"careledger": [], "plain": []}
            for _ in range(2):
                phases["careledger"].append(phase(ours, clinician, ours_patients, seconds))
                progress.advance(task)
                phases["plain"].append(phase(plain, "", plain_patients, seconds))
                progress.advance(task)
    progress.remove_task(task)
    ours, plain = (statistics.fmean(p["per_second"] for p in phases[k]) for k in phases)
    return {
        "processes": processes,
        "seconds_per_phase": seconds,
        "phases": phases,
        "careledger_per_s": round(ours, 1),
        "plain_per_s": round(plain, 1),
        "ratio": round(ours / plain, 3),
        "careledger_p99_ms": max(p["p99_ms"] for p in phases["careledger"]),
        "plain_p99_ms": max(p["p99_ms"] for p in phases["plain"]),
        "careledger_p50_ms": round(statistics.median(p["p50_ms"] for p in phases["careledger"]), 2),
        "plain_p50_ms": round(statistics.median(p["p50_ms"] for p in phases["plain"]), 2),
        "client_cpu_share": max(p["client_cpu_share"] for k in phases for p in phases[k]),
        "failed": sum(p["failed"] for k in phases for p in phases[k]),
    }


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# L1 ------------------------------------------------------------------------------------


def run_l1(seconds: float, progress: Any) -> dict[str, Any]:
    task = progress.add_task("L1: raw psycopg inserts", total=2)
    results = {}
    with bench_database() as url:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(
                "CREATE TABLE rows (notification_id bigserial PRIMARY KEY, originator_id uuid, "
                "originator_version int, topic text, state bytea, "
                "UNIQUE (originator_id, originator_version))"
            )
        for per_txn in (1, 100):
            results[f"rows_per_s_{per_txn}_per_txn"] = round(raw_inserts(url, per_txn, seconds), 1)
            progress.advance(task)
    progress.remove_task(task)
    return results


def raw_inserts(url: str, per_txn: int, seconds: float) -> float:
    state = os.urandom(700)
    counts = [0] * CONNECTIONS
    stop = threading.Event()

    def writer(index: int) -> None:
        with psycopg.connect(url) as conn:
            while not stop.is_set():
                stream = uuid4()
                with conn.transaction(), conn.cursor() as cursor:
                    cursor.executemany(
                        "INSERT INTO rows (originator_id, originator_version, topic, state) "
                        "VALUES (%s, %s, %s, %s)",
                        [
                            (stream, v, "domain.patient:Patient.EntryRecorded", state)
                            for v in range(1, per_txn + 1)
                        ],
                    )
                counts[index] += per_txn

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(CONNECTIONS)]
    for thread in threads:
        thread.start()
    time.sleep(1.0)
    before = sum(counts)
    began = time.perf_counter()
    time.sleep(seconds)
    rows = sum(counts) - before
    elapsed = time.perf_counter() - began
    stop.set()
    for thread in threads:
        thread.join()
    return rows / elapsed


def run_backend(
    backend: str, args: argparse.Namespace, workdir: Path, progress: Any
) -> dict[str, Any]:
    """W1 and W2 on ``backend``; L1 too on PostgreSQL, as their reference."""
    workdir = workdir / backend  # each backend's servers get a var dir of their own
    workdir.mkdir()
    quick, full = PHASE_SECONDS
    result: dict[str, Any] = {
        "backend": backend,
        "W1": [
            run_w1(backend, n, quick if args.quick else full, workdir, progress)
            for n in PROCESSES[backend]
        ],
        "W2": run_w2(backend, 10 if args.quick else 40, 3 if args.quick else 5, workdir, progress),
    }
    result["server"] = result["W2"]["server"]
    if backend == "postgres":
        result["L1"] = run_l1(3.0 if args.quick else 10.0, progress)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="shorter phases, fewer rounds")
    bench_report.add_backend_option(parser)
    parser.add_argument("--json-out", type=Path, default=None)
    args = parser.parse_args()
    require_wrk()
    started = datetime.now(UTC)
    backends = bench_report.backends(args)
    with bench_report.progress(stderr) as progress, tempfile.TemporaryDirectory() as tmp:
        results = [run_backend(b, args, Path(tmp), progress) for b in backends]
    info = bench_report.machine(
        "eventsourcing", "psycopg", "fastapi", "uvicorn", "uvloop", "httptools"
    )
    report, out = bench_report.save("writes", started, args, info, results)
    print(f"Command: `{report['command']}`  ")
    servers = ", ".join(r["server"] for r in results)
    print(f"Machine: {info['cpu']} ({info['cpu_count']} CPUs), {servers}\n")
    print("| id | scenario | figure | goal | met |")
    print("|---|---|---|---|---|")
    for r in results:
        print("\n".join(table_rows(r)))
    print(f"\nJSON: {out}")


def w1_goal(backend: str) -> float:
    """W1's ratio goal: 1.5x on PostgreSQL, 1.0x on SQLite (p99 <= the baseline's too)."""
    return 1.5 if backend == "postgres" else 1.0


def w1_met(backend: str, w1: dict[str, Any]) -> bool:
    return w1["ratio"] >= w1_goal(backend) and w1["careledger_p99_ms"] <= w1["plain_p99_ms"]


def table_rows(r: dict[str, Any]) -> list[str]:
    """One backend's rows: W1 at each process count, W2, and L1 where it ran."""
    backend, w2 = r["backend"], r["W2"]
    rows = [
        f"| W1 | `POST /v1/patients/{{id}}/entries`, 16 connections, {w1['processes']} "
        f"process(es), {backend} | {w1['careledger_per_s']:,.0f} vs {w1['plain_per_s']:,.0f} "
        f"req/s: **{w1['ratio']}x**; p99 {w1['careledger_p99_ms']} vs {w1['plain_p99_ms']} ms; "
        f"wrk CPU {w1['client_cpu_share']:.0%} | >= {w1_goal(backend):g}x, p99 <= baseline | "
        f"{bench_report.yes(w1_met(backend, w1))} |"
        for w1 in r["W1"]
    ]
    rows += w2_rows(backend, w2)
    if "L1" in r:
        single, batched = r["L1"]["rows_per_s_1_per_txn"], r["L1"]["rows_per_s_100_per_txn"]
        w1 = r["W1"][0]
        rows.append(
            f"| L1 | raw psycopg, 16 writers, no lock | {single:,.0f} rows/s one per txn, "
            f"{batched:,.0f} rows/s 100 per txn; W1 is {w1['careledger_per_s'] / single:.1%} "
            f"of the first, W2 {w2['careledger_events_per_s'] / batched:.1%} of the second | "
            "reference | — |"
        )
    return rows


if __name__ == "__main__":
    main()
