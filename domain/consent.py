"""The patient's consent record: every directive and restriction in one stream.

Keeping all directives in one stream per patient makes "consent version N" (the
stream version) a well-defined point to decide access against.
"""

from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from domain.errors import DirectiveNotActive, DirectiveNotFound, InvalidValue
from domain.events import AttributedEvent
from domain.grantee import Grantee
from domain.values import ConsentEvidence, Period, Provenance
from domain.vocabulary import Purpose, SensitivityLabel


class Consent(Aggregate):
    """One stream per patient: directives granted and revoked, and restrictions asked for."""

    id: UUID  # ids are passed in (uuid4 from the caller), never minted here
    class_version = 2  # directives carry their typed grantee (``grantee_ref``)

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        """A snapshot from before typed grantees: each directive's reference, by the
        rule ``DirectiveGranted.upcast_v1_v2`` states."""
        for directive in state["directives"].values():
            directive.setdefault("grantee_ref", _reference(directive["grantee"]))

    class Event(AttributedEvent):
        pass

    class Opened(Event, Aggregate.Created):
        patient_id: UUID

    class DirectiveGranted(Event):
        """``grantee`` is the text as granted; ``grantee_ref`` the typed reference it
        names (``domain.grantee``), which is what access is decided on."""

        class_version = 2

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            """Granted before typed grantees: the bare text is read as an organisation
            id, and a text that names no valid reference names nobody ("")."""
            state["grantee_ref"] = _reference(state["grantee"])

        directive_id: UUID
        grantee: str
        grantee_ref: str
        purposes: list[str]
        labels: list[str]
        period: Period
        evidence: ConsentEvidence

    class DirectiveRevoked(Event):
        """Takes effect from its position in the log, not retroactively."""

        directive_id: UUID
        reason: str
        effective_at: datetime

    class RestrictionRequested(Event):
        restriction_id: UUID
        purposes: list[str]
        labels: list[str]
        recipient: str | None

    @staticmethod
    def open(*, consent_id: UUID, patient_id: UUID, by: Provenance) -> "Consent":
        """Opened with the patient's registration, with no directives."""
        # The metaclass accepts ``id`` because of the ``id: UUID`` annotation; mypy only
        # sees ``__init__``, which must not take it.
        return Consent(  # type: ignore[call-arg]
            id=consent_id, patient_id=patient_id, actor_id=by.actor_id, timestamp=by.occurred_at
        )

    @event(Opened)
    def __init__(self, *, patient_id: UUID, actor_id: str, timestamp: datetime) -> None:
        self.patient_id = patient_id
        self.directives: dict[str, dict[str, Any]] = {}
        self.restrictions: dict[str, dict[str, Any]] = {}

    def grant_directive(
        self,
        *,
        directive_id: UUID,
        grantee: str,
        purposes: frozenset[Purpose],
        labels: frozenset[SensitivityLabel],
        period: Period,
        evidence: ConsentEvidence,
        by: Provenance,
    ) -> None:
        if not grantee.strip() or len(grantee) > 200:
            raise InvalidValue("grantee", "must be 1 to 200 characters")
        reference = Grantee.parse(grantee)
        if not purposes:
            raise InvalidValue("purposes", "must name at least one purpose of use")
        if Purpose.ETREAT in purposes:
            raise InvalidValue("purposes", "ETREAT is break-glass and needs no directive")
        if directive_id.hex in self.directives:
            raise InvalidValue("directive_id", "already used in this consent record")
        self._directive_granted(
            directive_id=directive_id,
            grantee=grantee,
            grantee_ref=str(reference),
            purposes=sorted(p.value for p in purposes),
            labels=sorted(label.value for label in labels),
            period=period,
            evidence=evidence,
            actor_id=by.actor_id,
            timestamp=by.occurred_at,
        )

    @event(DirectiveGranted)
    def _directive_granted(
        self,
        *,
        directive_id: UUID,
        grantee: str,
        grantee_ref: str,
        purposes: list[str],
        labels: list[str],
        period: Period,
        evidence: ConsentEvidence,
        actor_id: str,
        timestamp: datetime,
    ) -> None:
        self.directives[directive_id.hex] = {
            "grantee": grantee,
            "grantee_ref": grantee_ref,
            "purposes": purposes,
            "labels": labels,
            "period": period,
            "evidence": evidence,
            "granted_at": timestamp,
            "revoked_at": None,
            "revocation_reason": None,
        }

    def revoke_directive(self, *, directive_id: UUID, reason: str, by: Provenance) -> None:
        directive = self.directives.get(directive_id.hex)
        if directive is None:
            raise DirectiveNotFound()
        if not self.is_directive_revocable(directive_id, by.occurred_at):
            raise DirectiveNotActive()
        if not reason.strip():
            raise InvalidValue("reason", "must not be blank")
        self._directive_revoked(
            directive_id=directive_id,
            reason=reason,
            effective_at=by.occurred_at,
            actor_id=by.actor_id,
            timestamp=by.occurred_at,
        )

    @event(DirectiveRevoked)
    def _directive_revoked(
        self,
        *,
        directive_id: UUID,
        reason: str,
        effective_at: datetime,
        actor_id: str,
        timestamp: datetime,
    ) -> None:
        directive = self.directives[directive_id.hex]
        directive["revoked_at"] = effective_at
        directive["revocation_reason"] = reason

    def request_restriction(
        self,
        *,
        restriction_id: UUID,
        purposes: frozenset[Purpose],
        labels: frozenset[SensitivityLabel],
        recipient: str | None,
        by: Provenance,
    ) -> None:
        """The patient's right to ask for restrictions (HIPAA 164.522)."""
        if not purposes and not labels and not recipient:
            raise InvalidValue("restriction", "must name purposes, labels or a recipient")
        self._restriction_requested(
            restriction_id=restriction_id,
            purposes=sorted(p.value for p in purposes),
            labels=sorted(label.value for label in labels),
            recipient=recipient,
            actor_id=by.actor_id,
            timestamp=by.occurred_at,
        )

    @event(RestrictionRequested)
    def _restriction_requested(
        self,
        *,
        restriction_id: UUID,
        purposes: list[str],
        labels: list[str],
        recipient: str | None,
        actor_id: str,
        timestamp: datetime,
    ) -> None:
        self.restrictions[restriction_id.hex] = {
            "purposes": purposes,
            "labels": labels,
            "recipient": recipient,
            "requested_at": timestamp,
        }

    def is_directive_revocable(self, directive_id: UUID, at: datetime) -> bool:
        """In force now, or granted for a period yet to start: a patient may withdraw
        consent before it takes effect. Revoked or expired directives are final."""
        directive = self.directives.get(directive_id.hex)
        if directive is None or directive["revoked_at"] is not None:
            return False
        period: Period = directive["period"]
        return period.end is None or at.date() < period.end

    def is_directive_active(self, directive_id: UUID, at: datetime) -> bool:
        directive = self.directives.get(directive_id.hex)
        if directive is None or directive["revoked_at"] is not None:
            return False
        period: Period = directive["period"]
        return period.includes(at.date())


def _reference(text: str) -> str:
    found = Grantee.read(text)
    return str(found) if found is not None else ""
