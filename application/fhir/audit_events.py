"""Access records as FHIR ``AuditEvent``s in the IHE BALP patterns (docs/fhir.md).

One access record is one AuditEvent, its id the record's. The interaction (read,
vread, history, search, create, update, operation) comes from the record's action and
the request it kept: BALP's PatientRead, PatientQuery, PatientCreate and
PatientUpdate, a patient entity (role 1) whenever a patient is named, a query entity
(role 24) holding, base64, exactly what the record kept of a search (a patient search
keeps no terms), and a Consent entity when a directive decided it. The agent is the
actor by qualified identity, with the purpose (``ETREAT`` for break-glass). What BALP
has no element for (the response's digest, the stream versions, the decision and its
basis, a break-glass review) are CareLedger's extensions. Pure: no clock, no I/O.
"""

import base64
from typing import Any
from uuid import UUID

from application.charts.disclosure_rendering import render, zulu
from domain.access_record import AccessRecord

AUDIT_EVENT_TYPE = "http://terminology.hl7.org/CodeSystem/audit-event-type"
RESTFUL = "http://hl7.org/fhir/restful-interaction"
DCM = "http://dicom.nema.org/resources/ontology/DCM"
PARTICIPATION = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
ROLE_CLASS = "http://terminology.hl7.org/CodeSystem/v3-RoleClass"
ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
ENTITY_TYPE = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
OBJECT_ROLE = "http://terminology.hl7.org/CodeSystem/object-role"
SOURCE_TYPE = "http://terminology.hl7.org/CodeSystem/security-source-type"
LIFECYCLE = "http://terminology.hl7.org/CodeSystem/iso-21089-lifecycle"
BALP_ENTITY = "https://profiles.ihe.net/ITI/BALP/CodeSystem/BasicAuditEntityType"
RESOURCE_TYPES = "http://hl7.org/fhir/resource-types"
ACTOR = "urn:careledger:actor"  # value: organisation/subject, an actor's qualified identity
ORGANISATION = "urn:careledger:organisation"
ROLE = "urn:careledger:role"
SYSTEM = "urn:careledger:system"
EXTENSION = "urn:careledger:extension:"
SUCCESS, REFUSED = "0", "4"  # audit-event-outcome: a refusal is a 4xx answer, a minor failure

PURPOSES = {
    "TREAT": "treatment",
    "ETREAT": "Emergency Treatment",
    "HPAYMT": "healthcare payment",
    "HOPERAT": "healthcare operations",
    "HMARKT": "healthcare marketing",
    "HRESCH": "healthcare research",
    "PATRQT": "patient requested",
    "PUBHLTH": "public health",
}
# FHIR interactions whose record names one resource; the rest are searches.
READS = {
    "read": "read",
    "read-patient": "read",
    "read-consent": "read",
    "read-coverage": "read",
    "read-provenance": "read",
    "vread": "vread",
    "vread-patient": "vread",
    "history": "history-instance",
    "history-patient": "history-instance",
}
QUERY_VIEWS = {"timeline", "consents", "directory", "feed"}


def _coding(system: str, code: str, display: str | None = None) -> dict[str, str]:
    found = {"system": system, "code": code}
    return found | {"display": display} if display else found


def _concept(system: str, code: str, display: str | None = None) -> dict[str, Any]:
    return {"coding": [_coding(system, code, display)]}


def _interaction(record: AccessRecord) -> tuple[dict[str, str], list[dict[str, str]], str]:
    """The event's type, subtypes and action code (C, R, U, E)."""
    rest = _coding(AUDIT_EVENT_TYPE, "rest", "Restful Operation")
    request, action = record.request, record.action
    fhir = request.get("fhir")
    if action == "write":
        created = fhir == "create" or (
            fhir is None and record.stream_versions.get(str(record.patient_id)) == 1
        )
        code = "create" if created else "update"
        return rest, [_coding(RESTFUL, code, code)], "C" if created else "U"
    if action == "deliver":
        disclose = _coding(LIFECYCLE, "disclose", "Disclose Record Lifecycle Event")
        return _coding(DCM, "110106", "Export"), [disclose], "R"
    if action in ("export", "replay") or fhir == "everything":
        return rest, [_coding(RESTFUL, "operation", "operation")], "E"
    if fhir in READS or request.get("view") == "demographics":
        code = READS.get(str(fhir), "read")
        return rest, [_coding(RESTFUL, code, code)], "R"
    if action == "search" or fhir is not None or request.get("view") in QUERY_VIEWS:
        return rest, [_coding(RESTFUL, "search-type", "search-type")], "E"
    return rest, [_coding(RESTFUL, "read", "read")], "R"  # a refused read keeps no more


def _read_target(record: AccessRecord) -> str | None:
    """The one resource a read names, as a FHIR reference (None if its request is not
    of a shape this rendering knows: the event is still shown, without it)."""
    try:
        return _named(record)
    except (KeyError, ValueError, TypeError):
        return None


def _named(record: AccessRecord) -> str | None:
    request, patient = record.request, record.patient_id
    fhir = request.get("fhir")
    if fhir in ("read-patient", "vread-patient", "history-patient") or (
        request.get("view") == "demographics"
    ):
        suffix = f"/_history/{request['vid']}" if fhir == "vread-patient" else ""
        return f"Patient/{patient}{suffix}" if patient else None
    if fhir in ("read", "vread", "history"):
        rid = UUID(request["patient"]).hex + UUID(request["entry"]).hex
        suffix = f"/_history/{request['vid']}" if fhir == "vread" else ""
        return f"{request['type']}/{rid}{suffix}"
    if fhir == "read-consent":
        return f"Consent/{UUID(request['patient']).hex}{request['directive']}"
    if fhir == "read-coverage":
        return f"Coverage/{UUID(request['patient']).hex}{request['membership']}"
    if fhir == "read-provenance":
        return f"Provenance/{request['provenance']}"
    return None


def _query_text(record: AccessRecord) -> str:
    """A reader's account of the query the record kept: the FHIR request rebuilt from
    the parameters kept, or the /v1 view and its kept fields."""
    request = record.request
    fhir = request.get("fhir")
    if fhir == "export":
        since = f", since {request['since']}" if request.get("since") else ""
        types = ",".join(request.get("types", []))
        filtered = ",".join(request.get("filters") or {})
        since += f", _typeFilter on {filtered}" if filtered else ""
        return f"GET $export ({request.get('export')}): this patient's part, of {types}{since}"
    if fhir is not None and "params" in request:
        kind = request.get("type") or _SEARCHED.get(str(fhir), "")
        if fhir == "everything":
            kind = f"Patient/{record.patient_id}/$everything"
        pairs = "&".join(f"{name}={value}" for name, value in request["params"])
        text = f"GET {kind}" + (f"?{pairs}" if pairs else "")
        if fhir == "search-patient":
            text += f" (by {request.get('by')}; the terms searched for are not kept)"
        return text
    kept = {k: v for k, v in request.items() if v is not None and k != "base"}
    return " ".join(f"{k}={v}" for k, v in sorted(kept.items())) or "nothing kept"


_SEARCHED = {
    "search-patient": "Patient",
    "search-patient-id": "Patient",
    "search-consent": "Consent",
    "search-coverage": "Coverage",
    "search-provenance": "Provenance",
}


def _entities(record: AccessRecord, subtypes: list[dict[str, str]]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    if record.patient_id:
        found.append(
            {
                "what": {"reference": f"Patient/{record.patient_id}"},
                "type": _coding(ENTITY_TYPE, "1", "Person"),
                "role": _coding(OBJECT_ROLE, "1", "Patient"),
            }
        )
    codes = {s["code"] for s in subtypes}
    target = _read_target(record) if record.action == "read" else None
    if record.action == "write" and record.patient_id:
        target = f"Patient/{record.patient_id}"  # the chart written to
    if target is not None:
        found.append(
            {
                "what": {"reference": target},
                "type": _coding(ENTITY_TYPE, "2", "System Object"),
                "role": _coding(OBJECT_ROLE, "4", "Domain Resource"),
            }
        )
    elif codes & {"search-type", "operation"}:
        found.append(
            {
                "type": _coding(ENTITY_TYPE, "2", "System Object"),
                "role": _coding(OBJECT_ROLE, "24", "Query"),
                "description": _query_text(record),
                "query": base64.b64encode(render(record.request)).decode(),
            }
        )
    directive = record.basis.get("directive_id")
    if directive and record.patient_id:
        found.append(
            {
                "what": {
                    "reference": f"Consent/{UUID(record.patient_id).hex}{UUID(directive).hex}"
                },
                "type": _coding(RESOURCE_TYPES, "Consent", "Consent"),
            }
        )
    if record.request_id:
        found.append(
            {
                "what": {"identifier": {"value": record.request_id}},
                "type": _coding(BALP_ENTITY, "XrequestId", "X-Request-Id"),
            }
        )
    return found


def _agents(record: AccessRecord, action: str) -> list[dict[str, Any]]:
    actor, purpose = record.actor, record.purpose
    purposes = [_concept(ACT_REASON, purpose, PURPOSES.get(purpose))]
    agents: list[dict[str, Any]] = [
        {
            "type": _concept(PARTICIPATION, "IRCP", "information recipient"),
            "role": [_concept(ROLE, actor["role"])],
            "who": {"identifier": {"system": ACTOR, "value": f"{actor['org']}/{actor['id']}"}},
            "requestor": True,
            "purposeOfUse": purposes,
        },
        {
            "type": _concept(ROLE_CLASS, "PROV", "healthcare provider"),
            "who": {"identifier": {"system": ORGANISATION, "value": actor["org"]}},
            "requestor": False,
        },
    ]
    # BALP: for a read the server is the source of the data, for the rest its destination.
    server, client = ("110153", "110152") if action == "R" else ("110152", "110153")
    names = {"110152": "Destination Role ID", "110153": "Source Role ID"}
    served: dict[str, Any] = {
        "type": _concept(DCM, server, names[server]),
        "who": {"identifier": {"system": SYSTEM, "value": "careledger"}, "display": "CareLedger"},
        "requestor": False,
    }
    if record.request.get("base"):
        served["network"] = {"address": record.request["base"], "type": "5"}
    agents.append(served)
    if record.source:
        agents.append(
            {
                "type": _concept(DCM, client, names[client]),
                "who": {"display": record.source},
                "requestor": False,
                "network": {"address": record.source, "type": "2"},
            }
        )
    return agents


def _text(url: str, value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"url": url, "valueBoolean": value}
    if isinstance(value, int):
        return {"url": url, "valueInteger": value}
    return {"url": url, "valueString": str(value)}


def _extensions(record: AccessRecord) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    if record.response_sha256:
        found.append(_text(EXTENSION + "response-sha256", record.response_sha256))
    for stream, version in sorted(record.stream_versions.items()):
        parts = [_text("stream", stream), _text("version", int(version))]
        found.append({"url": EXTENSION + "stream-version", "extension": parts})
    decision = [{"url": "decision", "valueCode": record.decision}]
    if record.reason:
        decision.append(_text("reason", record.reason))
    for key in ("consent_version", "directive_id", "membership_id", "break_glass"):
        if record.basis.get(key) not in (None, ""):
            decision.append(_text(key.replace("_", "-"), record.basis[key]))
    if record.care_org:
        decision.append(_text("care-organisation", record.care_org))
    if record.request.get("policy") is not None:
        decision.append(_text("policy", int(record.request["policy"])))
    found.append({"url": EXTENSION + "decision", "extension": decision})
    review = record.review
    if review is not None:
        parts = [{"url": "outcome", "valueCode": review["outcome"]}, _text("by", review["by"])]
        parts.append({"url": "at", "valueDateTime": zulu(review["at"])})
        if review["note"]:
            parts.append(_text("note", review["note"]))
        found.append({"url": EXTENSION + "break-glass-review", "extension": parts})
    return found


def audit_event(record: AccessRecord) -> dict[str, Any]:
    """One access record as an AuditEvent (R4B)."""
    kind, subtypes, action = _interaction(record)
    permitted = record.decision == "permit"
    event: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "id": str(record.id),
        "extension": _extensions(record),
        "type": kind,
        "subtype": subtypes,
        "action": action,
        "recorded": zulu(record.occurred_at),
        "outcome": SUCCESS if permitted else REFUSED,
    }
    if not permitted:
        event["outcomeDesc"] = record.reason
    event["purposeOfEvent"] = [_concept(ACT_REASON, record.purpose, PURPOSES.get(record.purpose))]
    event["agent"] = _agents(record, action)
    event["source"] = {
        "site": "CareLedger",
        "observer": {
            "identifier": {"system": SYSTEM, "value": "careledger"},
            "display": "CareLedger",
        },
        "type": [_coding(SOURCE_TYPE, "4", "Application Server")],
    }
    event["entity"] = _entities(record, subtypes)
    return event
