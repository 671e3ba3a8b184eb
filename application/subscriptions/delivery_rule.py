"""Whether one chart event may reach one subscriber, and in how much detail.

Pure, so the delivery projection (deciding as of the event's position), the delivery
(deciding again as of now) and replay (rebuilding a delivered message) share it. An
event reaches a subscriber only if all of these hold:

- the patient's care organisation is the one that registered the subscriber (a
  subscriber discloses its own organisation's patients only, whoever the recipient);
- its kind is one the subscriber was registered for;
- every sensitivity label on it is one the subscriber was registered for;
- the policy decision point permits the subscriber's purpose for its recipient
  organisation, with the consent and memberships given, and leaves no label hidden.

At delivery time the entry is judged as it stands then (``labels_at_delivery``): a
relabelled entry is decided on its labels then as well as those its event carried, and
an entry since entered in error has only that correction delivered.
"""

from dataclasses import dataclass, field, replace
from datetime import date, datetime
from typing import Any
from uuid import UUID, uuid5

from application.access.policy import (
    AccessRequest,
    ConsentFacts,
    Content,
    Decision,
    MembershipFact,
    decide,
)
from application.charts.disclosure_rendering import coding, entry_value, recorded, rendered
from application.charts.read_models import sortable_time
from application.context import Actor, Role
from domain.patient import Patient
from domain.subscriber import ContentLevel
from domain.vocabulary import EntryStatus, Purpose

DELIVERED_EVENTS = (Patient.EntryRecorded, Patient.EntryAmended, Patient.EntryEnteredInError)


@dataclass(frozen=True)
class SubscriberSpec:
    """A registration, as the delivery rule needs it."""

    id: UUID
    name: str
    # The organisation whose administrator registered it: the discloser, whose
    # patients alone it may receive. "" for a version 1 registration: nobody's.
    registering_org: str
    recipient_org: str
    purpose: Purpose
    kinds: frozenset[str]
    labels: frozenset[str]
    content: ContentLevel

    @property
    def actor(self) -> Actor:
        return Actor(id=str(self.id), role=Role.SERVICE, org=self.recipient_org)

    def as_json(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "name": self.name,
            "registering_org": self.registering_org,
            "recipient_org": self.recipient_org,
            "purpose": self.purpose.value,
            "kinds": sorted(self.kinds),
            "labels": sorted(self.labels),
            "content": self.content.value,
        }

    @staticmethod
    def of(subscriber_id: UUID, registration: Any) -> "SubscriberSpec":
        """From a ``Subscriber`` aggregate or its ``Registered`` event."""
        return SubscriberSpec(
            id=subscriber_id,
            name=registration.name,
            registering_org=registration.registering_org,
            recipient_org=registration.recipient_org,
            purpose=Purpose(registration.purpose),
            kinds=frozenset(registration.kinds),
            labels=frozenset(registration.labels),
            content=ContentLevel(registration.content),
        )

    @staticmethod
    def from_json(data: dict[str, Any]) -> "SubscriberSpec":
        return SubscriberSpec(
            id=UUID(data["id"]),
            name=data["name"],
            # Rows projected before registrations named it: nobody's, until rebuilt.
            registering_org=data.get("registering_org", ""),
            recipient_org=data["recipient_org"],
            purpose=Purpose(data["purpose"]),
            kinds=frozenset(data["kinds"]),
            labels=frozenset(data["labels"]),
            content=ContentLevel(data["content"]),
        )


@dataclass(frozen=True)
class Pending:
    """Outbox items after a cursor, with each patient's state, read in one snapshot."""

    items: list[tuple[int, UUID, dict[str, Any]]]  # (position, patient_id, decrypted content)
    subjects: dict[UUID, "Subject"]
    scanned_to: int  # the last outbox position looked at, where the cursor may move
    # Each item's entry as it stands at the projection's position (by entry id).
    entries: dict[UUID, "EntryFacts"] = field(default_factory=dict)


@dataclass
class Subject:
    """A patient as the delivery rule sees them: care organisation, consent, memberships."""

    care_organisation: str
    consent: ConsentFacts = field(default_factory=lambda: ConsentFacts(0, {}))
    memberships: list[MembershipFact] = field(default_factory=list)


def delivery_decision(
    spec: SubscriberSpec,
    subject: Subject,
    patient_id: UUID,
    kind: str,
    labels: frozenset[str],
    day: date,
) -> Decision | None:
    """The permit a delivery rests on, or None if the event must not reach them."""
    if not spec.registering_org or subject.care_organisation != spec.registering_org:
        return None  # another organisation's patient (the policy denies it too)
    if kind not in spec.kinds or not labels <= spec.labels:
        return None
    request = AccessRequest(
        actor=spec.actor,
        purpose=spec.purpose,
        patient_id=str(patient_id),
        care_organisation=subject.care_organisation,
        content=Content.CLINICAL,
        day=day,
        delivery=True,
        discloser=spec.registering_org,
    )
    decision = decide(request, subject.consent, subject.memberships)
    if not decision.permit or not decision.shows(labels):
        return None
    return decision


def delivery_event_id(subscriber_id: UUID, originator_id: UUID, version: int) -> UUID:
    """Stable per subscriber and event, from random ids only (never PHI).

    JetStream de-duplicates ``Nats-Msg-Id`` across the whole stream, so an id shared by
    two subscribers' copies of one event would silently drop the second copy.
    """
    return uuid5(subscriber_id, f"{originator_id.hex}:{version}")


@dataclass(frozen=True)
class EntryFacts:
    """The kind, labels and status an entry has as of a chart event (amendments may
    relabel; a correction marks it entered in error)."""

    kind: str
    labels: frozenset[str]
    status: str = EntryStatus.ACTIVE.value


def entry_facts(event: Any, before: EntryFacts | None) -> EntryFacts | None:
    """The entry's facts after ``event``; None if it is not a delivered event."""
    if isinstance(event, Patient.EntryRecorded):
        return EntryFacts(event.kind, frozenset(event.labels))
    if before is None:
        return None  # an entry recorded under a destroyed key, or never seen
    if isinstance(event, Patient.EntryAmended):
        labels = before.labels if event.labels is None else frozenset(event.labels)
        return EntryFacts(before.kind, labels, EntryStatus.AMENDED.value)
    if isinstance(event, Patient.EntryEnteredInError):
        return replace(before, status=EntryStatus.ENTERED_IN_ERROR.value)
    return before


def labels_at_delivery(
    event_type: str, labels: frozenset[str], now: EntryFacts
) -> frozenset[str] | None:
    """The labels a pending item is decided on at delivery, or None if the entry as it
    stands (``now``) must not be delivered from this item at all.

    Both the labels its event carried and the entry's labels now count: a relabel
    either way makes the content no less sensitive than it was or is. An entry since
    entered in error has only its correction delivered, never its earlier content.
    """
    corrected = now.status == EntryStatus.ENTERED_IN_ERROR.value
    if corrected and event_type != Patient.EntryEnteredInError.__name__:
        return None
    return labels | now.labels


def message(spec: SubscriberSpec, event: Any, position: int, facts: EntryFacts) -> dict[str, Any]:
    """The feed item (and NATS message body) for one delivered event, minimised."""
    return {
        "event_id": str(delivery_event_id(spec.id, event.originator_id, event.originator_version)),
        "position": position,
        "patient_id": str(event.originator_id),
        "type": type(event).__name__,
        "occurred_at": _iso(event.timestamp),
        "payload": _payload(spec.content, event, facts),
    }


def _payload(content: ContentLevel, event: Any, facts: EntryFacts) -> dict[str, Any]:
    entry_id = str(event.entry_id)
    if content is ContentLevel.ID_ONLY:
        return {"entry_id": entry_id}
    if isinstance(event, Patient.EntryRecorded):
        if content is ContentLevel.FULL:
            row = recorded(event)
            return rendered(
                event.entry_id.hex, row["kind"], row["status"], row["effective_at"], row["phi"]
            )
        return {
            "entry_id": entry_id,
            "kind": facts.kind,
            "code": _bare_code(event.code),
            "effective_at": _iso(event.effective_at),
            "status": EntryStatus.ACTIVE.value,
        }
    if isinstance(event, Patient.EntryAmended):
        summary: dict[str, Any] = {
            "entry_id": entry_id,
            "kind": facts.kind,
            "status": EntryStatus.AMENDED.value,
            "code": _bare_code(event.code) if event.code is not None else None,
            "effective_at": _iso(event.effective_at) if event.effective_at else None,
        }
        if content is ContentLevel.FULL:
            summary.update(
                code=coding(event.code) if event.code is not None else None,
                value=entry_value(event.value),
                modality=event.modality,
                labels=sorted(event.labels) if event.labels is not None else None,
                author=event.author,
                reason=event.reason,
            )
        return summary
    summary = {
        "entry_id": entry_id,
        "kind": facts.kind,
        "status": EntryStatus.ENTERED_IN_ERROR.value,
    }
    if content is ContentLevel.FULL:
        summary["reason"] = event.reason
    return summary


def _bare_code(code: Any) -> dict[str, str]:
    """A code without its display text: summary carries no free text."""
    return {"system": code.system, "code": code.code}


def _iso(moment: datetime) -> str:
    return sortable_time(moment)  # as the timeline shows it
