"""Use cases of the consent record: grant and revoke directives, request restrictions."""

from collections.abc import Callable
from dataclasses import replace
from typing import Any
from uuid import UUID

from application.access.access_log import Disclosed
from application.access.chart_gate import ReadSide
from application.access.policy import Content, deny
from application.access.roles import ChartAction, require_role
from application.charts.chart_reads import CONSENT_VIEWS
from application.charts.disclosure_rendering import (
    CONSENTS_RENDER,
    consent_state,
    render_consents,
)
from application.context import RequestContext, Role
from application.errors import NotFound
from application.ledger.ledger import CareLedger, WriteOutcome
from application.ports import Clock, NewId
from domain.consent import Consent
from domain.grantee import Grantee, GranteeKind
from domain.patient import Patient
from domain.subscriber import Subscriber
from domain.values import ConsentEvidence, Period, Provenance
from domain.vocabulary import Purpose, SensitivityLabel, SigningMethod


class Consents:
    def __init__(self, ledger: CareLedger, clock: Clock, new_id: NewId, reads: ReadSide) -> None:
        self.ledger = ledger
        self.clock = clock
        self.new_id = new_id
        self.reads = reads

    def grant_directive(
        self,
        ctx: RequestContext,
        patient_id: UUID,
        *,
        grantee: str,
        purposes: frozenset[Purpose],
        labels: frozenset[SensitivityLabel],
        period: Period,
        form_id: str,
        form_version: str,
        text_sha256: str,
        method: SigningMethod,
        expected_version: int | None = None,
    ) -> WriteOutcome:
        directive_id = self.new_id()
        reference = Grantee.parse(grantee)

        def command(consent: Consent, by: Provenance) -> dict[str, Any]:
            evidence = ConsentEvidence(
                form_id=form_id,
                form_version=form_version,
                text_sha256=text_sha256,
                method=method,
                recorded_by=by.actor_id,
            )
            consent.grant_directive(
                directive_id=directive_id,
                grantee=grantee,
                purposes=purposes,
                labels=labels,
                period=period,
                evidence=evidence,
                by=by,
            )
            return {"directive_id": str(directive_id)}

        return self._change(ctx, patient_id, expected_version, command, reference)

    def revoke_directive(
        self,
        ctx: RequestContext,
        patient_id: UUID,
        directive_id: UUID,
        *,
        reason: str,
        expected_version: int | None = None,
    ) -> WriteOutcome:
        def command(consent: Consent, by: Provenance) -> dict[str, Any]:
            consent.revoke_directive(directive_id=directive_id, reason=reason, by=by)
            return {"directive_id": str(directive_id)}

        return self._change(ctx, patient_id, expected_version, command)

    def request_restriction(
        self,
        ctx: RequestContext,
        patient_id: UUID,
        *,
        purposes: frozenset[Purpose],
        labels: frozenset[SensitivityLabel],
        recipient: str | None,
    ) -> WriteOutcome:
        restriction_id = self.new_id()

        def command(consent: Consent, by: Provenance) -> dict[str, Any]:
            consent.request_restriction(
                restriction_id=restriction_id,
                purposes=purposes,
                labels=labels,
                recipient=recipient,
                by=by,
            )
            return {"restriction_id": str(restriction_id)}

        return self._change(ctx, patient_id, None, command)

    def _change(
        self,
        ctx: RequestContext,
        patient_id: UUID,
        expected_version: int | None,
        command: Callable[[Consent, Provenance], dict[str, Any]],
        grantee: Grantee | None = None,
    ) -> WriteOutcome:
        require_role(ctx, ChartAction.MANAGE_CONSENT)
        patient = self.reads.gate.chart(ctx, patient_id, "write")
        organisation = patient.organisation_id
        self.reads.gate.admit_write(
            ctx, Content.CONSENT, patient_id, organisation, erased=patient.erased
        )
        # Staff record a patient's signed or witnessed directive, never one that would
        # widen their own organisation's access (theirs, a colleague's, its subscribers').
        staff = ctx.actor.role is not Role.PATIENT
        if grantee is not None and staff and self._of_organisation(grantee, ctx.actor.org):
            decision = replace(
                deny("staff never record a directive naming their own organisation's access"),
                care_organisation=organisation,
            )
            raise self.reads.disclosures.refuse(
                ctx, action="write", decision=decision, patient_id=patient_id
            )
        if (prior := self.ledger.repeated(ctx)) is not None:
            return prior

        def apply(consent: Consent) -> tuple[list[Consent], dict[str, Any]]:
            result = command(consent, Provenance(ctx.actor.id, self.clock()))
            return [consent], {**result, "consent_version": consent.version}

        return self.ledger.change(
            ctx, Consent, patient.consent_id, "consent", apply, expected_version
        )

    def _of_organisation(self, grantee: Grantee, org: str) -> bool:
        """Whether the grantee is the organisation, one of its practitioners, or a
        subscriber it registered (only its patient may grant those)."""
        if grantee.names_organisation(org):
            return True
        if grantee.kind is not GranteeKind.SUBSCRIBER:
            return False
        try:
            subscriber = self.ledger.load(Subscriber, UUID(grantee.subject), "subscriber")
        except NotFound:
            return False
        return bool(subscriber.registering_org == org)

    def current(
        self, ctx: RequestContext, patient_id: UUID, min_position: int | None = None
    ) -> Disclosed:
        """The directives in force and past, with the consent version they come from.

        Served from the consent-state view; a patient the view does not show yet is
        read from the log instead.
        """
        require_role(ctx, ChartAction.READ_CONSENT)
        reads = self.reads
        reads.views.caught_up(CONSENT_VIEWS, min_position)
        admission = reads.gate.admit(ctx, patient_id, Content.CONSENT, "read")
        state = reads.views.consents.of_patient(patient_id)
        if state is None:
            patient = self.ledger.load(Patient, patient_id, "patient")
            consent = self.ledger.load(Consent, patient.consent_id, "consent")
            state = {"consent_id": str(consent.id), **consent_state(consent)}
        return reads.disclosures.disclose(
            ctx,
            action="read",
            body=render_consents(patient_id, state, self.clock().date(), CONSENTS_RENDER),
            decision=admission.decision,
            patient_id=patient_id,
            # The body's consent version last: the admission may have read an older one
            # (the view moved on between the two reads), and replay rebuilds the body.
            stream_versions={
                **admission.stream_versions,
                state["consent_id"]: state["consent_version"],
            },
            request={
                "view": "consents",
                "consent_id": state["consent_id"],
                "render": CONSENTS_RENDER,
            },
            version=state["consent_version"],
        )
