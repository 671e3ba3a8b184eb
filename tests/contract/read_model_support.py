"""Helpers for the read-model stories: decrypted digests of views, and small builders.

Encrypted columns are AES-GCM with random nonces, so two correct projections of the same
log never agree byte for byte. A view is therefore compared by its *decrypted*
content: every row of the active version, with each encrypted column replaced by the JSON
it decrypts to (under the same row label the projection encrypted it with), the ``version``
column left out, and the rows sorted.
"""

import hashlib
import threading
import uuid
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import UUID

import orjson

from api.container import Container
from application.context import Actor, RequestContext, Role
from domain.values import Coding, ContactDetails, HumanName, Period, TextValue
from domain.vocabulary import (
    AdministrativeSex,
    EntryKind,
    Plan,
    Purpose,
    SensitivityLabel,
    SigningMethod,
)
from infrastructure.projections.engine import VERSIONS_TABLE, active_version
from infrastructure.projections.row_cipher import RowCipher
from tests.conftest import ORG

VIEWS = ("timeline", "directory", "consent_state", "roster")


@dataclass(frozen=True)
class ViewTable:
    """One view table: its plain columns, and how to decrypt its encrypted column."""

    table: str
    columns: tuple[str, ...]  # every column but ``version``; ``sealed`` last if any
    patient_column: str
    label: Callable[[dict[str, Any]], str] | None  # the row label the projection encrypted with


TABLES: dict[str, ViewTable] = {
    "timeline": ViewTable(
        "view_timeline",
        ("patient_id", "entry_id", "effective_at", "kind", "status", "position", "sealed"),
        "patient_id",
        lambda row: f"view_timeline/{row['entry_id']}",
    ),
    "directory": ViewTable(
        "view_directory",
        ("patient_id", "organisation_id", "mrn_index", "name_index", "position", "sealed"),
        "patient_id",
        lambda row: "view_directory",
    ),
    "consent_state": ViewTable(
        "view_consent",
        ("consent_id", "patient_id", "consent_version", "position", "sealed"),
        "patient_id",
        lambda row: f"view_consent/{row['consent_id']}",
    ),
    "roster": ViewTable(
        "view_roster",
        (
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
        ),
        "patient_id",
        None,
    ),
    # The delivery projection's outbox: what each subscriber may receive, decided.
    "deliveries": ViewTable(
        "view_outbox",
        ("subscriber_id", "position", "patient_id", "sealed"),
        "patient_id",
        lambda row: f"view_outbox/{row['subscriber_id']}/{row['position']}",
    ),
}


def _plain(value: Any) -> Any:
    if isinstance(value, memoryview | bytes | bytearray):
        return bytes(value).hex()
    return value


def view_rows(
    container: Container, name: str, *, without: Collection[UUID] = ()
) -> list[dict[str, Any]]:
    """The active version's rows of a view, decrypted, sorted; ``without`` some patients."""
    spec = TABLES[name]
    store = container.views
    cipher = RowCipher(container.keys)
    skipped = {p.hex for p in without}
    with store.reading() as cursor:
        version = active_version(cursor, store, name)
        found = cursor.execute(
            f"SELECT {', '.join(spec.columns)} FROM {store.table(spec.table)} WHERE version = ?",
            (version,),
        ).fetchall()
    rows = []
    for values in found:
        row = dict(zip(spec.columns, values, strict=True))
        if row[spec.patient_column] in skipped:
            continue
        if spec.label is not None:
            row["sealed"] = cipher.decrypt(
                UUID(row[spec.patient_column]), spec.label(row), row["sealed"]
            )
        rows.append({k: _plain(v) for k, v in row.items()})
    rows.sort(key=lambda r: orjson.dumps(r, option=orjson.OPT_SORT_KEYS))
    return rows


def view_digest(container: Container, name: str, *, without: Collection[UUID] = ()) -> str:
    """SHA-256 over the decrypted rows of the view's active version (version excluded)."""
    sha = hashlib.sha256()
    for row in view_rows(container, name, without=without):
        sha.update(orjson.dumps(row, option=orjson.OPT_SORT_KEYS) + b"\n")
    return sha.hexdigest()


def all_digests(container: Container, *, without: Collection[UUID] = ()) -> dict[str, str]:
    return {name: view_digest(container, name, without=without) for name in VIEWS}


def versions(container: Container, name: str) -> list[tuple[int, str, int]]:
    """(version, state, position) of each version of a view, from projection_versions."""
    store = container.views
    with store.reading() as cursor:
        rows = cursor.execute(
            f"SELECT version, state, position FROM {store.table(VERSIONS_TABLE)} "
            "WHERE name = ? ORDER BY version",
            (name,),
        ).fetchall()
    return [(int(v), str(s), int(p)) for v, s, p in rows]


def rows_per_version(container: Container, name: str) -> dict[int, int]:
    """How many rows each version of a view holds, whatever its state."""
    store = container.views
    with store.reading() as cursor:
        rows = cursor.execute(
            f"SELECT version, count(*) FROM {store.table(TABLES[name].table)} GROUP BY version"
        ).fetchall()
    return {int(v): int(n) for v, n in rows}


# Builders ---------------------------------------------------------------------------

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
HEART_RATE = Coding("http://loinc.org", "8867-4", "Heart rate")
DEPRESSION = Coding("http://snomed.info/sct", "35489007", "Depressive disorder")


def actor(
    role: Role,
    actor_id: str | None = None,
    org: str = ORG,
    patient: UUID | None = None,
) -> RequestContext:
    return RequestContext(
        Actor(actor_id or f"test-{role}", role, org, patient),
        Purpose.TREAT,
        uuid.uuid4().hex,
    )


def clinician(org: str = ORG) -> RequestContext:
    return actor(Role.CLINICIAN, "dr-read", org)


def admin(org: str = ORG) -> RequestContext:
    return actor(Role.ADMIN, "admin-read", org)


def under_care(container: Container, patient_id: UUID, org: str = ORG) -> UUID:
    """An active membership: clinicians read a chart for TREAT only within one."""
    today = datetime.now(UTC).date()
    outcome = container.memberships.enrol(
        admin(org),
        patient_id=patient_id,
        plan=Plan.INDIVIDUAL,
        sponsor_id=None,
        annual_fee_cents=10000,
        starts_on=today - timedelta(days=30),
        ends_on=today + timedelta(days=300),
    )
    return UUID(outcome.result["id"])


def register(
    container: Container,
    mrn: str,
    family: str = "Example",
    given: str = "Ada",
    birth: date = date(1984, 7, 12),
    org: str = ORG,
) -> UUID:
    outcome = container.patients.register(
        clinician(org),
        mrn=mrn,
        name=HumanName(given, family),
        birth_date=birth,
        sex=AdministrativeSex.FEMALE,
        contact=ContactDetails(phone="+1-555-0100"),
    )
    return UUID(outcome.result["id"])


def record(
    container: Container,
    patient_id: UUID,
    *,
    at: datetime = T0,
    kind: EntryKind = EntryKind.NOTE,
    text: str = "note",
    labels: frozenset[SensitivityLabel] = frozenset(),
    code: Coding = HEART_RATE,
) -> tuple[UUID, int]:
    """Record an entry; (its id, the log position the write reached)."""
    outcome = container.patients.record_entry(
        clinician(),
        patient_id,
        kind=kind,
        code=code,
        value=TextValue(text),
        effective_at=at,
        modality=None,
        labels=labels,
    )
    return UUID(outcome.result["entry_id"]), outcome.position


def grant(
    container: Container,
    patient_id: UUID,
    *,
    grantee: str = ORG,
    labels: frozenset[SensitivityLabel] = frozenset(),
    start: date = date(2020, 1, 1),
) -> UUID:
    # The patient's own grant: staff never record one that widens their own access.
    outcome = container.consents.grant_directive(
        actor(Role.PATIENT, "pat-1", patient=patient_id),
        patient_id,
        grantee=grantee,
        purposes=frozenset({Purpose.TREAT}),
        labels=labels,
        period=Period(start, None),
        form_id="consent-general",
        form_version="3",
        text_sha256="a" * 64,
        method=SigningMethod.ELECTRONIC,
    )
    return UUID(outcome.result["directive_id"])


def minutes(n: int) -> timedelta:
    return timedelta(minutes=n)


@contextmanager
def recorded_statements(container: Container) -> Iterator[list[tuple[str, list[Any]]]]:
    """Every statement run through the view store's read snapshots, with its parameters."""
    store = container.views
    original = store.reading
    seen: list[tuple[str, list[Any]]] = []

    class Recording:
        def __init__(self, cursor: Any) -> None:
            self._cursor = cursor

        def execute(self, sql: str, params: Any = ()) -> Any:
            seen.append((sql, list(params)))
            self._cursor.execute(sql, params)
            return self

        def __getattr__(self, name: str) -> Any:
            return getattr(self._cursor, name)

    @contextmanager
    def reading() -> Iterator[Any]:
        with original() as cursor:
            yield Recording(cursor)

    store.reading = reading  # type: ignore[method-assign]
    try:
        yield seen
    finally:
        store.reading = original  # type: ignore[method-assign]


def record_many(
    container: Container, patient_id: UUID, moments: list[datetime], kind: EntryKind
) -> list[UUID]:
    """Many entries on one chart in one commit (the same events, far fewer round trips)."""
    from domain.patient import Patient
    from domain.values import Provenance

    patient = container.ledger.load(Patient, patient_id, "patient")
    by = Provenance("dr-bulk", datetime.now(UTC))
    ids = []
    for moment in moments:
        entry_id = uuid.uuid4()
        patient.record_entry(
            entry_id=entry_id,
            kind=kind,
            code=HEART_RATE,
            value=TextValue(f"bulk {moment.isoformat()}"),
            effective_at=moment,
            modality=None,
            labels=frozenset(),
            by=by,
        )
        ids.append(entry_id)
    container.ledger.commit(clinician(), [patient], {})
    return ids


def follow_log(recorder: Any, start: int, writing: threading.Event, seen: list[int]) -> None:
    """Follow the log from ``start`` as the projectors do, appending each position to
    ``seen``: page on from where it last was, never look back, and stop once
    ``writing`` is cleared and nothing more is found. A reader that moves past a
    position cannot go back for an event that commits there later (the gap check)."""
    after = start - 1
    while True:
        still_writing = writing.is_set()
        found = recorder.select_notifications(start=after + 1, limit=1000)
        seen.extend(n.id for n in found)
        if found:
            after = found[-1].id
        elif not still_writing:
            return
