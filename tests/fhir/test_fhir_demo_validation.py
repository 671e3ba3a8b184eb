"""Every resource the server emits for `careledger demo --patients 200` validates
against fhir.resources R4B: each patient's $everything (every page), their Coverage,
Consent and Provenance searches, and the auditor's AuditEvents of them."""

from typing import Any
from urllib.parse import urlsplit

from fastapi.testclient import TestClient

from api.demo import seed_demo
from tests.api.support import AUDITOR, CLINICIAN
from tests.fhir.support import caught_up, next_url, validated
from tests.fhir.test_fhir_audit_events import logged

DEMO_PATIENTS = 200


def every_page(client: TestClient, url: str, params: dict[str, Any], headers: Any) -> list[Any]:
    """The resources of a search and of every next page, each page validated."""
    found: list[Any] = []
    response = client.get(url, params=params, headers=headers)
    while True:
        assert response.status_code == 200, f"{url}: {response.text}"
        page = response.json()
        found += validated(page)
        link = next_url(page)
        if link is None:
            return found
        parts = urlsplit(link)
        response = client.get(f"{parts.path}?{parts.query}", headers=headers)


def test_every_resource_of_the_demo_validates_as_r4b(client: TestClient) -> None:
    container = client.app.state.container  # type: ignore[attr-defined]
    seed_demo(container, patients=DEMO_PATIENTS, seed=21)
    caught_up(client)
    # The demo's patients, by their MRNs (every tenth found as a client would)
    directory = container.charts.views.directory
    patients = []
    for number in range(DEMO_PATIENTS):
        [hit] = directory.by_mrn(container.settings.org, f"DEMO-{number:06d}", 2)
        patients.append(hit["id"])
    for number in range(0, DEMO_PATIENTS, 10):
        found = every_page(client, "/fhir/Patient", {"identifier": f"DEMO-{number:06d}"}, CLINICIAN)
        assert [r["id"] for r in found] == [patients[number]]
    kinds: dict[str, int] = {}
    for patient_id in patients:
        # Every page of $everything (charts of 11 to 15 entries take two)
        chart = every_page(
            client, f"/fhir/Patient/{patient_id}/$everything", {"_count": 10}, CLINICIAN
        )
        assert chart[0]["resourceType"] == "Patient" and chart[0]["id"] == patient_id
        coverage = every_page(client, "/fhir/Coverage", {"beneficiary": patient_id}, CLINICIAN)
        assert coverage, patient_id  # the demo enrols every patient
        consent = every_page(client, "/fhir/Consent", {"patient": patient_id}, CLINICIAN)
        provenance = every_page(
            client, "/fhir/Provenance", {"target": f"Patient/{patient_id}"}, CLINICIAN
        )
        for resource in [*chart, *coverage, *consent, *provenance]:
            kinds[resource["resourceType"]] = kinds.get(resource["resourceType"], 0) + 1
    # And the organisation's auditor reads every one of those accesses as AuditEvents
    logged(client)
    for patient_id in patients[::20]:
        events = every_page(client, "/fhir/AuditEvent", {"patient": patient_id}, AUDITOR)
        assert len(events) >= 4, patient_id  # the reads above, at the least
        kinds["AuditEvent"] = kinds.get("AuditEvent", 0) + len(events)
    expected = {"Patient", "Coverage", "Encounter", "Observation", "Condition"}
    expected |= {"MedicationStatement", "Immunization", "Provenance", "AuditEvent", "Consent"}
    expected |= {"AllergyIntolerance", "DocumentReference"}
    assert expected <= set(kinds), kinds
    assert kinds["Patient"] == DEMO_PATIENTS
