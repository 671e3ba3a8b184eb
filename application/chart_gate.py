"""The gate every PHI read passes: facts in, a policy decision out, denials recorded.

It gathers what the policy decision point needs from the read models (the patient's
care organisation from the directory, consent state, the memberships), as of known
stream versions, and asks ``policy.decide``. A denial is written as an access record
(decision ``deny``) before the caller answers: 404 when the chart is outside the
actor's reach (its existence must not leak), 403 otherwise.
"""

from dataclasses import dataclass
from datetime import date
from typing import Any
from uuid import UUID

from application.access_log import Disclosures
from application.context import RequestContext, Role
from application.errors import Gone, NotFound
from application.ledger import CareLedger
from application.policy import (
    AccessRequest,
    ConsentFacts,
    Content,
    Decision,
    MembershipFact,
    decide,
)
from application.ports import Clock
from application.read_models import ReadModels
from domain.patient import Patient


@dataclass(frozen=True)
class Admission:
    decision: Decision
    care_organisation: str
    stream_versions: dict[str, int]  # consent and membership streams the decision used


class ChartGate:
    """Admission to one patient's chart, for one kind of content."""

    def __init__(
        self, ledger: CareLedger, views: ReadModels, disclosures: Disclosures, clock: Clock
    ) -> None:
        self.ledger = ledger
        self.views = views
        self.disclosures = disclosures
        self.clock = clock

    def admit(
        self,
        ctx: RequestContext,
        patient_id: UUID,
        content: Content,
        action: str,
        *,
        care_organisation: str | None = None,
    ) -> Admission:
        organisation = care_organisation or self._care_organisation(patient_id)
        consent, consent_versions = self._consent(patient_id)
        memberships = self._memberships(organisation, patient_id)
        request = AccessRequest(
            actor=ctx.actor,
            purpose=ctx.purpose,
            patient_id=str(patient_id),
            care_organisation=organisation,
            content=content,
            day=self.clock().date(),
            break_glass=ctx.break_glass,
        )
        decision = decide(request, consent, memberships)
        if not decision.permit:
            refusal = self.disclosures.refuse(
                ctx, action=action, decision=decision, patient_id=patient_id
            )
            if _outside_reach(ctx, patient_id, organisation):
                raise NotFound("patient")
            raise refusal
        versions = {**consent_versions, **{m.membership_id: m.version for m in memberships}}
        return Admission(decision, organisation, versions)

    def _care_organisation(self, patient_id: UUID) -> str:
        organisation = self.views.directory.organisation_of(patient_id)
        if organisation is not None:
            return organisation
        # Not projected yet, or erased: the log answers (404, or 410 after erasure).
        patient = self.ledger.load(Patient, patient_id, "patient")
        if patient.erased:
            raise Gone("the patient's record has been erased")
        return str(patient.organisation_id)

    def _consent(self, patient_id: UUID) -> tuple[ConsentFacts, dict[str, int]]:
        state = self.views.consents.of_patient(patient_id)
        if state is None:
            return ConsentFacts(0, {}), {}
        facts = ConsentFacts(state["consent_version"], state["directives"])
        return facts, {state["consent_id"]: state["consent_version"]}

    def _memberships(self, organisation: str, patient_id: UUID) -> list[MembershipFact]:
        items: list[dict[str, Any]] = self.views.roster.memberships(
            organisation, patient_id=patient_id, sponsor_id=None, status=None, limit=100
        )
        return [
            MembershipFact(
                membership_id=item["id"],
                status=item["status"],
                starts_on=date.fromisoformat(item["starts_on"]),
                ends_on=date.fromisoformat(item["ends_on"]),
                ended_on=date.fromisoformat(item["ended_on"]) if item["ended_on"] else None,
                version=int(item["version"]),
            )
            for item in items
        ]


def _outside_reach(ctx: RequestContext, patient_id: UUID, organisation: str) -> bool:
    actor = ctx.actor
    if actor.role is Role.PATIENT:
        return actor.patient_id != patient_id
    return actor.org != organisation


@dataclass(frozen=True)
class ReadSide:
    """What a use case needs to disclose PHI: the views, the gate, the access log."""

    views: ReadModels
    gate: ChartGate
    disclosures: Disclosures
