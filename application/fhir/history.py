"""``_history``: a Patient's or an entry's versions, from the chart stream's events.

The store is event-sourced, so a resource's versions are events: the Patient's are
its registration, demographic changes and death; an entry's are its recorded, amended
and entered-in-error events, and its FHIR ``versionId`` is the stream version of
each. The same functions render the served answer and its replay
(``application.access.replay``), from the chart at the version recorded; which
versions a reader may see is decided before (docs/fhir.md).
"""

from collections.abc import Iterable
from typing import Any
from uuid import UUID

from eventsourcing.application import project_aggregate

from application.access.access_log import Disclosed
from application.access.policy import POLICY_VERSION, Content
from application.access.roles import ChartAction, require_role
from application.charts.disclosure_rendering import Row, changed, recorded, rendered
from application.context import RequestContext
from application.errors import NotFound
from application.fhir import search
from application.fhir.reads import FhirReads
from application.fhir.resources import (
    FHIR_RENDER,
    RESOURCE_OF_KIND,
    entry_resource,
    parse_resource_id,
    patient_resource,
)
from application.ledger.ledger import CareLedger
from domain.patient import Patient

# The events that change what the Patient resource shows.
PATIENT_EVENTS = (Patient.Registered, Patient.DemographicsUpdated, Patient.Deceased)


def patient_versions(ledger: CareLedger, chart: Patient) -> list[dict[str, Any]]:
    """The Patient resource at each version where it changed, oldest first."""
    found: list[dict[str, Any]] = []
    aggregate: Any = None
    event: Any
    for event in ledger.events.get(chart.id, lte=chart.version):
        aggregate = event.mutate(aggregate)
        if isinstance(event, PATIENT_EVENTS):
            found.append(patient_resource(aggregate))
    return found


def patient_at(ledger: CareLedger, chart: Patient, vid: int) -> dict[str, Any]:
    """``Patient/{id}/_history/{vid}``: the Patient at that version of its chart."""
    if not 1 <= vid <= chart.version:
        raise NotFound("patient version")
    aggregate: Any = ledger.repository.get(chart.id, version=vid)
    assert isinstance(aggregate, Patient), "a chart stream holds a chart"
    return patient_resource(aggregate)


def entry_versions(ledger: CareLedger, chart: Patient, entry_hex: str) -> list[tuple[int, Row]]:
    """An entry's row after each of its events, with that event's stream version."""
    facts = chart.entries.get(entry_hex)
    if facts is not None and facts["versions"] is None:
        # Known only from a snapshot older than these facts: folded from the whole log.
        folded = project_aggregate(None, ledger.events.get(chart.id, lte=chart.version))
        assert isinstance(folded, Patient), "a chart's log folds into a chart"
        facts = folded.entries.get(entry_hex)
    if facts is None:
        raise NotFound("entry")
    versions = sorted(facts["versions"])
    row: Row | None = None
    found: list[tuple[int, Row]] = []
    for version, event in zip(versions, ledger.events_at(chart.id, versions), strict=True):
        if isinstance(event, Patient.EntryRecorded):
            row = recorded(event)
        elif isinstance(event, Patient.EntryAmended | Patient.EntryEnteredInError):
            assert row is not None, "an entry's first event records it"
            changed(row, event)
        assert row is not None
        shown = rendered(entry_hex, row["kind"], row["status"], row["effective_at"], row["phi"])
        found.append((version, shown))
    return found


def labels_of(versions: Iterable[tuple[int, Row]]) -> list[str]:
    """Every label any version carried: a label the reader may not see hides them all."""
    return sorted({label for _, row in versions for label in row["labels"]})


def versioned(resource: dict[str, Any], version: int) -> dict[str, Any]:
    """The resource with its ``meta.versionId``, ``meta`` after ``id`` as in a read."""
    meta = {"versionId": str(version), **resource.get("meta", {})}
    head = {"resourceType": resource["resourceType"], "id": resource["id"], "meta": meta}
    return head | {k: v for k, v in resource.items() if k not in head}


def entry_at(patient_id: UUID, version: int, row: Row) -> dict[str, Any]:
    return versioned(entry_resource(patient_id, row), version)


def history_bundle(base: str, self_url: str, resources: list[dict[str, Any]]) -> dict[str, Any]:
    """A history Bundle of one resource's versions (given oldest first), newest first."""
    entries = []
    for n, resource in reversed(list(enumerate(resources))):
        kind, rid, version = resource["resourceType"], resource["id"], resource["meta"]["versionId"]
        entries.append(
            {
                "fullUrl": f"{base}/{kind}/{rid}",
                "resource": resource,
                "request": {
                    "method": "POST" if n == 0 else "PUT",
                    "url": kind if n == 0 else f"{kind}/{rid}",
                },
                "response": {"status": "201" if n == 0 else "200", "etag": f'W/"{version}"'},
            }
        )
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "type": "history",
        "total": len(resources),
        "link": [{"relation": "self", "url": self_url}],
    }
    if entries:
        bundle["entry"] = entries
    return bundle


def body(ledger: CareLedger, query: dict[str, Any], chart: Patient) -> Any:
    """The answer a history query makes from the chart at the recorded version."""
    base, interaction = query["base"], query["fhir"]
    if interaction == "vread-patient":
        return patient_at(ledger, chart, int(query["vid"]))
    if interaction == "history-patient":
        url = f"{base}/Patient/{chart.id}/_history"
        return history_bundle(base, url, patient_versions(ledger, chart))
    entry_hex = UUID(query["entry"]).hex
    versions = entry_versions(ledger, chart, entry_hex)
    if interaction == "vread":
        for version, row in versions:
            if version == int(query["vid"]):
                return entry_at(chart.id, version, row)
        raise NotFound(query["type"])
    url = f"{base}/{query['type']}/{chart.id.hex}{entry_hex}/_history"
    return history_bundle(base, url, [entry_at(chart.id, v, row) for v, row in versions])


def _vid(text: str | None, resource: str) -> int | None:
    """A version id this server issues (a stream version); any other is not found."""
    if text is None:
        return None
    if not text.isdigit() or len(text) > 12:
        raise NotFound(resource)
    return int(text)


def patient_history(
    reads: FhirReads,
    ctx: RequestContext,
    patient_id: UUID,
    base: str,
    params: search.Params,
    vid: str | None = None,
) -> Disclosed:
    """``Patient/{id}/_history`` or ``/_history/{vid}``: the demographics read, of
    earlier versions too, through the same gate."""
    search.known(params, set())  # no parameter narrows a history here: 422, not ignored
    version = _vid(vid, "patient version")
    require_role(ctx, ChartAction.READ_DEMOGRAPHICS)
    admission = reads.charts.gate.admit(ctx, patient_id, Content.DEMOGRAPHICS, "read")
    chart = reads.chart(patient_id)  # erased: 410, within reach
    query: dict[str, Any] = {"view": "fhir", "base": base}
    if version is None:
        query |= {"fhir": "history-patient"}
    else:
        query |= {"fhir": "vread-patient", "vid": version}
    query |= {"patient": str(patient_id), "render": FHIR_RENDER, "policy": POLICY_VERSION}
    return reads.charts.disclosures.disclose(
        ctx,
        action="read",
        body=body(reads.ledger, query, chart),
        decision=admission.decision,
        patient_id=patient_id,
        stream_versions={str(patient_id): chart.version, **admission.stream_versions},
        request=query,
        version=version,
    )


def entry_history(
    reads: FhirReads,
    ctx: RequestContext,
    resource_type: str,
    base: str,
    text: str,
    params: search.Params,
    vid: str | None = None,
) -> Disclosed:
    """``{type}/{id}/_history`` or ``/_history/{vid}``: an entry's versions, each a
    read through the same gate; a label the reader may not see, on any version, hides
    them all, as an unknown entry."""
    search.known(params, set())
    ids = parse_resource_id(text)
    if ids is None:
        raise NotFound(resource_type)
    version = _vid(vid, resource_type)
    patient_id, entry_id = ids
    require_role(ctx, ChartAction.READ_CLINICAL)
    # Admitted before the chart is loaded: an outsider's probe is refused, recorded.
    admission = reads.charts.gate.admit(ctx, patient_id, Content.CLINICAL, "read")
    chart = reads.chart(patient_id)
    facts = chart.entries.get(entry_id.hex)
    if facts is None or RESOURCE_OF_KIND[facts["kind"]] != resource_type:
        raise NotFound(resource_type)
    versions = entry_versions(reads.ledger, chart, entry_id.hex)
    if not admission.decision.shows(labels_of(versions)):
        raise NotFound(resource_type)  # hidden, worded as for an unknown entry
    if version is not None and version not in {v for v, _ in versions}:
        raise NotFound(resource_type)
    query: dict[str, Any] = {
        "view": "fhir",
        "fhir": "history" if version is None else "vread",
        "type": resource_type,
        "base": base,
        "patient": str(patient_id),
        "entry": str(entry_id),
        "vid": version,
        "render": FHIR_RENDER,
        "policy": POLICY_VERSION,
    }
    return reads.charts.disclosures.disclose(
        ctx,
        action="read",
        body=body(reads.ledger, query, chart),
        decision=admission.decision,
        patient_id=patient_id,
        entry_ids=[str(entry_id)],
        stream_versions={str(patient_id): chart.version, **admission.stream_versions},
        request=query,
        version=version,
    )
