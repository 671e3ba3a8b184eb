"""Access decisions for a replay: the one an access was given on its day, and the auditor's."""

from collections.abc import Sequence
from dataclasses import replace

from application.access import policy_v1
from application.access.policy import (
    POLICY_VERSION,
    AccessRequest,
    ConsentFacts,
    Content,
    Decision,
    MembershipFact,
    decide,
)
from application.charts.disclosure_rendering import consent_state
from application.context import Actor, RequestContext, Role
from domain.access_record import AccessRecord
from domain.consent import Consent
from domain.membership import Membership
from domain.patient import Patient
from domain.vocabulary import Purpose


def replay_decision(ctx: RequestContext, record: AccessRecord) -> Decision:
    """The auditor's own access: to a record of their organisation's
    (``visible_record`` saw to it), decided by the policy like any other."""
    request = AccessRequest(
        ctx.actor,
        ctx.purpose,
        record.patient_id or "",
        ctx.actor.org,
        Content.CLINICAL,
        record.occurred_at.date(),
        replay=True,
    )
    return decide(request, ConsentFacts(0, {}), [])


def decision_on_the_day(
    record: AccessRecord,
    patient: Patient,
    consent: Consent | None,
    memberships: Sequence[Membership],
) -> Decision:
    """The decision the record's access was given, from the chart, the consent (None:
    the consent view had no stream then) and the memberships at their versions."""
    facts = ConsentFacts(0, {})
    if consent is not None:
        facts = ConsentFacts(consent.version, consent_state(consent)["directives"])
    actor = Actor(record.actor["id"], Role(record.actor["role"]), record.actor["org"])
    request = AccessRequest(
        actor=actor,
        purpose=Purpose(record.purpose),
        patient_id=str(patient.id),
        care_organisation=str(patient.organisation_id),
        content=Content.CLINICAL,
        day=record.occurred_at.date(),
        break_glass=record.basis.get("break_glass"),
    )
    if record.request.get("policy", 1) < POLICY_VERSION:
        # Disclosed under an earlier policy: rebuilt by that policy's label rule.
        shown = policy_v1.labels_shown(
            actor,
            request.purpose,
            request.care_organisation,
            facts,
            request.day,
            record.basis,
        )
        return Decision(True, record.reason, allowed_labels=shown)
    decision = decide(request, facts, [_membership_fact(m) for m in memberships])
    if not decision.permit:  # cannot happen for a permit recorded under this policy
        return replace(decision, allowed_labels=frozenset())
    return decision


def _membership_fact(membership: Membership) -> MembershipFact:
    return MembershipFact(
        membership_id=str(membership.id),
        status=membership.status,
        starts_on=membership.starts_on,
        ends_on=membership.ends_on,
        ended_on=membership.ended_on,
        version=membership.version,
    )
