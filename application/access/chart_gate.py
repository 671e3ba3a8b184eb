"""The gate every access to a chart passes, reads and writes alike: facts in, a policy
decision out, denials recorded.

For a read it gathers what the policy decision point needs from the read models (the
patient's care organisation from the directory, consent state, the memberships), as
of known stream versions; a write brings the chart it loaded. Both ask
``policy.decide``, and a denial is written as an access record (decision ``deny``)
before the caller answers: 404 when the chart is outside the actor's reach (its
existence, or its erasure, must not leak), 403 otherwise.
"""

import logging
import time
from dataclasses import dataclass, replace
from datetime import date
from typing import Any, NoReturn
from uuid import UUID

from application.access.access_log import Disclosures
from application.access.policy import (
    AccessRequest,
    ConsentFacts,
    Content,
    Decision,
    MembershipFact,
    decide,
    deny,
)
from application.charts.read_models import ReadModels
from application.context import RequestContext, Role
from application.errors import DataKeyDestroyed, Gone, NotFound
from application.ledger.ledger import CareLedger
from application.ports import Clock
from domain.patient import Patient

log = logging.getLogger("careledger.gate")

# The views a refusal for want of a membership or directive rests on, and how long it
# waits for them: projected within milliseconds of a write, so a second covers a burst,
# and a stalled projection holds a refused request no longer than that.
REFUSAL_VIEWS = ("consent_state", "roster")
REFUSAL_WAIT_SECONDS = 1.0
# Views found behind for a whole wait are taken as stalled for this long: refusals are
# then answered as the views stand, so a stalled projection costs one wait, not one a
# request (an export of many refused patients, or a burst of refused reads).
STALLED_SECONDS = 10.0


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
        self._stalled_until = 0.0  # monotonic

    def admit(
        self,
        ctx: RequestContext,
        patient_id: UUID,
        content: Content,
        action: str,
        *,
        care_organisation: str | None = None,
    ) -> Admission:
        organisation = care_organisation or self._care_organisation(ctx, patient_id, action)
        request = self._request(ctx, patient_id, organisation, content, write=False)
        decision, consent_versions, memberships = self._weighed(request, patient_id)
        decision = self._enforced(ctx, request, decision, action)
        versions = {**consent_versions, **{m.membership_id: m.version for m in memberships}}
        return Admission(decision, organisation, versions)

    def admit_write(
        self,
        ctx: RequestContext,
        content: Content,
        patient_id: UUID,
        care_organisation: str,
        *,
        erased: bool = False,
        resource: str = "patient",
    ) -> Decision:
        """A change to a chart, its consent or its memberships, decided by the same
        policy and recorded the same way as a read; 410 only to those within reach.
        Outside reach, 404 names the ``resource`` addressed, as for an unknown id."""
        request = self._request(ctx, patient_id, care_organisation, content, write=True)
        decision = self._enforced(ctx, request, _write_decision(request), "write", resource)
        if erased:
            raise Gone("the patient's record has been erased")
        return decision

    def write_permitted(
        self, ctx: RequestContext, content: Content, patient_id: UUID, care_organisation: str
    ) -> bool:
        """Whether ``admit_write`` would admit this write, deciding alike and recording
        nothing (the erasure check aside)."""
        request = self._request(ctx, patient_id, care_organisation, content, write=True)
        return _write_decision(request).permit

    def within_reach(self, ctx: RequestContext, patient_id: UUID, action: str) -> str:
        """The organisation of a chart the actor may address at all (a patient's own,
        a staff member's organisation's); else a denial is recorded and 404 raised."""
        organisation = self.organisation_of(patient_id)
        if organisation is None:  # a probe of an unknown id: the prober's auditors see it
            self.refuse_outside(ctx, patient_id, ctx.actor.org, action)
        if _outside_reach(ctx, patient_id, organisation):
            self.refuse_outside(ctx, patient_id, organisation, action)
        return organisation

    def refuse_outside(
        self,
        ctx: RequestContext,
        patient_id: UUID | None,
        organisation: str | None,
        action: str,
        resource: str = "patient",
    ) -> NoReturn:
        """Record the attempt where the chart's auditors see it, then answer 404 as for
        an unknown ``resource``."""
        decision = replace(deny("outside the actor's organisation"), care_organisation=organisation)
        self.disclosures.refuse(ctx, action=action, decision=decision, patient_id=patient_id)
        raise NotFound(resource)

    def refuse_addressed(
        self,
        ctx: RequestContext,
        reason: str,
        patient_id: UUID | None,
        action: str,
        request: dict[str, Any],
    ) -> None:
        """Record a refusal decided before the gate (a role, a purpose): where the
        addressed patient's organisation's auditors see it, whoever attempted it."""
        organisation = self.organisation_of(patient_id) if patient_id is not None else None
        decision = replace(deny(reason), care_organisation=organisation)
        self.disclosures.refuse(
            ctx, action=action, decision=decision, patient_id=patient_id, request=request
        )

    def organisation_of(self, patient_id: UUID) -> str | None:
        """The patient's care organisation, erased or not; None for an unknown id (or
        one erased before the tombstone named its organisation)."""
        organisation = self.views.directory.organisation_of(patient_id)
        if organisation is not None:
            return organisation
        try:  # not projected yet, or erased (purged from the views): the log answers
            patient = self.ledger.load(Patient, patient_id, "patient")
        except NotFound:
            return None
        except DataKeyDestroyed:
            return self.ledger.erased_organisation(patient_id)
        return str(patient.organisation_id)

    def chart(self, ctx: RequestContext, patient_id: UUID, action: str) -> Patient:
        """The chart a command is about to check, as this process last saw it. An erased
        chart cannot be read: 410 within reach, else 404 (recorded)."""
        try:
            return self.ledger.for_check(Patient, patient_id, "patient")
        except NotFound:  # recorded, so that an unknown id costs what a foreign one does
            self.refuse_outside(ctx, patient_id, ctx.actor.org, action)
        except DataKeyDestroyed:
            self.within_reach(ctx, patient_id, action)
            raise

    def explain(
        self, ctx: RequestContext, patient_id: UUID, organisation: str, content: Content
    ) -> tuple[Decision, list[MembershipFact]]:
        """What the policy would decide on this content, and the memberships it weighed,
        recording nothing: for a page that explains a chart's access (the console's
        banner), never to admit a read."""
        request = self._request(ctx, patient_id, organisation, content, write=False)
        decision, _versions, memberships = self._weighed(request, patient_id)
        return decision, memberships

    def _weighed(
        self, request: AccessRequest, patient_id: UUID
    ) -> tuple[Decision, dict[str, int], list[MembershipFact]]:
        """The policy's decision on a read, with the consent versions and memberships it
        weighed. A refusal for want of a membership or directive may rest on one
        acknowledged a moment ago that the views do not show yet: it is weighed again
        once they show the log (or after ``REFUSAL_WAIT_SECONDS``), so that a client
        reading its own write is not refused, nor recorded as refused."""
        weighed = self._weighed_as_projected(request, patient_id)
        if weighed[0].rests_on_views and self._caught_up():
            weighed = self._weighed_as_projected(request, patient_id)
        return weighed

    def _caught_up(self) -> bool:
        if time.monotonic() < self._stalled_until:
            return False
        try:
            caught_up = self.views.caught_up_with_log(REFUSAL_VIEWS, REFUSAL_WAIT_SECONDS)
        except Exception as error:  # the refusal as the views stand is still recorded
            log.warning("the views' positions could not be read: %s", type(error).__name__)
            caught_up = False
        if not caught_up:
            self._stalled_until = time.monotonic() + STALLED_SECONDS
        return caught_up

    def _weighed_as_projected(
        self, request: AccessRequest, patient_id: UUID
    ) -> tuple[Decision, dict[str, int], list[MembershipFact]]:
        consent, consent_versions = self._consent(patient_id)
        memberships = self._memberships(request.care_organisation, patient_id)
        return decide(request, consent, memberships), consent_versions, memberships

    def _request(
        self,
        ctx: RequestContext,
        patient_id: UUID,
        organisation: str,
        content: Content,
        *,
        write: bool,
    ) -> AccessRequest:
        return AccessRequest(
            actor=ctx.actor,
            purpose=ctx.purpose,
            patient_id=str(patient_id),
            care_organisation=organisation,
            content=content,
            day=self.clock().date(),
            break_glass=ctx.break_glass,
            write=write,
        )

    def _enforced(
        self,
        ctx: RequestContext,
        request: AccessRequest,
        decision: Decision,
        action: str,
        resource: str = "patient",
    ) -> Decision:
        """The decision, or its refusal recorded and raised (404 outside reach)."""
        if not decision.permit:
            patient_id = UUID(request.patient_id)
            refusal = self.disclosures.refuse(
                ctx, action=action, decision=decision, patient_id=patient_id
            )
            if _outside_reach(ctx, patient_id, request.care_organisation):
                raise NotFound(resource)
            raise refusal
        return decision

    def _care_organisation(self, ctx: RequestContext, patient_id: UUID, action: str) -> str:
        organisation = self.views.directory.organisation_of(patient_id)
        if organisation is not None:
            return organisation
        # Not projected yet, or erased: the log answers (404; 410 after erasure, but
        # only to those within reach, or erasure would tell outsiders the id existed).
        try:
            patient = self.ledger.load(Patient, patient_id, "patient")
        except NotFound:  # recorded as an attempt, as an outsider's on a known id is
            self.refuse_outside(ctx, patient_id, ctx.actor.org, action)
        except DataKeyDestroyed:
            self.within_reach(ctx, patient_id, action)
            raise
        if patient.erased:  # its key outlived a crash during erasure
            self.within_reach(ctx, patient_id, action)
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
    if actor.role is Role.PATIENT and actor.patient_id != patient_id:
        return True
    return actor.org != organisation


@dataclass(frozen=True)
class ReadSide:
    """What a use case needs to disclose PHI: the views, the gate, the access log."""

    views: ReadModels
    gate: ChartGate
    disclosures: Disclosures


def _write_decision(request: AccessRequest) -> Decision:
    """A write's decision, the one ``admit_write`` enforces and ``write_permitted``
    predicts. The policy decides a write on role and organisation alone, so it is
    given no consent or memberships."""
    return decide(request, ConsentFacts(0, {}), [])
