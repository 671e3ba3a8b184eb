"""``Coverage``: a patient's memberships as FHIR R4B Coverages (docs/fhir.md).

Admitted by the policy as membership content (the patient, the care organisation's
clinicians and administrators; foreign actors are refused and recorded). The
memberships shown are those the decision read, loaded from the event store at the
versions it read them, which the access record keeps with the day the statuses were
judged on, so that replay renders the same bytes (``application.access.replay``).
"""

from datetime import date
from typing import Any
from uuid import UUID

from application.access.access_log import Disclosed
from application.access.chart_gate import Admission
from application.access.policy import POLICY_VERSION, TPO, Content, deny
from application.context import RequestContext, Role
from application.errors import Forbidden, NotFound
from application.fhir import search
from application.fhir.reads import FhirReads
from application.fhir.resources import FHIR_RENDER, parse_resource_id, searchset
from domain.membership import Membership, membership_active_on
from domain.vocabulary import Purpose

PLAN_SYSTEM = "urn:careledger:plan"
SPONSOR_SYSTEM = "urn:careledger:sponsor"
RELATIONSHIP = "http://terminology.hl7.org/CodeSystem/subscriber-relationship"
COVERAGE_PARAMS = {"beneficiary", "status"}
STATUSES = ("active", "cancelled")
READERS = (Role.CLINICIAN, Role.PATIENT, Role.ADMIN)
# A directive or public-health reporting opens clinical content to others, never a
# patient's plans and sponsors: those are the care organisation's own business.
MEMBERSHIP_PURPOSES = TPO | {Purpose.ETREAT}


def may_read_memberships(ctx: RequestContext, care_organisation: str) -> bool:
    if ctx.actor.role is Role.PATIENT:
        return True  # the gate has checked it is their own record
    own = ctx.actor.org == care_organisation
    return own and ctx.actor.role in READERS and ctx.purpose in MEMBERSHIP_PURPOSES


def admit_memberships(reads: FhirReads, ctx: RequestContext, patient_id: UUID) -> Admission:
    """The gate's admission, narrowed to the patient and their care organisation's staff
    acting for treatment, payment or operations; any other reader is refused, recorded."""
    admission = reads.charts.gate.admit(ctx, patient_id, Content.MEMBERSHIP, "read")
    if not may_read_memberships(ctx, admission.care_organisation):
        reason = "memberships are read by the patient and their care organisation only"
        refusal = deny(f"{reason}, for treatment, payment or operations")
        raise reads.charts.disclosures.refuse(
            ctx, action="read", decision=refusal, patient_id=patient_id
        )
    return admission


def coverage_resource(membership: Membership, today: str) -> dict[str, Any]:
    """One membership: ``payor`` its sponsor, or the patient paying for themself."""
    patient = {"reference": f"Patient/{membership.patient_id}"}
    ended_on = getattr(membership, "ended_on", None)
    active = membership_active_on(
        membership.status,
        membership.starts_on,
        membership.ends_on,
        ended_on,
        date.fromisoformat(today),
    )
    end = min(membership.ends_on, ended_on) if ended_on else membership.ends_on
    sponsor = membership.sponsor_id
    payor = (
        {"identifier": {"system": SPONSOR_SYSTEM, "value": sponsor}, "display": sponsor}
        if sponsor
        else {**patient, "display": "self-pay"}
    )
    return {
        "resourceType": "Coverage",
        "id": membership.patient_id.hex + membership.id.hex,
        "status": "active" if active else "cancelled",
        "type": {"coding": [{"system": PLAN_SYSTEM, "code": membership.plan}]},
        "beneficiary": patient,
        "relationship": {
            "coding": [{"system": RELATIONSHIP, "code": "other" if sponsor else "self"}]
        },
        "period": {"start": membership.starts_on.isoformat(), "end": end.isoformat()},
        "payor": [payor],
    }


def coverage_body(query: dict[str, Any], memberships: list[Membership]) -> Any:
    """A Coverage read, or the patient's searchset; replay renders through it too."""
    by_start = sorted(memberships, key=lambda m: (m.starts_on, m.id.hex))
    resources = [coverage_resource(m, query["today"]) for m in by_start]
    if query["fhir"] == "read-coverage":
        found = [r for r in resources if r["id"].endswith(query["membership"])]
        if not found:
            raise NotFound("Coverage")
        return found[0]
    wanted = set(query["statuses"])
    resources = [r for r in resources if not wanted or r["status"] in wanted]
    pairs = [(name, value) for name, value in query["params"]]
    return searchset(resources, query["base"], search.url(query["base"], "Coverage", pairs), None)


def coverages(
    reads: FhirReads,
    ctx: RequestContext,
    base: str,
    params: search.Params,
    resource_id: str | None = None,
) -> Disclosed:
    """``Coverage?beneficiary=&status=`` (every membership in one page) or
    ``Coverage/{id}``."""
    query: dict[str, Any] = {"view": "fhir", "base": base}
    if resource_id is None:
        found = search.known(params, COVERAGE_PARAMS)
        patient_id = search.chart_of(found, "beneficiary")
        statuses = search.statuses(found, STATUSES)
        kept = [[n, v] for n, v in params if n not in search.IGNORED]
        query |= {"fhir": "search-coverage", "params": kept, "statuses": statuses}
    else:
        ids = parse_resource_id(resource_id)
        if ids is None:
            raise NotFound("Coverage")
        patient_id, membership = ids
        query |= {"fhir": "read-coverage", "membership": membership.hex}
    if ctx.actor.role not in READERS:
        raise Forbidden(f"the {ctx.actor.role} role may not read memberships")
    gate = reads.charts.gate
    # Admitted before anything is loaded: an outsider's probe is refused, recorded.
    admission = admit_memberships(reads, ctx, patient_id)
    chart = reads.chart(patient_id)  # erased: 410, within reach
    versions = {
        stream: version
        for stream, version in admission.stream_versions.items()
        if stream != str(chart.consent_id)
    }
    shown = [membership_at(reads, stream, version) for stream, version in sorted(versions.items())]
    query |= {
        "patient": str(patient_id),
        "memberships": sorted(versions),
        "today": gate.clock().date().isoformat(),
        "render": FHIR_RENDER,
        "policy": POLICY_VERSION,
    }
    return reads.charts.disclosures.disclose(
        ctx,
        action="read",
        body=coverage_body(query, shown),
        decision=admission.decision,
        patient_id=patient_id,
        stream_versions={str(patient_id): chart.version, **admission.stream_versions},
        request=query,
    )


def membership_at(reads: FhirReads, stream: str, version: int) -> Membership:
    found: Any = reads.ledger.repository.get(UUID(stream), version=version)
    assert isinstance(found, Membership), "the decision's streams are memberships"
    return found
