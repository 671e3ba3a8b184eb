"""A prescription that names its drug by ``medicationReference`` (a ``Medication``
entry of the Bundle, by ``urn:uuid``, or one contained in the resource) keeps the
Medication's code: the chart comes back from ``$everything`` with exactly that code,
and the entry's response says how it was kept. A reference that names nothing the
request carries is refused with an OperationOutcome naming the entry, and nothing
is written."""

import json
from typing import Any

from fastapi.testclient import TestClient

from tests.api.support import CLINICIAN, records_written, register, under_care
from tests.fhir.bodies import patient_body
from tests.fhir.support import caught_up, fhir_get, outcome, validated

FHIR = CLINICIAN.with_headers({"Content-Type": "application/fhir+json"})
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
PATIENT = "urn:uuid:5e1d0c3b-6a2f-4b7e-8c9d-0a1b2c3d4e01"
MEDICATION = "urn:uuid:5e1d0c3b-6a2f-4b7e-8c9d-0a1b2c3d4e02"
ACETAMINOPHEN = {
    "coding": [{"system": RXNORM, "code": "313782", "display": "Acetaminophen 325 MG"}],
    "text": "Acetaminophen 325 MG",
}
INHALER = {
    "coding": [{"system": RXNORM, "code": "745679", "display": "albuterol inhaler"}],
    "text": "albuterol inhaler",
}


def prescription(subject: str, reference: str) -> dict[str, Any]:
    return {
        "resourceType": "MedicationRequest",
        "status": "active",
        "intent": "order",
        "medicationReference": {"reference": reference},
        "subject": {"reference": subject},
        "authoredOn": "2026-11-20T09:30:00Z",
        "dosageInstruction": [{"text": "two tablets when needed"}],
    }


def statement(subject: str) -> dict[str, Any]:
    """A MedicationStatement whose drug is a contained Medication."""
    return {
        "resourceType": "MedicationStatement",
        "status": "active",
        "contained": [{"resourceType": "Medication", "id": "inhaler", "code": INHALER}],
        "medicationReference": {"reference": "#inhaler"},
        "subject": {"reference": subject},
        "effectiveDateTime": "2026-11-21T08:00:00Z",
    }


def bundle() -> dict[str, Any]:
    medication = {"resourceType": "Medication", "code": ACETAMINOPHEN, "status": "active"}
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"fullUrl": PATIENT, "resource": patient_body("MRN-MED-1")},
            {"fullUrl": MEDICATION, "resource": medication},
            {"resource": prescription(PATIENT, MEDICATION)},
            {"resource": statement(PATIENT)},
        ],
    }


def post(client: TestClient, body: dict[str, Any]) -> Any:
    for entry in body["entry"]:
        entry["request"] = {"method": "POST", "url": entry["resource"]["resourceType"]}
    return client.post("/fhir", content=json.dumps(body), headers=FHIR)


def test_a_referenced_medication_keeps_its_code_and_comes_back_intact(
    client: TestClient,
) -> None:
    response = post(client, bundle())
    assert response.status_code == 200, response.text
    answers = [e["response"] for e in validated_bundle(response.json())]
    # The Medication entry is not kept on its own; the prescription says what it kept
    assert answers[1]["status"] == "200 OK" and "location" not in answers[1]
    for held in (answers[2], answers[3]):
        assert held["status"] == "201 Created"
        said = held["outcome"]["issue"][0]["diagnostics"]
        assert "medicationReference (the Medication's code kept as medicationCodeableConcept)" in (
            said
        )
    patient_id = answers[0]["location"].split("/")[1]
    under_care(client, patient_id)
    caught_up(client)
    everything = fhir_get(client, f"/fhir/Patient/{patient_id}/$everything")
    found = [r for r in validated(everything.json()) if r["resourceType"] == "MedicationStatement"]
    by_time = sorted(found, key=lambda r: r["effectiveDateTime"])
    # Field by field: the same system, code, display and text as the Medication's
    assert [r["medicationCodeableConcept"] for r in by_time] == [ACETAMINOPHEN, INHALER]
    assert by_time[0]["note"] == [{"text": "two tablets when needed"}]
    assert all("medicationReference" not in r and "contained" not in r for r in found)


def validated_bundle(body: dict[str, Any]) -> list[dict[str, Any]]:
    validated(body)
    entries: list[dict[str, Any]] = body["entry"]
    return entries


def test_a_reference_that_names_nothing_is_refused_naming_the_entry(client: TestClient) -> None:
    before = records_written(client)
    missing = bundle()
    missing["entry"][2]["resource"]["medicationReference"]["reference"] = "urn:uuid:nothing"
    unknown_local = bundle()
    unknown_local["entry"][3]["resource"]["medicationReference"]["reference"] = "#other"
    both = bundle()
    both["entry"][2]["resource"]["medicationCodeableConcept"] = ACETAMINOPHEN
    codeless = bundle()
    del codeless["entry"][3]["resource"]["contained"][0]["code"]
    cases = {
        "Bundle.entry[2].resource.MedicationRequest.medicationReference.reference": missing,
        "Bundle.entry[3].resource.MedicationStatement.medicationReference.reference": (
            unknown_local
        ),
        "Bundle.entry[2].resource.MedicationRequest.medicationReference": both,
        "Bundle.entry[3].resource.MedicationStatement.contained[0].code": codeless,
    }
    for named, body in cases.items():
        refused = outcome(post(client, body), 422)
        assert refused["issue"][0]["diagnostics"].startswith(named), refused
    assert records_written(client) == before
    # A batch's entries stand alone: a Medication entry of the batch is not resolved
    batch = bundle() | {"type": "batch"}
    patient_id = register(client)
    batch["entry"] = [
        batch["entry"][1],
        {"resource": prescription(f"Patient/{patient_id}", MEDICATION)},
    ]
    answered = post(client, batch)
    assert answered.status_code == 200, answered.text
    failed = answered.json()["entry"][1]["response"]
    assert failed["status"].startswith("422")
    assert (
        "MedicationRequest.medicationReference.reference"
        in (failed["outcome"]["issue"][0]["diagnostics"])
    )


def test_a_single_write_resolves_a_contained_medication(client: TestClient) -> None:
    patient_id = register(client)
    under_care(client, patient_id)
    subject = f"Patient/{patient_id}"
    asked = FHIR.with_headers({"Prefer": "return=representation"})
    created = client.post("/fhir/MedicationStatement", json=statement(subject), headers=asked)
    assert created.status_code == 201, created.text
    [read] = validated(created.json())
    assert read["medicationCodeableConcept"] == INHALER
    # What a single write could not keep it refuses: it has no outcome to say so in
    more = statement(subject)
    more["contained"][0]["form"] = {"text": "inhalation aerosol"}
    refused = client.post("/fhir/MedicationStatement", json=more, headers=FHIR)
    assert (
        "MedicationStatement.contained[0].form" in outcome(refused, 422)["issue"][0]["diagnostics"]
    )
