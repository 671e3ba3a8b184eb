"""A downstream subscriber: who receives which events, for what purpose, in how much detail.

Registered by an administrator, for their own organisation: a subscriber discloses only
the patients of the organisation that registered it, whoever the recipient is. The
registration is the ceiling of what the subscriber may ever receive: the patient's
consent and the policy then narrow it per event. It holds no PHI, so its stream is
sealed with the system key.
"""

from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from domain.errors import InvalidValue
from domain.events import AttributedEvent
from domain.values import Provenance
from domain.vocabulary import EntryKind, Purpose, SensitivityLabel


class ContentLevel(StrEnum):
    """Minimum necessary: how much of each entry a subscriber receives."""

    ID_ONLY = "id-only"  # the entry's id and what happened to it
    SUMMARY = "summary"  # kind, code and dates; no free text, values or author
    FULL = "full"  # the entry as the timeline shows it


class Subscriber(Aggregate):
    id: UUID  # random, passed in

    class Event(AttributedEvent):
        pass

    class Registered(Event, Aggregate.Created):
        """Version 2 adds ``registering_org``, the registering administrator's organisation."""

        class_version = 2

        name: str
        registering_org: str
        recipient_org: str
        purpose: str
        kinds: list[str]
        labels: list[str]
        content: str

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            """A version 1 registration did not say which organisation registered it.

            Its registering organisation becomes "" (no organisation): such a subscriber
            discloses nothing, and its feed answers 404, until an administrator
            registers it again. Guessing the recipient organisation instead would let
            a foreign administrator's old registration go on disclosing another
            organisation's patients.
            """
            state["registering_org"] = ""

    @staticmethod
    def register(
        *,
        subscriber_id: UUID,
        name: str,
        registering_org: str,
        recipient_org: str,
        purpose: Purpose,
        kinds: list[EntryKind],
        labels: list[SensitivityLabel],
        content: ContentLevel,
        by: Provenance,
    ) -> "Subscriber":
        if not name.strip():
            raise InvalidValue("name", "must not be blank")
        if not registering_org.strip():
            raise InvalidValue("registering_org", "must not be blank")
        if not recipient_org.strip():
            raise InvalidValue("recipient_org", "must not be blank")
        if purpose is Purpose.ETREAT:
            raise InvalidValue("purpose", "break-glass is for a person, never a subscription")
        if purpose is Purpose.PATRQT:
            raise InvalidValue("purpose", "a patient's own request is not a subscription")
        if not kinds:
            raise InvalidValue("kinds", "must name at least one entry kind")
        return Subscriber(  # type: ignore[call-arg]
            id=subscriber_id,
            name=name.strip(),
            registering_org=registering_org.strip(),
            recipient_org=recipient_org.strip(),
            purpose=purpose.value,
            kinds=sorted({k.value for k in kinds}),
            labels=sorted({label.value for label in labels}),
            content=content.value,
            actor_id=by.actor_id,
            timestamp=by.occurred_at,
        )

    @event(Registered)
    def __init__(
        self,
        *,
        name: str,
        registering_org: str,
        recipient_org: str,
        purpose: str,
        kinds: list[str],
        labels: list[str],
        content: str,
        actor_id: str,
        timestamp: datetime,
    ) -> None:
        self.name = name
        self.registering_org = registering_org
        self.recipient_org = recipient_org
        self.purpose = purpose
        self.kinds = kinds
        self.labels = labels
        self.content = content
        self.registered_at = timestamp
