"""Benchmark C1: the clinician console's timeline page against the JSON timeline page.

Run from the project root::

    .venv/bin/python -m bench.console [--quick] [--backend postgres|sqlite|both]

On PostgreSQL and on SQLite (``--backend``, default both; one row per backend). A
patient under care with a chart of 1,000 entries is written into a throwaway store and
projected (as ``bench.replay`` does). Through one in-process ASGI client, the same
app answers, taking turns: ``GET /v1/patients/{id}/timeline?limit=50`` with a bearer
token (the JSON page), and ``GET /console/clinician/timeline`` in a console session
with that chart open (the HTML page of the same 50 entries, rendered on the server
from the disclosed bytes). Each is one timeline read and one access record. Figure:
the median and p99 of each, and the ratio of the medians. Goal: HTML <= 1.5x JSON.

Results: a markdown table on stdout, JSON in ``bench/results/console-<time>.json``.
"""

import argparse
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from rich.console import Console

from api.app import create_app
from api.auth import mint_token
from api.bootstrap import build
from api.console.sessions import login_code
from application.context import Role
from bench import report as bench_report
from bench.projections import ORG, bench_settings, bench_store, server_version
from bench.replay import chart

stderr = Console(stderr=True)
GOAL = 1.5


def percentile(ordered: list[float], share: float) -> float:
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))]


def run(backend: str, entries: int, repeats: int, progress: Any) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp, bench_store(backend) as url:
        settings = bench_settings(url, Path(tmp) / "var")
        container = build(settings)
        try:
            patient_id = chart(container, entries)
            container.catch_up()
            app = create_app(container)
            secret = settings.jwt_secret.get_secret_value().encode()  # type: ignore[union-attr]
            now = int(time.time())
            bearer = mint_token(
                secret,
                role=Role.CLINICIAN,
                sub="dr-bench",
                org=ORG,
                patient=None,
                ttl_seconds=3600,
                now=now,
            )
            api = TestClient(app, headers={"Authorization": f"Bearer {bearer}"})
            browser = TestClient(app, base_url="https://testserver", follow_redirects=False)
            code = login_code(
                secret, role=Role.CLINICIAN, sub="dr-bench", org=ORG, patient=None, now=now
            )
            assert browser.get("/console/login", params={"code": code}).status_code == 303
            home = browser.get("/console/").text
            csrf = home.split('name="csrf" value="')[1].split('"')[0]
            chosen = {"csrf": csrf, "patient_id": str(patient_id)}
            assert browser.post("/console/clinician/chart", data=chosen).status_code == 303
            assert browser.get("/console/clinician/chart").status_code == 200  # the banner

            json_path = f"/v1/patients/{patient_id}/timeline"
            html_path = "/console/clinician/timeline"
            json_page = api.get(json_path, params={"limit": 50})
            html_page = browser.get(html_path)
            assert len(json_page.json()["entries"]) == 50, json_page.text
            assert "Page 1: 50 entries" in html_page.text, html_page.text[:2000]
            timings: dict[str, list[float]] = {"json": [], "html": []}
            task = progress.add_task(f"C1 {backend}: pages", total=2 * repeats)
            for turn in range(2 * repeats):  # taking turns, so that drift hits both alike
                name = "json" if turn % 2 == 0 else "html"
                began = time.perf_counter()
                if name == "json":
                    answer = api.get(json_path, params={"limit": 50})
                else:
                    answer = browser.get(html_path)
                timings[name].append((time.perf_counter() - began) * 1000)
                assert answer.status_code == 200
                progress.advance(task)
            progress.remove_task(task)
            results: dict[str, Any] = {"backend": backend, "entries": entries, "repeats": repeats}
            for name, found in timings.items():
                ordered = sorted(found)
                results[name] = {
                    "p50_ms": round(statistics.median(ordered), 2),
                    "p99_ms": round(percentile(ordered, 0.99), 2),
                }
            results["ratio_p50"] = round(results["html"]["p50_ms"] / results["json"]["p50_ms"], 3)
            results["html_bytes"] = len(html_page.content)
            results["json_bytes"] = len(json_page.content)
            results["server"] = server_version(container.ledger)
            results["met"] = results["ratio_p50"] <= GOAL
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
        results = [run(b, 1000, 100 if args.quick else 400, progress) for b in backends]
    info = bench_report.machine("eventsourcing", "psycopg", "jinja2")
    report, out = bench_report.save("console", started, args, info, results)
    print(f"Command: `{report['command']}`  ")
    servers = ", ".join(r["server"] for r in results)
    print(f"Machine: {info['cpu']} ({info['cpu_count']} CPUs), {servers}\n")
    print("| id | scenario | figure | goal | met |")
    print("|---|---|---|---|---|")
    for r in results:
        html, json_ = r["html"], r["json"]
        print(
            f"| C1 | console timeline page (HTML) vs JSON timeline page, 50 entries, "
            f"{r['backend']} | p50 {html['p50_ms']} vs {json_['p50_ms']} ms: "
            f"{r['ratio_p50']}x (p99 {html['p99_ms']} vs {json_['p99_ms']} ms) | <= {GOAL}x | "
            f"{bench_report.yes(r['met'])} |"
        )
    print(f"\nJSON: {out}")


if __name__ == "__main__":
    main()
