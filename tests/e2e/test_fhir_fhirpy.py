"""A FHIR client nobody here wrote (fhirpy) against a real server process: a patient
search paged through Bundle.link next, and an Observation search, each page valid R4B
and each disclosure in the access log, replaying byte for byte."""

from pathlib import Path

import httpx
import pytest
from fhirpy import SyncFHIRClient

from tests.api.support import under_care
from tests.conftest import REGISTER_BODY, auth
from tests.e2e.server import running_server
from tests.fhir.support import GLUCOSE, HEART_RATE, validated

pytestmark = pytest.mark.e2e

CLINICIAN = auth("clinician", sub="dr-fhir")
FHIR_USER = auth("clinician", sub="dr-fhirpy")  # its records are the FHIR client's
ADMIN = auth("admin", sub="admin-fhir")
AUDITOR = auth("auditor", sub="auditor-fhir")


def test_fhirpy_pages_a_patient_search_and_reads_observations(
    database_url: str, tmp_path: Path
) -> None:
    with (
        running_server(database_url, tmp_path, "--with-projections") as (base, _env, _log),
        httpx.Client(base_url=base, timeout=15) as http,
    ):
        # Given three patients of one family and birth date, the first with observations
        ids = []
        for n in range(3):
            body = {
                **REGISTER_BODY,
                "mrn": f"MRN-FHIR-{n}",
                "name": {"given": f"G{n}", "family": "Fhirsen"},
            }
            registered = http.post("/v1/patients", json=body, headers=CLINICIAN)
            assert registered.status_code == 201, registered.text
            ids.append(registered.json()["id"])
        under_care(http, ids[0])
        position = 0
        for entry in (HEART_RATE, GLUCOSE, {**HEART_RATE, "effective_at": "2026-11-22T09:00:00Z"}):
            written = http.post(f"/v1/patients/{ids[0]}/entries", json=entry, headers=CLINICIAN)
            assert written.status_code == 201, written.text
            position = written.json()["position"]
        # (FHIR reads take no min_position: a /v1 read waits for the views)
        seen = http.get(
            f"/v1/patients/{ids[0]}/timeline", params={"min_position": position}, headers=CLINICIAN
        )
        assert seen.status_code == 200, seen.text

        client = SyncFHIRClient(f"{base}/fhir", authorization=FHIR_USER["Authorization"])
        # When fhirpy searches patients a page of one at a time
        patients = (
            client.resources("Patient")
            .search(family="Fhirsen", birthdate="1984-07-12")
            .limit(1)
            .fetch_all()
        )
        # Then it follows the next links to all three, and each is valid R4B
        assert sorted(p["id"] for p in patients) == sorted(ids)
        for patient in patients:
            validated(patient.serialize())
        # And it finds the observations, vital signs apart from laboratory
        observations = client.resources("Observation").search(patient=ids[0]).limit(2).fetch_all()
        assert [o["code"]["coding"][0]["code"] for o in observations] == [
            "8867-4",
            "2339-0",
            "8867-4",
        ]
        for observation in observations:
            validated(observation.serialize())
        labs = (
            client.resources("Observation")
            .search(patient=ids[0], category="laboratory")
            .fetch_all()
        )
        assert [o["valueQuantity"]["unit"] for o in labs] == ["mmol/L"]
        read = client.reference("Patient", ids[0]).to_resource()
        assert read["identifier"][0]["value"] == "MRN-FHIR-0"

        # Every page was disclosed with an access record of the patient, which replays
        settled = http.get("/readyz").json()["position"]
        accesses = http.get(
            "/v1/audit/accesses",
            params={"patient_id": ids[0], "actor_id": "dr-fhirpy", "min_position": settled},
            headers=AUDITOR,
        )
        assert accesses.status_code == 200, accesses.text
        fhir = accesses.json()["items"]
        # one patient-search page, two Observation pages, the lab search and the read
        assert sorted(r["action"] for r in fhir) == ["read"] * 4 + ["search"], fhir
        for record in fhir:
            replay = http.post(f"/v1/audit/accesses/{record['access_id']}/replay", headers=AUDITOR)
            assert replay.status_code == 200, replay.text
            assert replay.json()["matches"] is True
