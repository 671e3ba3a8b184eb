"""The membership roster: by patient, by sponsor and by status, within an organisation.

A membership row holds random ids, the plan, the sponsor, the status and the term
dates: no direct identifiers and no clinical content, so it is stored plain (the
docs/security.md says so). An erased patient's rows are purged.
"""

from collections.abc import Sequence
from datetime import date
from typing import Any
from uuid import UUID

from eventsourcing.utils import get_topic

from domain.membership import Membership, membership_status_on
from domain.vocabulary import MembershipStatus
from infrastructure.projections.engine import Decoded, active_version, delete_patient_rows
from infrastructure.projections.store import Cursor, ViewStore

TABLE = "view_roster"
_COLUMNS = (
    "membership_id",
    "patient_id",
    "organisation_id",
    "plan",
    "sponsor_id",
    "status",
    "starts_on",
    "ends_on",
    "ended_on",
    "stream_version",
    "position",
)


class RosterProjection:
    name = "roster"
    topics = tuple(
        get_topic(cls)
        for cls in (
            Membership.Enrolled,
            Membership.Renewed,
            Membership.Cancelled,
            Membership.Terminated,
        )
    )

    def __init__(self, store: ViewStore) -> None:
        self.table = store.table(TABLE)

    def table_names(self) -> list[str]:
        return [TABLE]

    def tables(self) -> list[str]:
        t = self.table
        return [
            f"CREATE TABLE IF NOT EXISTS {t} (version INTEGER NOT NULL, "
            "membership_id TEXT NOT NULL, patient_id TEXT NOT NULL, organisation_id TEXT NOT NULL, "
            "plan TEXT NOT NULL, sponsor_id TEXT, status TEXT NOT NULL, starts_on TEXT NOT NULL, "
            "ends_on TEXT NOT NULL, ended_on TEXT, stream_version INTEGER NOT NULL, "
            "position BIGINT NOT NULL, PRIMARY KEY (version, membership_id))",
            f"CREATE INDEX IF NOT EXISTS {TABLE}_by_patient ON {t} "
            "(version, organisation_id, patient_id)",
            f"CREATE INDEX IF NOT EXISTS {TABLE}_by_sponsor ON {t} "
            "(version, organisation_id, sponsor_id, status)",
            f"CREATE INDEX IF NOT EXISTS {TABLE}_by_status ON {t} "
            "(version, organisation_id, status)",
        ]

    def apply(self, cursor: Cursor, version: int, batch: Sequence[Decoded]) -> None:
        pending: dict[UUID, dict[str, Any]] = {}
        for item in batch:
            event = item.event
            membership_id = event.originator_id
            if isinstance(event, Membership.Enrolled):
                row: dict[str, Any] | None = {
                    "membership_id": membership_id.hex,
                    "patient_id": event.patient_id.hex,
                    "organisation_id": event.organisation_id,
                    "plan": event.plan,
                    "sponsor_id": event.sponsor_id,
                    "starts_on": event.starts_on.isoformat(),
                    "ends_on": event.ends_on.isoformat(),
                    "ended_on": None,
                }
            else:
                row = pending.get(membership_id) or self._load(cursor, version, membership_id)
                if row is None:
                    continue
            assert row is not None
            row["status"], row["ended_on"], row["ends_on"] = _after(event, row)
            row["stream_version"] = event.originator_version
            row["position"] = item.position
            pending[membership_id] = row
        placeholders = ", ".join("?" * (len(_COLUMNS) + 1))
        updates = ", ".join(f"{c} = excluded.{c}" for c in _COLUMNS[5:])
        cursor.executemany(
            f"INSERT INTO {self.table} (version, {', '.join(_COLUMNS)}) VALUES ({placeholders}) "
            f"ON CONFLICT (version, membership_id) DO UPDATE SET {updates}",
            [(version, *(row[c] for c in _COLUMNS)) for row in pending.values()],
        )

    def _load(self, cursor: Cursor, version: int, membership_id: UUID) -> dict[str, Any] | None:
        found = cursor.execute(
            f"SELECT {', '.join(_COLUMNS)} FROM {self.table} "
            "WHERE version = ? AND membership_id = ?",
            (version, membership_id.hex),
        ).fetchone()
        return None if found is None else dict(zip(_COLUMNS, found, strict=True))

    def purge(self, cursor: Cursor, version: int, patient_id: UUID) -> None:
        delete_patient_rows(cursor, (self.table,), version, patient_id)


def _after(event: Any, row: dict[str, Any]) -> tuple[str, str | None, str]:
    """(status, ended_on, ends_on) after the event, as the aggregate computes them."""
    if isinstance(event, Membership.Renewed):
        return "active", row["ended_on"], event.ends_on.isoformat()
    if isinstance(event, Membership.Cancelled):
        return "cancelled", event.cancelled_on.isoformat(), row["ends_on"]
    if isinstance(event, Membership.Terminated):
        return "terminated", event.effective_on.isoformat(), row["ends_on"]
    return "active", None, row["ends_on"]


class RosterReader:
    def __init__(self, store: ViewStore) -> None:
        self.store = store
        self.table = store.table(TABLE)

    def memberships(
        self,
        organisation_id: str,
        *,
        patient_id: UUID | None,
        sponsor_id: str | None,
        status: str | None,
        limit: int,
        today: date | None = None,
        after: tuple[str, str] | None = None,
    ) -> list[dict[str, Any]]:
        """Without ``today``, each row's status as recorded; with it, as shown that day
        (``membership_status_on``), which the status filter then matches too. ``after``
        is the (starts_on, membership id as hex) of the last row of the previous page."""
        sql = f"SELECT {', '.join(_COLUMNS)} FROM {self.table} WHERE version = ? "
        sql += "AND organisation_id = ?"
        params: list[Any] = [organisation_id]
        for column, value in (
            ("patient_id", patient_id.hex if patient_id else None),
            ("sponsor_id", sponsor_id),
        ):
            if value is not None:
                sql += f" AND {column} = ?"
                params.append(value)
        if today is not None and status in (MembershipStatus.ACTIVE, MembershipStatus.LAPSED):
            # Both are stored as active, told apart by whether the term ran out.
            ran_out = "<" if status == MembershipStatus.LAPSED else ">="
            sql += f" AND status = ? AND ends_on {ran_out} ?"
            params += [MembershipStatus.ACTIVE.value, today.isoformat()]
        elif status is not None:
            sql += " AND status = ?"
            params.append(status)
        if after is not None:
            sql += " AND (starts_on, membership_id) > (?, ?)"
            params += list(after)
        sql += " ORDER BY starts_on, membership_id LIMIT ?"
        params.append(limit)
        with self.store.reading() as cursor:
            version = active_version(cursor, self.store, RosterProjection.name)
            rows = cursor.execute(sql, [version, *params]).fetchall()
        items = []
        for found in rows:
            row = dict(zip(_COLUMNS, found, strict=True))
            if today is not None:
                ends_on = date.fromisoformat(row["ends_on"])
                row["status"] = membership_status_on(row["status"], ends_on, today)
            items.append(
                {
                    "id": str(UUID(row["membership_id"])),
                    "patient_id": str(UUID(row["patient_id"])),
                    "plan": row["plan"],
                    "sponsor_id": row["sponsor_id"],
                    "status": row["status"],
                    "starts_on": row["starts_on"],
                    "ends_on": row["ends_on"],
                    "ended_on": row["ended_on"],
                    "version": int(row["stream_version"]),
                }
            )
        return items

    def member_ids(
        self, organisation_id: str, sponsor_id: str, today: date, after: UUID | None, limit: int
    ) -> list[UUID]:
        # In force on the day, as ``membership_active_on`` has it: begun, not run out,
        # and active, or ended with effect after the day.
        sql = (
            f"SELECT DISTINCT patient_id FROM {self.table} WHERE version = ? "
            "AND organisation_id = ? AND sponsor_id = ? AND starts_on <= ? AND ends_on >= ? "
            "AND (status = ? OR (ended_on IS NOT NULL AND ended_on > ?))"
        )
        day = today.isoformat()
        params: list[Any] = [organisation_id, sponsor_id, day, day, "active", day]
        if after is not None:
            sql += " AND patient_id > ?"
            params.append(after.hex)
        with self.store.reading() as cursor:
            version = active_version(cursor, self.store, RosterProjection.name)
            rows = cursor.execute(
                sql + " ORDER BY patient_id LIMIT ?", (version, *params, limit)
            ).fetchall()
        return [UUID(row[0]) for row in rows]
