"""What routing organisations to databases of their own costs a read: the same
timeline read through ``careledger serve`` with one store, and with
``CARELEDGER_ORG_DATABASES`` naming two (the reader's organisation and another).

Run from the project root::

    .venv/bin/python -m bench.routing [--reads 200] [--rounds 2] [--backend sqlite]
    .venv/bin/python -m bench.routing --in-process      # the router alone, no server

Each mode gets a fresh store (two when routed), seeded over HTTP with one patient
under care and 20 entries per organisation, then ``--reads`` sequential reads of that
patient's timeline (50 entries a page) on one keep-alive connection, after 20 reads of
warm-up. Rounds alternate the modes, so that drift on a shared machine hits both.
Figures: p50, p95 and mean latency in milliseconds (docs/scale-out.md).
"""

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from api.auth import mint_token
from api.settings import Settings
from application.context import Role
from bench.support.servers import careledger_serve, running_server, server_env
from bench.support.stores import bench_database

ORGS = ("org-main", "org-other")
SECRET = "bench-routing-" + "s" * 40
WARM_UP = 20
ENTRIES = 20


def bearer(role: str, org: str) -> dict[str, str]:
    token = mint_token(
        SECRET.encode(), role=Role(role), sub=f"{role}-1", org=org, patient=None,
        ttl_seconds=3600, now=int(time.time()), audience=None,
    )  # fmt: skip
    return {"Authorization": f"Bearer {token}"}


def seed(http: httpx.Client, org: str) -> tuple[str, int]:
    """A patient under care with ENTRIES entries; (its id, the last position)."""
    clinician, admin = bearer("clinician", org), bearer("admin", org)
    body = {
        "mrn": f"MRN-{org}",
        "name": {"given": "Ada", "family": "Bench"},
        "birth_date": "1984-07-12",
        "sex": "female",
    }
    patient = http.post("/v1/patients", json=body, headers=clinician).json()["id"]
    today = datetime.now(UTC).date()
    enrol = {
        "patient_id": patient,
        "plan": "individual",
        "annual_fee_cents": 0,
        "starts_on": (today - timedelta(days=1)).isoformat(),
        "ends_on": (today + timedelta(days=365)).isoformat(),
    }
    assert http.post("/v1/memberships", json=enrol, headers=admin).status_code == 201
    position = 0
    for n in range(ENTRIES):
        entry = {
            "kind": "observation",
            "code": {"system": "http://loinc.org", "code": "8867-4", "display": "Heart rate"},
            "value": {"quantity": 60 + n, "unit": "/min"},
            "effective_at": f"2026-11-{1 + n:02d}T09:30:00Z",
        }
        written = http.post(f"/v1/patients/{patient}/entries", json=entry, headers=clinician)
        assert written.status_code == 201, written.text
        position = written.json()["position"]
    return patient, position


@contextmanager
def stores(backend: str, count: int, workdir: Path) -> Iterator[list[str]]:
    with ExitStack() as stack:
        if backend == "sqlite":
            yield [f"sqlite:///{workdir / f'store-{n}.db'}" for n in range(count)]
        else:
            yield [stack.enter_context(bench_database()) for _ in range(count)]


def measure(backend: str, routed: bool, reads: int) -> list[float]:
    with (
        tempfile.TemporaryDirectory() as tmp,
        stores(backend, 2 if routed else 1, Path(tmp)) as urls,
    ):
        workdir = Path(tmp)
        settings = Settings(
            database_url=urls[0], jwt_secret=SECRET, master_key="A" * 43 + "=", var_dir=workdir
        )
        routing = json.dumps(dict(zip(ORGS, urls, strict=False)))
        extra = {"CARELEDGER_ORG_DATABASES": routing} if routed else None
        flags = ["--create"] if backend == "sqlite" else ["--with-projections"]
        label = "routed" if routed else "single"
        env = server_env(settings, extra)
        with running_server(label, careledger_serve(*flags), env, workdir) as (base, _pid):
            return reads_of(base, routed, reads)


def reads_of(base: str, routed: bool, reads: int) -> list[float]:
    with httpx.Client(base_url=base, timeout=60) as http:
        return timed(http, prepared(http, routed), reads)


def prepared(http: httpx.Client, routed: bool) -> str:
    """Seed (both organisations when routed); the timeline path, its views caught up."""
    patient, position = seed(http, ORGS[0])
    if routed:
        seed(http, ORGS[1])
    path = f"/v1/patients/{patient}/timeline"
    headers = bearer("clinician", ORGS[0])
    first = http.get(path, params={"min_position": position}, headers=headers)
    assert first.status_code == 200, first.text
    return path


def timed(http: httpx.Client, path: str, reads: int) -> list[float]:
    headers = bearer("clinician", ORGS[0])
    timings = []
    for n in range(WARM_UP + reads):
        start = time.perf_counter()
        answer = http.get(path, params={"limit": 50}, headers=headers)
        elapsed = time.perf_counter() - start
        assert answer.status_code == 200, answer.text
        if n >= WARM_UP:
            timings.append(elapsed * 1000)
    return timings


def in_process(reads: int, rounds: int) -> None:
    """The router alone: both applications in this process (ASGI, no sockets), on
    SQLite, so the server, the network and a second process's load are left out."""
    from fastapi.testclient import TestClient

    from api.app import create_app
    from api.bootstrap import build
    from api.organisations import build_organisations

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        common = {"jwt_secret": SECRET, "master_key": "A" * 43 + "=", "var_dir": workdir}
        single = build(
            Settings(database_url=f"sqlite:///{workdir / 's.db'}", **common), run_processes=True
        )
        table = {org: f"sqlite:///{workdir / f'{org}.db'}" for org in ORGS}
        routed = build_organisations(
            Settings(org_databases=table, **common), run_processes=True, create=True
        )
        apps = {False: create_app(single), True: create_app(routed)}
        with TestClient(apps[False]) as one, TestClient(apps[True]) as two:
            clients = {False: one, True: two}
            paths = {mode: prepared(client, mode) for mode, client in clients.items()}
            for round_ in range(1, rounds + 1):
                for mode, client in clients.items():
                    timings = timed(client, paths[mode], reads)
                    label = "routed (2 databases)" if mode else "single store"
                    print(f"| in-process | {label} | {round_} | {reads} | {summary(timings)} |")


def summary(timings: list[float]) -> str:
    ordered = sorted(timings)
    p95 = ordered[int(0.95 * (len(ordered) - 1))]
    return f"{statistics.median(ordered):.2f} | {p95:.2f} | {statistics.fmean(ordered):.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reads", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--backend", choices=("sqlite", "postgres"), action="append")
    parser.add_argument("--in-process", action="store_true", help="the router alone")
    args = parser.parse_args()
    print("| backend | mode | round | reads | p50 ms | p95 ms | mean ms |")
    print("|---|---|---|---|---|---|---|")
    if args.in_process:
        in_process(args.reads, args.rounds)
        return
    for backend in args.backend or ["sqlite"]:
        for round_ in range(1, args.rounds + 1):
            for routed in (False, True):
                timings = measure(backend, routed, args.reads)
                mode = "routed (2 databases)" if routed else "single store"
                print(f"| {backend} | {mode} | {round_} | {len(timings)} | {summary(timings)} |")


if __name__ == "__main__":
    main()
