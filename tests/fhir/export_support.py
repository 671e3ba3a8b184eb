"""Helpers of the Bulk Data stories: kick off, poll to the manifest, download, and
split an export's lines by patient (as each patient's access record hashed them)."""

import time
from collections.abc import Mapping
from typing import Any
from uuid import UUID

import httpx
import orjson
from fastapi.testclient import TestClient

from application.fhir.export_lines import EXPORT_TYPES
from tests.api.support import AUDITOR, CLINICIAN, record_entry, register, under_care
from tests.conftest import REGISTER_BODY
from tests.fhir.support import ASTHMA, GLUCOSE, HEART_RATE, HOME_VISIT, OTHERS, PANIC, VISIT

ASYNC = {"Prefer": "respond-async", "Accept": "application/fhir+json"}


def kick_off(
    client: TestClient | httpx.Client,
    path: str,
    headers: Mapping[str, str],
    params: Any = None,
) -> str:
    """The status URL's path of a new export."""
    response = client.get(path, params=params, headers={**headers, **ASYNC})
    assert response.status_code == 202, response.text
    location = response.headers["content-location"]
    assert "/fhir/$export-status/" in location, location
    return httpx.URL(location).path


def finished(
    client: TestClient | httpx.Client,
    status: str,
    headers: Mapping[str, str],
    timeout: float = 120.0,
) -> dict[str, Any]:
    """Polls as a Bulk Data client does: 202 with X-Progress, then the manifest."""
    deadline = time.monotonic() + timeout
    while True:
        response = client.get(status, headers=headers)
        if response.status_code == 200:
            assert response.headers["content-type"].startswith("application/json")
            manifest: dict[str, Any] = response.json()
            return manifest
        assert response.status_code == 202, response.text
        assert response.headers["x-progress"].endswith("patients exported")
        assert int(response.headers["retry-after"]) > 0
        assert time.monotonic() < deadline, "the export did not finish in time"
        time.sleep(0.05)


def download(client: TestClient | httpx.Client, url: str, headers: Mapping[str, str]) -> bytes:
    response = client.get(httpx.URL(url).path, headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/fhir+ndjson")
    return response.content


def files(
    client: TestClient | httpx.Client, manifest: dict[str, Any], headers: Mapping[str, str]
) -> dict[str, list[bytes]]:
    """Each output file's lines (with their newlines), by type; counts as announced."""
    found = {}
    for output in manifest["output"]:
        content = download(client, output["url"], headers)
        assert content.endswith(b"\n")
        lines = content.splitlines(keepends=True)
        assert len(lines) == output["count"], output
        found[output["type"]] = lines
    return found


def patient_of(resource: dict[str, Any]) -> str:
    """Whose chart a resource is: its id, or the patient's hex its id begins with."""
    if resource["resourceType"] == "Patient":
        return str(resource["id"])
    return str(UUID(hex=resource["id"][:32]))


def lines_of(found: dict[str, list[bytes]], patient_id: str) -> bytes:
    """One patient's lines, by type in export order: what their access record hashed."""
    return b"".join(
        line
        for kind in EXPORT_TYPES
        for line in found.get(kind, [])
        if patient_of(orjson.loads(line)) == patient_id
    )


def full_chart_with(client: TestClient, mrn: str) -> tuple[str, dict[str, str]]:
    """``full_chart``'s chart for a patient with this MRN."""
    patient_id = register(client, {**REGISTER_BODY, "mrn": mrn})
    under_care(client, patient_id)
    bodies = {"heart": HEART_RATE, "glucose": GLUCOSE, "visit": VISIT, "home": HOME_VISIT}
    bodies |= {"panic": PANIC, "asthma": ASTHMA}
    bodies |= {str(body["kind"]): body for body in OTHERS}
    return patient_id, {name: record_entry(client, patient_id, b) for name, b in bodies.items()}


def exported(client: TestClient, path: str = "/fhir/$export", **params: Any) -> dict[str, Any]:
    return finished(client, kick_off(client, path, CLINICIAN, params or None), CLINICIAN)


def accesses(client: TestClient, patient_id: str) -> list[dict[str, Any]]:
    """The patient's access records, once the access log has every one."""
    position = client.get("/readyz").json()["position"]
    response = client.get(
        "/v1/audit/accesses",
        params={"patient_id": patient_id, "min_position": position, "limit": 200},
        headers=AUDITOR,
    )
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items
