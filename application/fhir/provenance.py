"""``Provenance``: who recorded, amended or entered in error each chart entry, and when.

The store is event-sourced, so an entry's provenance is its events: one Provenance per
``EntryRecorded`` (activity CREATE), ``EntryAmended`` (UPDATE) and
``EntryEnteredInError`` (NULLIFY), its id the patient's id in hex and the event's
stream version, its target the entry at that version (``_history/{vid}``), its agent
the author with their organisation (the chart's: only its own staff write to it).
Read through the clinical gate like the entry itself: an entry with a label the
reader may not see, on any version, has its provenance left out, as its ``_history``
is. Each answer is one access record; replay renders again through ``body`` from the
chart at the recorded version, deciding again as of the access (docs/fhir.md).
"""

from typing import Any
from uuid import UUID

from eventsourcing.application import project_aggregate

from application.access.access_log import Disclosed
from application.access.policy import POLICY_VERSION, Content, Decision
from application.access.roles import ChartAction, require_role
from application.charts.disclosure_rendering import Row, changed, recorded, zulu
from application.context import RequestContext
from application.errors import Forbidden, NotFound
from application.fhir import search
from application.fhir.audit_events import ACTOR, ORGANISATION
from application.fhir.reads import FhirReads
from application.fhir.resources import (
    FHIR_RENDER,
    RESOURCE_OF_KIND,
    parse_resource_id,
    resource_id,
    searchset,
)
from application.ledger.ledger import CareLedger
from domain.errors import InvalidValue
from domain.patient import Patient

DATA_OPERATION = "http://terminology.hl7.org/CodeSystem/v3-DataOperation"
PARTICIPANT = "http://terminology.hl7.org/CodeSystem/provenance-participant-type"
PROVENANCE_PARAMS = {"target"}
ACTIVITIES = {
    Patient.EntryRecorded: ("CREATE", "create"),
    Patient.EntryAmended: ("UPDATE", "revise"),
    Patient.EntryEnteredInError: ("NULLIFY", "nullify"),
}
Facts = dict[str, dict[str, Any]]


def provenance_id(patient_id: UUID, version: int) -> str:
    return f"{patient_id.hex}-{version}"


def parse_provenance_id(text: str) -> tuple[UUID, int] | None:
    patient_hex, dash, version = text.partition("-")
    if not dash or len(patient_hex) != 32 or not version.isdigit() or len(version) > 12:
        return None
    try:
        return UUID(hex=patient_hex), int(version)
    except ValueError:
        return None


def _facts(ledger: CareLedger, chart: Patient) -> Facts:
    """The chart's entry records, each with the versions of its events."""
    facts: Facts = chart.entries
    if any(entry["versions"] is None for entry in facts.values()):
        # Known only from a snapshot older than these facts: folded from the whole log.
        folded = project_aggregate(None, ledger.events.get(chart.id, lte=chart.version))
        assert isinstance(folded, Patient), "a chart's log folds into a chart"
        facts = folded.entries
    return facts


def _resource(
    chart: Patient, entry_hex: str, kind: str, version: int, previous: int | None, event: Any
) -> dict[str, Any]:
    rid = resource_id(chart.id, entry_hex)
    target = f"{RESOURCE_OF_KIND[kind]}/{rid}"
    code, display = ACTIVITIES[type(event)]
    organisation = str(chart.organisation_id)
    at = zulu(event.timestamp)
    found: dict[str, Any] = {
        "resourceType": "Provenance",
        "id": provenance_id(chart.id, version),
        "target": [{"reference": f"{target}/_history/{version}"}],
        "occurredDateTime": at,
        "recorded": at,
        "activity": {"coding": [{"system": DATA_OPERATION, "code": code, "display": display}]},
        "agent": [
            {
                "type": {
                    "coding": [{"system": PARTICIPANT, "code": "author", "display": "Author"}]
                },
                "who": {
                    "identifier": {"system": ACTOR, "value": f"{organisation}/{event.actor_id}"}
                },
                "onBehalfOf": {"identifier": {"system": ORGANISATION, "value": organisation}},
            }
        ],
    }
    if previous is not None:
        found["entity"] = [
            {"role": "revision", "what": {"reference": f"{target}/_history/{previous}"}}
        ]
    return found


def provenances(
    ledger: CareLedger, query: dict[str, Any], chart: Patient, decision: Decision
) -> tuple[list[dict[str, Any]], list[str]]:
    """The Provenances a query asks for, oldest first, and the entries they are of."""
    facts = _facts(ledger, chart)
    entry = query.get("entry")
    wanted = [UUID(entry).hex] if entry else list(facts)
    wanted = [
        h
        for h in wanted
        if h in facts
        and (
            query["target_type"] is None
            or RESOURCE_OF_KIND[facts[h]["kind"]] == query["target_type"]
        )
    ]
    versions = sorted(v for h in wanted for v in facts[h]["versions"])
    read = ledger.events_at(chart.id, versions) if versions else []
    events = dict(zip(versions, read, strict=True))
    found: list[tuple[int, dict[str, Any]]] = []
    shown: list[str] = []
    for entry_hex in wanted:
        row: Row | None = None
        labels: set[str] = set()
        chain: list[tuple[int, Any]] = []
        for version in facts[entry_hex]["versions"]:
            event = events[version]
            if isinstance(event, Patient.EntryRecorded):
                row = recorded(event)
            else:
                assert row is not None, "an entry's first event records it"
                changed(row, event)
            labels |= set(row["phi"]["labels"])
            chain.append((version, event))
        if not decision.shows(labels):
            continue  # hidden, as the entry's _history is
        kind = facts[entry_hex]["kind"]
        previous = None
        for version, event in chain:
            if query["vid"] is None or version == query["vid"]:
                found.append((version, _resource(chart, entry_hex, kind, version, previous, event)))
            previous = version
        shown.append(str(UUID(entry_hex)))
    return [resource for _, resource in sorted(found, key=lambda pair: pair[0])], shown


def body(ledger: CareLedger, query: dict[str, Any], chart: Patient, decision: Decision) -> Any:
    """The answer a Provenance query makes; replay renders through it too."""
    return _answer(query, provenances(ledger, query, chart, decision)[0])


def _answer(query: dict[str, Any], resources: list[dict[str, Any]]) -> Any:
    if query["fhir"] == "read-provenance":
        if not resources:
            raise NotFound("Provenance")
        return resources[0]
    pairs = [(name, value) for name, value in query["params"]]
    return searchset(resources, query["base"], search.url(query["base"], "Provenance", pairs), None)


def _target(text: str) -> tuple[UUID, UUID | None, str | None, int | None]:
    """``Patient/{id}`` or ``{type}/{id}``, the latter with ``/_history/{vid}`` or not:
    the patient, the entry, its resource type and the version named."""
    kind, _, rest = text.partition("/")
    rid, history, vid = rest.partition("/_history/")
    if history and (not vid.isdigit() or len(vid) > 12):
        raise InvalidValue("target", "names a version by its number")
    version = int(vid) if history else None
    if kind == "Patient" and version is None:
        try:
            return UUID(rid), None, None, None
        except ValueError:
            raise InvalidValue("target", "is not a patient id") from None
    ids = parse_resource_id(rid)
    if kind not in RESOURCE_OF_KIND.values() or ids is None:
        raise InvalidValue("target", "is Patient/{id}, or an entry resource's reference")
    return ids[0], ids[1], kind, version


def provenance(
    reads: FhirReads,
    ctx: RequestContext,
    base: str,
    params: search.Params,
    text: str | None = None,
) -> Disclosed:
    """``Provenance?target=`` or ``Provenance/{id}``: a clinical read of the chart."""
    query: dict[str, Any] = {"view": "fhir", "base": base}
    if text is None:
        found = search.known(params, PROVENANCE_PARAMS)
        target = search.single(found, "target")
        if target is None:
            raise InvalidValue("target", "is required: Patient/{id} or an entry's reference")
        patient_id, entry, kind, vid = _target(target)
        kept = [[n, v] for n, v in params if n not in search.IGNORED]
        query |= {"fhir": "search-provenance", "params": kept}
    else:
        search.known(params, set())
        ids = parse_provenance_id(text)
        if ids is None:
            raise NotFound("Provenance")
        (patient_id, vid), entry, kind = ids, None, None
        query |= {"fhir": "read-provenance", "provenance": text}
    gate = reads.charts.gate
    try:
        require_role(ctx, ChartAction.READ_CLINICAL)
    except Forbidden as refusal:  # recorded where the target's auditors see it
        gate.refuse_addressed(ctx, str(refusal), patient_id, "read", {"route": "Provenance"})
        refusal.recorded = True
        raise
    # Admitted before the chart is loaded: an outsider's probe is refused, recorded.
    admission = gate.admit(ctx, patient_id, Content.CLINICAL, "read")
    chart = reads.chart(patient_id)  # erased: 410, within reach
    if text is not None:
        facts = _facts(reads.ledger, chart)
        owner = [h for h, f in facts.items() if vid in f["versions"]]
        if not owner:
            raise NotFound("Provenance")
        entry = UUID(hex=owner[0])
    query |= {
        "patient": str(patient_id),
        "entry": str(entry) if entry else None,
        "target_type": kind,
        "vid": vid,
        "render": FHIR_RENDER,
        "policy": POLICY_VERSION,
    }
    decision = admission.decision
    resources, shown = provenances(reads.ledger, query, chart, decision)
    return reads.charts.disclosures.disclose(
        ctx,
        action="read",
        body=_answer(query, resources),
        decision=decision,
        patient_id=patient_id,
        entry_ids=shown,
        stream_versions={str(patient_id): chart.version, **admission.stream_versions},
        request=query,
    )
