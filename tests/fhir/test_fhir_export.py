"""Bulk Data ``$export``: a clinician kicks off an export of the organisation, polls
its status to the manifest and downloads one NDJSON file per type, every line valid
R4B; hidden entries are left out as in ``$everything``; each exported patient has
exactly one access record (action ``export``) whose digest is of exactly their lines,
and it replays byte for byte. Only the requester polls, downloads or cancels; the
files are sealed at rest and expire."""

import hashlib
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import orjson
import pytest
from fastapi.testclient import TestClient

from application.fhir import export_jobs
from tests.api.support import (
    ADMIN,
    AUDITOR,
    CLINICIAN,
    GRANT_BODY,
    OUTSIDER,
    enrol,
    patient_token,
    register,
)
from tests.conftest import REGISTER_BODY, auth
from tests.fhir.export_support import (
    ASYNC,
    accesses,
    exported,
    files,
    finished,
    full_chart_with,
    kick_off,
    lines_of,
    patient_of,
)
from tests.fhir.support import (
    caught_up,
    full_chart,
    outcome,
    resource_id,
    validated,
)

COLLEAGUE = auth("clinician", sub="dr-colleague")  # same organisation, another person


def second_chart(client: TestClient) -> tuple[str, dict[str, str]]:
    """Another patient of every kind, who lets org-main see their mental-health entries."""
    patient_id, ids = full_chart_with(client, "MRN-0002")
    directive = {**GRANT_BODY, "grantee": "org:org-main", "labels": ["mental_health"]}
    granted = client.post(
        f"/v1/patients/{patient_id}/consents", json=directive, headers=patient_token(patient_id)
    )
    assert granted.status_code == 201, granted.text
    return patient_id, ids


def test_an_export_is_ndjson_per_type_consent_filtered_and_each_patient_replays(
    client: TestClient,
) -> None:
    first, first_ids = full_chart(client)
    second, second_ids = second_chart(client)
    # A third patient, registered but never under care: the policy refuses them
    unattended = register(client, {**REGISTER_BODY, "mrn": "MRN-0003"})
    caught_up(client)
    status = kick_off(client, "/fhir/$export", CLINICIAN)
    manifest = finished(client, status, CLINICIAN)

    assert manifest["requiresAccessToken"] is True
    assert manifest["request"].endswith("/fhir/$export")
    assert datetime.fromisoformat(manifest["transactionTime"]).tzinfo is not None
    counts = {o["type"]: o["count"] for o in manifest["output"]}
    # Two patients; the first's mental-health condition is hidden (left out, not
    # counted); the second's directive shows theirs; the consent is the second's
    assert counts == {
        "Patient": 2,
        "Coverage": 2,
        "Consent": 1,
        "Observation": 4,
        "Encounter": 4,
        "Condition": 3,
        "AllergyIntolerance": 2,
        "MedicationStatement": 2,
        "Immunization": 2,
        "Procedure": 2,
        "DocumentReference": 2,
    }
    found = files(client, manifest, CLINICIAN)
    resources = [orjson.loads(line) for lines in found.values() for line in lines]
    for kind, lines in found.items():
        for line in lines:
            resource = orjson.loads(line)
            assert resource["resourceType"] == kind
            validated(resource)
    ids = {r["id"] for r in resources}
    assert resource_id(first, first_ids["panic"]) not in ids
    assert resource_id(second, second_ids["panic"]) in ids
    assert {patient_of(r) for r in resources} == {first, second}

    # The refused patient is named in the error file, and the refusal is recorded
    [error] = manifest["error"]
    assert error["type"] == "OperationOutcome" and error["count"] == 1
    [problem] = [
        orjson.loads(line)
        for line in files(client, {"output": [error]}, CLINICIAN)["OperationOutcome"]
    ]
    validated(problem)
    assert problem["issue"][0]["diagnostics"].startswith(f"Patient/{unattended}: ")
    denied = [r for r in accesses(client, unattended) if r["decision"] == "deny"]
    assert len(denied) == 1 and not [
        r for r in accesses(client, unattended) if r["action"] == "export"
    ]

    # One export record per patient, its digest of exactly their lines, replayed
    for patient_id in (first, second):
        [record] = [r for r in accesses(client, patient_id) if r["action"] == "export"]
        mine = lines_of(found, patient_id)
        assert record["response_sha256"] == hashlib.sha256(mine).hexdigest()
        replay = client.post(f"/v1/audit/accesses/{record['access_id']}/replay", headers=AUDITOR)
        assert replay.status_code == 200, replay.text
        body = replay.json()
        assert body["matches"] is True, body
        assert b"".join(orjson.dumps(r) + b"\n" for r in body["body"]) == mine
        # The auditor reads it as an IHE BALP AuditEvent: an operation on the patient
        event = client.get(f"/fhir/AuditEvent/{record['access_id']}", headers=AUDITOR)
        assert event.status_code == 200, event.text
        [audit] = validated(event.json())
        assert audit["subtype"][0]["code"] == "operation"
        described = [e.get("description", "") for e in audit["entity"]]
        assert any(d.startswith("GET $export") for d in described), described


def test_type_since_and_a_group_narrow_an_export(client: TestClient) -> None:
    first, _ = full_chart(client)
    second, _ = full_chart_with(client, "MRN-0002")
    enrol(client, second, plan="employer", sponsor_id="acme-corp")
    caught_up(client)

    narrowed = exported(client, _type="Patient,Observation", _since="2026-11-21")
    found = files(client, narrowed, CLINICIAN)
    assert set(found) == {"Patient", "Observation"}
    observations = [orjson.loads(line) for line in found["Observation"]]
    # Only the glucose result is on or after the 21st; _since does not narrow Patients
    assert {o["code"]["coding"][0]["code"] for o in observations} == {"2339-0"}
    assert len(found["Patient"]) == 2

    group = exported(client, "/fhir/Group/acme-corp/$export", _type="Patient,Coverage")
    members = files(client, group, CLINICIAN)
    assert [orjson.loads(line)["id"] for line in members["Patient"]] == [second]
    assert {patient_of(orjson.loads(line)) for line in members["Coverage"]} == {second}
    patients = exported(client, "/fhir/Patient/$export", _type="Patient")
    assert sorted(
        patient_of(orjson.loads(line)) for line in files(client, patients, CLINICIAN)["Patient"]
    ) == sorted([first, second])


def test_a_kick_off_refuses_what_it_must(client: TestClient) -> None:
    full_chart(client)
    caught_up(client)
    where = "/fhir/$export"
    outcome(client.get(where, headers=ASYNC), 401)
    outcome(client.get(where, headers=CLINICIAN), 400)  # no Prefer: respond-async
    prefer = CLINICIAN.with_headers({"Prefer": "return=minimal"})
    outcome(client.get(where, headers=prefer), 400)
    waiting = CLINICIAN.with_headers({"Prefer": "respond-async; wait=10"})
    assert client.get(where, headers=waiting).status_code == 202
    bad: list[dict[str, str]] = [
        {"_outputFormat": "application/fhir+json"},
        {"_type": "Provenance"},
        {"_since": "soon"},
        {"_since": "2026", "_elements": "id"},
    ]
    for params in bad:
        outcome(client.get(where, params=params, headers=CLINICIAN.with_headers(ASYNC)), 422)
    for who in (ADMIN, AUDITOR, patient_token(UUID(int=5))):
        outcome(client.get(where, headers={**who, **ASYNC}), 403)
    outcome(
        client.get(
            where,
            headers=CLINICIAN.with_headers(
                {
                    **ASYNC,
                    "X-Break-Glass": (
                        "unconscious patient arrived in the emergency room needs history"
                    ),
                }
            ),
        ),
        403,
    )
    outcome(
        client.get("/fhir/Group/no-such-sponsor/$export", headers=CLINICIAN.with_headers(ASYNC)),
        404,
    )
    # An accepted _outputFormat
    kick_off(client, where, CLINICIAN, {"_outputFormat": "application/fhir+ndjson"})


def test_only_the_requester_polls_downloads_or_cancels(client: TestClient) -> None:
    full_chart(client)
    caught_up(client)
    status = kick_off(client, "/fhir/$export", CLINICIAN)
    manifest = finished(client, status, CLINICIAN)
    unknown = status.rsplit("/", 1)[0] + "/00000000-0000-4000-8000-00000000e0e0"
    file_url = manifest["output"][0]["url"]
    for stranger in (COLLEAGUE, OUTSIDER, auth("clinician", sub="dr-main", org="org-other")):
        for path in (status, unknown):
            mine = outcome(client.get(path, headers=stranger), 404)
            assert mine == outcome(client.get(unknown, headers=CLINICIAN), 404)
        outcome(client.get(file_url.replace("http://testserver", ""), headers=stranger), 404)
        outcome(client.delete(status, headers=stranger), 404)
    # Still the requester's, untouched by those attempts
    assert files(client, manifest, CLINICIAN)["Patient"]


def export_folder(client: TestClient, status: str) -> Path:
    files_store = client.app.state.container.exports.files  # type: ignore[attr-defined]
    return Path(files_store.directory) / UUID(status.rsplit("/", 1)[1]).hex


def test_files_are_sealed_at_rest_and_cancelling_removes_them(client: TestClient) -> None:
    patient_id, _ = full_chart(client)
    caught_up(client)
    status = kick_off(client, "/fhir/$export", CLINICIAN)
    manifest = finished(client, status, CLINICIAN)
    folder = export_folder(client, status)
    stored = b"".join(p.read_bytes() for p in folder.iterdir())
    assert stored, "the files are on disk"
    for plaintext in (b"resourceType", b"Example", b"MRN-0001", patient_id.encode(), b"Heart"):
        assert plaintext not in stored
    cancelled = client.delete(status, headers=CLINICIAN)
    assert cancelled.status_code == 202, cancelled.text
    assert not folder.exists()
    outcome(client.get(status, headers=CLINICIAN), 404)
    outcome(client.get(manifest["output"][0]["url"], headers=CLINICIAN), 404)


def test_a_running_export_reports_progress_and_a_cancel_stops_it(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    full_chart(client)
    full_chart_with(client, "MRN-0002")
    caught_up(client)
    release, reached = threading.Event(), threading.Event()
    original = export_jobs.export_patient

    def slowly(*args: Any, **kwargs: Any) -> Any:
        found = original(*args, **kwargs)
        reached.set()
        assert release.wait(30)
        return found

    monkeypatch.setattr(export_jobs, "export_patient", slowly)
    status = kick_off(client, "/fhir/$export", CLINICIAN)
    assert reached.wait(30)
    running = client.get(status, headers=CLINICIAN)
    assert running.status_code == 202 and running.headers["x-progress"] == "0 patients exported"
    # Two run at once: a third kick-off is asked to come back later
    other = kick_off(client, "/fhir/Patient/$export", COLLEAGUE)
    busy = client.get("/fhir/$export", headers=CLINICIAN.with_headers(ASYNC))
    outcome(busy, 429)
    assert int(busy.headers["retry-after"]) > 0
    assert client.delete(status, headers=CLINICIAN).status_code == 202
    assert client.delete(other, headers=COLLEAGUE).status_code == 202
    release.set()
    outcome(client.get(status, headers=CLINICIAN), 404)
    exports = client.app.state.container.exports  # type: ignore[attr-defined]
    for thread in list(exports._threads.values()):
        thread.join(30)
    assert not export_folder(client, status).exists()


def shifted(clock: Callable[[], datetime], by: timedelta) -> Callable[[], datetime]:
    return lambda: clock() + by


def test_an_export_expires_its_files_are_removed_and_then_it_is_forgotten(
    client: TestClient,
) -> None:
    full_chart(client)
    caught_up(client)
    status = kick_off(client, "/fhir/$export", CLINICIAN)
    manifest = finished(client, status, CLINICIAN)
    answer = client.get(status, headers=CLINICIAN)
    assert "expires" in answer.headers
    exports = client.app.state.container.exports  # type: ignore[attr-defined]
    real = exports.clock
    folder = export_folder(client, status)
    assert folder.exists()
    exports.clock = shifted(real, timedelta(minutes=59))
    assert client.get(status, headers=CLINICIAN).status_code == 200
    exports.clock = shifted(real, timedelta(minutes=61))
    outcome(client.get(status, headers=CLINICIAN), 410)
    outcome(client.get(manifest["output"][0]["url"], headers=CLINICIAN), 410)
    outcome(client.get(status, headers=OUTSIDER), 404)  # others learn nothing, still
    assert not folder.exists()
    exports.clock = shifted(real, timedelta(minutes=121))
    outcome(client.get(status, headers=CLINICIAN), 404)


def test_closing_the_server_loses_a_running_export_and_leaves_no_file(
    client: TestClient,
) -> None:
    full_chart(client)
    caught_up(client)
    status = kick_off(client, "/fhir/$export", CLINICIAN)
    finished(client, status, CLINICIAN)
    exports = client.app.state.container.exports  # type: ignore[attr-defined]
    directory = Path(exports.files.directory)
    exports.close()
    assert not any(directory.iterdir())
    outcome(client.get(status, headers=CLINICIAN), 404)


def test_the_capability_statement_names_the_export_operations(client: TestClient) -> None:
    [statement] = validated(client.get("/fhir/metadata").json())
    rest = statement["rest"][0]
    system = {o["name"]: o["definition"] for o in rest["operation"]}
    assert system["export"] == "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export"
    by_type = {r["type"]: r for r in rest["resource"]}
    patient_ops = {o["name"] for o in by_type["Patient"]["operation"]}
    assert {"everything", "export"} <= patient_ops
    group = {o["name"]: o["definition"] for o in by_type["Group"]["operation"]}
    assert group["export"].endswith("group-export")


def test_smart_scopes_narrow_an_export_and_never_widen_it(client: TestClient) -> None:
    patient_id, _ = full_chart(client)
    caught_up(client)
    where = "/fhir/$export"
    observations = auth("clinician", sub="dr-main", scope="user/Observation.rs")
    # All types by default: an Observation-only token is refused, recorded as any refusal
    outcome(client.get(where, headers=observations.with_headers(ASYNC)), 403)
    # Asked for Observations only, it exports them, and downloads that file
    status = kick_off(client, where, observations, {"_type": "Observation"})
    manifest = finished(client, status, observations)
    assert [o["type"] for o in manifest["output"]] == ["Observation"]
    assert len(files(client, manifest, observations)["Observation"]) == 2
    # A patient/ scope pins a token to its launch patient: an export names none
    pinned = auth("clinician", sub="dr-main", patient=patient_id, scope="patient/*.rs")
    outcome(client.get(where, headers=pinned.with_headers(ASYNC)), 403)
