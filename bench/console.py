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
import tempfile
import time
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from api import heap
from api.app import create_app
from api.bootstrap import build
from api.console.sessions import login_code
from application.context import Role
from bench.replay import chart
from bench.support import paired
from bench.support import report as bench_report
from bench.support.charts import ORG
from bench.support.stores import bench_settings, bench_store, server_version

ENTRIES = 1000
C1 = paired.Pair(
    "C1",
    "console",
    "console timeline page (HTML) vs JSON timeline page, 50 entries",
    "html",
    "json",
    1.5,
)


def run(backend: str, repeats: int, args: argparse.Namespace, progress: Any) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp, bench_store(backend) as url:
        settings = bench_settings(url, Path(tmp) / "var")
        container = build(settings)
        heap.settle(container)  # as serve's process does at its entry
        try:
            patient_id = chart(container, ENTRIES)
            container.catch_up()
            app = create_app(container)
            secret = settings.jwt_secret.get_secret_value().encode()  # type: ignore[union-attr]
            now = int(time.time())
            bearer = bench_report.clinician_token(secret, ORG)
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
            calls = {
                "html": lambda: browser.get(html_path),
                "json": lambda: api.get(json_path, params={"limit": 50}),
            }
            results = paired.timed(C1, calls, repeats, progress, backend)
            results |= {"entries": ENTRIES, "repeats": repeats}
            results["html_bytes"] = len(html_page.content)
            results["json_bytes"] = len(json_page.content)
            results["server"] = server_version(container.ledger)
            return results
        finally:
            container.close()


def main() -> None:
    paired.main(C1, __doc__ or "", run, ("jinja2",))


if __name__ == "__main__":
    main()
