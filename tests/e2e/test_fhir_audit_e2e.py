"""An auditor's FHIR client (fhirpy) against a real server process: a clinician's FHIR
reads found as BALP AuditEvents, paged through Bundle.link next; and the clinician's
client reading an amended entry's Provenance, whose access record replays."""

from pathlib import Path

import httpx
import pytest
from fhirpy import SyncFHIRClient

from tests.api.support import under_care
from tests.conftest import REGISTER_BODY, auth
from tests.e2e.server import running_server
from tests.fhir.support import HEART_RATE, validated

pytestmark = pytest.mark.e2e

CLINICIAN = auth("clinician", sub="dr-audited")
AUDITOR = auth("auditor", sub="auditor-balp")


def test_an_auditor_pages_audit_events_and_a_clinician_reads_provenance(
    database_url: str, tmp_path: Path
) -> None:
    with (
        running_server(database_url, tmp_path, "--with-projections") as (base, _env, _log),
        httpx.Client(base_url=base, timeout=15) as http,
    ):
        # Given a patient under care with a heart rate, amended once
        registered = http.post("/v1/patients", json=REGISTER_BODY, headers=CLINICIAN)
        assert registered.status_code == 201, registered.text
        patient_id = registered.json()["id"]
        under_care(http, patient_id)
        written = http.post(
            f"/v1/patients/{patient_id}/entries", json=HEART_RATE, headers=CLINICIAN
        )
        assert written.status_code == 201, written.text
        entry_id = written.json()["entry_id"]
        amended = http.post(
            f"/v1/patients/{patient_id}/entries/{entry_id}/amendments",
            json={"reason": "misread", "value": {"quantity": 74, "unit": "/min"}},
            headers=CLINICIAN,
        )
        assert amended.status_code == 201, amended.text
        position = amended.json()["position"]
        seen = http.get(
            f"/v1/patients/{patient_id}/timeline",
            params={"min_position": position},
            headers=CLINICIAN,
        )
        assert seen.status_code == 200, seen.text
        # When the clinician's FHIR client reads the Patient three times and the Provenance
        clinician = SyncFHIRClient(f"{base}/fhir", authorization=CLINICIAN["Authorization"])
        for _ in range(3):
            clinician.reference("Patient", patient_id).to_resource()
        target = f"Observation/{patient_id.replace('-', '')}{entry_id.replace('-', '')}"
        found = clinician.resources("Provenance").search(target=target).fetch_all()
        # Then the Provenance says who recorded and amended it
        activities = [p["activity"]["coding"][0]["code"] for p in found]
        assert activities == ["CREATE", "UPDATE"]
        for resource in found:
            validated(resource.serialize())
        assert {p["agent"][0]["who"]["identifier"]["value"] for p in found} == {
            "org-main/dr-audited"
        }

        # And the auditor's client pages through the clinician's reads, two at a time
        settled = http.get("/readyz").json()["position"]
        logged = http.get(
            "/v1/audit/accesses", params={"min_position": settled, "limit": 1}, headers=AUDITOR
        )
        assert logged.status_code == 200, logged.text
        auditor = SyncFHIRClient(f"{base}/fhir", authorization=AUDITOR["Authorization"])
        events = (
            auditor.resources("AuditEvent")
            .search(patient=patient_id, agent="org-main/dr-audited", outcome="0")
            .limit(2)
            .fetch_all()
        )
        for event in events:
            validated(event.serialize())
        subtypes = [e["subtype"][0]["code"] for e in events]
        # newest first: the Provenance search, three Patient reads, the timeline read,
        # the amendment, the entry and the registration
        assert subtypes[:5] == ["search-type", "read", "read", "read", "search-type"]
        assert [e["action"] for e in events[5:]] == ["U", "U", "C"]
        # The Provenance search's record replays byte for byte
        replay = http.post(f"/v1/audit/accesses/{events[0]['id']}/replay", headers=AUDITOR)
        assert replay.status_code == 200, replay.text
        assert replay.json()["matches"] is True
