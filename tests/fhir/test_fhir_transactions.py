"""Transaction and batch Bundles: a Synthea-like US Core chart is imported in one
request, all or nothing, and comes back from $everything with every coded value,
quantity, unit, date and reference intact, each resource valid R4B; a refused entry
is named and nothing is written; a batch answers each entry on its own."""

import base64
import copy
import hashlib
import json
from datetime import datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from fastapi.testclient import TestClient

from tests.api.support import AUDITOR, CLINICIAN, records_written, register, under_care
from tests.fhir.bodies import entry_body
from tests.fhir.support import caught_up, fhir_get, outcome, validated

FIXTURE = Path(__file__).parents[1] / "fixtures" / "synthea_like_transaction.json"
FHIR = CLINICIAN.with_headers({"Content-Type": "application/fhir+json"})
TIMES = {"effectiveDateTime", "onsetDateTime", "occurrenceDateTime", "performedDateTime"}
TIMES |= {"start", "date", "authoredOn"}


def chart_bundle() -> dict[str, Any]:
    bundle: dict[str, Any] = json.loads(FIXTURE.read_text())
    return bundle


def post_bundle(client: TestClient, bundle: dict[str, Any], **headers: str) -> Any:
    return client.post("/fhir", content=json.dumps(bundle), headers={**FHIR, **headers})


def instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def same(expected: Any, actual: Any, path: str, patient: str) -> list[str]:
    """Every element the import gave is in the answer with the same value: times as
    the same instant, the Bundle's patient reference as the patient's id."""
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [f"{path}: {actual!r} is not an object"]
        found = []
        for key, value in expected.items():
            if key not in actual:
                found.append(f"{path}.{key}: missing")
            elif key in TIMES:
                if instant(value) != instant(actual[key]):
                    found.append(f"{path}.{key}: {actual[key]} is not {value}")
            elif key == "reference" and value.startswith("urn:uuid:"):
                if actual[key] != f"Patient/{patient}":
                    found.append(f"{path}.reference: {actual[key]}")
            else:
                found += same(value, actual[key], f"{path}.{key}", patient)
        return found
    if isinstance(expected, list):
        if not isinstance(actual, list) or len(actual) != len(expected):
            return [f"{path}: {actual!r} is not {expected!r}"]
        return [
            p
            for i, (e, a) in enumerate(zip(expected, actual, strict=True))
            for p in same(e, a, f"{path}[{i}]", patient)
        ]
    return [] if expected == actual else [f"{path}: {actual!r} is not {expected!r}"]


def as_read_back(resource: dict[str, Any]) -> dict[str, Any]:
    """What an imported resource is read back as (docs/fhir.md, "Transactions")."""
    kind = resource["resourceType"]
    if kind == "MedicationRequest":
        return {
            "resourceType": "MedicationStatement",
            "status": "active",
            "medicationCodeableConcept": resource["medicationCodeableConcept"],
            "subject": resource["subject"],
            "effectiveDateTime": resource["authoredOn"],
            "note": [{"text": resource["dosageInstruction"][0]["text"]}],
        }
    if kind == "DiagnosticReport":
        return {
            "resourceType": "DocumentReference",
            "type": resource["code"],
            "subject": resource["subject"],
            "date": resource["effectiveDateTime"],
        }
    found = copy.deepcopy(resource)
    found.get("meta", {}).pop("profile", None)
    if found.get("meta") == {}:
        del found["meta"]
    return found


def test_a_synthea_like_chart_imports_in_one_transaction_and_comes_back_intact(
    client: TestClient,
) -> None:
    bundle = chart_bundle()
    # When a clinician posts the chart as a transaction
    response = post_bundle(client, bundle)
    assert response.status_code == 200, response.text
    answer = response.json()
    validated(answer)
    assert answer["type"] == "transaction-response"
    locations = [e["response"]["location"] for e in answer["entry"]]
    assert len(locations) == len(bundle["entry"])
    assert all(e["response"]["status"] == "201 Created" for e in answer["entry"])
    patient_id = locations[0].split("/")[1]
    under_care(client, patient_id)
    caught_up(client)
    # Then $everything gives every resource back, valid R4B
    everything = fhir_get(client, f"/fhir/Patient/{patient_id}/$everything", {"_count": 200}).json()
    by_id = {(r["resourceType"], r["id"]): r for r in validated(everything)}
    problems = []
    for entry, location in zip(bundle["entry"], locations, strict=True):
        kind, found, *_ = location.split("/")
        actual = by_id.get((kind, found))
        if actual is None:
            problems.append(f"{location}: not in $everything")
            continue
        expected = as_read_back(entry["resource"])
        problems += same(expected, actual, location, patient_id)
    assert not problems, "\n".join(problems)
    # And the report's note names its results
    report = by_id[tuple(locations[9].split("/")[:2])]  # type: ignore[index]
    text = base64.b64decode(report["content"][0]["attachment"]["data"]).decode()
    assert text.startswith("Lipid panel") and "Triglycerides" in text
    # And the transaction's access record holds the digest of the answer's bytes
    record = client.get(f"/v1/audit/accesses/{response.headers['X-Access-Id']}", headers=AUDITOR)
    assert record.status_code == 200, record.text
    assert record.json()["action"] == "write" and record.json()["patient_id"] == patient_id
    assert record.json()["response_sha256"] == hashlib.sha256(response.content).hexdigest()


def test_a_refused_entry_names_its_index_and_nothing_is_written(client: TestClient) -> None:
    bundle = chart_bundle()
    observation = bundle["entry"][5]["resource"]
    # An element of a held resource that is neither kept nor listed as not kept
    observation["interpretation"] = [{"text": "high"}]
    before = records_written(client)
    refused = outcome(post_bundle(client, bundle), 422)
    diagnostics = refused["issue"][0]["diagnostics"]
    assert "Bundle.entry[5].resource.Observation.interpretation" in diagnostics
    assert records_written(client) == before
    # An encounter that names another kind of entry of the Bundle is refused
    del observation["interpretation"]
    observation["encounter"] = {"reference": bundle["entry"][2]["fullUrl"]}
    refused = outcome(post_bundle(client, bundle), 422)
    diagnostics = refused["issue"][0]["diagnostics"]
    assert "Bundle.entry[5].resource.Observation.encounter" in diagnostics
    assert records_written(client) == before
    # An entry whose subject is no Patient of the Bundle is refused too
    del bundle["entry"][5]["resource"]["encounter"]
    bundle["entry"][1]["resource"]["subject"] = {"reference": "urn:uuid:nobody"}
    refused = outcome(post_bundle(client, bundle), 422)
    assert "Bundle.entry[1]" in refused["issue"][0]["diagnostics"]
    # And a transaction of nothing writes nothing
    empty = {"resourceType": "Bundle", "type": "transaction"}
    assert "Bundle.entry" in outcome(post_bundle(client, empty), 422)["issue"][0]["diagnostics"]
    assert records_written(client) == before


def test_a_retried_transaction_answers_as_the_first_and_writes_once(client: TestClient) -> None:
    bundle = chart_bundle()
    first = post_bundle(client, bundle, **{"Idempotency-Key": "chart-once"})
    written = records_written(client)
    second = post_bundle(client, bundle, **{"Idempotency-Key": "chart-once"})
    assert second.status_code == 200 and second.content == first.content
    assert records_written(client) == written
    # The same MRN again, without the key, is a conflict: one chart per MRN
    assert post_bundle(client, bundle).status_code == 409


def test_a_retry_that_raced_past_the_lookup_is_answered_as_the_first(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two requests with one Idempotency-Key, the second looking it up before the first
    committed: its own commit is refused by the claim, and it is answered as the first
    was, disclosed again with one access record, never a 500."""
    bundle = chart_bundle()
    first = post_bundle(client, bundle, **{"Idempotency-Key": "chart-race"})
    container = client.app.state.container  # type: ignore[attr-defined]
    written, disclosed = records_written(client), access_records(client)
    ledger, lookups = container.ledger, []
    repeated = ledger.repeated

    def before_the_first_committed(ctx: Any) -> Any:
        lookups.append(ctx)
        return None if len(lookups) == 1 else repeated(ctx)

    monkeypatch.setattr(ledger, "repeated", before_the_first_committed)
    # nor had the first chart's MRN reached the directory
    monkeypatch.setattr(container.patients, "_check_unclaimed", lambda *_: None)
    second = post_bundle(client, bundle, **{"Idempotency-Key": "chart-race"})
    assert second.status_code == 200 and second.content == first.content
    assert len(lookups) == 2  # the lookup that missed, and the answer from the claim
    assert records_written(client) == written
    assert access_records(client) == disclosed + 1


def access_records(client: TestClient) -> int:
    recorder = client.app.state.container.ledger.recorder  # type: ignore[attr-defined]
    notifications = recorder.select_notifications(start=1, limit=1_000_000)
    return sum(1 for n in notifications if n.topic == "domain.access_record:AccessRecord.Recorded")


def test_a_transaction_adds_to_an_existing_chart(client: TestClient) -> None:
    patient_id = register(client)
    under_care(client, patient_id)
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "resource": entry_body(kind, patient_id, f"imported {kind}"),
                "request": {"method": "POST", "url": kind},
            }
            for kind in ("Observation", "Condition", "DocumentReference")
        ],
    }
    response = post_bundle(client, bundle)
    assert response.status_code == 200, response.text
    versions = [int(e["response"]["etag"][3:-1]) for e in response.json()["entry"]]
    assert versions == sorted(versions) and len(set(versions)) == 3
    caught_up(client)
    everything = fhir_get(client, f"/fhir/Patient/{patient_id}/$everything").json()
    kinds = [e["resource"]["resourceType"] for e in everything["entry"]]
    assert {"Observation", "Condition", "DocumentReference"} <= set(kinds)


def test_a_batch_answers_each_entry_on_its_own(client: TestClient) -> None:
    patient_id = register(client)
    under_care(client, patient_id)
    good = entry_body("Observation", patient_id, "fine")
    bad = {**entry_body("Observation", patient_id, "refused"), "interpretation": []}
    bundle = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            {"resource": good, "request": {"method": "POST", "url": "Observation"}},
            {"resource": bad, "request": {"method": "POST", "url": "Observation"}},
            {
                "resource": entry_body("Condition", str(UUID(int=7)), "nobody's"),
                "request": {"method": "POST", "url": "Condition"},
            },
        ],
    }
    response = post_bundle(client, bundle)
    assert response.status_code == 200, response.text
    answer = response.json()
    validated(answer)
    statuses = [e["response"]["status"] for e in answer["entry"]]
    assert statuses == ["201 Created", "422 Unprocessable Entity", "404 Not Found"]
    diagnostics = answer["entry"][1]["response"]["outcome"]["issue"][0]["diagnostics"]
    assert "Bundle.entry[1]" in diagnostics and "interpretation" in diagnostics
    caught_up(client)
    found = fhir_get(client, "/fhir/Observation", {"patient": patient_id}).json()
    assert found["total"] == 1


def leaves(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """The path of every scalar in a JSON value."""
    if isinstance(value, dict):
        return [p for key, item in value.items() for p in leaves(item, (*path, key))]
    if isinstance(value, list):
        return [p for i, item in enumerate(value) for p in leaves(item, (*path, i))]
    return [path]


def test_an_element_of_the_wrong_json_type_is_refused_by_its_entry_never_a_500(
    client: TestClient,
) -> None:
    """An object where a code belongs, a number where a string does, anywhere in a
    chart's entries: never a 500; a refusal names the entry and writes nothing."""
    original = chart_bundle()
    # Every other scalar of the entries, in turn an object and a number (about 90 posts)
    paths = [p for p in leaves(original["entry"]) if p[1] == "resource"][::2]
    assert len(paths) > 80
    accepted = []
    for n, path in enumerate(paths):
        bundle = copy.deepcopy(original)
        bundle["entry"][0]["resource"]["identifier"][0]["value"] += f"-{n}"  # a new patient
        parent = bundle["entry"]
        for key in path[:-1]:
            parent = parent[key]
        parent[path[-1]] = {"x": 1} if n % 2 == 0 else 7
        before = records_written(client)
        answer = post_bundle(client, bundle)
        assert answer.status_code in {200, 400, 422}, (path, answer.status_code, answer.text)
        if answer.status_code == 200:
            accepted.append(path)  # an element the chart does not keep, as its note says
            continue
        diagnostics = outcome(answer, answer.status_code)["issue"][0]["diagnostics"]
        assert f"Bundle.entry[{path[0]}]" in diagnostics, path
        assert records_written(client) == before
    assert len(accepted) < len(paths) / 4, accepted
    # And in a batch, such an entry fails alone, named, while the others are written
    batch = copy.deepcopy(original)
    batch["type"] = "batch"
    batch["entry"][0]["resource"]["identifier"][0]["value"] += "-batch"
    batch["entry"][5]["resource"]["status"] = {"x": 1}
    answer = post_bundle(client, batch)
    assert answer.status_code == 200, answer.text
    responses = [entry["response"] for entry in answer.json()["entry"]]
    assert responses[5]["status"].startswith("4"), responses[5]
    assert "Bundle.entry[5]" in responses[5]["outcome"]["issue"][0]["diagnostics"]
    assert responses[0]["status"].startswith("201"), responses[0]
