"""A FHIR client nobody here wrote (fhirpy) against a real server process: a patient
search paged through Bundle.link next, an Observation search, $everything and _history,
each page valid R4B and each disclosure in the access log, replaying byte for byte."""

from pathlib import Path
from typing import Any

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


def _next(bundle: dict[str, Any]) -> str | None:
    links = {link["relation"]: link["url"] for link in bundle["link"]}
    return links.get("next")


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
        # When fhirpy searches patients by family and birth date
        patients = (
            client.resources("Patient").search(family="Fhirsen", birthdate="1984-07-12").fetch_all()
        )
        # Then it finds all three in one page, each valid R4B
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
        # $everything: the Patient, their membership, then the three observations, two
        # to a page
        everything = client.execute(
            f"Patient/{ids[0]}/$everything", method="get", params={"_count": 2}
        )
        found = validated(everything)
        while (following := _next(everything)) is not None:
            everything = http.get(following, headers=FHIR_USER).json()
            found += validated(everything)
        assert [r["resourceType"] for r in found] == ["Patient", "Coverage"] + ["Observation"] * 3
        # _history of an observation, and its one version read by id
        heart = found[2]
        history = client.execute(f"Observation/{heart['id']}/_history", method="get")
        [version] = validated(history)
        assert version["valueQuantity"] == heart["valueQuantity"]
        vid = version["meta"]["versionId"]
        again = client.execute(f"Observation/{heart['id']}/_history/{vid}", method="get")
        assert validated(again) == [version]

        # Every page was disclosed with an access record of the patient, which replays
        settled = http.get("/readyz").json()["position"]
        accesses = http.get(
            "/v1/audit/accesses",
            params={"patient_id": ids[0], "actor_id": "dr-fhirpy", "min_position": settled},
            headers=AUDITOR,
        )
        assert accesses.status_code == 200, accesses.text
        fhir = accesses.json()["items"]
        # one patient-search page, two Observation pages, the lab search, the read, two
        # $everything pages, the history and the version read
        assert sorted(r["action"] for r in fhir) == ["read"] * 8 + ["search"], fhir
        for record in fhir:
            replay = http.post(f"/v1/audit/accesses/{record['access_id']}/replay", headers=AUDITOR)
            assert replay.status_code == 200, replay.text
            assert replay.json()["matches"] is True
