"""Use cases of the consent record: grant and revoke directives, request restrictions."""

from collections.abc import Callable
from datetime import datetime
from typing import Any
from uuid import UUID

from application.access import ChartAction, authorise, require_role
from application.context import RequestContext
from application.ledger import CareLedger, WriteOutcome
from application.ports import Clock, NewId
from domain.consent import Consent
from domain.patient import Patient
from domain.values import ConsentEvidence, Period, Provenance
from domain.vocabulary import Purpose, SensitivityLabel, SigningMethod


class Consents:
    def __init__(self, ledger: CareLedger, clock: Clock, new_id: NewId) -> None:
        self.ledger = ledger
        self.clock = clock
        self.new_id = new_id

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

        return self._change(ctx, patient_id, expected_version, command)

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
    ) -> WriteOutcome:
        require_role(ctx, ChartAction.MANAGE_CONSENT)
        if (prior := self.ledger.repeated(ctx)) is not None:
            return prior
        patient = self.ledger.load(Patient, patient_id, "patient")
        authorise(ctx, ChartAction.MANAGE_CONSENT, patient)

        def decide(consent: Consent) -> tuple[list[Consent], dict[str, Any]]:
            result = command(consent, Provenance(ctx.actor.id, self.clock()))
            return [consent], {**result, "consent_version": consent.version}

        return self.ledger.change(
            ctx, Consent, patient.consent_id, "consent", decide, expected_version
        )

    def current(self, ctx: RequestContext, patient_id: UUID) -> dict[str, Any]:
        """The directives in force and past, with the consent version they come from."""
        require_role(ctx, ChartAction.READ_CONSENT)
        patient = self.ledger.load(Patient, patient_id, "patient")
        authorise(ctx, ChartAction.READ_CONSENT, patient)
        consent = self.ledger.load(Consent, patient.consent_id, "consent")
        now = self.clock()
        return {
            "patient_id": str(patient_id),
            "consent_version": consent.version,
            "directives": [
                _render_directive(UUID(key), d, consent.is_directive_active(UUID(key), now))
                for key, d in consent.directives.items()
            ],
            "restrictions": [
                {"restriction_id": str(UUID(key)), **r} for key, r in consent.restrictions.items()
            ],
        }


def _render_directive(directive_id: UUID, d: dict[str, Any], active: bool) -> dict[str, Any]:
    period: Period = d["period"]
    evidence: ConsentEvidence = d["evidence"]
    revoked_at: datetime | None = d["revoked_at"]
    return {
        "directive_id": str(directive_id),
        "grantee": d["grantee"],
        "purposes": d["purposes"],
        "labels": d["labels"],
        "period": {"start": period.start, "end": period.end},
        "evidence": {
            "form_id": evidence.form_id,
            "form_version": evidence.form_version,
            "text_sha256": evidence.text_sha256,
            "method": evidence.method,
            "recorded_by": evidence.recorded_by,
        },
        "status": "active" if active else ("revoked" if revoked_at else "inactive"),
        "granted_at": d["granted_at"],
        "revoked_at": revoked_at,
        "revocation_reason": d["revocation_reason"],
    }
