"""Bulk Data ``$export`` against a real server process: kick-off, polling and download
over HTTP as a Bulk Data client makes them (with ``requests``, fhirpy's own transport:
fhirpy has no bulk helper), every NDJSON line valid R4B and the same resource fhirpy
reads; each patient's access record replays; a restart loses the export (404) and
clears the files it left."""

import hashlib
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import requests
from fhirpy import SyncFHIRClient

from tests.api.support import under_care
from tests.conftest import REGISTER_BODY, auth
from tests.e2e.server import running_server
from tests.fhir.export_support import lines_of
from tests.fhir.support import GLUCOSE, HEART_RATE, PANIC, validated

pytestmark = pytest.mark.e2e

CLINICIAN = auth("clinician", sub="dr-bulk")
AUDITOR = auth("auditor", sub="auditor-bulk")
EXPIRY = 5  # seconds, for the restarted server


def bulk_get(url: str, **params: Any) -> requests.Response:
    """A Bulk Data client's request: JSON accepted, asynchronous, with the token."""
    headers = {**CLINICIAN, "Accept": "application/fhir+json", "Prefer": "respond-async"}
    return requests.get(url, params=params, headers=headers, timeout=15)


def poll(status_url: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        response = requests.get(status_url, headers=dict(CLINICIAN), timeout=15)
        if response.status_code == 200:
            manifest: dict[str, Any] = response.json()
            return manifest
        assert response.status_code == 202, response.text
        assert "patients exported" in response.headers["X-Progress"]
        time.sleep(min(float(response.headers["Retry-After"]), 0.2))
    raise AssertionError("the export did not finish within 60 s")


def test_a_bulk_client_exports_polls_and_downloads_from_a_running_server(
    database_url: str, tmp_path: Path
) -> None:
    args = (database_url, tmp_path, "--with-projections")
    with (
        running_server(*args) as (base, _env, _log),
        httpx.Client(base_url=base, timeout=15) as http,
    ):
        ids, position = [], 0
        for n in range(3):
            body = {**REGISTER_BODY, "mrn": f"MRN-BULK-{n}"}
            registered = http.post("/v1/patients", json=body, headers=CLINICIAN)
            assert registered.status_code == 201, registered.text
            ids.append(registered.json()["id"])
            under_care(http, ids[-1])
            for entry in (HEART_RATE, GLUCOSE, PANIC):
                written = http.post(
                    f"/v1/patients/{ids[-1]}/entries", json=entry, headers=CLINICIAN
                )
                assert written.status_code == 201, written.text
                position = written.json()["position"]
        seen = http.get(
            f"/v1/patients/{ids[-1]}/timeline", params={"min_position": position}, headers=CLINICIAN
        )
        assert seen.status_code == 200, seen.text

        # When a Bulk Data client kicks off an export of the organisation
        kick_off = bulk_get(f"{base}/fhir/$export", _outputFormat="application/fhir+ndjson")
        assert kick_off.status_code == 202, kick_off.text
        status_url = kick_off.headers["Content-Location"]
        manifest = poll(status_url)
        # Then the manifest names a file per type, and each line is valid R4B
        assert manifest["requiresAccessToken"] is True and manifest["error"] == []
        counts = {o["type"]: o["count"] for o in manifest["output"]}
        assert counts == {"Patient": 3, "Coverage": 3, "Observation": 6}  # PANIC hidden
        found: dict[str, list[bytes]] = {}
        for output in manifest["output"]:
            download = requests.get(
                output["url"], headers={**CLINICIAN, "Accept": "application/fhir+ndjson"}
            )
            assert download.status_code == 200, download.text
            assert download.headers["Content-Type"].startswith("application/fhir+ndjson")
            found[output["type"]] = download.content.splitlines(keepends=True)
            assert len(found[output["type"]]) == output["count"]
            for line in found[output["type"]]:
                validated(orjson.loads(line))
        # And fhirpy, reading each Patient and Observation, gets the same resources
        client = SyncFHIRClient(f"{base}/fhir", authorization=CLINICIAN["Authorization"])
        for kind in ("Patient", "Observation"):
            for line in found[kind]:
                exported = orjson.loads(line)
                read = client.reference(kind, exported["id"]).to_resource().serialize()
                assert read == exported

        # And each patient has one export record, whose digest is of their lines
        settled = http.get("/readyz").json()["position"]
        for patient_id in ids:
            records = http.get(
                "/v1/audit/accesses",
                params={"patient_id": patient_id, "min_position": settled, "limit": 200},
                headers=AUDITOR,
            ).json()["items"]
            [record] = [r for r in records if r["action"] == "export"]
            assert (
                record["response_sha256"] == hashlib.sha256(lines_of(found, patient_id)).hexdigest()
            )
            replay = http.post(f"/v1/audit/accesses/{record['access_id']}/replay", headers=AUDITOR)
            assert replay.status_code == 200 and replay.json()["matches"] is True, replay.text

        # The files are sealed on disk
        exports = tmp_path / "var" / "exports"
        stored = b"".join(p.read_bytes() for p in exports.rglob("*.ndjson"))
        assert stored and b"resourceType" not in stored and b"MRN-BULK" not in stored

        # A filter the server cannot apply is refused, naming it, not ignored
        refused = bulk_get(f"{base}/fhir/$export", _typeFilter="Observation?status=final")
        assert refused.status_code == 400, refused.text
        assert "Observation?status" in refused.json()["issue"][0]["diagnostics"]
        # A second export, of the laboratory Observations only (the query URL-encoded
        # on the wire, as the Bulk Data IG has it), left finished when the server stops
        second = bulk_get(
            f"{base}/fhir/Patient/$export",
            _type="Patient,Observation",
            _typeFilter="Observation?category=laboratory",
        )
        assert second.status_code == 202, second.text
        assert "_typeFilter=Observation%3Fcategory%3Dlaboratory" in second.request.url
        second_url = second.headers["Content-Location"]
        filtered = {o["type"]: o["count"] for o in poll(second_url)["output"]}
        assert filtered == {"Patient": 3, "Observation": 3}  # the glucose results only

    # After a restart the export is unknown (404), and nothing of it is left on disk
    environment = {"CARELEDGER_EXPORT_EXPIRY_SECONDS": str(EXPIRY)}
    with running_server(*args, environment=environment) as (base, _env, _log):
        after = requests.get(
            second_url.replace(second_url.split("/fhir/")[0], base),
            headers=dict(CLINICIAN),
            timeout=15,
        )
        assert after.status_code == 404, after.text
        assert after.json()["resourceType"] == "OperationOutcome"
        assert not list(exports.rglob("*.ndjson"))
        # And a new export expires: 410, its files removed
        third = bulk_get(f"{base}/fhir/$export", _type="Patient")
        assert third.status_code == 202, third.text
        poll(third.headers["Content-Location"])
        assert list(exports.rglob("*.ndjson"))
        time.sleep(EXPIRY + 0.5)
        gone = requests.get(third.headers["Content-Location"], headers=dict(CLINICIAN), timeout=15)
        assert gone.status_code == 410, gone.text
        assert not list(exports.rglob("*.ndjson"))
