"""SMART on FHIR against a real server process: discovery without a token, then fhirpy
(a FHIR client nobody here wrote) with a scoped token minted by `careledger token
--scope`, pinned to its launch patient. It reads what its scopes name and is refused,
with a recorded 403, what they do not."""

import subprocess
from pathlib import Path

import httpx
import pytest
from fhirpy import SyncFHIRClient
from fhirpy.base.exceptions import ForbiddenError

from tests.api.support import under_care
from tests.conftest import REGISTER_BODY, auth
from tests.e2e.server import BIN, running_server
from tests.fhir.support import HEART_RATE, VISIT, validated

pytestmark = pytest.mark.e2e

CLINICIAN = auth("clinician", sub="dr-smart")
AUDITOR = auth("auditor", sub="auditor-smart")


def test_fhirpy_with_a_scoped_token_reads_only_what_its_scopes_name(
    database_url: str, tmp_path: Path
) -> None:
    with (
        running_server(database_url, tmp_path, "--with-projections") as (base, env, _log),
        httpx.Client(base_url=base, timeout=15) as http,
    ):
        # Discovery needs no token
        smart = http.get("/.well-known/smart-configuration")
        assert smart.status_code == 200
        assert "permission-v2" in smart.json()["capabilities"]
        assert http.get("/fhir/metadata").status_code == 200

        # Given two patients under care, the first with an observation and an encounter
        ids = []
        for n in range(2):
            body = {**REGISTER_BODY, "mrn": f"MRN-SMART-{n}"}
            registered = http.post("/v1/patients", json=body, headers=CLINICIAN)
            assert registered.status_code == 201, registered.text
            ids.append(registered.json()["id"])
            under_care(http, ids[-1])
        position = 0
        for entry in (HEART_RATE, VISIT):
            written = http.post(f"/v1/patients/{ids[0]}/entries", json=entry, headers=CLINICIAN)
            assert written.status_code == 201, written.text
            position = written.json()["position"]
        seen = http.get(
            f"/v1/patients/{ids[0]}/timeline", params={"min_position": position}, headers=CLINICIAN
        )
        assert seen.status_code == 200, seen.text

        # And an app's token from the CLI: launched on the first patient, Observations only
        minted = subprocess.run(
            [
                *(str(BIN / "careledger"), "token", "--role", "clinician", "--sub", "dr-smart"),
                *("--patient", ids[0], "--scope", "launch/patient patient/Observation.rs"),
            ],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            check=True,
        )
        client = SyncFHIRClient(f"{base}/fhir", authorization=f"Bearer {minted.stdout.strip()}")

        # When fhirpy searches the launch patient's observations, it gets them
        observations = client.resources("Observation").search(patient=ids[0]).fetch_all()
        assert [o["code"]["coding"][0]["code"] for o in observations] == ["8867-4"]
        for observation in observations:
            validated(observation.serialize())
        # But the encounter, the Patient, and the other patient's observations are refused
        for resource, params in (
            ("Encounter", {"patient": ids[0]}),
            ("Observation", {"patient": ids[1]}),
        ):
            with pytest.raises(ForbiddenError) as refused:
                client.resources(resource).search(**params).fetch_all()
            assert "scopes" in str(refused.value), str(refused.value)
        with pytest.raises(ForbiddenError):
            client.reference("Patient", ids[0]).to_resource()

        # And each refusal is in the access log, for the patient it addressed (read at
        # the log's head: the access-log view follows the refusals' commits)
        head = http.get("/readyz").json()["position"]
        for patient_id, expected in ((ids[0], 2), (ids[1], 1)):
            denials = http.get(
                "/v1/audit/accesses",
                params={"patient_id": patient_id, "decision": "deny", "min_position": head},
                headers=AUDITOR,
            ).json()["items"]
            reasons = [d["reason"] for d in denials if "scopes" in d["reason"]]
            assert len(reasons) == expected, denials
