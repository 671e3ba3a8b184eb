"""``Consent``: a patient's consent directives as FHIR R4B Consents (docs/fhir.md).

Read through the same gate as ``/v1``'s consent read (consent content), from the
patient's consent stream in the event store; the access record keeps that stream's
version and the day the statuses were judged on, so that replay renders the same
bytes (``application.access.replay``).
"""

import base64
from typing import Any
from uuid import UUID

from application.access.access_log import Disclosed
from application.access.policy import POLICY_VERSION, Content
from application.access.roles import ChartAction, require_role
from application.charts.disclosure_rendering import consent_state
from application.context import RequestContext
from application.errors import NotFound
from application.fhir import search
from application.fhir.reads import FhirReads
from application.fhir.resources import (
    ACT_CODE,
    FHIR_RENDER,
    SECURITY_LABELS,
    parse_resource_id,
    searchset,
)
from domain.consent import Consent

ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
CONSENT_SCOPE = "http://terminology.hl7.org/CodeSystem/consentscope"
PARTICIPATION = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
GRANTEE_SYSTEM = "urn:careledger:grantee"
CONSENT_PARAMS = {"patient", "status"}
STATUSES = ("active", "inactive")


def status_of(directive: dict[str, Any], today: str) -> str:
    """Active in its period and not revoked; otherwise (revoked, expired, not yet
    begun) inactive."""
    period = directive["period"]
    in_period = period["start"] <= today and (period["end"] is None or today < period["end"])
    return "active" if in_period and directive["revoked_at"] is None else "inactive"


def consent_resource(
    patient_id: UUID, directive_hex: str, directive: dict[str, Any], today: str
) -> dict[str, Any]:
    """One directive as a Consent: the grantee is ``provision.actor``, its purposes
    ``provision.purpose`` and its labels ``provision.securityLabel``."""
    period = {"start": directive["period"]["start"]}
    if directive["period"]["end"] is not None:
        period["end"] = directive["period"]["end"]
    evidence = directive["evidence"]
    provision: dict[str, Any] = {
        "type": "permit",
        "period": period,
        "actor": [
            {
                "role": {"coding": [{"system": PARTICIPATION, "code": "IRCP"}]},
                "reference": {
                    "identifier": {"system": GRANTEE_SYSTEM, "value": directive["grantee_ref"]},
                    "display": directive["grantee"],
                },
            }
        ],
    }
    if directive["purposes"]:
        provision["purpose"] = [{"system": ACT_REASON, "code": p} for p in directive["purposes"]]
    labels = [
        {"system": ACT_CODE, "code": SECURITY_LABELS[label][0]}
        for label in directive["labels"]
        if label in SECURITY_LABELS
    ]
    if labels:
        provision["securityLabel"] = labels
    return {
        "resourceType": "Consent",
        "id": patient_id.hex + directive_hex,
        "status": status_of(directive, today),
        "scope": {"coding": [{"system": CONSENT_SCOPE, "code": "patient-privacy"}]},
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": {"reference": f"Patient/{patient_id}"},
        "dateTime": directive["granted_at"],
        "sourceAttachment": {
            "title": f"{evidence['form_id']} version {evidence['form_version']}",
            # SHA-256 of the text the patient saw (FHIR's hash names SHA-1: docs/fhir.md).
            "hash": base64.b64encode(bytes.fromhex(evidence["text_sha256"])).decode(),
        },
        "policyRule": {"coding": [{"system": ACT_CODE, "code": "OPTIN"}]},
        "provision": provision,
    }


def consent_resources(patient_id: UUID, consent: Consent, today: str) -> list[dict[str, Any]]:
    """Every directive of the patient's consent, as Consents, in the order granted."""
    directives = consent_state(consent)["directives"]
    return [
        consent_resource(patient_id, key, directive, today)
        for key, directive in sorted(directives.items(), key=lambda d: d[1]["granted_at"])
    ]


def consents_body(query: dict[str, Any], consent: Consent) -> Any:
    """A Consent read, or the patient's searchset; replay renders through it too."""
    patient_id = UUID(query["patient"])
    directives = consent_state(consent)["directives"]
    today = query["today"]
    if query["fhir"] == "read-consent":
        directive = directives.get(query["directive"])
        if directive is None:
            raise NotFound("Consent")
        return consent_resource(patient_id, query["directive"], directive, today)
    wanted = set(query["statuses"])
    resources = consent_resources(patient_id, consent, today)
    resources = [r for r in resources if not wanted or r["status"] in wanted]
    pairs = [(name, value) for name, value in query["params"]]
    return searchset(resources, query["base"], search.url(query["base"], "Consent", pairs), None)


def consents(
    reads: FhirReads,
    ctx: RequestContext,
    base: str,
    params: search.Params,
    resource_id: str | None = None,
) -> Disclosed:
    """``Consent?patient=&status=`` (every directive in one page) or ``Consent/{id}``."""
    query: dict[str, Any] = {"view": "fhir", "base": base}
    if resource_id is None:
        found = search.known(params, CONSENT_PARAMS)
        patient_id = search.chart_of(found, "patient")
        statuses = search.statuses(found, STATUSES)
        kept = [[n, v] for n, v in params if n not in search.IGNORED]
        query |= {"fhir": "search-consent", "params": kept, "statuses": statuses}
    else:
        ids = parse_resource_id(resource_id)
        if ids is None:
            raise NotFound("Consent")
        patient_id, directive = ids
        query |= {"fhir": "read-consent", "directive": directive.hex}
    require_role(ctx, ChartAction.READ_CONSENT)
    gate = reads.charts.gate
    # Admitted before the chart is loaded: an outsider's probe is refused, recorded.
    admission = gate.admit(ctx, patient_id, Content.CONSENT, "read")
    chart = reads.chart(patient_id)  # erased: 410, within reach
    consent = reads.ledger.load(Consent, chart.consent_id, "consent")
    query |= {
        "patient": str(patient_id),
        "consent_id": str(consent.id),
        "today": gate.clock().date().isoformat(),
        "render": FHIR_RENDER,
        "policy": POLICY_VERSION,
    }
    return reads.charts.disclosures.disclose(
        ctx,
        action="read",
        body=consents_body(query, consent),
        decision=admission.decision,
        patient_id=patient_id,
        stream_versions={**admission.stream_versions, str(consent.id): consent.version},
        request=query,
    )
