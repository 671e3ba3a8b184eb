"""An access to PHI, as the audit keeps it: one stream per access record.

The record is PHI-free metadata: who, when, why, which streams at which versions, and
the SHA-256 of the exact response body. It is sealed with the audit key, not the
patient's, so it outlives the patient's crypto-shredding, and it is covered by the
hash chain like every other record. A break-glass access is later reviewed, once,
by an auditor other than the one who accessed, as an event on the same stream.

``care_org`` is the patient's care organisation, whose auditors see the record.
Records written before it was kept upcast to ``None``: their care organisation is
unknown, so only the auditors of the actor's own organisation see them.

``channel`` is where the disclosure was shown: ``api`` (/v1 and /fhir) or ``console``
(the server-rendered pages). Records written before it was kept upcast to ``api``,
the only channel there was.
"""

from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event
from eventsourcing.utils import get_topic

from domain.errors import AlreadyReviewed, InvalidValue, OwnAccessReview
from domain.events import AttributedEvent
from domain.values import Provenance

ACTIONS = frozenset({"read", "search", "write", "export", "replay", "deliver"})
DECISIONS = frozenset({"permit", "deny"})
CHANNELS = frozenset({"api", "console"})
REVIEW_OUTCOMES = frozenset({"justified", "unjustified", "needs_follow_up"})


class AccessRecord(Aggregate):
    id: UUID  # a random access id, passed in

    class Event(AttributedEvent):
        pass

    class Recorded(Event, Aggregate.Created):
        class_version = 3

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["care_org"] = None

        @staticmethod
        def upcast_v2_v3(state: dict[str, Any]) -> None:
            state["channel"] = "api"

        actor_role: str
        actor_org: str
        purpose: str
        action: str
        patient_id: str | None
        entry_ids: list[str]
        decision: str
        reason: str
        basis: dict[str, Any]
        stream_versions: dict[str, int]
        response_sha256: str | None
        request: dict[str, Any]  # what replay needs to rebuild the response
        request_id: str
        source: str
        care_org: str | None
        channel: str

    class Reviewed(Event):
        outcome: str
        note: str

    @staticmethod
    def record(
        *,
        access_id: UUID,
        by: Provenance,
        actor_role: str,
        actor_org: str,
        purpose: str,
        action: str,
        patient_id: str | None,
        entry_ids: list[str],
        decision: str,
        reason: str,
        basis: dict[str, Any],
        stream_versions: dict[str, int],
        response_sha256: str | None,
        request: dict[str, Any],
        request_id: str,
        source: str,
        care_org: str | None = None,
        channel: str = "api",
    ) -> "AccessRecord.Recorded":
        """The new record, as its one event: a record is written once and read back
        through the aggregate (``event.mutate(None)``). Made directly rather than
        through the aggregate's constructor, which costs three times as much on a
        path taken for every disclosure."""
        if action not in ACTIONS:
            raise InvalidValue("action", f"must be one of {sorted(ACTIONS)}")
        if decision not in DECISIONS:
            raise InvalidValue("decision", "must be permit or deny")
        if channel not in CHANNELS:
            raise InvalidValue("channel", f"must be one of {sorted(CHANNELS)}")
        return AccessRecord.Recorded(  # type: ignore[call-arg]
            originator_topic=_TOPIC,
            originator_id=access_id,
            originator_version=1,
            timestamp=by.occurred_at,
            actor_id=by.actor_id,
            actor_role=actor_role,
            actor_org=actor_org,
            purpose=purpose,
            action=action,
            patient_id=patient_id,
            entry_ids=entry_ids,
            decision=decision,
            reason=reason,
            basis=basis,
            stream_versions=stream_versions,
            response_sha256=response_sha256,
            request=request,
            request_id=request_id,
            source=source,
            care_org=care_org,
            channel=channel,
        )

    @event(Recorded)
    def __init__(
        self,
        *,
        actor_id: str,
        timestamp: datetime,
        actor_role: str,
        actor_org: str,
        purpose: str,
        action: str,
        patient_id: str | None,
        entry_ids: list[str],
        decision: str,
        reason: str,
        basis: dict[str, Any],
        stream_versions: dict[str, int],
        response_sha256: str | None,
        request: dict[str, Any],
        request_id: str,
        source: str,
        care_org: str | None,
        channel: str,
    ) -> None:
        self.occurred_at = timestamp
        self.actor = {"id": actor_id, "role": actor_role, "org": actor_org}
        self.purpose = purpose
        self.action = action
        self.patient_id = patient_id
        self.entry_ids = entry_ids
        self.decision = decision
        self.reason = reason
        self.basis = basis
        self.stream_versions = stream_versions
        self.response_sha256 = response_sha256
        self.request = request
        self.request_id = request_id
        self.source = source
        self.care_org = care_org
        self.channel = channel
        self.review: dict[str, Any] | None = None

    @property
    def is_break_glass(self) -> bool:
        return "break_glass" in self.basis

    def review_break_glass(
        self, *, outcome: str, note: str, by: Provenance, reviewer_org: str
    ) -> None:
        if not self.is_break_glass:
            raise InvalidValue("access_id", "is not a break-glass access")
        if outcome not in REVIEW_OUTCOMES:
            raise InvalidValue("outcome", f"must be one of {sorted(REVIEW_OUTCOMES)}")
        if self.review is not None:
            raise AlreadyReviewed()
        if (by.actor_id, reviewer_org) == (self.actor["id"], self.actor["org"]):
            raise OwnAccessReview()
        self._reviewed(outcome=outcome, note=note, actor_id=by.actor_id, timestamp=by.occurred_at)

    @event(Reviewed)
    def _reviewed(self, *, outcome: str, note: str, actor_id: str, timestamp: datetime) -> None:
        self.review = _review(outcome, note, actor_id, timestamp)

    @staticmethod
    def review_of(reviewed: "AccessRecord.Reviewed") -> dict[str, Any]:
        """What a review adds to the record, for readers of the event alone."""
        return _review(reviewed.outcome, reviewed.note, reviewed.actor_id, reviewed.timestamp)

    def log_entry(self) -> dict[str, Any]:
        """The AccessRecord with why it was decided and how it was reviewed."""
        return {**self.as_json(), "reason": self.reason, "review": self.review}

    def as_json(self) -> dict[str, Any]:
        """The fields `GET /v1/audit/accesses` serves (who sees them: docs/security.md)."""
        return {
            "access_id": str(self.id),
            "occurred_at": self.occurred_at,
            "actor": self.actor,
            "purpose": self.purpose,
            "action": self.action,
            "patient_id": self.patient_id,
            "entry_ids": self.entry_ids,
            "decision": self.decision,
            "basis": self.basis,
            "stream_versions": self.stream_versions,
            "response_sha256": self.response_sha256,
            "request_id": self.request_id,
            "source": self.source,
            "care_org": self.care_org,
            "channel": self.channel,
        }


_TOPIC = get_topic(AccessRecord)


def _review(outcome: str, note: str, by: str, at: datetime) -> dict[str, Any]:
    return {"outcome": outcome, "note": note, "by": by, "at": at}
