"""The delivery projection: per subscriber, the chart events it may receive, in log order.

It walks the log once for every subscriber. Because it applies consent, membership
and registration events in the same order as the chart events, the state it decides
with is exactly the state as of each event's position: a directive granted later
does not reach back, and a revocation stops everything after it. What it decides is
kept in an outbox (one encrypted row per subscriber and event); the delivery decides
once more, as of delivery time, against the state this projection has reached.

Tables (every row carries its view version; PHI is encrypted under the patient's key):
- subscribers: the registrations (no PHI, plain JSON);
- subjects: per patient, the care organisation, consent and memberships (encrypted);
- streams: which patient a consent or membership stream belongs to (random ids);
- entries: each entry's kind, labels and status, for amendments and for the delivery
  to judge the entry as it now stands (encrypted);
- outbox: per subscriber and position, the minimised message (encrypted).
An erased patient's rows go from all of them, so nothing of theirs is delivered.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import orjson
from eventsourcing.utils import get_topic

from application.access.access_log import render
from application.subscriptions.delivery_rule import (
    DELIVERED_EVENTS,
    EntryFacts,
    SubscriberSpec,
    delivery_decision,
    entry_facts,
    message,
)
from domain.consent import Consent
from domain.membership import Membership
from domain.patient import Patient
from domain.subscriber import ContentLevel, Subscriber
from infrastructure.projections import consent_state, roster
from infrastructure.projections.delivery_rows import (
    CURSORS,
    ENTRIES,
    NAME,
    OUTBOX,
    STREAMS,
    SUBJECTS,
    SUBSCRIBERS,
    decrypt_entry,
    encrypt_entry,
    outbox_label,
    subject_facts,
    subject_label,
    subscribers_of,
)
from infrastructure.projections.engine import Decoded, delete_patient_rows
from infrastructure.projections.row_cipher import RowCipher
from infrastructure.projections.store import Cursor, ViewStore

_CONSENT_EVENTS = (
    Consent.Opened,
    Consent.DirectiveGranted,
    Consent.DirectiveRevoked,
    Consent.RestrictionRequested,
)
_MEMBERSHIP_EVENTS = (
    Membership.Enrolled,
    Membership.Renewed,
    Membership.Cancelled,
    Membership.Terminated,
)


@dataclass
class _Batch:
    """What one batch has loaded or changed, written back once at its end."""

    subjects: dict[UUID, dict[str, Any]]
    changed: set[UUID]
    streams: dict[UUID, UUID]
    new_streams: dict[UUID, UUID]
    entries: dict[UUID, tuple[UUID, EntryFacts]]
    changed_entries: set[UUID]
    outbox: list[tuple[str, int, str, bytes]]


class DeliveryProjection:
    name = NAME
    topics = tuple(
        get_topic(cls)
        for cls in (
            Subscriber.Registered,
            Patient.Registered,
            *DELIVERED_EVENTS,
            *_CONSENT_EVENTS,
            *_MEMBERSHIP_EVENTS,
        )
    )

    def __init__(self, store: ViewStore, cipher: RowCipher) -> None:
        self.store = store
        self.cipher = cipher
        names = (SUBSCRIBERS, SUBJECTS, STREAMS, ENTRIES, OUTBOX, CURSORS)
        self.t = {n: store.table(n) for n in names}

    def table_names(self) -> list[str]:
        return [SUBSCRIBERS, SUBJECTS, STREAMS, ENTRIES, OUTBOX]

    def tables(self) -> list[str]:
        t = self.t
        return [
            f"CREATE TABLE IF NOT EXISTS {t[SUBSCRIBERS]} (version INTEGER NOT NULL, "
            "subscriber_id TEXT NOT NULL, position BIGINT NOT NULL, spec TEXT NOT NULL, "
            "PRIMARY KEY (version, subscriber_id))",
            f"CREATE TABLE IF NOT EXISTS {t[SUBJECTS]} (version INTEGER NOT NULL, "
            "patient_id TEXT NOT NULL, sealed BLOB NOT NULL, PRIMARY KEY (version, patient_id))",
            f"CREATE TABLE IF NOT EXISTS {t[STREAMS]} (version INTEGER NOT NULL, "
            "stream_id TEXT NOT NULL, patient_id TEXT NOT NULL, "
            "PRIMARY KEY (version, stream_id))",
            f"CREATE INDEX IF NOT EXISTS {STREAMS}_by_patient ON {t[STREAMS]} "
            "(version, patient_id)",
            f"CREATE TABLE IF NOT EXISTS {t[ENTRIES]} (version INTEGER NOT NULL, "
            "entry_id TEXT NOT NULL, patient_id TEXT NOT NULL, sealed BLOB NOT NULL, "
            "PRIMARY KEY (version, entry_id))",
            f"CREATE INDEX IF NOT EXISTS {ENTRIES}_by_patient ON {t[ENTRIES]} "
            "(version, patient_id)",
            f"CREATE TABLE IF NOT EXISTS {t[OUTBOX]} (version INTEGER NOT NULL, "
            "subscriber_id TEXT NOT NULL, position BIGINT NOT NULL, patient_id TEXT NOT NULL, "
            "sealed BLOB NOT NULL, PRIMARY KEY (version, subscriber_id, position))",
            f"CREATE INDEX IF NOT EXISTS {OUTBOX}_by_patient ON {t[OUTBOX]} (version, patient_id)",
            f"CREATE TABLE IF NOT EXISTS {t[CURSORS]} (subscriber_id TEXT PRIMARY KEY, "
            "position BIGINT NOT NULL)",
        ]

    # Applying a batch ------------------------------------------------------------

    def apply(self, cursor: Cursor, version: int, batch: Sequence[Decoded]) -> None:
        if not batch:
            return
        subscribers = subscribers_of(cursor, self.t[SUBSCRIBERS], version)
        work = _Batch({}, set(), {}, {}, {}, set(), [])
        for item in batch:
            event = item.event
            if isinstance(event, Subscriber.Registered):
                spec = SubscriberSpec.of(event.originator_id, event)
                subscribers.append(spec)
                cursor.execute(
                    f"INSERT INTO {self.t[SUBSCRIBERS]} (version, subscriber_id, position, spec) "
                    "VALUES (?, ?, ?, ?) ON CONFLICT (version, subscriber_id) DO NOTHING",
                    (version, spec.id.hex, item.position, orjson.dumps(spec.as_json()).decode()),
                )
            elif isinstance(event, Patient.Registered):
                work.subjects[event.originator_id] = {
                    "org": event.organisation_id,
                    "consent": {"version": 0, "directives": {}, "restrictions": {}},
                    "memberships": {},
                }
                work.changed.add(event.originator_id)
            elif isinstance(event, _CONSENT_EVENTS):
                self._consent(cursor, version, work, event)
            elif isinstance(event, _MEMBERSHIP_EVENTS):
                self._membership(cursor, version, work, event)
            elif isinstance(event, DELIVERED_EVENTS):
                self._chart_event(cursor, version, work, subscribers, item)
        self._write(cursor, version, work)

    def _stream_subject(
        self, cursor: Cursor, version: int, work: _Batch, event: Any, opens: bool
    ) -> tuple[UUID, dict[str, Any]] | None:
        """The patient a consent or membership stream belongs to, and their state.

        The stream's first event names the patient; later ones are looked up. None for
        a stream of an erased patient (a tombstone)."""
        if opens:
            patient_id: UUID | None = event.patient_id
            work.streams[event.originator_id] = event.patient_id
            work.new_streams[event.originator_id] = event.patient_id
        else:
            patient_id = self._patient_of(cursor, version, work, event.originator_id)
        subject = self._subject(cursor, version, work, patient_id)
        if subject is None or patient_id is None:
            return None
        return patient_id, subject

    def _consent(self, cursor: Cursor, version: int, work: _Batch, event: Any) -> None:
        found = self._stream_subject(
            cursor, version, work, event, isinstance(event, Consent.Opened)
        )
        if found is None:
            return
        patient_id, subject = found
        consent_state._apply(subject["consent"], event)
        subject["consent"]["version"] = event.originator_version
        work.changed.add(patient_id)

    def _membership(self, cursor: Cursor, version: int, work: _Batch, event: Any) -> None:
        found = self._stream_subject(
            cursor, version, work, event, isinstance(event, Membership.Enrolled)
        )
        if found is None:
            return
        patient_id, subject = found
        key = event.originator_id.hex
        row = subject["memberships"].get(key)
        if isinstance(event, Membership.Enrolled):
            row = {
                "organisation_id": event.organisation_id,
                "starts_on": event.starts_on.isoformat(),
                "ends_on": event.ends_on.isoformat(),
                "ended_on": None,
            }
        if row is None:
            return
        row["status"], row["ended_on"], row["ends_on"] = roster._after(event, row)
        row["version"] = event.originator_version
        subject["memberships"][key] = row
        work.changed.add(patient_id)

    def _chart_event(
        self,
        cursor: Cursor,
        version: int,
        work: _Batch,
        subscribers: Sequence[SubscriberSpec],
        item: Decoded,
    ) -> None:
        event: Any = item.event
        patient_id = event.originator_id
        known = work.entries.get(event.entry_id) or self._entry(cursor, version, event.entry_id)
        facts = entry_facts(event, known[1] if known else None)
        if facts is None:
            return
        work.entries[event.entry_id] = (patient_id, facts)
        if facts != (known[1] if known else None):
            work.changed_entries.add(event.entry_id)
        subject = self._subject(cursor, version, work, patient_id)
        if subject is None:
            return
        day = event.timestamp.date()
        as_of_event = subject_facts(subject)
        for spec in subscribers:
            if delivery_decision(spec, as_of_event, patient_id, facts.kind, facts.labels, day):
                body = message(spec, event, item.position, facts)
                if spec.content is ContentLevel.FULL:
                    # A full entry's quantity is a Decimal, which an encrypted row cannot
                    # hold: kept as the feed renders it, so its bytes are the same.
                    body = orjson.loads(render(body))
                encrypted = self.cipher.encrypt(
                    patient_id,
                    outbox_label(spec.id, item.position),
                    {
                        "message": body,
                        "kind": facts.kind,
                        "labels": sorted(facts.labels),
                        "stream_version": event.originator_version,
                    },
                )
                work.outbox.append((spec.id.hex, item.position, patient_id.hex, encrypted))

    # Loading and writing ------------------------------------------------------------

    def _patient_of(
        self, cursor: Cursor, version: int, work: _Batch, stream_id: UUID
    ) -> UUID | None:
        if stream_id not in work.streams:
            found = cursor.execute(
                f"SELECT patient_id FROM {self.t[STREAMS]} WHERE version = ? AND stream_id = ?",
                (version, stream_id.hex),
            ).fetchone()
            if found is None:
                return None
            work.streams[stream_id] = UUID(found[0])
        return work.streams[stream_id]

    def _subject(
        self, cursor: Cursor, version: int, work: _Batch, patient_id: UUID | None
    ) -> dict[str, Any] | None:
        if patient_id is None:
            return None
        if patient_id not in work.subjects:
            found = cursor.execute(
                f"SELECT sealed FROM {self.t[SUBJECTS]} WHERE version = ? AND patient_id = ?",
                (version, patient_id.hex),
            ).fetchone()
            if found is None:
                return None
            work.subjects[patient_id] = self.cipher.decrypt(
                patient_id, subject_label(patient_id), found[0]
            )
        return work.subjects[patient_id]

    def _entry(
        self, cursor: Cursor, version: int, entry_id: UUID
    ) -> tuple[UUID, EntryFacts] | None:
        found = cursor.execute(
            f"SELECT patient_id, sealed FROM {self.t[ENTRIES]} WHERE version = ? AND entry_id = ?",
            (version, entry_id.hex),
        ).fetchone()
        if found is None:
            return None
        patient_id = UUID(found[0])
        return patient_id, decrypt_entry(self.cipher, patient_id, entry_id, found[1])

    def _write(self, cursor: Cursor, version: int, work: _Batch) -> None:
        cursor.executemany(
            f"INSERT INTO {self.t[STREAMS]} (version, stream_id, patient_id) VALUES (?, ?, ?) "
            "ON CONFLICT (version, stream_id) DO NOTHING",
            [(version, s.hex, p.hex) for s, p in work.new_streams.items()],
        )
        cursor.executemany(
            f"INSERT INTO {self.t[SUBJECTS]} (version, patient_id, sealed) VALUES (?, ?, ?) "
            "ON CONFLICT (version, patient_id) DO UPDATE SET sealed = excluded.sealed",
            [
                (
                    version,
                    p.hex,
                    self.cipher.encrypt(p, subject_label(p), work.subjects[p]),
                )
                for p in sorted(work.changed)
                if p in work.subjects
            ],
        )
        cursor.executemany(
            f"INSERT INTO {self.t[ENTRIES]} (version, entry_id, patient_id, sealed) "
            "VALUES (?, ?, ?, ?) ON CONFLICT (version, entry_id) DO UPDATE SET sealed = "
            "excluded.sealed",
            [
                (
                    version,
                    e.hex,
                    work.entries[e][0].hex,
                    encrypt_entry(self.cipher, work.entries[e][0], e, work.entries[e][1]),
                )
                for e in work.changed_entries
            ],
        )
        cursor.executemany(
            f"INSERT INTO {self.t[OUTBOX]} (version, subscriber_id, position, patient_id, "
            "sealed) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (version, subscriber_id, position) DO NOTHING",
            [(version, *row) for row in work.outbox],
        )

    def purge(self, cursor: Cursor, version: int, patient_id: UUID) -> None:
        delete_patient_rows(
            cursor,
            [self.t[n] for n in (SUBJECTS, STREAMS, ENTRIES, OUTBOX)],
            version,
            patient_id,
        )
