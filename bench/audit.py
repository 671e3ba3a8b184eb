"""Benchmark the access log's cost on reads (R1): audited vs unaudited timeline pages.

Run from the project root::

    .venv/bin/python -m bench.audit [--quick] [--backend postgres|sqlite|both]

R1  Timeline reads over real HTTP. A patient under care (an active membership) with a
    chart of ``--entries`` entries is written through the domain into a throwaway store
    (PostgreSQL ``careledger_bench_*``, dropped afterwards; or a SQLite file) and
    projected. Then, one server at a time, on that same store:

    audited    ``careledger serve --with-projections``: the service as shipped; every
               read waits for its access record to be durable (``GroupCommit``).
    unaudited  ``python -m bench.audit_server unaudited``: the same container
               (``api.bootstrap.build(run_processes=True)``, ``create_app``, uvicorn, the
               same settings), except that ``container.charts`` is a ``ChartReads`` whose
               ``Disclosures`` has a writer that writes nothing. The switch exists only
               here, in the benchmark.

    wrk (``bench/lua/pages.lua``, exactly ``--connections`` connections, each a closed
    loop) issues ``GET /v1/patients/{id}/timeline?limit=50`` as a clinician of the
    organisation, the cursor chosen at random among the chart's pages (the first page
    included), for ``--seconds`` after ``--warmup`` seconds. Phases alternate A B A B to
    cancel drift. Before each phase the server's views are caught up (``min_position``
    on a first read, then ``/readyz`` until every projection's lag is 0). wrk's CPU
    share is reported beside each figure.

    Figure: throughput(audited) / throughput(unaudited). Goal: >= 0.8.
    The access records each audited phase wrote are counted in the events table by
    topic, and its commits as the distinct transaction ids (``xmin``) of those rows.

With ``--profile``, one more audited phase runs against ``python -m bench.audit_server
audited`` (the real writer) with ``CARELEDGER_BENCH_PROFILE`` set: the server times each
``GroupCommit.write`` wait and each commit (batch size, duration), profiles the request
threads and the committer thread with cProfile, and the benchmark samples
``pg_stat_activity`` wait events.

Results: a markdown table on stdout, JSON in ``bench/results/audit-<timestamp>.json``.
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from rich.console import Console
from rich.progress import Progress

from api.auth import mint_token
from api.bootstrap import build
from api.settings import Settings
from application.context import Role
from bench.audit_server import PROFILE_ENV, AccessCounter, WaitSampler
from bench.support import report as bench_report
from bench.support.charts import (
    CLINICIAN,
    ORG,
    Serial,
    under_care,
    write_chart,
)
from bench.support.load import require_wrk, wrk
from bench.support.servers import (
    careledger_serve,
    cpu_seconds,
    postgres_cpu,
    running_server,
    server_env,
    settle,
)
from bench.support.stores import (
    bench_settings,
    bench_store,
    server_version,
)

GOAL = 0.8
PAGE = 50
ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent

stderr = Console(stderr=True)


def seed(settings: Settings, entries: int, progress: Progress) -> dict[str, Any]:
    """The chart, its membership, the views caught up, and every page's cursor."""
    container = build(settings)
    try:
        patient_id = write_chart(container.ledger, entries, Serial(), progress)
        under_care(container, patient_id)
        container.catch_up()
        cursors: list[str | None] = [None]
        while True:
            page = container.charts.timeline(
                CLINICIAN, patient_id, cursor=cursors[-1], limit=PAGE
            ).json()
            assert len(page["entries"]) == PAGE, len(page["entries"])
            if not page["next_cursor"]:
                break
            cursors.append(page["next_cursor"])
        head = container.ledger.recorder.max_notification_id() or 0
        recorder: Any = container.ledger.recorder
        info = {
            "patient_id": str(patient_id),
            "cursors": cursors,
            "head": head,
            "events_table": recorder.events_table_name,
            "server": server_version(container.ledger),
        }
    finally:
        container.close()
    return info


# The run -------------------------------------------------------------------------------


def server_command(variant: str) -> list[str]:
    if variant == "audited":
        return careledger_serve("--with-projections")
    if variant == "audited-no-projections":  # diagnosis: the projection host elsewhere
        return careledger_serve()
    mode = "audited" if variant == "audited-profiled" else "unaudited"
    return [sys.executable, "-m", "bench.audit_server", mode]


def phase(
    variant: str,
    settings: Settings,
    workdir: Path,
    seeded: dict[str, Any],
    counter: AccessCounter,
    args: argparse.Namespace,
    token: str,
    extra_env: dict[str, str] | None = None,
    sample_waits: bool = False,
) -> dict[str, Any]:
    path = f"/v1/patients/{seeded['patient_id']}/timeline"
    pages = "\n".join(
        f"{path}?{urlencode({'limit': PAGE, **({'cursor': c} if c else {})})}"
        for c in seeded["cursors"]
    )
    env = server_env(settings, extra_env)
    with running_server(variant, server_command(variant), env, workdir) as (base, pid):
        settle(base, path, token, seeded["head"], variant != "audited-no-projections")
        before = counter.position()
        server0, pg0 = cpu_seconds(f"/proc/{pid}/stat")[1], postgres_cpu()
        load_before = os.getloadavg()[0]
        sampler = WaitSampler(settings.database_url) if sample_waits else None
        began = time.perf_counter()
        load = wrk(
            base,
            "pages.lua",
            {"BENCH_PATHS": pages, "BENCH_TOKEN": token},
            connections=args.connections,
            seconds=args.seconds,
            warmup=args.warmup,
        )
        wall = time.perf_counter() - began
        waits = sampler.finish() if sampler else None
        server_cpu = cpu_seconds(f"/proc/{pid}/stat")[1] - server0
        pg_cpu = postgres_cpu() - pg0
        written = counter.since(before)
    on_postgres = settings.database_url.startswith("postgres")
    result: dict[str, Any] = {
        "variant": variant,
        **load,
        "access_records_written": written["records"],
        "access_commits": written["commits"],
        "load_average_1m_before": round(load_before, 2),
        # over warm-up and measurement together, as the CPU counters are
        "server_cpu_fraction": round(server_cpu / wall, 3),
        "postgres_cpu_fraction": round(pg_cpu / wall, 3) if on_postgres else None,
    }
    if written["commits"]:
        result["records_per_commit"] = round(written["records"] / written["commits"], 2)
    if waits is not None:
        result["pg_stat_activity"] = waits
    return result


def run_backend(backend: str, args: argparse.Namespace, progress: Progress) -> dict[str, Any]:
    with ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="cl-bench-audit-")))
        url = stack.enter_context(bench_store(backend))
        settings = bench_settings(url, workdir / "var")
        seeded = seed(settings, args.entries, progress)
        assert settings.jwt_secret is not None
        token = mint_token(
            settings.jwt_secret.get_secret_value().encode(),
            role=Role.CLINICIAN,
            sub="dr-bench",
            org=ORG,
            patient=None,
            ttl_seconds=6 * 3600,
            now=int(time.time()),
        )
        counter = AccessCounter(url, seeded["events_table"])
        order = ["audited", "unaudited"] * args.rounds
        task = progress.add_task(f"R1 {backend}: phases (A B A B)", total=len(order))
        phases = []
        for variant in order:
            progress.update(task, description=f"R1 {backend}: {variant} ({args.seconds:g} s)")
            phases.append(phase(variant, settings, workdir, seeded, counter, args, token))
            progress.advance(task)
        progress.remove_task(task)
        totals = {
            variant: {
                "throughput_rps": round(
                    statistics.fmean(p["per_second"] for p in phases if p["variant"] == variant), 1
                ),
                "per_phase_rps": [p["per_second"] for p in phases if p["variant"] == variant],
                "p50_ms": statistics.median(p["p50_ms"] for p in phases if p["variant"] == variant),
                "p99_ms": max(p["p99_ms"] for p in phases if p["variant"] == variant),
                "failed": sum(p["failed"] for p in phases if p["variant"] == variant),
                "client_cpu_share": max(
                    p["client_cpu_share"] for p in phases if p["variant"] == variant
                ),
                "access_records_written": sum(
                    p["access_records_written"] for p in phases if p["variant"] == variant
                ),
            }
            for variant in ("audited", "unaudited")
        }
        ratio = totals["audited"]["throughput_rps"] / totals["unaudited"]["throughput_rps"]
        result: dict[str, Any] = {
            "backend": backend,
            "server": seeded["server"],
            "entries": args.entries,
            "pages": len(seeded["cursors"]),
            "connections": args.connections,
            "order": order,
            "phases": phases,
            "totals": totals,
            "ratio_audited_over_unaudited": round(ratio, 3),
            "goal": f">= {GOAL:g}",
            "met": ratio >= GOAL,
        }
        if args.profile:
            result["diagnosis"] = diagnose(settings, workdir, seeded, counter, args, token)
        return result


def diagnose(
    settings: Settings,
    workdir: Path,
    seeded: dict[str, Any],
    counter: AccessCounter,
    args: argparse.Namespace,
    token: str,
) -> dict[str, Any]:
    """One more audited phase, probed: group-commit waits and commits, cProfile of the
    server's threads, and (PostgreSQL) pg_stat_activity's wait events."""
    out_dir = workdir / "profile"
    out_dir.mkdir()
    on_postgres = settings.database_url.startswith("postgres")
    profiled = phase(
        "audited-profiled",
        settings,
        workdir,
        seeded,
        counter,
        args,
        token,
        extra_env={PROFILE_ENV: str(out_dir)},
        sample_waits=on_postgres,
    )
    if (out_dir / "stats.json").exists():
        profiled["server_stats"] = json.loads((out_dir / "stats.json").read_text())
        profiled["server_profile"] = [
            line.rstrip()
            for line in (out_dir / "profile.txt").read_text().splitlines()
            if line.strip()
        ]
    return profiled


def table(results: list[dict[str, Any]]) -> str:
    lines = [
        "| backend | variant | req/s (per phase) | p50 ms | p99 ms | wrk CPU | access records "
        "| audited/unaudited / goal | met? |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        for variant in ("audited", "unaudited"):
            t = r["totals"][variant]
            phases = ", ".join(f"{x:,.0f}" for x in t["per_phase_rps"])
            ratio = met = ""
            if variant == "audited":
                ratio = f"{r['ratio_audited_over_unaudited']:.2f}x / >= {GOAL:g}x"
                met = bench_report.yes(r["met"])
            lines.append(
                f"| {r['backend']} | {variant} | {t['throughput_rps']:,.0f} ({phases}) | "
                f"{t['p50_ms']:.1f} | {t['p99_ms']:.1f} | {t['client_cpu_share']:.0%} | "
                f"{t['access_records_written']:,} | {ratio} | {met} |"
            )
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.audit",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="shorter phases (5 s)")
    bench_report.add_backend_option(parser)
    parser.add_argument("--entries", type=int, default=1000, help="entries in the chart")
    parser.add_argument("--connections", type=int, default=16, help="concurrent connections")
    parser.add_argument("--seconds", type=float, help="measured seconds per phase (15)")
    parser.add_argument("--warmup", type=float, help="unmeasured seconds per phase (3)")
    parser.add_argument("--rounds", type=int, default=2, help="A B rounds (2: A B A B)")
    parser.add_argument("--profile", action="store_true", help="a probed audited phase too")
    parser.add_argument("--json-out", type=Path, help="default: bench/results/audit-<ts>.json")
    args = parser.parse_args(argv)
    defaults = {"seconds": 5.0 if args.quick else 15.0, "warmup": 1.0 if args.quick else 3.0}
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.entries < 2 * PAGE or args.connections < 1 or args.rounds < 1 or args.seconds < 1:
        parser.error(f"--entries >= {2 * PAGE}, --connections, --rounds >= 1, --seconds >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    require_wrk()
    started = datetime.now(UTC)
    with bench_report.progress(stderr) as progress:
        results = [run_backend(b, args, progress) for b in bench_report.backends(args)]
    info = bench_report.machine("eventsourcing", "psycopg", "fastapi", "uvicorn", "uvloop")
    report, out = bench_report.save("audit", started, args, info, results)
    print(table(results))
    print(f"\nCommand: `{report['command']}`")
    print(
        f"Machine: {info['cpu']}, {info['cpu_count']} CPUs, Python {info['python']}; "
        f"{', '.join(r['server'] for r in results)}. {args.connections} connections (wrk), "
        f"{args.seconds:g} s per phase after {args.warmup:g} s warm-up. JSON: {out}"
    )
    for r in results:
        if "diagnosis" in r:
            d = r["diagnosis"]
            print(f"\n{r['backend']} diagnosis ({d['per_second']:,.0f} req/s under the probe):")
            print(json.dumps(d.get("server_stats"), indent=2))
            if "pg_stat_activity" in d:
                print("pg_stat_activity:", json.dumps(d["pg_stat_activity"], indent=2))
            print("\n".join(d.get("server_profile", [])[:90]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
