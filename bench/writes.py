"""Benchmark the write path side by side: W1 (HTTP), W2 (bulk import), L1 (raw psycopg).

Run from the project root::

    .venv/bin/python -m bench.writes [--quick] [--backend postgres|sqlite|both]

W1 and W2 run on PostgreSQL and on SQLite (``--backend``, default both; one row per
backend), L1 on PostgreSQL only. Each app writes to a throwaway store of its own on the
backend (a PostgreSQL database ``careledger_bench_*``, dropped afterwards, or a SQLite
file in a temporary directory); ratios compare the two apps on the same backend,
measured in the same run.

W1  ``POST /v1/patients/{id}/entries`` over real HTTP, 16 connections (``bench.load``
    in a process of its own, closed loop), 64 patients (each connection writes to its
    own four, so no two requests race for one chart). CareLedger: ``careledger serve``
    as shipped (JWT, policy, sealing, hash chain, an access record per write, group
    commit); on PostgreSQL the projections are not running (a worker would run them),
    on SQLite ``careledger serve`` runs them in its own process, as it ships (the
    embedded store has no worker). Baseline: ``bench.plain_app``, the same aggregate and
    request schema in a plain FastAPI + eventsourcing app (the library's stock recorder,
    ``eventsourcing.postgres`` or ``eventsourcing.sqlite``, no encryption, no audit).
    Phases alternate A B A B. Goal: throughput >= 1.5x the baseline's, p99 <= the
    baseline's.

W2  Bulk import in-process: each save is a new chart of 100 events (a registration and
    99 entries). CareLedger's ledger as the service opens it (sealed, chained) vs the
    plain application on the stock recorder of the same backend. Rounds alternate.
    Goal: >= 1.0x.

L1  The physical reference: raw psycopg inserts of rows shaped like the event table's
    (uuid, version, topic, 700 bytes of state), no table lock, 16 writer threads, one row
    per transaction (for W1) and 100 rows per transaction (for W2). W1 and W2 on
    PostgreSQL are reported as a fraction of it. PostgreSQL only: it is raw psycopg.

Results: a markdown table on stdout, JSON in ``bench/results/writes-<time>.json``.
"""

import argparse
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx
import psycopg
from rich.console import Console

from api.auth import mint_token
from api.bootstrap import open_ledger
from application.context import Role
from bench import report as bench_report
from bench.audit import free_port, running_server
from bench.plain_app import PlainLedger, plain_env
from bench.projections import ORG, bench_database, bench_settings, bench_store, server_version
from domain.patient import Patient
from domain.values import Coding, HumanName, Provenance, Quantity
from domain.vocabulary import AdministrativeSex, EntryKind

ROOT = Path(__file__).resolve().parent.parent
stderr = Console(stderr=True)
CONNECTIONS = 16
PATIENTS = 64
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


@contextmanager
def plain_server(url: str, workdir: Path) -> Iterator[str]:
    port = free_port()
    log = (workdir / "plain.log").open("wb")
    python_path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PLAIN_DATABASE_URL": url, "PYTHONPATH": python_path}
    process = subprocess.Popen(  # noqa: S603
        [sys.executable, "-m", "bench.plain_app", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, (workdir / "plain.log").read_text()[-2000:]
            try:
                httpx.get(f"{base}/docs", timeout=1)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "plain app not up in 60 s"
                time.sleep(0.1)
        yield base
    finally:
        process.terminate()
        process.wait(20)
        log.close()


def patients_of(base: str, headers: dict[str, str], admin: dict[str, str] | None) -> list[str]:
    """64 registered patients (under care, for CareLedger's treatment writes)."""
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


def load(base: str, headers: dict[str, str], patients: list[str], seconds: float) -> dict[str, Any]:
    requests = [
        [["POST", f"/v1/patients/{p}/entries", ENTRY] for p in patients[i::CONNECTIONS]]
        for i in range(CONNECTIONS)
    ]
    spec = {
        "base": base,
        "headers": headers,
        "connections": CONNECTIONS,
        "requests": requests,
        "warmup": 2.0,
        "seconds": seconds,
    }
    done = subprocess.run(
        [sys.executable, "-m", "bench.load"],
        input=json.dumps(spec),
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
    )
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def run_w1(backend: str, seconds: float, workdir: Path, progress: Any) -> dict[str, Any]:
    task = progress.add_task(f"W1 {backend}: HTTP writes, A B A B", total=4)
    with bench_store(backend) as ours_url, bench_store(backend) as plain_url:
        settings = bench_settings(ours_url, workdir / "var")
        secret = settings.jwt_secret.get_secret_value().encode()  # type: ignore[union-attr]
        now = int(time.time())
        clinician = {
            "Authorization": "Bearer "
            + mint_token(
                secret,
                role=Role.CLINICIAN,
                sub="dr-bench",
                org=ORG,
                patient=None,
                ttl_seconds=7200,
                now=now,
            )
        }
        admin = {
            "Authorization": "Bearer "
            + mint_token(
                secret,
                role=Role.ADMIN,
                sub="admin-bench",
                org=ORG,
                patient=None,
                ttl_seconds=7200,
                now=now,
            )
        }
        with (
            running_server("audited-no-projections", settings, workdir) as (ours, _pid),
            plain_server(plain_url, workdir) as plain,
        ):
            ours_patients = patients_of(ours, clinician, admin)
            plain_patients = patients_of(plain, {}, None)
            phases: dict[str, list[dict[str, Any]]] = {"careledger": [], "plain": []}
            for _ in range(2):
                phases["careledger"].append(load(ours, clinician, ours_patients, seconds))
                progress.advance(task)
                phases["plain"].append(load(plain, {}, plain_patients, seconds))
                progress.advance(task)
    progress.remove_task(task)
    ours_rps = statistics.fmean(p["per_second"] for p in phases["careledger"])
    plain_rps = statistics.fmean(p["per_second"] for p in phases["plain"])
    ours_p99 = max(p["p99_ms"] for p in phases["careledger"])
    plain_p99 = max(p["p99_ms"] for p in phases["plain"])
    return {
        "seconds_per_phase": seconds,
        "phases": phases,
        "careledger_per_s": round(ours_rps, 1),
        "plain_per_s": round(plain_rps, 1),
        "ratio": round(ours_rps / plain_rps, 3),
        "careledger_p99_ms": ours_p99,
        "plain_p99_ms": plain_p99,
        "careledger_p50_ms": round(statistics.median(p["p50_ms"] for p in phases["careledger"]), 2),
        "plain_p50_ms": round(statistics.median(p["p50_ms"] for p in phases["plain"]), 2),
    }


# W2 ------------------------------------------------------------------------------------


def chart_of_100(n: int) -> Patient:
    by = Provenance("importer", datetime.now(UTC))
    patient = Patient.register(
        patient_id=uuid4(),
        consent_id=uuid4(),
        organisation_id=ORG,
        mrn=f"MRN-W2-{n}",
        name=HumanName("Ada", f"Import{n}"),
        birth_date=date(1960, 1, 1 + n % 28),
        sex=AdministrativeSex.FEMALE,
        contact=None,
        by=by,
    )
    heart_rate = Coding("http://loinc.org", "8867-4", "Heart rate")
    for i in range(99):
        patient.record_entry(
            entry_id=uuid4(),
            kind=EntryKind.OBSERVATION,
            code=heart_rate,
            value=Quantity(Decimal(60 + i % 40), "/min"),
            effective_at=datetime(2024, 1, 1, tzinfo=UTC) + timedelta(hours=i),
            modality=None,
            labels=frozenset(),
            by=by,
        )
    return patient


def timed_saves(ledger: Any, charts: int, start: int) -> float:
    ready = [chart_of_100(start + i) for i in range(charts)]
    began = time.perf_counter()
    for chart in ready:
        ledger.save(chart)
    return time.perf_counter() - began


def run_w2(backend: str, charts: int, rounds: int, workdir: Path, progress: Any) -> dict[str, Any]:
    task = progress.add_task(f"W2 {backend}: bulk import, alternating", total=2 * rounds)
    with bench_store(backend) as ours_url, bench_store(backend) as plain_url:
        ours, _keys = open_ledger(
            bench_settings(ours_url, workdir / "var2"), secrets.token_bytes(32)
        )
        plain = PlainLedger(plain_env(plain_url))
        try:
            timed_saves(ours, 5, 0)  # warm-up, unmeasured
            timed_saves(plain, 5, 0)
            seconds: dict[str, list[float]] = {"careledger": [], "plain": []}
            for r in range(rounds):
                seconds["careledger"].append(timed_saves(ours, charts, 1000 * (r + 1)))
                progress.advance(task)
                seconds["plain"].append(timed_saves(plain, charts, 1000 * (r + 1)))
                progress.advance(task)
            server = server_version(ours)
        finally:
            ours.close()
            plain.close()
    progress.remove_task(task)
    events = charts * 100
    ours_eps = events / statistics.median(seconds["careledger"])
    plain_eps = events / statistics.median(seconds["plain"])
    return {
        "charts_per_round": charts,
        "rounds": rounds,
        "careledger_events_per_s": round(ours_eps, 1),
        "plain_events_per_s": round(plain_eps, 1),
        "ratio": round(ours_eps / plain_eps, 3),
        "server": server,
    }


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
        "W1": run_w1(backend, quick if args.quick else full, workdir, progress),
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
    started = datetime.now(UTC)
    backends = bench_report.backends(args)
    with bench_report.progress(stderr) as progress, tempfile.TemporaryDirectory() as tmp:
        results = [run_backend(b, args, Path(tmp), progress) for b in backends]
    info = bench_report.machine("eventsourcing", "psycopg", "fastapi", "uvicorn")
    report, out = bench_report.save("writes", started, args, info, results)
    print(f"Command: `{report['command']}`  ")
    servers = ", ".join(r["server"] for r in results)
    print(f"Machine: {info['cpu']} ({info['cpu_count']} CPUs), {servers}\n")
    print("| id | scenario | figure | goal | met |")
    print("|---|---|---|---|---|")
    for r in results:
        print("\n".join(table_rows(r)))
    print(f"\nJSON: {out}")


def table_rows(r: dict[str, Any]) -> list[str]:
    """One backend's rows: W1, W2, and L1 where it ran (PostgreSQL)."""
    backend, w1, w2 = r["backend"], r["W1"], r["W2"]
    w1_p99_met = w1["careledger_p99_ms"] <= w1["plain_p99_ms"]
    rows = [
        f"| W1 | `POST /v1/patients/{{id}}/entries`, 16 connections, real HTTP, {backend} | "
        f"{w1['careledger_per_s']:,.0f} vs {w1['plain_per_s']:,.0f} req/s: "
        f"**{w1['ratio']}x**; p99 {w1['careledger_p99_ms']} vs {w1['plain_p99_ms']} ms "
        f"(p50 {w1['careledger_p50_ms']} vs {w1['plain_p50_ms']}) | ≥ 1.5x, p99 ≤ baseline | "
        f"{bench_report.yes(w1['ratio'] >= 1.5 and w1_p99_met)} |",
        f"| W2 | bulk import, 100 events per save, {backend} | "
        f"{w2['careledger_events_per_s']:,.0f} vs {w2['plain_events_per_s']:,.0f} events/s: "
        f"**{w2['ratio']}x** | ≥ 1.0x | {bench_report.yes(w2['ratio'] >= 1.0)} |",
    ]
    if "L1" in r:
        single, batched = r["L1"]["rows_per_s_1_per_txn"], r["L1"]["rows_per_s_100_per_txn"]
        rows.append(
            f"| L1 | raw psycopg, 16 writers, no lock | {single:,.0f} rows/s one per txn, "
            f"{batched:,.0f} rows/s 100 per txn; W1 is {w1['careledger_per_s'] / single:.1%} "
            f"of the first, W2 {w2['careledger_events_per_s'] / batched:.1%} of the second | "
            "reference | — |"
        )
    return rows


if __name__ == "__main__":
    main()
