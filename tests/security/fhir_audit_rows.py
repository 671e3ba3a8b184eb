"""The /fhir AuditEvent and Provenance rows of the cross-organisation matrix
(``test_cross_organisation_fhir``): only our auditors read our AuditEvents, another
organisation's auditor finds none of ours, and Provenance is refused as any chart read."""

from uuid import UUID

import httpx

from tests.security.test_cross_organisation import (
    AUDITOR,
    REACH,
    READERS,
    Call,
    Expect,
    Ids,
    Row,
)
from tests.security.two_orgs import ORG_MAIN, World


def no_audit_event_of_ours(world: World, actor: str, response: httpx.Response) -> list[str]:
    """Their auditor's AuditEvents: none by our people, none naming our patients."""
    ours = {world.main.patient_id, world.second_patient_id}
    problems = []
    for entry in response.json().get("entry", []):
        event = entry["resource"]
        agents = [a["who"].get("identifier", {}).get("value", "") for a in event["agent"]]
        if any(value.startswith(f"{ORG_MAIN}/") for value in agents):
            problems.append(f"shows our record {event['id']}")
        named = {e.get("what", {}).get("reference", "") for e in event.get("entity", [])}
        if {f"Patient/{p}" for p in ours} & named:
            problems.append(f"shows a record of our patient, {event['id']}")
    return problems


def entry_reference(i: Ids) -> str:
    return f"Observation/{UUID(i.patient).hex}{UUID(i.entry).hex}"


AUDIT_ROWS: dict[str, Row] = {
    "GET /fhir/AuditEvent": Row(
        lambda w, i: [
            Call("GET", "/fhir/AuditEvent", params={"_count": 200}),
            Call("GET", "/fhir/AuditEvent", params={"agent": "org-main/dr-grey"}),
            Call("GET", "/fhir/AuditEvent", params={"outcome": "4", "_count": 200}),
        ],
        expect={AUDITOR: Expect.OWN},
        check=no_audit_event_of_ours,
        compare_unknown=False,
    ),
    "GET /fhir/AuditEvent?patient=": Row(  # a second row of the same route
        lambda w, i: [
            Call("GET", "/fhir/AuditEvent", params={"patient": i.patient}),
            Call("GET", "/fhir/AuditEvent", params={"patient": f"Patient/{i.patient}"}),
        ],
        expect={AUDITOR: Expect.HIDDEN},
        denial=frozenset({AUDITOR}),
    ),
    "GET /fhir/AuditEvent/{resource_id}": Row(
        lambda w, i: [
            Call("GET", f"/fhir/AuditEvent/{i.access}"),
            Call("GET", f"/fhir/AuditEvent/{i.glass}"),
        ],
        expect={AUDITOR: Expect.HIDDEN},
    ),
    "GET /fhir/Provenance": Row(
        lambda w, i: [
            Call("GET", "/fhir/Provenance", params={"target": f"Patient/{i.patient}"}),
            Call("GET", "/fhir/Provenance", params={"target": entry_reference(i)}),
        ],
        expect=READERS,
        denial=REACH,
    ),
    "GET /fhir/Provenance/{resource_id}": Row(
        lambda w, i: [Call("GET", f"/fhir/Provenance/{UUID(i.patient).hex}-2")],
        expect=READERS,
        denial=REACH,
    ),
}
