"""FHIR reads and searches: a clinician reads a chart of every kind as valid R4B
resources, hidden entries are absent and uncounted, paging follows Bundle.link next,
errors are OperationOutcomes, and every disclosure replays byte for byte."""

import base64
import hashlib
from typing import Any

import orjson
from fastapi.testclient import TestClient

from tests.api.support import (
    ADMIN,
    AUDITOR,
    CLINICIAN,
    GRANT_BODY,
    OUTSIDER,
    UNKNOWN_ID,
    patient_token,
    record_entry,
    register,
    under_care,
)
from tests.conftest import REGISTER_BODY
from tests.fhir.support import (
    ASTHMA,
    PANIC,
    caught_up,
    fhir_get,
    full_chart,
    next_url,
    outcome,
    resource_id,
    validated,
)

ENTRY_TYPES = [
    "Observation",
    "Encounter",
    "Condition",
    "AllergyIntolerance",
    "MedicationStatement",
    "Immunization",
    "Procedure",
    "DocumentReference",
]


def replayed(client: TestClient, access_id: str) -> dict[str, Any]:
    response = client.post(f"/v1/audit/accesses/{access_id}/replay", headers=AUDITOR)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def assert_replays(client: TestClient, response: Any) -> None:
    """The response's access record rebuilds its exact bytes."""
    replay = replayed(client, response.headers["X-Access-Id"])
    assert replay["matches"] is True, replay
    assert replay["replayed_sha256"] == hashlib.sha256(response.content).hexdigest()
    assert orjson.dumps(replay["body"]) == response.content


def test_metadata_is_a_capability_statement_served_without_a_token(client: TestClient) -> None:
    response = client.get("/fhir/metadata")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/fhir+json")
    [statement] = validated(response.json())
    assert statement["fhirVersion"] == "4.3.0"
    served = {r["type"] for r in statement["rest"][0]["resource"]}
    served_types = {"Patient", "Coverage", "Consent", "AuditEvent", "Provenance", "Group"}
    assert served == {*served_types, *ENTRY_TYPES}
    # FHIR describes itself: none of its routes is in the /v1 OpenAPI document
    paths = client.get("/openapi.json").json()["paths"]
    assert not [path for path in paths if path.startswith("/fhir")]


def test_a_clinician_reads_every_kind_as_valid_r4b_and_each_read_replays(
    client: TestClient,
) -> None:
    patient_id, ids = full_chart(client)
    caught_up(client)
    found: dict[str, list[dict[str, Any]]] = {}
    for kind in ENTRY_TYPES:
        response = fhir_get(client, f"/fhir/{kind}", {"patient": patient_id})
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("application/fhir+json")
        found[kind] = validated(response.json())
        assert_replays(client, response)
    # Observations: vital signs and laboratory, quantities in UCUM
    by_code = {o["code"]["coding"][0]["code"]: o for o in found["Observation"]}
    heart, glucose = by_code["8867-4"], by_code["2339-0"]
    assert heart["category"][0]["coding"][0]["code"] == "vital-signs"
    assert glucose["category"][0]["coding"][0]["code"] == "laboratory"
    assert heart["valueQuantity"] == {
        "value": 72,
        "unit": "/min",
        "system": "http://unitsofmeasure.org",
        "code": "/min",
    }
    assert glucose["valueQuantity"]["value"] == 5.4
    assert heart["status"] == "final"
    assert heart["subject"] == {"reference": f"Patient/{patient_id}"}
    assert heart["id"] == resource_id(patient_id, ids["heart"])
    # Encounters: class from the modality
    classes = sorted(e["class"]["code"] for e in found["Encounter"])
    assert classes == ["HH", "VR"]
    # The mental-health condition is hidden from a clinician without the patient's
    # directive: left out, not masked, and not counted
    conditions = client.get(
        "/fhir/Condition", params={"patient": patient_id}, headers=CLINICIAN
    ).json()
    assert [c["code"]["coding"][0]["code"] for c in found["Condition"]] == ["195967001"]
    assert conditions["total"] == 1
    assert "Panic" not in orjson.dumps(conditions).decode()
    for kind in ENTRY_TYPES[3:]:
        assert len(found[kind]) == 1, kind
    note = found["DocumentReference"][0]
    assert base64.b64decode(note["content"][0]["attachment"]["data"]) == b"Feeling better."
    # The patient reads their own chart too, through the same policy
    own = fhir_get(client, "/fhir/Observation", {"patient": patient_id}, patient_token(patient_id))
    assert own.status_code == 200, own.text
    assert {o["id"] for o in validated(own.json())} == {o["id"] for o in found["Observation"]}
    # A read by id is the same resource, and replays too
    read = fhir_get(client, f"/fhir/Observation/{heart['id']}")
    assert read.status_code == 200, read.text
    assert read.json() == heart
    assert_replays(client, read)
    # The hidden entry cannot be read by id either: not found, as an unknown one
    panic = resource_id(patient_id, ids["panic"])
    outcome(fhir_get(client, f"/fhir/Condition/{panic}"), 404)
    # Nor is an entry found under another resource type
    outcome(fhir_get(client, f"/fhir/Encounter/{heart['id']}"), 404)


def test_search_parameters_narrow_by_category_code_and_date(client: TestClient) -> None:
    patient_id, _ = full_chart(client)
    caught_up(client)

    def codes(kind: str, **params: str) -> list[str]:
        response = fhir_get(client, f"/fhir/{kind}", {"patient": patient_id, **params})
        assert response.status_code == 200, response.text
        return [r["code"]["coding"][0]["code"] for r in validated(response.json())]

    assert codes("Observation", category="laboratory") == ["2339-0"]
    assert codes("Observation", category="vital-signs") == ["8867-4"]
    assert codes("Observation", code="http://loinc.org|2339-0") == ["2339-0"]
    assert codes("Observation", code="8867-4,2339-0") == ["8867-4", "2339-0"]
    assert codes("Observation", code="http://snomed.info/sct|2339-0") == []
    assert codes("Observation", date="2026-11-21") == ["2339-0"]
    assert codes("Observation", date="le2026-11-20") == ["8867-4"]
    assert codes("Observation", date="gt2026-11-20T09:30:00Z") == ["2339-0"]
    assert codes("Observation", date="2026-10") == []
    encounters = fhir_get(
        client,
        "/fhir/Encounter",
        [("patient", patient_id), ("date", "ge2026-11-20"), ("date", "lt2026-12")],
    )
    assert [e["class"]["code"] for e in validated(encounters.json())] == ["HH"]


def test_observation_paging_follows_next_links_and_each_page_replays(client: TestClient) -> None:
    patient_id, _ = full_chart(client)
    caught_up(client)
    response = fhir_get(client, "/fhir/Observation", {"patient": patient_id, "_count": 1})
    seen = []
    while True:
        assert response.status_code == 200, response.text
        bundle = response.json()
        seen += [r["id"] for r in validated(bundle)]
        assert_replays(client, response)
        url = next_url(bundle)
        if url is None:
            break
        assert "total" not in bundle  # not the whole result: not counted
        assert url.startswith("http://testserver/fhir/Observation?")
        response = client.get(url, headers=CLINICIAN)
    assert len(seen) == len(set(seen)) == 2


def test_patients_are_found_by_id_identifier_and_name_and_paged(client: TestClient) -> None:
    first = register(client)
    second = register(
        client, {**REGISTER_BODY, "mrn": "MRN-0002", "name": {"given": "Bo", "family": "Example"}}
    )
    caught_up(client)
    read = fhir_get(client, f"/fhir/Patient/{first}")
    assert read.status_code == 200, read.text
    [patient] = validated(read.json())
    assert patient["identifier"][0]["value"] == "MRN-0001"
    assert patient["gender"] == "female" and patient["birthDate"] == "1984-07-12"
    assert read.headers["etag"] == 'W/"1"'
    assert_replays(client, read)
    by_id = fhir_get(client, "/fhir/Patient", {"_id": first})
    assert [p["id"] for p in validated(by_id.json())] == [first]
    assert_replays(client, by_id)
    by_mrn = fhir_get(client, "/fhir/Patient", {"identifier": "MRN-0002"})
    assert [p["id"] for p in validated(by_mrn.json())] == [second]
    system = patient["identifier"][0]["system"]
    in_system = fhir_get(client, "/fhir/Patient", {"identifier": f"{system}|MRN-0002"})
    assert [p["id"] for p in validated(in_system.json())] == [second]
    elsewhere = fhir_get(client, "/fhir/Patient", {"identifier": "urn:example:other|MRN-0002"})
    assert elsewhere.json()["total"] == 0 and "entry" not in elsewhere.json()
    no_system = fhir_get(client, "/fhir/Patient", {"identifier": "|MRN-0002"})
    assert no_system.json()["total"] == 0
    assert_replays(client, by_mrn)
    # Two of the same family and birth date: one page, whose links and access record
    # keep nothing of what was searched for
    params = {"family": "Example", "birthdate": "1984-07-12", "_count": 2}
    page = fhir_get(client, "/fhir/Patient", params)
    ids = [p["id"] for p in validated(page.json())]
    assert sorted(ids) == sorted([first, second])
    assert next_url(page.json()) is None
    links = " ".join(link["url"] for link in page.json()["link"])
    assert "Example" not in links and "1984" not in links and "MRN" not in by_mrn.text
    record = client.get(f"/v1/audit/accesses/{page.headers['x-access-id']}", headers=AUDITOR).json()
    assert "Example" not in str(record) and "1984-07-12" not in str(record)
    assert_replays(client, page)
    # More matches than _count is a 422 that says how to narrow, never a silent cut
    too_many = fhir_get(client, "/fhir/Patient", {**params, "_count": 1})
    assert "narrow the search" in str(outcome(too_many, 422))
    # The search hit says who the patient is, nothing more (as /v1's search)
    assert set(page.json()["entry"][0]["resource"]) == {"resourceType", "id", "name", "birthDate"}


def test_errors_are_operation_outcomes_with_the_right_status(client: TestClient) -> None:
    patient_id = register(client)
    unauthenticated = client.get(f"/fhir/Patient/{patient_id}")
    outcome(unauthenticated, 401)
    assert unauthenticated.headers["www-authenticate"].startswith("Bearer")
    assert "X-Access-Id" not in unauthenticated.headers
    outcome(fhir_get(client, f"/fhir/Patient/{UNKNOWN_ID}"), 404)
    outcome(fhir_get(client, f"/fhir/Patient/{patient_id}", headers=OUTSIDER), 404)
    outcome(fhir_get(client, "/fhir/Observation", {"patient": patient_id}, headers=ADMIN), 403)
    outcome(fhir_get(client, "/fhir/Observation", {"patient": patient_id, "foo": "1"}), 422)
    outcome(fhir_get(client, "/fhir/Observation", {"patient": patient_id, "date": "soon"}), 422)
    outcome(fhir_get(client, "/fhir/Observation", {"code": "8867-4"}), 422)
    outcome(fhir_get(client, "/fhir/Patient", {"family": "Example"}), 422)
    outcome(fhir_get(client, "/fhir/Nonsense"), 404)
    as_json = fhir_get(client, f"/fhir/Patient/{patient_id}", {"_format": "application/json"})
    assert as_json.headers["content-type"].startswith("application/json")
    outcome(fhir_get(client, f"/fhir/Patient/{patient_id}", {"_format": "xml"}), 406)


def test_an_amended_entry_is_amended_and_one_in_error_entered_in_error(client: TestClient) -> None:
    patient_id, ids = full_chart(client)
    base = f"/v1/patients/{patient_id}/entries"
    amended = client.post(
        f"{base}/{ids['heart']}/amendments",
        json={"reason": "misread", "value": {"quantity": 74, "unit": "/min"}},
        headers=CLINICIAN,
    )
    assert amended.status_code == 201, amended.text
    wrong = client.post(
        f"{base}/{ids['procedure']}/entered-in-error",
        json={"reason": "wrong chart"},
        headers=CLINICIAN,
    )
    assert wrong.status_code == 201, wrong.text
    caught_up(client)
    [heart] = validated(
        fhir_get(client, "/fhir/Observation", {"patient": patient_id, "code": "8867-4"}).json()
    )
    assert heart["status"] == "amended" and heart["valueQuantity"]["value"] == 74
    [procedure] = validated(fhir_get(client, "/fhir/Procedure", {"patient": patient_id}).json())
    assert procedure["status"] == "entered-in-error"


def test_a_labelled_entry_the_patient_consented_to_carries_its_security_label(
    client: TestClient,
) -> None:
    patient_id, ids = full_chart(client)
    directive = {**GRANT_BODY, "grantee": "org:org-main", "labels": ["mental_health"]}
    granted = client.post(
        f"/v1/patients/{patient_id}/consents", json=directive, headers=patient_token(patient_id)
    )
    assert granted.status_code == 201, granted.text
    caught_up(client)
    response = fhir_get(client, "/fhir/Condition", {"patient": patient_id})
    conditions = {c["id"]: c for c in validated(response.json())}
    assert response.json()["total"] == 2
    panic = conditions[resource_id(patient_id, ids["panic"])]
    assert panic["meta"]["security"] == [
        {
            "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
            "code": "MH",
            "display": "mental health information sensitivity",
        }
    ]
    assert "meta" not in conditions[resource_id(patient_id, ids["asthma"])]
    assert_replays(client, response)


def test_hidden_entries_between_pages_are_neither_shown_nor_counted(client: TestClient) -> None:
    patient_id = register(client)
    under_care(client, patient_id)
    for day in range(1, 6):
        labelled = day % 2 == 0  # the 2nd and 4th are hidden from the clinician
        record_entry(
            client,
            patient_id,
            {
                **(PANIC if labelled else ASTHMA),
                "effective_at": f"2026-11-0{day}T10:00:00Z",
            },
        )
    caught_up(client)
    response = fhir_get(client, "/fhir/Condition", {"patient": patient_id, "_count": 2})
    pages, shown = [], []
    while True:
        bundle = response.json()
        pages.append(bundle)
        shown += [r["onsetDateTime"][:10] for r in validated(bundle)]
        assert_replays(client, response)
        url = next_url(bundle)
        if url is None:
            break
        response = client.get(url, headers=CLINICIAN)
    assert shown == ["2026-11-01", "2026-11-03", "2026-11-05"]
    assert "Panic" not in str(pages)
    # No page claims a total: only a one-page result is counted, and never a hidden entry
    assert [("total" in page) for page in pages] == [False, False]
    whole = fhir_get(client, "/fhir/Condition", {"patient": patient_id}).json()
    assert whole["total"] == 3
