"""Benchmark F1: a FHIR search page against the equivalent /v1 timeline page.

Run from the project root::

    .venv/bin/python -m bench.fhir [--quick] [--backend postgres|sqlite|both] [--profile]

On PostgreSQL and on SQLite (``--backend``, default both; one row per backend). A
patient under care with a chart of 1,000 heart-rate observations is written into a
throwaway store and projected (``bench.replay.chart``). Through one in-process ASGI
client with a clinician's bearer token, the same app answers, taking turns: ``GET
/fhir/Observation?patient={id}&_count=50`` (a searchset Bundle of 50 Observations)
and ``GET /v1/patients/{id}/timeline?limit=50`` (the JSON page of the same 50
entries). Each is one page scan of the timeline view and one access record with the
digest of its bytes. Figure: the median and p99 of each, and the ratio of the
medians. Goal: FHIR <= 1.3x /v1 (issue 21).

With ``--profile``, the FHIR search is then profiled (cProfile, 200 calls of the use
case, ``FhirReads.search_entries``, in this thread) and the top of the profile is kept
in the JSON.

Results: a markdown table on stdout, JSON in ``bench/results/fhir-<time>.json``.
"""

import argparse
import cProfile
import tempfile
from pathlib import Path
from typing import Any
from uuid import UUID

from fastapi.testclient import TestClient
from rich.console import Console

from api import heap
from api.app import create_app
from api.bootstrap import build
from api.container import Container
from application.fhir.reads import FhirReads
from bench.replay import CLINICIAN, chart
from bench.support import paired
from bench.support import report as bench_report
from bench.support.charts import ORG
from bench.support.stores import bench_settings, bench_store, server_version

stderr = Console(stderr=True)
PAGE = 50
ENTRIES = 1000
F1 = paired.Pair(
    "F1", "fhir", f"FHIR search page vs /v1 timeline page, {PAGE} entries", "fhir", "v1", 1.3
)
PROFILED_CALLS = 200


def client(container: Container, secret: bytes) -> TestClient:
    bearer = bench_report.clinician_token(secret, ORG)
    return TestClient(create_app(container), headers={"Authorization": f"Bearer {bearer}"})


def profiled(container: Container, patient_id: UUID) -> list[str]:
    """The FHIR search's use case, profiled in this thread (the ASGI client's requests
    run in threads of its own, which cProfile would not see)."""
    reads = FhirReads(container.ledger, container.charts)
    params = [("patient", str(patient_id)), ("_count", str(PAGE))]
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(PROFILED_CALLS):
        reads.search_entries(CLINICIAN, "Observation", "http://testserver/fhir", params)
    profiler.disable()
    return bench_report.profile_lines(profiler)


def run(backend: str, repeats: int, args: argparse.Namespace, progress: Any) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp, bench_store(backend) as url:
        settings = bench_settings(url, Path(tmp) / "var")
        container = build(settings)
        heap.settle(container)  # as serve's process does at its entry
        try:
            patient_id = chart(container, ENTRIES, observations=True)
            container.catch_up()
            secret = settings.jwt_secret.get_secret_value().encode()  # type: ignore[union-attr]
            api = client(container, secret)
            fhir_path, fhir_params = "/fhir/Observation", {"patient": str(patient_id)}
            fhir_params["_count"] = str(PAGE)
            v1_path, v1_params = f"/v1/patients/{patient_id}/timeline", {"limit": PAGE}
            fhir_page = api.get(fhir_path, params=fhir_params)
            v1_page = api.get(v1_path, params=v1_params)
            assert len(fhir_page.json()["entry"]) == PAGE, fhir_page.text[:2000]
            assert len(v1_page.json()["entries"]) == PAGE, v1_page.text[:2000]
            calls = {
                "fhir": lambda: api.get(fhir_path, params=fhir_params),
                "v1": lambda: api.get(v1_path, params=v1_params),
            }
            results = paired.timed(F1, calls, repeats, progress, backend)
            results |= {"entries": ENTRIES, "repeats": repeats}
            results |= {"fhir_bytes": len(fhir_page.content), "v1_bytes": len(v1_page.content)}
            results["server"] = server_version(container.ledger)
            if args.profile:
                results["profile"] = profiled(container, patient_id)
            return results
        finally:
            container.close()


def main() -> None:
    flags = {"--profile": "profile the FHIR search"}
    results = paired.main(F1, __doc__ or "", run, ("fhir.resources",), flags)
    for r in results:
        for line in r.get("profile", []):
            stderr.print(line, markup=False, highlight=False, soft_wrap=True)


if __name__ == "__main__":
    main()
