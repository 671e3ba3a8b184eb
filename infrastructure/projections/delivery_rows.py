"""The delivery view's tables, and how their rows are labelled, sealed and read back by
the projection that writes them and the reader that serves subscribers."""

from datetime import date
from typing import Any
from uuid import UUID

import orjson

from application.access.policy import ConsentFacts, MembershipFact
from application.subscriptions.delivery_rule import EntryFacts, Subject, SubscriberSpec
from infrastructure.projections.row_cipher import RowCipher
from infrastructure.projections.store import Cursor

NAME = "deliveries"
SUBSCRIBERS = "view_subscribers"
SUBJECTS = "view_delivery_subjects"
STREAMS = "view_delivery_streams"
# Renamed from view_delivery_entries when rows gained the entry's status: a store
# projected before starts this table empty, so rebuild the view (its items of entries
# it does not know are held back, never sent unjudged, until then).
ENTRIES = "view_delivery_entry_facts"
OUTBOX = "view_outbox"
# Each subscriber's acknowledged feed position: the consumer's state, not derived from
# the log, so it belongs to no view version and survives a rebuild.
CURSORS = "subscriber_cursors"


def subject_label(patient_id: UUID) -> str:
    return f"{SUBJECTS}/{patient_id.hex}"


def encrypt_entry(cipher: RowCipher, patient_id: UUID, entry_id: UUID, facts: EntryFacts) -> bytes:
    return cipher.encrypt(
        patient_id, f"{ENTRIES}/{entry_id.hex}", [facts.kind, sorted(facts.labels), facts.status]
    )


def decrypt_entry(
    cipher: RowCipher, patient_id: UUID, entry_id: UUID, encrypted: bytes
) -> EntryFacts:
    kind, labels, status = cipher.decrypt(patient_id, f"{ENTRIES}/{entry_id.hex}", encrypted)
    return EntryFacts(kind, frozenset(labels), status)


def outbox_label(subscriber_id: UUID, position: int) -> str:
    return f"{OUTBOX}/{subscriber_id.hex}/{position}"


def subject_facts(subject: dict[str, Any]) -> Subject:
    consent = subject["consent"]
    return Subject(
        care_organisation=subject["org"],
        consent=ConsentFacts(consent["version"], consent["directives"]),
        memberships=[
            MembershipFact(
                membership_id=membership_id,
                status=m["status"],
                starts_on=date.fromisoformat(m["starts_on"]),
                ends_on=date.fromisoformat(m["ends_on"]),
                ended_on=date.fromisoformat(m["ended_on"]) if m["ended_on"] else None,
                version=m["version"],
            )
            for membership_id, m in sorted(subject["memberships"].items())
            if m["organisation_id"] == subject["org"]
        ],
    )


def subscribers_of(cursor: Cursor, table: str, version: int) -> list[SubscriberSpec]:
    """The view's subscribers, in the order they were registered."""
    rows = cursor.execute(
        f"SELECT spec FROM {table} WHERE version = ? ORDER BY position", (version,)
    ).fetchall()
    return [SubscriberSpec.from_json(orjson.loads(r[0])) for r in rows]
