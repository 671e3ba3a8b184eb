"""One patient's part of a bulk export: their NDJSON lines, and the one access record
(action ``export``) that names the digest of exactly those bytes.

The lines are ``$everything``'s resources (``everything.chart_parts`` and the
timeline's page scan, so the same gate, the same hidden entries left out), one
resource a line, by type in ``EXPORT_TYPES`` order. The record's ``request`` (view
``fhir``, interaction ``export``) is what ``application.access.replay`` needs to
render the same lines again through ``patient_lines`` (docs/fhir.md, Bulk Data).
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from application.access.policy import POLICY_VERSION
from application.charts.disclosure_rendering import Row, render
from application.context import RequestContext
from application.fhir import search
from application.fhir.capability import ENTRY_TYPES
from application.fhir.consents import consent_resources
from application.fhir.coverage import coverage_resource
from application.fhir.everything import chart_parts
from application.fhir.reads import FhirReads
from application.fhir.resources import (
    FHIR_RENDER,
    RESOURCE_OF_KIND,
    entry_resource,
    patient_resource,
)
from application.fhir.type_filter import Filters, keeps_resource
from domain.consent import Consent
from domain.membership import Membership
from domain.patient import Patient

EXPORT_TYPES = ("Patient", "Coverage", "Consent", *ENTRY_TYPES)
# Entries of one chart scanned as one page: a chart is read whole, once.
CHART_LIMIT = 1_000_000

Lines = list[tuple[str, bytes]]  # (resource type, one NDJSON line with its newline)


def patient_lines(
    query: dict[str, Any],
    patient: Patient | None,
    memberships: list[Membership] | None,
    consent: Consent | None,
    rows: list[Row],
) -> Lines:
    """The patient's lines, by type in ``EXPORT_TYPES`` order, then as ``$everything``
    orders them (Coverages by start, entries by clinical time)."""
    patient_id = UUID(query["patient"])
    resources: list[Any] = [patient_resource(patient)] if patient is not None else []
    if memberships is not None:
        by_start = sorted(memberships, key=lambda m: (m.starts_on, m.id.hex))
        resources += [coverage_resource(m, query["today"]) for m in by_start]
    if consent is not None:
        resources += consent_resources(patient_id, consent, query["today"])
    filters = query.get("filters") or {}
    resources = [r for r in resources if keeps_resource(filters, r)]
    resources += [entry_resource(patient_id, row) for row in rows]
    lines = [(str(r["resourceType"]), render(r) + b"\n") for r in resources]
    order = {kind: at for at, kind in enumerate(EXPORT_TYPES)}
    return sorted(lines, key=lambda line: order[line[0]])  # stable: the order within a type


def lines_bytes(lines: Lines) -> bytes:
    """The exact bytes the patient's access record hashes: their lines, in order."""
    return b"".join(line for _, line in lines)


@dataclass(frozen=True)
class PatientExport:
    lines: Lines
    access_id: UUID
    durable: Callable[[], None]  # waits until the access record is committed


def export_patient(
    reads: FhirReads,
    ctx: RequestContext,
    patient_id: UUID,
    *,
    export_id: UUID,
    types: list[str],
    since: str | None,
    base: str,
    filters: Filters | None = None,
) -> PatientExport:
    """One patient's lines through ``$everything``'s path, and their record queued.
    A refusal is recorded by the gate and raised, as for a read."""
    parts = chart_parts(reads, ctx, patient_id, types, heads=True)
    kinds = [kind for kind, kind_type in RESOURCE_OF_KIND.items() if kind_type in types]
    query: dict[str, Any] = {
        "view": "fhir",
        "fhir": "export",
        "export": str(export_id),
        "base": base,
        "params": [],
        "types": types,
        "patient": str(patient_id),
        "patient_version": parts.patient.version if parts.patient is not None else None,
        "kinds": kinds,
        "kind": kinds[0] if len(kinds) == 1 else None,
        "codes": [],
        "since": since,
        "until": None,
        "cursor": None,
        "limit": CHART_LIMIT,
        "filters": filters or {},
        **parts.extra,
        "render": FHIR_RENDER,
        "policy": POLICY_VERSION,
    }
    decision = parts.admission.decision
    rows: list[Row] = []
    chart_version = parts.chart.version
    if kinds:
        keeps = search.matcher(query)
        page = reads.charts.views.timeline.page(
            patient_id,
            kind=query["kind"],
            since=since,
            until=None,
            after=None,
            limit=CHART_LIMIT,
            admit=lambda row: decision.shows(row["labels"]) and keeps(row),
        )
        rows, chart_version = page.entries, page.chart_version
    lines = patient_lines(query, parts.patient, parts.memberships, parts.consent, rows)
    access_id, durable = reads.charts.disclosures.submit_bytes(
        ctx,
        action="export",
        body=lines_bytes(lines),
        decision=decision,
        patient_id=patient_id,
        entry_ids=[row["entry_id"] for row in rows],
        stream_versions={str(patient_id): chart_version, **parts.admission.stream_versions},
        request=query,
    )
    return PatientExport(lines, access_id, durable)
