"""End to end against a real server process: the foundation's whole write story."""

import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import ENTRY_BODY, REGISTER_BODY, auth
from tests.e2e.server import BIN, running_server

pytestmark = pytest.mark.e2e


def test_register_record_enrol_consent_and_discontinue(database_url: str, tmp_path: Path) -> None:
    with running_server(database_url, tmp_path, "--with-projections") as (base, _, log_path):
        clinician, admin = auth("clinician", sub="dr-e2e"), auth("admin", sub="admin-e2e")
        http = httpx.Client(base_url=base, timeout=10)

        patient = http.post("/v1/patients", json=REGISTER_BODY, headers=clinician)
        assert patient.status_code == 201, patient.text
        patient_id = patient.json()["id"]

        entry = http.post(f"/v1/patients/{patient_id}/entries", json=ENTRY_BODY, headers=clinician)
        assert entry.status_code == 201 and entry.json()["position"] > patient.json()["position"]

        grant = http.post(
            f"/v1/patients/{patient_id}/consents",
            headers=auth("patient", sub="p-e2e", patient=patient_id),
            json={
                "grantee": "org-pharmacy",
                "purposes": ["TREAT"],
                "labels": [],
                "period": {"start": "2026-01-01"},
                "evidence": {
                    "form_id": "f",
                    "form_version": "1",
                    "text_sha256": "a" * 64,
                    "method": "electronic",
                },
            },
        )
        assert grant.status_code == 201, grant.text

        membership = http.post(
            "/v1/memberships",
            headers=admin,
            json={
                "patient_id": patient_id,
                "plan": "employer",
                "sponsor_id": "acme-corp",
                "annual_fee_cents": 0,
                "starts_on": "2026-01-01",
                "ends_on": "2026-12-31",
            },
        )
        assert membership.status_code == 201, membership.text

        accepted = http.post(
            "/v1/sponsors/acme-corp/discontinue", headers=admin, json={"effective_on": "2026-12-01"}
        )
        assert accepted.status_code == 202, accepted.text

        statuses: list[str] = []
        for _ in range(100):
            roster = http.get("/v1/memberships", params={"sponsor_id": "acme-corp"}, headers=admin)
            statuses = [item["status"] for item in roster.json()["items"]]
            if statuses == ["terminated"]:
                break
            time.sleep(0.1)
        assert statuses == ["terminated"]

        read = http.get(f"/v1/patients/{patient_id}", headers=clinician)
        assert read.status_code == 200, read.text
        # The membership has ended, so the patient (not a clinician) sees the chart.
        own = auth("patient", sub="p-e2e", patient=patient_id)
        timeline = http.get(
            f"/v1/patients/{patient_id}/timeline",
            headers=own,
            params={"min_position": entry.json()["position"]},
        )
        assert timeline.status_code == 200 and len(timeline.json()["entries"]) == 1

    log = log_path.read_text()
    assert '"route":"/v1/patients/{patient_id}/entries"' in log
    for secret_ish in (REGISTER_BODY["mrn"], "Example", "+1-555-0100"):
        assert secret_ish not in log, "PHI must never reach the logs"


def start_with(env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """Run `careledger serve` with only this environment; it should refuse to start."""
    return subprocess.run(
        [str(BIN / "careledger"), "serve", "--port", "1"],
        env={"CARELEDGER_VAR_DIR": str(tmp_path / "var"), "PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_bad_database_url_stops_startup_with_one_clear_line(tmp_path: Path) -> None:
    url = "postgresql://careledger:hunter2-secret@127.0.0.1:1/nope"
    result = start_with({"CARELEDGER_DATABASE_URL": url}, tmp_path)

    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("careledger: CARELEDGER_DATABASE_URL: cannot open")
    assert "hunter2" not in result.stderr and "Traceback" not in result.stderr


def test_a_malformed_master_key_stops_startup(tmp_path: Path) -> None:
    env = {
        "CARELEDGER_MASTER_KEY": "not-base64-%%%-secretvalue",
        "CARELEDGER_DATABASE_URL": f"sqlite:///{tmp_path}/x.db",
    }
    result = start_with(env, tmp_path)

    assert result.returncode == 2
    assert result.stderr.strip() == (
        "careledger: CARELEDGER_MASTER_KEY: must be base64 of a 32-byte key"
    )
    assert "secretvalue" not in result.stderr
