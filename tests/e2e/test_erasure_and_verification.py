"""An operator's story against a real server and the real CLI: export the chain head,
erase a patient, verify the chain against the head, and rotate the master key."""

import base64
import json
import os
import subprocess
from pathlib import Path

import httpx

from tests.conftest import REGISTER_BODY, auth
from tests.e2e.server import BIN, running_server


def _careledger(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "careledger"), *args],
        env=env,
        cwd=cwd,
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_erase_verify_and_rotate(database_url: str, tmp_path: Path) -> None:
    with (
        running_server(database_url, tmp_path) as (base, env, _log),
        httpx.Client(base_url=base, timeout=10) as http,
    ):
        patient = http.post("/v1/patients", json=REGISTER_BODY, headers=auth("clinician")).json()[
            "id"
        ]
        # The operator anchors the head outside the database
        head = _careledger(env, tmp_path, "audit", "head")
        assert head.returncode == 0, head.stderr
        (tmp_path / "head.json").write_text(head.stdout)
        # An admin erases the patient from the CLI; reads are then 410
        erased = _careledger(env, tmp_path, "patients", "erase", patient, "--legal-basis", "REF-1")
        assert erased.returncode == 0, erased.stderr
        assert http.get(f"/v1/patients/{patient}", headers=auth("clinician")).status_code == 410
        verified = http.get("/v1/audit/verify", headers=auth("auditor")).json()
        assert verified["ok"] is True
    # The chain still verifies from the CLI, against the anchored head
    checked = _careledger(env, tmp_path, "audit", "verify", "--head-file", "head.json")
    assert checked.returncode == 0, checked.stderr
    assert json.loads(checked.stdout)["ok"] is True
    # The master key is rotated; the old one is then refused, the new one alone works
    (tmp_path / "new.key").write_text(base64.b64encode(os.urandom(32)).decode())
    rotated = _careledger(env, tmp_path, "keys", "rotate", "--new-key-file", "new.key")
    assert rotated.returncode == 0, rotated.stderr
    assert "re-wrapping data keys" in rotated.stdout + rotated.stderr
    refused = _careledger(env, tmp_path, "audit", "head")
    assert refused.returncode == 2 and "CARELEDGER_MASTER_KEY" in refused.stderr
    with_new = {**env, "CARELEDGER_MASTER_KEY_FILE": str(tmp_path / "new.key")}
    assert _careledger(with_new, tmp_path, "audit", "verify").returncode == 0
