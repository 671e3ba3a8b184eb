"""Consent state: each patient's directives and restrictions, with the consent version.

One row per consent stream. The directives name grantees, purposes and sensitivity
labels, which say something about the patient, so the whole state is encrypted under
the patient's key; only the random ids and the version are plain.
"""

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from eventsourcing.utils import get_topic

from domain.consent import Consent
from infrastructure.projections.engine import Decoded, active_version, delete_patient_rows
from infrastructure.projections.row_cipher import RowCipher
from infrastructure.projections.store import Cursor, ViewStore

TABLE = "view_consent"


class ConsentStateProjection:
    name = "consent_state"
    topics = tuple(
        get_topic(cls)
        for cls in (
            Consent.Opened,
            Consent.DirectiveGranted,
            Consent.DirectiveRevoked,
            Consent.RestrictionRequested,
        )
    )

    def __init__(self, store: ViewStore, cipher: RowCipher) -> None:
        self.cipher = cipher
        self.table = store.table(TABLE)

    def table_names(self) -> list[str]:
        return [TABLE]

    def tables(self) -> list[str]:
        t = self.table
        return [
            f"CREATE TABLE IF NOT EXISTS {t} (version INTEGER NOT NULL, "
            "consent_id TEXT NOT NULL, patient_id TEXT NOT NULL, consent_version INTEGER NOT NULL, "
            "position BIGINT NOT NULL, sealed BLOB NOT NULL, PRIMARY KEY (version, consent_id))",
            f"CREATE INDEX IF NOT EXISTS {TABLE}_by_patient ON {t} (version, patient_id)",
        ]

    def apply(self, cursor: Cursor, version: int, batch: Sequence[Decoded]) -> None:
        pending: dict[UUID, dict[str, Any]] = {}
        for item in batch:
            event = item.event
            consent_id = event.originator_id
            if isinstance(event, Consent.Opened):
                row: dict[str, Any] | None = {
                    "patient_id": event.patient_id,
                    "state": {"directives": {}, "restrictions": {}},
                }
            else:
                row = pending.get(consent_id) or self._load(cursor, version, consent_id)
                if row is None:
                    continue  # opened under a now-destroyed key: a tombstone
                _apply(row["state"], event)
            assert row is not None
            row["consent_version"] = event.originator_version
            row["position"] = item.position
            pending[consent_id] = row
        cursor.executemany(
            f"INSERT INTO {self.table} (version, consent_id, patient_id, consent_version, "
            "position, sealed) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (version, consent_id) "
            "DO UPDATE SET consent_version = excluded.consent_version, "
            "position = excluded.position, sealed = excluded.sealed",
            [
                (
                    version,
                    consent_id.hex,
                    row["patient_id"].hex,
                    row["consent_version"],
                    row["position"],
                    self.cipher.encrypt(
                        row["patient_id"], f"{TABLE}/{consent_id.hex}", row["state"]
                    ),
                )
                for consent_id, row in pending.items()
            ],
        )

    def _load(self, cursor: Cursor, version: int, consent_id: UUID) -> dict[str, Any] | None:
        found = cursor.execute(
            f"SELECT patient_id, consent_version, position, sealed FROM {self.table} "
            "WHERE version = ? AND consent_id = ?",
            (version, consent_id.hex),
        ).fetchone()
        if found is None:
            return None
        patient_hex, consent_version, position, encrypted = found
        patient_id = UUID(patient_hex)
        state = self.cipher.decrypt(patient_id, f"{TABLE}/{consent_id.hex}", encrypted)
        return {
            "patient_id": patient_id,
            "consent_version": consent_version,
            "position": position,
            "state": state,
        }

    def purge(self, cursor: Cursor, version: int, patient_id: UUID) -> None:
        delete_patient_rows(cursor, (self.table,), version, patient_id)


def _apply(state: dict[str, Any], event: Any) -> None:
    """The same state the Consent aggregate keeps, as JSON."""
    if isinstance(event, Consent.DirectiveGranted):
        state["directives"][event.directive_id.hex] = {
            "grantee": event.grantee,
            "grantee_ref": event.grantee_ref,
            "purposes": list(event.purposes),
            "labels": list(event.labels),
            "period": {
                "start": event.period.start.isoformat(),
                "end": event.period.end.isoformat() if event.period.end else None,
            },
            "evidence": {
                "form_id": event.evidence.form_id,
                "form_version": event.evidence.form_version,
                "text_sha256": event.evidence.text_sha256,
                "method": str(event.evidence.method),
                "recorded_by": event.evidence.recorded_by,
            },
            "granted_at": event.timestamp.isoformat(),
            "revoked_at": None,
            "revocation_reason": None,
        }
    elif isinstance(event, Consent.DirectiveRevoked):
        directive = state["directives"].get(event.directive_id.hex)
        if directive is not None:
            directive["revoked_at"] = event.effective_at.isoformat()
            directive["revocation_reason"] = event.reason
    elif isinstance(event, Consent.RestrictionRequested):
        state["restrictions"][event.restriction_id.hex] = {
            "purposes": list(event.purposes),
            "labels": list(event.labels),
            "recipient": event.recipient,
            "requested_at": event.timestamp.isoformat(),
        }


class ConsentStateReader:
    def __init__(self, store: ViewStore, cipher: RowCipher) -> None:
        self.store = store
        self.cipher = cipher
        self.table = store.table(TABLE)

    def of_patient(self, patient_id: UUID) -> dict[str, Any] | None:
        """``{consent_version, directives, restrictions}`` or None if not projected yet."""
        with self.store.reading() as cursor:
            version = active_version(cursor, self.store, ConsentStateProjection.name)
            found = cursor.execute(
                f"SELECT consent_id, consent_version, sealed FROM {self.table} "
                "WHERE version = ? AND patient_id = ?",
                (version, patient_id.hex),
            ).fetchone()
        if found is None:
            return None
        consent_hex, consent_version, encrypted = found
        state = self.cipher.decrypt(patient_id, f"{TABLE}/{consent_hex}", encrypted)
        return {
            "consent_id": str(UUID(consent_hex)),
            "consent_version": int(consent_version),
            **state,
        }
