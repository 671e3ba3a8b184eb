"""A Synthea-shaped US Core transaction Bundle imports: every entry is kept, partly
kept (the response names what was not), or accepted and not kept (the response says
why), as docs/fhir.md's Import table says; none is dropped silently. What the chart
keeps comes back from $everything field by field: codes, quantities, units, dates,
the encounter each entry happened in (the same reference on every read) and the
practitioners, organisations and locations it names, by identifier and name."""

import base64
import copy
import json
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from application.fhir.imports import trimmed
from tests.api.support import CLINICIAN, records_written, register, under_care
from tests.fhir.support import caught_up, fhir_get, outcome, validated

FIXTURE = Path(__file__).parents[1] / "fixtures" / "synthea_us_core_transaction.json"
FHIR = CLINICIAN.with_headers({"Content-Type": "application/fhir+json"})
NPI = "http://hl7.org/fhir/sid/us-npi"
SYNTHEA = "https://github.com/synthetichealth/synthea"
NOT_HELD = {
    "Organization",
    "Location",
    "Practitioner",
    "CareTeam",
    "CarePlan",
    "Device",
    "SupplyDelivery",
    "Claim",
    "ExplanationOfBenefit",
    "Provenance",
}
# What each imported type is read back as, and the elements of its code and time.
READ_AS = {
    "Encounter": ("Encounter", "type.0", "period.start"),
    "Observation": ("Observation", "code", "effectiveDateTime"),
    "Condition": ("Condition", "code", "onsetDateTime"),
    "AllergyIntolerance": ("AllergyIntolerance", "code", "onsetDateTime"),
    "MedicationRequest": ("MedicationStatement", "medicationCodeableConcept", "effectiveDateTime"),
    "Immunization": ("Immunization", "vaccineCode", "occurrenceDateTime"),
    "Procedure": ("Procedure", "code", "performedDateTime"),
    "DiagnosticReport": ("DocumentReference", "type", "date"),
    "DocumentReference": ("DocumentReference", "type", "date"),
}
# Where the imported resource has its time, when not where it is read back.
IMPORTED_TIME = {
    "Encounter": "period.start",
    "AllergyIntolerance": "recordedDate",
    "MedicationRequest": "authoredOn",
    "Procedure": "performedPeriod.start",
    "DiagnosticReport": "effectiveDateTime",
}
IMPORTED_CODE = {"Encounter": "type.0", "DiagnosticReport": "code"}
# Where an imported encounter reference is, and where it is read back.
ENCOUNTER_AT = {
    "Observation": ("encounter", "encounter"),
    "Condition": ("encounter", "encounter"),
    "MedicationRequest": ("encounter", "context"),
    "Immunization": ("encounter", "encounter"),
    "Procedure": ("encounter", "encounter"),
    "DiagnosticReport": ("encounter", "context.encounter.0"),
    "DocumentReference": ("context.encounter.0", "context.encounter.0"),
}
# Who took part: (imported at, read back at, type named).
PARTIES = {
    "Encounter": [
        ("participant.0.individual", "participant.0.individual", "Practitioner"),
        ("location.0.location", "location.0.location", "Location"),
        ("serviceProvider", "serviceProvider", "Organization"),
    ],
    "MedicationRequest": [("requester", "informationSource", "Practitioner")],
    "Immunization": [("location", "location", "Location")],
    "Procedure": [("location", "location", "Location")],
    "DiagnosticReport": [("performer.0", "author.0", "Practitioner")],
    "DocumentReference": [
        ("author.0", "author.0", "Practitioner"),
        ("custodian", "custodian", "Organization"),
    ],
}


def synthea_bundle() -> dict[str, Any]:
    bundle: dict[str, Any] = json.loads(FIXTURE.read_text())
    return bundle


def post_bundle(client: TestClient, bundle: dict[str, Any]) -> Any:
    return client.post("/fhir", content=json.dumps(bundle), headers=FHIR)


def at(resource: Any, path: str) -> Any:
    for step in path.split("."):
        resource = resource[int(step)] if step.isdigit() else resource[step]
    return resource


def maybe(resource: Any, path: str) -> Any:
    try:
        return at(resource, path)
    except (KeyError, IndexError):
        return None


def instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def directory(bundle: dict[str, Any]) -> dict[str, tuple[str, str, str]]:
    """What a reference to each practitioner, organisation and location must keep:
    (type, identifier system, identifier value), by every way the Bundle names it."""
    found = {}
    for entry in bundle["entry"]:
        resource = entry["resource"]
        kind = resource["resourceType"]
        if kind in {"Practitioner", "Organization", "Location"}:
            identifier = resource["identifier"][0]
            named = (kind, identifier["system"], identifier["value"])
            found[entry["fullUrl"]] = named
            found[f"{kind}?identifier={identifier['system']}|{identifier['value']}"] = named
    return found


def test_a_synthea_chart_imports_and_every_entry_says_what_was_kept(client: TestClient) -> None:
    bundle = synthea_bundle()
    # When a clinician posts Synthea's transaction Bundle
    response = post_bundle(client, bundle)
    assert response.status_code == 200, response.text
    answer = response.json()
    validated(answer)
    assert len(answer["entry"]) == len(bundle["entry"])
    # Then each entry's response says what became of it, in the Bundle's order
    for entry, answered in zip(bundle["entry"], answer["entry"], strict=True):
        kind, reply = entry["resource"]["resourceType"], answered["response"]
        issue = reply.get("outcome", {}).get("issue", [{}])[0]
        stopped = entry["resource"].get("status") == "stopped"
        social = kind == "Observation" and "social-history" in json.dumps(entry["resource"])
        if kind in NOT_HELD or stopped or social:
            # Accepted and not kept: no location, a warning saying why
            assert reply["status"] == "200 OK" and "location" not in reply, reply
            assert issue["severity"] == "warning" and issue["code"] == "not-supported"
            assert issue["diagnostics"].startswith(f"{kind} is not kept: "), issue
        else:
            assert reply["status"] == "201 Created", reply
            assert reply["location"].split("/")[0] == READ_AS.get(kind, (kind,))[0]
            # Synthea's resources all carry something the chart does not keep
            assert issue["severity"] == "information", reply
            assert issue["diagnostics"].startswith("not kept: "), issue
    notes = {
        i: e["response"]["outcome"]["issue"][0]["diagnostics"]
        for i, e in enumerate(answer["entry"])
    }
    assert "billing is outside the chart" in notes[27]
    assert "not social-history" in notes[13]
    assert "Encounter.class (EMER: kept as AMB" in notes[29] and "Encounter.period.end" in notes[29]
    assert "Patient.extension" in notes[3] and "Patient.address" in notes[3]
    assert "Procedure.performedPeriod" in notes[20]


def test_the_imported_chart_comes_back_field_by_field(client: TestClient) -> None:
    bundle = synthea_bundle()
    response = post_bundle(client, bundle)
    assert response.status_code == 200, response.text
    replies = [e["response"] for e in response.json()["entry"]]
    where = {
        entry["fullUrl"]: reply["location"].split("/_history")[0]
        for entry, reply in zip(bundle["entry"], replies, strict=True)
        if "location" in reply
    }
    patient_id = where[bundle["entry"][3]["fullUrl"]].split("/")[1]
    under_care(client, patient_id)
    caught_up(client)
    everything = fhir_get(client, f"/fhir/Patient/{patient_id}/$everything", {"_count": 200})
    assert everything.status_code == 200, everything.text
    by_ref = {f"{r['resourceType']}/{r['id']}": r for r in validated(everything.json())}
    named = directory(bundle)
    problems: list[str] = []

    def check(label: str, expected: Any, actual: Any) -> None:
        if expected != actual:
            problems.append(f"{label}: {actual!r} is not {expected!r}")

    # The Patient: the MRN is the identifier typed MR; name, sex, birth date, phone
    patient = by_ref[f"Patient/{patient_id}"]
    imported = bundle["entry"][3]["resource"]
    mrn = imported["identifier"][1]
    check(
        "Patient.identifier",
        [{"system": mrn["system"], "value": mrn["value"]}],
        patient["identifier"],
    )
    check("Patient.name", [{"family": "Lang846", "given": ["Dianna947"]}], patient["name"])
    check("Patient.gender", imported["gender"], patient["gender"])
    check("Patient.birthDate", imported["birthDate"], patient["birthDate"])
    check("Patient.telecom", [{"system": "phone", "value": "555-473-9165"}], patient["telecom"])
    held = [(e, where[e["fullUrl"]]) for e in bundle["entry"] if e["fullUrl"] in where]
    assert len(held) == 20  # 32 entries, 12 of them not kept
    for entry, reference in held:
        source, kind = entry["resource"], entry["resource"]["resourceType"]
        if kind == "Patient":
            continue
        read = by_ref.get(reference)
        if read is None:
            problems.append(f"{reference}: not in $everything")
            continue
        read_as, code_at, time_at = READ_AS[kind]
        label = f"{entry['fullUrl'][-4:]} {kind}"
        check(f"{label} type", read_as, read["resourceType"])
        # Every coded value: the code's first coding, exactly
        code = at(source, IMPORTED_CODE.get(kind, code_at))["coding"][0]
        check(f"{label} code", [code], at(read, code_at)["coding"])
        # Every date: the same instant
        expected_time = instant(at(source, IMPORTED_TIME.get(kind, time_at)))
        check(f"{label} time", expected_time, instant(at(read, time_at)))
        check(
            f"{label} subject",
            f"Patient/{patient_id}",
            at(read, "patient" if kind in {"AllergyIntolerance", "Immunization"} else "subject")[
                "reference"
            ],
        )
        # Every quantity and unit: value, unit, system and code, a panel's too
        for element in ("valueQuantity", "valueCodeableConcept", "component"):
            if element in source:
                check(f"{label} {element}", source[element], read.get(element))
        # The encounter: the encounter entry of the same Bundle, on every read
        if kind in ENCOUNTER_AT:
            imported_at, read_at = ENCOUNTER_AT[kind]
            encounter = where[at(source, imported_at)["reference"]]
            check(f"{label} encounter", {"reference": encounter}, at(read, read_at))
        # Who took part: the identifier and name, whichever way the Bundle named them
        for imported_at, read_at, party in PARTIES.get(kind, []):
            given = maybe(source, imported_at)
            if given is None:  # then none is read back either
                check(f"{label} {read_at}", None, maybe(read, read_at))
                continue
            party_type, system, value = named[given["reference"]]
            expected = {"type": party_type, "identifier": {"system": system, "value": value}}
            expected["display"] = given["display"]
            check(f"{label} {read_at}", party, party_type)
            check(f"{label} {read_at}", expected, at(read, read_at))
    assert not problems, "\n".join(problems)
    # The reports are notes: the lipid panel names its results, the clinical note is its text
    lipid = by_ref[where[bundle["entry"][14]["fullUrl"]]]
    text = base64.b64decode(lipid["content"][0]["attachment"]["data"]).decode()
    assert text.startswith("Lipid panel with direct LDL") and "Triglycerides" in text
    note = by_ref[where[bundle["entry"][21]["fullUrl"]]]
    presented = bundle["entry"][21]["resource"]["presentedForm"][0]["data"]
    assert note["content"][0]["attachment"]["data"] == presented
    # An entry read on its own names the same encounter, and a client can write it back
    vital = where[bundle["entry"][5]["fullUrl"]]
    alone = fhir_get(client, f"/fhir/{vital}")
    assert alone.json()["encounter"] == by_ref[vital]["encounter"]
    put = client.put(
        f"/fhir/{vital}",
        content=json.dumps(alone.json()),
        headers={**FHIR, "If-Match": replies[5]["etag"]},
    )
    assert put.status_code == 200, put.text
    caught_up(client)
    again = fhir_get(client, f"/fhir/{vital}").json()
    assert again["encounter"] == alone.json()["encounter"]
    assert again["valueQuantity"] == alone.json()["valueQuantity"] and again["status"] == "amended"


def test_a_bundle_of_practitioners_only_writes_nothing_and_says_so(client: TestClient) -> None:
    # Synthea's practitionerInformation and hospitalInformation Bundles
    bundle = synthea_bundle()
    bundle["entry"] = bundle["entry"][:3]
    before = records_written(client)
    response = post_bundle(client, bundle)
    assert response.status_code == 200, response.text
    validated(response.json())
    replies = [e["response"] for e in response.json()["entry"]]
    assert [r["status"] for r in replies] == ["200 OK"] * 3
    assert all("not kept" in r["outcome"]["issue"][0]["diagnostics"] for r in replies)
    assert "X-Access-Id" not in response.headers
    assert records_written(client) == before


def test_what_the_chart_cannot_name_is_refused_naming_the_entry(client: TestClient) -> None:
    before = records_written(client)
    # A practitioner by a literal id: this server holds no Practitioner to resolve it
    bundle = synthea_bundle()
    bundle["entry"][17]["resource"]["requester"] = {"reference": "Practitioner/123"}
    refused = outcome(post_bundle(client, bundle), 422)
    diagnostics = refused["issue"][0]["diagnostics"]
    assert "Bundle.entry[17].resource.MedicationRequest.requester.reference" in diagnostics
    # An organisation where a practitioner is meant
    bundle = synthea_bundle()
    bundle["entry"][4]["resource"]["participant"][0]["individual"] = bundle["entry"][4]["resource"][
        "serviceProvider"
    ]
    refused = outcome(post_bundle(client, bundle), 422)
    assert (
        "Bundle.entry[4].resource.Encounter.participant[0].individual"
        in refused["issue"][0]["diagnostics"]
    )
    # A resource type in neither table
    bundle = synthea_bundle()
    bundle["entry"].append(
        {
            "fullUrl": "urn:uuid:6a1f3c2e-8d4b-4f0a-b5e7-2c9d1e8f0999",
            "resource": {
                "resourceType": "RiskAssessment",
                "status": "final",
                "subject": {"reference": bundle["entry"][3]["fullUrl"]},
            },
            "request": {"method": "POST", "url": "RiskAssessment"},
        }
    )
    refused = outcome(post_bundle(client, bundle), 422)
    assert "Bundle.entry[32]" in refused["issue"][0]["diagnostics"]
    # And nothing was written by any of them
    assert records_written(client) == before


def test_a_batch_of_synthea_entries_answers_each_as_a_transaction_would(
    client: TestClient,
) -> None:
    patient_id = register(client)
    under_care(client, patient_id)
    bundle = synthea_bundle()
    chosen = [bundle["entry"][i] for i in (5, 13, 27)]  # a vital, smoking status, a claim
    for entry in chosen:
        resource = entry["resource"]
        resource.pop("encounter", None)  # a batch's entries stand alone
        resource["patient" if "patient" in resource else "subject"] = {
            "reference": f"Patient/{patient_id}"
        }
    response = post_bundle(client, {"resourceType": "Bundle", "type": "batch", "entry": chosen})
    assert response.status_code == 200, response.text
    validated(response.json())
    replies = [e["response"] for e in response.json()["entry"]]
    assert [r["status"] for r in replies] == ["201 Created", "200 OK", "200 OK"]
    assert replies[0]["outcome"]["issue"][0]["severity"] == "information"
    assert "Observation.issued" in replies[0]["outcome"]["issue"][0]["diagnostics"]
    assert "location" not in replies[1] and "location" not in replies[2]
    assert "social-history" in replies[1]["outcome"]["issue"][0]["diagnostics"]
    assert "billing" in replies[2]["outcome"]["issue"][0]["diagnostics"]
    caught_up(client)
    found = fhir_get(client, "/fhir/Observation", {"patient": patient_id}).json()
    assert found["total"] == 1
    assert found["entry"][0]["resource"]["valueQuantity"] == chosen[0]["resource"]["valueQuantity"]


def test_trimming_an_entry_leaves_the_bundle_as_it_came() -> None:
    """Trimming copies only what it changes and shares the rest with the Bundle: every
    resource of the export is trimmed (names, telecoms, participants, categories,
    contents ...) and the Bundle is unchanged, while each trimmed copy lost what its
    outcome names."""
    bundle = json.loads(FIXTURE.read_text(), parse_float=Decimal)
    before = copy.deepcopy(bundle)
    trimmed_copies = [
        trimmed(entry["resource"]["resourceType"], entry["resource"]) for entry in bundle["entry"]
    ]
    assert bundle == before
    kept, _ = next(t for t in trimmed_copies if "Observation.category[0].coding[0].display" in t[1])
    assert "display" not in kept["category"][0]["coding"][0]
    assert sum(len(n) for _, n in trimmed_copies) > 50
