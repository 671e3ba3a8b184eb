"""``Patient/{id}/$everything``: the patient and every entry the reader may see, paged.

The same gate, page scan and access record as an entry search (``reads``): hidden
entries are passed over by the timeline's scan, never counted, and the one access
record's ``request`` (view ``fhir``, interaction ``everything``) is what
``application.access.replay`` needs to render the page again (docs/fhir.md).
"""

from dataclasses import dataclass
from typing import Any
from uuid import UUID

from application.access.access_log import Disclosed
from application.access.chart_gate import Admission
from application.access.policy import POLICY_VERSION, Content
from application.access.roles import ChartAction, require_role
from application.charts.disclosure_rendering import Row, decode_cursor, encode_cursor
from application.context import RequestContext
from application.errors import Forbidden
from application.fhir import search
from application.fhir.capability import ENTRY_TYPES
from application.fhir.consents import consent_resources
from application.fhir.coverage import READERS as COVERAGE_READERS
from application.fhir.coverage import (
    admit_memberships,
    coverage_resource,
    may_read_memberships,
    membership_at,
)
from application.fhir.reads import FhirReads
from application.fhir.resources import (
    FHIR_RENDER,
    RESOURCE_OF_KIND,
    entry_resource,
    patient_resource,
    searchset,
)
from domain.consent import Consent
from domain.errors import InvalidValue
from domain.membership import Membership
from domain.patient import Patient

EVERYTHING_PARAMS = {"_since", "_type", "_count", "_cursor"}


def types_wanted(values: list[str]) -> list[str]:
    """``_type`` (commas, or repeated): the resource types asked for; none, all."""
    served = ("Patient", "Coverage", "Consent", *ENTRY_TYPES)
    wanted = {part.strip() for value in values for part in value.split(",")}
    unknown = wanted - set(served)
    if unknown:
        raise InvalidValue("_type", "names a type this server does not serve")
    return [kind for kind in served if not wanted or kind in wanted]


def since_of(value: str | None) -> str | None:
    """``_since`` as the timeline's inclusive lower bound on the entry's time."""
    if value is None:
        return None
    try:
        since, _ = search.window([f"ge{value}"])
    except InvalidValue:
        raise InvalidValue("_since", "must be a FHIR date or a date-time with zone") from None
    return since


def path(patient_id: str) -> str:
    return f"Patient/{patient_id}/$everything"


def everything_body(
    query: dict[str, Any],
    patient: Patient | None,
    memberships: list[Membership] | None,
    consent: Consent | None,
    rows: list[Row],
    next_key: Any,
) -> Any:
    """The searchset a query's page makes: the Patient, the Coverages and the Consents
    first (first page only), then the entries shown."""
    patient_id = UUID(query["patient"])
    resources = [patient_resource(patient)] if patient is not None else []
    if memberships is not None:
        by_start = sorted(memberships, key=lambda m: (m.starts_on, m.id.hex))
        resources += [coverage_resource(m, query["today"]) for m in by_start]
    if consent is not None:
        resources += consent_resources(patient_id, consent, query["today"])
    resources += [entry_resource(patient_id, row) for row in rows]
    pairs = [(name, value) for name, value in query["params"]]
    cursor = [("_cursor", query["cursor"])] if query["cursor"] else []
    where = path(query["patient"])
    self_url = search.url(query["base"], where, [*pairs, *cursor])
    next_url = None
    if next_key is not None:
        next_url = search.url(query["base"], where, [*pairs, ("_cursor", encode_cursor(next_key))])
    return searchset(resources, query["base"], self_url, next_url, first=query["cursor"] is None)


# The first page's resources besides the entries, and the content each is decided as.
HEADS = {
    "Patient": Content.DEMOGRAPHICS,
    "Coverage": Content.MEMBERSHIP,
    "Consent": Content.CONSENT,
}


def _admit_heads(reads: FhirReads, ctx: RequestContext, patient_id: UUID, heads: list[str]) -> None:
    """Each of them through the gate as its own read would be: refused, recorded."""
    for kind in heads:
        if kind == "Patient":
            require_role(ctx, ChartAction.READ_DEMOGRAPHICS)
        elif kind == "Consent":
            require_role(ctx, ChartAction.READ_CONSENT)
        elif ctx.actor.role not in COVERAGE_READERS:
            raise Forbidden(f"the {ctx.actor.role} role may not read memberships")
        else:
            admit_memberships(reads, ctx, patient_id)
            continue
        reads.charts.gate.admit(ctx, patient_id, HEADS[kind], "read")


@dataclass(frozen=True)
class ChartParts:
    """What one patient's ``$everything`` (or export) shows besides the entries: each
    head admitted as its own read, at the versions the clinical decision read."""

    admission: Admission
    chart: Patient
    patient: Patient | None
    memberships: list[Membership] | None
    consent: Consent | None
    extra: dict[str, Any]


def chart_parts(
    reads: FhirReads, ctx: RequestContext, patient_id: UUID, types: list[str], *, heads: bool
) -> ChartParts:
    """The clinical admission, then the Patient, Coverages and Consent asked for (with
    ``heads``): refused and recorded as the reads they stand for."""
    require_role(ctx, ChartAction.READ_CLINICAL)
    gate = reads.charts.gate
    # Admitted before the chart is loaded: an outsider's probe is refused, recorded.
    admission = gate.admit(ctx, patient_id, Content.CLINICAL, "read")
    wanted = [kind for kind in HEADS if kind in types] if heads else []
    if not may_read_memberships(ctx, admission.care_organisation):
        # Left out, as a hidden entry is: a directive opens the chart, not the plans.
        wanted = [kind for kind in wanted if kind != "Coverage"]
    _admit_heads(reads, ctx, patient_id, wanted)
    patient: Patient | None = None
    consent: Consent | None = None
    chart = reads.chart(patient_id)  # erased: 410, within reach
    if "Patient" in wanted:
        patient = chart
    extra: dict[str, Any] = {"today": gate.clock().date().isoformat()}
    memberships: list[Membership] | None = None
    if "Coverage" in wanted:
        # The memberships the clinical decision read, at the versions it read them.
        streams = sorted(s for s in admission.stream_versions if s != str(chart.consent_id))
        memberships = [membership_at(reads, s, admission.stream_versions[s]) for s in streams]
        extra["memberships"] = streams
    seen = admission.stream_versions.get(str(chart.consent_id))
    if "Consent" in wanted and seen is not None:
        # The consent at the version the decision read, which replay decides on again;
        # a consent the view has not seen yet is not shown, as entries it has not seen.
        stream: Any = reads.ledger.repository.get(chart.consent_id, version=seen)
        assert isinstance(stream, Consent), "a consent stream holds a consent"
        consent = stream
        extra["consent_id"] = str(consent.id)
    return ChartParts(admission, chart, patient, memberships, consent, extra)


def everything(
    reads: FhirReads, ctx: RequestContext, patient_id: UUID, base: str, params: search.Params
) -> Disclosed:
    found = search.known(params, EVERYTHING_PARAMS)
    types = types_wanted(found.get("_type", []))
    since = since_of(search.single(found, "_since"))
    limit = search.count(found)
    cursor = search.single(found, "_cursor")
    if cursor:
        decode_cursor(cursor)  # refused (422) before the chart is touched
    parts = chart_parts(reads, ctx, patient_id, types, heads=cursor is None)
    admission, chart, patient = parts.admission, parts.chart, parts.patient
    memberships, consent, extra = parts.memberships, parts.consent, parts.extra
    kinds = [kind for kind, kind_type in RESOURCE_OF_KIND.items() if kind_type in types]
    kept = [[n, v] for n, v in params if n not in ("_cursor", *search.IGNORED)]
    query: dict[str, Any] = {
        "view": "fhir",
        "fhir": "everything",
        "base": base,
        "params": kept,
        "patient": str(patient_id),
        "patient_version": patient.version if patient is not None else None,
        "kinds": kinds,
        "kind": kinds[0] if len(kinds) == 1 else None,
        "codes": [],
        "since": since,
        "until": None,
        "cursor": cursor,
        "limit": limit,
        **extra,
        "render": FHIR_RENDER,
        "policy": POLICY_VERSION,
    }
    decision = admission.decision
    rows: list[Row] = []
    next_key = None
    chart_version = chart.version
    if kinds:
        keeps = search.matcher(query)
        page = reads.charts.views.timeline.page(
            patient_id,
            kind=query["kind"],
            since=since,
            until=None,
            after=decode_cursor(cursor) if cursor else None,
            limit=limit,
            admit=lambda row: decision.shows(row["labels"]) and keeps(row),
        )
        rows, next_key, chart_version = page.entries, page.next_key, page.chart_version
    return reads.charts.disclosures.disclose(
        ctx,
        action="read",
        body=everything_body(query, patient, memberships, consent, rows, next_key),
        decision=decision,
        patient_id=patient_id,
        entry_ids=[row["entry_id"] for row in rows],
        stream_versions={str(patient_id): chart_version, **admission.stream_versions},
        request=query,
    )
