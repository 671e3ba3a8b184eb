"""The read side of the delivery projection: subscribers, their outbox and cursors.

The feed and the relay read here what ``deliveries.DeliveryProjection`` wrote: each
subscriber's pending outbox items (opened under their patient's key; an erased
patient's are passed over, never delivered), the subjects and the entries as they now
stand to decide them against at delivery time, and the feed's durable cursor.
``measure_backlog`` puts each subscriber's backlog on /metrics.
"""

from typing import Any
from uuid import UUID

import orjson
from eventsourcing.persistence import ProcessRecorder
from prometheus_client import Gauge

from application.errors import DataKeyDestroyed
from application.subscriptions.delivery_rule import EntryFacts, Pending, SubscriberSpec
from application.subscriptions.relay import tracking_name
from infrastructure.projections.delivery_rows import (
    CURSORS,
    ENTRIES,
    NAME,
    OUTBOX,
    SUBJECTS,
    SUBSCRIBERS,
    decrypt_entry,
    outbox_label,
    subject_facts,
    subject_label,
    subscribers_of,
)
from infrastructure.projections.engine import active_version
from infrastructure.projections.row_cipher import RowCipher
from infrastructure.projections.store import Cursor, ViewStore

BACKLOG = Gauge(
    "careledger_subscriber_backlog_items",
    "Outbox items after the subscriber's acknowledged feed cursor, or after the relay's "
    "tracking position: what it has yet to receive (or be refused at delivery time)",
    ["subscriber", "channel"],
)


class DeliveryReader:
    def __init__(self, store: ViewStore, cipher: RowCipher) -> None:
        self.store = store
        self.cipher = cipher
        names = (SUBSCRIBERS, SUBJECTS, ENTRIES, OUTBOX, CURSORS)
        self.t = {n: store.table(n) for n in names}

    def subscriber(self, subscriber_id: UUID) -> SubscriberSpec | None:
        with self.store.reading() as cursor:
            version = active_version(cursor, self.store, NAME)
            found = cursor.execute(
                f"SELECT spec FROM {self.t[SUBSCRIBERS]} WHERE version = ? AND subscriber_id = ?",
                (version, subscriber_id.hex),
            ).fetchone()
        return None if found is None else SubscriberSpec.from_json(orjson.loads(found[0]))

    def subscribers(self) -> list[SubscriberSpec]:
        with self.store.reading() as cursor:
            version = active_version(cursor, self.store, NAME)
            return subscribers_of(cursor, self.t[SUBSCRIBERS], version)

    def pending(self, subscriber_id: UUID, after: int, limit: int) -> Pending:
        with self.store.reading() as cursor:
            version = active_version(cursor, self.store, NAME)
            rows = cursor.execute(
                f"SELECT position, patient_id, sealed FROM {self.t[OUTBOX]} "
                "WHERE version = ? AND subscriber_id = ? AND position > ? "
                "ORDER BY position LIMIT ?",
                (version, subscriber_id.hex, after, limit),
            ).fetchall()
            patients = sorted({r[1] for r in rows})
            subject_rows = []
            if patients:  # at most ``limit`` of them
                subject_rows = cursor.execute(
                    f"SELECT patient_id, sealed FROM {self.t[SUBJECTS]} WHERE version = ? "
                    f"AND patient_id IN ({', '.join('?' * len(patients))})",
                    (version, *patients),
                ).fetchall()
            items = []
            for position, patient_hex, encrypted in rows:
                patient_id = UUID(patient_hex)
                try:
                    content = self.cipher.decrypt(
                        patient_id, outbox_label(subscriber_id, position), encrypted
                    )
                except DataKeyDestroyed:
                    continue  # erased since: never delivered
                items.append((int(position), patient_id, content))
            # The same snapshot as the items (so the outbox is opened within it): each
            # item's entry as it stands at the projection's position.
            entries = self._entries(cursor, version, items)
        subjects = {}
        for patient_hex, encrypted in subject_rows:
            patient_id = UUID(patient_hex)
            try:
                opened = self.cipher.decrypt(patient_id, subject_label(patient_id), encrypted)
            except DataKeyDestroyed:
                continue
            subjects[patient_id] = subject_facts(opened)
        scanned = int(rows[-1][0]) if rows else after
        return Pending(items, subjects, scanned, entries)

    def _entries(
        self, cursor: Cursor, version: int, items: list[tuple[int, UUID, dict[str, Any]]]
    ) -> dict[UUID, EntryFacts]:
        wanted = sorted({UUID(c["message"]["payload"]["entry_id"]).hex for _, _, c in items})
        if not wanted:  # at most ``limit`` of them
            return {}
        rows = cursor.execute(
            f"SELECT entry_id, patient_id, sealed FROM {self.t[ENTRIES]} WHERE version = ? "
            f"AND entry_id IN ({', '.join('?' * len(wanted))})",
            (version, *wanted),
        ).fetchall()
        entries = {}
        for entry_hex, patient_hex, encrypted in rows:
            entry_id = UUID(entry_hex)
            try:
                entries[entry_id] = decrypt_entry(
                    self.cipher, UUID(patient_hex), entry_id, encrypted
                )
            except DataKeyDestroyed:
                continue  # erased since: its items are passed over too
        return entries

    def backlog(self, subscriber_id: UUID, after: int) -> int:
        with self.store.reading() as cursor:
            version = active_version(cursor, self.store, NAME)
            found = cursor.execute(
                f"SELECT count(*) FROM {self.t[OUTBOX]} "
                "WHERE version = ? AND subscriber_id = ? AND position > ?",
                (version, subscriber_id.hex, after),
            ).fetchone()
        return int(found[0]) if found else 0

    def cursor(self, subscriber_id: UUID) -> int:
        with self.store.reading() as cursor:
            found = cursor.execute(
                f"SELECT position FROM {self.t[CURSORS]} WHERE subscriber_id = ?",
                (subscriber_id.hex,),
            ).fetchone()
        return int(found[0]) if found else 0

    def acknowledge(self, subscriber_id: UUID, after: int) -> None:
        """Move the durable cursor forward to ``after`` (never back)."""
        with self.store.transaction() as cursor:
            cursor.execute(
                f"INSERT INTO {self.t[CURSORS]} AS c (subscriber_id, position) VALUES (?, ?) "
                "ON CONFLICT (subscriber_id) DO UPDATE SET position = excluded.position "
                "WHERE excluded.position > c.position",
                (subscriber_id.hex, after),
            )


def measure_backlog(
    reader: DeliveryReader, recorder: ProcessRecorder, *, relay: bool
) -> dict[tuple[str, str], int]:
    """Each subscriber's backlog per channel, set on the gauge for /metrics."""
    backlogs = {}
    for spec in reader.subscribers():
        channels = {"feed": reader.cursor(spec.id)}
        if relay:
            channels["nats"] = recorder.max_tracking_id(tracking_name(spec.id)) or 0
        for channel, after in channels.items():
            count = reader.backlog(spec.id, after)
            BACKLOG.labels(str(spec.id), channel).set(count)
            backlogs[(str(spec.id), channel)] = count
    return backlogs
