"""Issue 20, defect 2: an MRN is an identifier in a system, unique per system within an
organisation. A second patient with a registered MRN is a 409, also when the two
registrations race; a bare MRN still registers (in the organisation's default system),
and search by MRN finds it in any system.
"""

from concurrent.futures import ThreadPoolExecutor
from typing import Any
from uuid import UUID

import pytest
from fastapi.testclient import TestClient

from api.container import Container
from application.charts import disclosure_rendering
from application.charts import patients as patients_module
from domain.identifiers import MrnClaim, default_mrn_system
from domain.patient import Patient
from tests.api.support import AUDITOR, OUTSIDER, assert_problem, register, settled
from tests.conftest import REGISTER_BODY, auth

CLINICIAN = auth("clinician", sub="dr-main")
LAB_SYSTEM = "urn:example:lab:mrn"


def body(mrn: Any, family: str = "Example") -> dict[str, Any]:
    return {**REGISTER_BODY, "mrn": mrn, "name": {"given": "Ada", "family": family}}


def test_a_second_patient_with_a_registered_mrn_is_refused(client: TestClient) -> None:
    # Given a patient registered with a bare MRN
    first = register(client, body("MRN-4242"))

    # When another patient is registered with the same MRN, bare or in the default system
    for mrn in ("MRN-4242", {"system": default_mrn_system("org-main"), "value": "MRN-4242"}):
        clash = client.post("/v1/patients", json=body(mrn, "Other"), headers=CLINICIAN)

        # Then it is a 409 problem that names the field and does not echo the MRN
        problem = assert_problem(clash, 409)
        assert problem["detail"].startswith("mrn:")
        assert "MRN-4242" not in clash.text

    # And search by the MRN finds the first patient alone
    found = client.get(
        "/v1/patients", params={"mrn": "MRN-4242", **settled(client)}, headers=CLINICIAN
    )
    assert [item["id"] for item in found.json()["items"]] == [first]


def test_the_same_value_in_another_system_or_organisation_is_another_mrn(
    client: TestClient, container: Container
) -> None:
    default = register(client, body("MRN-7"))
    lab = register(client, body({"system": LAB_SYSTEM, "value": "MRN-7"}, "Lab"))
    elsewhere = client.post("/v1/patients", json=body("MRN-7", "Away"), headers=OUTSIDER)
    assert elsewhere.status_code == 201, elsewhere.text

    # The chart keeps each MRN with its system
    systems = {
        pid: container.ledger.load(Patient, UUID(pid), "patient").mrn_system
        for pid in (default, lab)
    }
    assert systems == {default: default_mrn_system("org-main"), lab: LAB_SYSTEM}
    # A second registration in the lab system clashes there only
    assert_problem(
        client.post(
            "/v1/patients",
            json=body({"system": LAB_SYSTEM, "value": "MRN-7"}, "Again"),
            headers=CLINICIAN,
        ),
        409,
    )
    # And search by value alone finds both of org-main's patients, in any system
    found = client.get(
        "/v1/patients", params={"mrn": "MRN-7", **settled(client)}, headers=CLINICIAN
    )
    assert sorted(item["id"] for item in found.json()["items"]) == sorted([default, lab])


def test_concurrent_registrations_of_one_mrn_admit_exactly_one(
    client: TestClient, container: Container
) -> None:
    def attempt(n: int) -> int:
        response = client.post(
            "/v1/patients", json=body("MRN-RACE", f"Racer{n}"), headers=CLINICIAN
        )
        return response.status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(attempt, range(8)))
    assert sorted(statuses) == [201] + [409] * 7

    found = client.get(
        "/v1/patients", params={"mrn": "MRN-RACE", **settled(client)}, headers=CLINICIAN
    )
    assert len(found.json()["items"]) == 1


def test_the_claim_holds_no_mrn_in_clear(client: TestClient, container: Container) -> None:
    patient_id = register(client, body("MRN-SECRET-31337"))
    recorder = container.ledger.recorder
    notifications = recorder.select_notifications(start=1, limit=10_000)
    claims = [n for n in notifications if n.topic.startswith("domain.identifiers:MrnClaim")]
    assert len(claims) == 1
    for notification in notifications:
        assert b"MRN-SECRET-31337" not in bytes(notification.state)
        assert "31337" not in str(notification.originator_id)
    claim = container.ledger.load(MrnClaim, claims[0].originator_id, "claim")
    assert str(claim.patient_id) == patient_id


def test_malformed_identifiers_are_422(client: TestClient) -> None:
    for mrn in ({"system": "", "value": "X"}, {"value": "X"}, {"system": " s", "value": "X"}, ""):
        assert_problem(client.post("/v1/patients", json=body(mrn), headers=CLINICIAN), 422)


def test_demographics_name_the_mrn_system_and_older_reads_replay_as_served(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a patient registered in the lab's system
    patient_id = register(client, body({"system": LAB_SYSTEM, "value": "MRN-9"}))

    # A read served before render 4 (no mrn_system), and one served now
    with monkeypatch.context() as old:
        old.setattr(patients_module, "DEMOGRAPHICS_RENDER", 3)
        old.setattr(
            patients_module,
            "render_demographics",
            lambda patient: disclosure_rendering.render_demographics(patient, 3),
        )
        before = client.get(f"/v1/patients/{patient_id}", headers=CLINICIAN)
    now = client.get(f"/v1/patients/{patient_id}", headers=CLINICIAN)
    assert "mrn_system" not in before.json()
    assert now.json()["mrn"] == "MRN-9" and now.json()["mrn_system"] == LAB_SYSTEM

    # Then each replays to the bytes it was served with
    for read in (before, now):
        replayed = client.post(
            f"/v1/audit/accesses/{read.headers['X-Access-Id']}/replay", headers=AUDITOR
        )
        assert replayed.status_code == 200, replayed.text
        assert replayed.json()["matches"] is True
        assert replayed.json()["body"] == read.json()


def test_search_by_mrn_narrows_to_one_system_when_asked(client: TestClient) -> None:
    default = register(client, body("MRN-11"))
    lab = register(client, body({"system": LAB_SYSTEM, "value": "MRN-11"}, "Lab"))
    seen = settled(client)["min_position"]

    def found(**query: Any) -> list[str]:
        params = {"mrn": "MRN-11", "min_position": seen, **query}
        page = client.get("/v1/patients", params=params, headers=CLINICIAN)
        assert page.status_code == 200, page.text
        return sorted(item["id"] for item in page.json()["items"])

    # Any system by default; one system when mrn_system names it
    assert found() == sorted([default, lab])
    assert found(mrn_system=LAB_SYSTEM) == [lab]
    assert found(mrn_system=default_mrn_system("org-main")) == [default]
    assert found(mrn_system="urn:example:nowhere") == []
