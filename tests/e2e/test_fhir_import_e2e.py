"""A FHIR client nobody here wrote (fhirpy) writes to a real server process: it creates
a Patient, posts a Synthea-like chart as a transaction Bundle, and reads it back
through $everything, each resource valid R4B; it corrects an observation and reads
the old version back from _history; it imports a Synthea-shaped US Core Bundle and
follows an observation's encounter reference to the imported encounter."""

import json
from pathlib import Path

import httpx
import pytest
from fhirpy import SyncFHIRClient

from tests.api.support import under_care
from tests.conftest import auth
from tests.e2e.server import running_server
from tests.fhir.support import validated
from tests.fhir.test_fhir_synthea_import import FIXTURE as SYNTHEA
from tests.fhir.test_fhir_transactions import FIXTURE

pytestmark = pytest.mark.e2e

CLINICIAN = auth("clinician", sub="dr-fhir-writer")


def test_fhirpy_creates_a_patient_and_imports_a_chart(database_url: str, tmp_path: Path) -> None:
    with running_server(database_url, tmp_path, "--with-projections") as (base, _env, _log):
        client = SyncFHIRClient(
            f"{base}/fhir",
            authorization=CLINICIAN["Authorization"],
            extra_headers={"Prefer": "return=representation"},  # fhirpy reads the body
        )
        # When fhirpy creates a Patient
        patient = client.resource(
            "Patient",
            identifier=[{"system": "urn:oid:2.16.840.1.113883.19.5", "value": "E2E-1"}],
            name=[{"family": "Fhirpy", "given": ["Wren"]}],
            gender="other",
            birthDate="1990-02-03",
        )
        patient.save()
        # Then it learns the id the server gave, and reads the Patient back
        assert patient.id
        read = client.reference("Patient", patient.id).to_resource()
        assert read["name"] == [{"family": "Fhirpy", "given": ["Wren"]}]
        validated(read.serialize())
        # When it posts a whole chart as a transaction
        bundle = json.loads(FIXTURE.read_text())
        answer = client.execute("", method="post", data=bundle)
        assert answer["type"] == "transaction-response"
        patient_id = answer["entry"][0]["response"]["location"].split("/")[1]
        with httpx.Client(base_url=base, timeout=15) as http:
            position = under_care(http, patient_id)  # clinical reads need care
            # (FHIR reads take no min_position: a /v1 read waits for the views)
            seen = http.get(
                f"/v1/patients/{patient_id}/timeline",
                params={"min_position": position},
                headers=CLINICIAN,
            )
            assert seen.status_code == 200, seen.text
        # Then the chart comes back from $everything, valid R4B
        wanted = {"Patient", "Observation", "Encounter", "Condition", "MedicationStatement"}
        wanted |= {"Immunization", "Procedure", "DocumentReference"}
        everything = client.execute(f"Patient/{patient_id}/$everything", method="get")
        resources = validated(everything)
        kinds = {r["resourceType"] for r in resources}
        assert {"Patient", "Observation", "Encounter", "Condition"} <= kinds
        assert {"MedicationStatement", "Immunization", "Procedure", "DocumentReference"} <= kinds
        # When fhirpy corrects an imported observation's value (PUT, a new version)
        vital = next(r for r in resources if "valueQuantity" in r)
        observation = client.reference("Observation", vital["id"]).to_resource()
        was = observation["valueQuantity"]["value"]
        observation["valueQuantity"] = {**observation["valueQuantity"], "value": round(was + 1, 2)}
        observation.save()
        assert observation["status"] == "amended"
        # Then _history holds both versions, newest first, and the old one reads as it was
        history = client.execute(f"Observation/{vital['id']}/_history", method="get")
        newest, oldest = validated(history)
        assert newest["valueQuantity"]["value"] == round(was + 1, 2)
        assert int(newest["meta"]["versionId"]) > int(oldest["meta"]["versionId"])
        old = client.execute(
            f"Observation/{vital['id']}/_history/{oldest['meta']['versionId']}", method="get"
        )
        assert validated(old) == [oldest]
        assert old["valueQuantity"]["value"] == was and old["status"] == "final"

        # When fhirpy imports a Synthea-shaped US Core chart
        answer = client.execute("", method="post", data=json.loads(SYNTHEA.read_text()))
        replies = [e["response"] for e in answer["entry"]]
        kept = [r for r in replies if "location" in r]
        assert len(kept) == 20 and all("outcome" in r for r in replies)
        synthea_id = kept[0]["location"].split("/")[1]
        with httpx.Client(base_url=base, timeout=15) as http:
            position = under_care(http, synthea_id)
            seen = http.get(
                f"/v1/patients/{synthea_id}/timeline",
                params={"min_position": position},
                headers=CLINICIAN,
            )
            assert seen.status_code == 200, seen.text
        # Then an observation's encounter is a reference fhirpy follows to the encounter
        vitals = client.resources("Observation").search(patient=synthea_id, code="8302-2")
        [height] = vitals.fetch_all()
        encounter = height["encounter"].to_resource()
        assert encounter["resourceType"] == "Encounter"
        assert encounter["type"][0]["coding"][0]["code"] == "162673000"
        assert encounter["participant"][0]["individual"]["identifier"]["value"] == "9999977396"
        validated(encounter.serialize())
