"""The access log: every access record, searchable by patient, actor, time and outcome.

Plain columns are what the auditors' filters need (ids, role, organisation, purpose,
action, decision, time, whether it broke the glass and how it was reviewed); the
whole record is encrypted under the audit key, like the record in the log. Access
records outlive a patient's erasure, so this view ignores the ``Erased`` tombstone.
"""

from collections.abc import Sequence
from typing import Any
from uuid import UUID

import orjson
from eventsourcing.utils import get_topic

from application.charts.read_models import Key, sortable_time
from domain.access_record import AccessRecord
from infrastructure.keys import AUDIT_KEY_ID
from infrastructure.projections.engine import Decoded, active_version
from infrastructure.projections.row_cipher import RowCipher
from infrastructure.projections.store import Cursor, ViewStore

TABLE = "view_access_log"
FILTERS = ("patient_id", "actor_id", "actor_org", "decision", "purpose", "action")


class AccessLogProjection:
    name = "access_log"
    topics = (get_topic(AccessRecord.Recorded), get_topic(AccessRecord.Reviewed))

    def __init__(self, store: ViewStore, cipher: RowCipher) -> None:
        self.cipher = cipher
        self.table = store.table(TABLE)
        # Whose auditors see a row: the patient's care organisation (None before it
        # was recorded: then the actor's organisation's).
        self.added_columns = ((self.table, "care_org", "TEXT"),)

    def table_names(self) -> list[str]:
        return [TABLE]

    def tables(self) -> list[str]:
        t = self.table
        return [
            f"CREATE TABLE IF NOT EXISTS {t} (version INTEGER NOT NULL, "
            "access_id TEXT NOT NULL, occurred_at TEXT NOT NULL, actor_id TEXT NOT NULL, "
            "actor_role TEXT NOT NULL, actor_org TEXT NOT NULL, purpose TEXT NOT NULL, "
            "action TEXT NOT NULL, patient_id TEXT, decision TEXT NOT NULL, "
            "break_glass INTEGER NOT NULL, review_outcome TEXT, position BIGINT NOT NULL, "
            "sealed BLOB NOT NULL, care_org TEXT, PRIMARY KEY (version, access_id))",
            f"CREATE INDEX IF NOT EXISTS {TABLE}_by_time ON {t} (version, occurred_at, access_id)",
            f"CREATE INDEX IF NOT EXISTS {TABLE}_by_patient ON {t} "
            "(version, patient_id, occurred_at, access_id)",
            f"CREATE INDEX IF NOT EXISTS {TABLE}_by_actor ON {t} "
            "(version, actor_id, occurred_at, access_id)",
            f"CREATE INDEX IF NOT EXISTS {TABLE}_break_glass ON {t} "
            "(version, break_glass, occurred_at, access_id)",
        ]

    def apply(self, cursor: Cursor, version: int, batch: Sequence[Decoded]) -> None:
        rows: dict[UUID, dict[str, Any]] = {}
        for item in batch:
            event = item.event
            access_id = event.originator_id
            if isinstance(event, AccessRecord.Recorded):
                rows[access_id] = _row(event, item.position)
            elif isinstance(event, AccessRecord.Reviewed):
                row = rows.get(access_id) or self._load(cursor, version, access_id)
                if row is None:
                    continue
                review = AccessRecord.review_of(event)
                row["record"]["review"] = orjson.loads(orjson.dumps(review))
                row["review_outcome"] = event.outcome
                row["position"] = item.position
                rows[access_id] = row
        cursor.executemany(
            f"INSERT INTO {self.table} (version, access_id, occurred_at, actor_id, actor_role, "
            "actor_org, purpose, action, patient_id, decision, break_glass, review_outcome, "
            "position, sealed, care_org) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (version, access_id) DO UPDATE SET "
            "review_outcome = excluded.review_outcome, position = excluded.position, "
            "sealed = excluded.sealed",
            [
                (
                    version,
                    access_id.hex,
                    row["occurred_at"],
                    row["record"]["actor"]["id"],
                    row["record"]["actor"]["role"],
                    row["record"]["actor"]["org"],
                    row["record"]["purpose"],
                    row["record"]["action"],
                    row["record"]["patient_id"],
                    row["record"]["decision"],
                    1 if "break_glass" in row["record"]["basis"] else 0,
                    row["review_outcome"],
                    row["position"],
                    self.cipher.encrypt(AUDIT_KEY_ID, f"{TABLE}/{access_id.hex}", row["record"]),
                    row["record"].get("care_org"),
                )
                for access_id, row in rows.items()
            ],
        )

    def _load(self, cursor: Cursor, version: int, access_id: UUID) -> dict[str, Any] | None:
        found = cursor.execute(
            f"SELECT occurred_at, review_outcome, position, sealed FROM {self.table} "
            "WHERE version = ? AND access_id = ?",
            (version, access_id.hex),
        ).fetchone()
        if found is None:
            return None
        occurred_at, review_outcome, position, encrypted = found
        record = self.cipher.decrypt(AUDIT_KEY_ID, f"{TABLE}/{access_id.hex}", encrypted)
        return {
            "occurred_at": occurred_at,
            "review_outcome": review_outcome,
            "position": position,
            "record": record,
        }

    def purge(self, cursor: Cursor, version: int, patient_id: UUID) -> None:
        """Access records are kept after erasure (HIPAA retention): nothing to purge."""


def _row(event: AccessRecord.Recorded, position: int) -> dict[str, Any]:
    # The record as the aggregate presents it (GET /v1/audit/accesses/{id}), in JSON.
    record = orjson.loads(orjson.dumps(event.mutate(None).log_entry()))
    return {
        "occurred_at": sortable_time(event.timestamp),
        "review_outcome": None,
        "position": position,
        "record": record,
    }


class AccessLogReader:
    def __init__(self, store: ViewStore, cipher: RowCipher) -> None:
        self.store = store
        self.cipher = cipher
        self.table = store.table(TABLE)

    def search(
        self,
        filters: dict[str, str],
        *,
        since: str | None,
        until: str | None,
        break_glass: bool | None,
        after: Key | None,
        limit: int,
        organisation: str | None = None,
    ) -> tuple[list[dict[str, Any]], Key | None]:
        """Newest first; ``after`` is the (time, id) key of the last item of a page.

        With ``organisation``, only the rows its auditors see: accesses to its
        patients, and of rows written before care_org was kept, its own staff's that
        name no patient or broke the glass (which only a clinician of the patient's
        organisation may). Those older rows of a patient show under a patient filter."""
        sql = f"SELECT occurred_at, access_id, sealed FROM {self.table} WHERE version = ?"
        params: list[Any] = []
        if organisation is not None:
            sql += (
                " AND (care_org = ? OR (care_org IS NULL AND actor_org = ?"
                " AND (patient_id IS NULL OR break_glass = 1)))"
            )
            params += [organisation, organisation]
        for column in FILTERS:
            if filters.get(column) is not None:
                sql += f" AND {column} = ?"
                params.append(filters[column])
        if break_glass is not None:
            sql += " AND break_glass = ?"
            params.append(1 if break_glass else 0)
        if since is not None:
            sql += " AND occurred_at >= ?"
            params.append(since)
        if until is not None:
            sql += " AND occurred_at < ?"
            params.append(until)
        if after is not None:
            sql += " AND (occurred_at, access_id) < (?, ?)"
            params += list(after)
        sql += " ORDER BY occurred_at DESC, access_id DESC LIMIT ?"
        params.append(limit + 1)
        with self.store.reading() as cursor:
            version = active_version(cursor, self.store, AccessLogProjection.name)
            rows = cursor.execute(sql, [version, *params]).fetchall()
        items = [
            self.cipher.decrypt(AUDIT_KEY_ID, f"{TABLE}/{access_hex}", encrypted)
            for _, access_hex, encrypted in rows[:limit]
        ]
        more = len(rows) > limit
        last = rows[limit - 1] if more else None
        return items, ((last[0], last[1]) if last else None)
