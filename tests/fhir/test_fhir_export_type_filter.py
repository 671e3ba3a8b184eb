"""Bulk Data ``_typeFilter``: an analytics pipeline asks for only the laboratory
Observations and one Condition code; the export keeps exactly those of the filtered
types and the other types whole, each patient's record hashes and replays exactly
those lines; a filter this server cannot apply is a 400 OperationOutcome that names
it, never a wider export."""

import hashlib
from typing import Any

import orjson
from fastapi.testclient import TestClient

from tests.api.support import AUDITOR, CLINICIAN
from tests.fhir.export_support import ASYNC, accesses, exported, files, full_chart_with, lines_of
from tests.fhir.support import caught_up, outcome, validated


def codes(lines: list[bytes], element: str = "code") -> list[str]:
    return sorted(orjson.loads(line)[element]["coding"][0]["code"] for line in lines)


def export_records(client: TestClient, patient_id: str) -> list[dict[str, Any]]:
    return [r for r in accesses(client, patient_id) if r["action"] == "export"]


def test_a_type_filter_keeps_only_what_its_queries_match_and_replays(
    client: TestClient,
) -> None:
    first, _ = full_chart_with(client, "MRN-0001")
    second, _ = full_chart_with(client, "MRN-0002")
    caught_up(client)

    # Laboratory Observations, and Conditions of one code (SNOMED asthma) or in a window
    manifest = exported(
        client,
        _type="Patient,Observation,Condition,Coverage,Immunization",
        _typeFilter=(
            "Observation?category=http://terminology.hl7.org/CodeSystem/observation-category"
            "|laboratory,Condition?code=http://snomed.info/sct|195967001,"
            "Condition?date=ge2030-01-01,Coverage?status=active"
        ),
    )
    found = files(client, manifest, CLINICIAN)
    assert set(found) == {"Patient", "Observation", "Condition", "Coverage", "Immunization"}
    assert codes(found["Observation"]) == ["2339-0", "2339-0"]  # the glucose results only
    assert codes(found["Condition"]) == ["195967001", "195967001"]
    assert len(found["Patient"]) == len(found["Immunization"]) == 2  # unfiltered: whole
    assert [orjson.loads(line)["status"] for line in found["Coverage"]] == ["active"] * 2
    for lines in found.values():
        for line in lines:
            validated(orjson.loads(line))

    # Alternatives within one query, and repeated _typeFilter parameters, are OR-ed
    either = exported(
        client,
        _type="Observation",
        _typeFilter=["Observation?code=8867-4,2339-0&date=le2026-11-20", "Observation?code=x"],
    )
    assert codes(files(client, either, CLINICIAN)["Observation"]) == ["8867-4", "8867-4"]
    nothing = exported(client, _type="Coverage", _typeFilter="Coverage?status=cancelled")
    assert nothing["output"] == [] and nothing["error"] == []

    # Each patient's record hashes exactly their filtered lines, and replays them
    for patient_id in (first, second):
        records = export_records(client, patient_id)
        [record] = [r for r in records if r["response_sha256"] == _sha(found, patient_id)]
        replay = client.post(f"/v1/audit/accesses/{record['access_id']}/replay", headers=AUDITOR)
        assert replay.status_code == 200 and replay.json()["matches"] is True, replay.text
        event = client.get(f"/fhir/AuditEvent/{record['access_id']}", headers=AUDITOR)
        described = [e.get("description", "") for e in event.json()["entity"]]
        assert any("_typeFilter on Observation,Condition,Coverage" in d for d in described)


def _sha(found: dict[str, list[bytes]], patient_id: str) -> str:
    return hashlib.sha256(lines_of(found, patient_id)).hexdigest()


def test_a_filter_the_server_cannot_apply_is_refused_naming_it(client: TestClient) -> None:
    full_chart_with(client, "MRN-0001")
    caught_up(client)
    asked = CLINICIAN.with_headers(ASYNC)
    refused = {
        "Observation?status=final": "Observation?status",
        "Observation?patient=Patient/x": "Observation?patient",
        "Condition?code:text=asthma": "Condition?code:text",
        "Patient?gender=female": "Patient?gender",
        "Coverage?beneficiary=x": "Coverage?beneficiary",
        "MedicationRequest?status=active": "Type?query",
        "Observation": "Type?query",
        "Observation?": "names no search parameter",
        "Observation?code=8867-4&_count=5": "Observation?_count",
    }
    for type_filter, named in refused.items():
        answer = client.get("/fhir/$export", params={"_typeFilter": type_filter}, headers=asked)
        issue = outcome(answer, 400)["issue"][0]
        assert issue["code"] == "not-supported" and named in issue["diagnostics"], issue
    # A type filtered but not exported is refused too: it would be silently empty
    answer = client.get(
        "/fhir/$export",
        params={"_type": "Patient", "_typeFilter": "Observation?code=8867-4"},
        headers=asked,
    )
    assert "Observation is not among the _type" in outcome(answer, 400)["issue"][0]["diagnostics"]
    # A supported parameter with a malformed value is invalid input (422), as in a search
    for bad in ("Observation?date=soon", "Coverage?status=lapsed", "Condition?code=|"):
        answer = client.get("/fhir/$export", params={"_typeFilter": bad}, headers=asked)
        assert "_typeFilter: " in outcome(answer, 422)["issue"][0]["diagnostics"]
