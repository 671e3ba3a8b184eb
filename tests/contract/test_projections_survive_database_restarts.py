"""Live projections survive the database dropping every connection, as in a restart.

Terminating every backend of the database is what a PostgreSQL restart does to a
client: the listener's LISTEN connection and the pooled connections all break. The
supervised projector threads and the listener must reconnect with backoff and resume
from their committed positions, without losing or repeating an event.
"""

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from api.bootstrap import build
from application.context import Actor, RequestContext, Role
from domain.values import Coding, HumanName
from domain.vocabulary import AdministrativeSex, EntryKind, Purpose
from tests.conftest import APP_ROLE, ORG, create_database, drop_database, make_settings, role_url
from tests.contract.read_model_support import under_care

pytestmark = pytest.mark.postgres

CLINICIAN = RequestContext(Actor("dr-restart", Role.CLINICIAN, ORG), Purpose.TREAT, "req")
PULSE = Coding("http://loinc.org", "8867-4", "Heart rate")


def _terminate_every_connection(database_url: str) -> int:
    parts = urlsplit(database_url)
    dbname = parts.path.lstrip("/")
    admin = urlunsplit(parts._replace(netloc=f"postgres@{parts.hostname}:{parts.port or 5432}"))
    with psycopg.connect(admin, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            (dbname,),
        ).fetchall()
    return len(rows)


def _record(container, patient_id: uuid.UUID, n: int) -> int:  # type: ignore[no-untyped-def]
    outcome = container.patients.record_entry(
        CLINICIAN,
        patient_id,
        kind=EntryKind.OBSERVATION,
        code=PULSE,
        value=None,
        effective_at=datetime(2026, 3, 1, tzinfo=UTC) + timedelta(minutes=n),
        modality=None,
        labels=frozenset(),
    )
    return int(outcome.position)


def _write_retrying(container, patient_id: uuid.UUID, n: int) -> int:  # type: ignore[no-untyped-def]
    """A client retrying through the outage, as a real one would (503 while it lasts)."""
    deadline = time.monotonic() + 30
    while True:
        try:
            return _record(container, patient_id, n)
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


@pytest.fixture
def database_url(postgres_server: str) -> Iterator[str]:
    """PostgreSQL only: SQLite has no connections to drop."""
    url = create_database(postgres_server)
    try:
        yield role_url(url, APP_ROLE)
    finally:
        drop_database(postgres_server, url)


def test_projections_resume_after_every_connection_is_dropped(
    database_url: str, tmp_path: Path
) -> None:
    container = build(make_settings(database_url, tmp_path / "var"), run_processes=True)
    container.start_followers()
    try:
        # Given a chart with 20 entries, projected live
        registered = container.patients.register(
            CLINICIAN,
            mrn="MRN-RESTART-1",
            name=HumanName("Rhea", "Restart"),
            birth_date=date(1980, 1, 1),
            sex=AdministrativeSex.FEMALE,
            contact=None,
        )
        patient_id = uuid.UUID(registered.result["id"])
        under_care(container, patient_id)
        position = max(_record(container, patient_id, n) for n in range(20))
        assert container.positions.wait_for(["timeline"], position, timeout=10)

        # When the database drops every connection (a restart, as clients see it)
        assert _terminate_every_connection(database_url) >= 1
        # ... and 20 more entries are written through the outage
        position = max(_write_retrying(container, patient_id, n) for n in range(20, 40))

        # Then the live projection catches up by itself, woken again by NOTIFY
        assert container.positions.wait_for(["timeline"], position, timeout=30)
        page = container.charts.timeline(CLINICIAN, patient_id, limit=200).json()
        minutes = [e["effective_at"][11:16] for e in page["entries"]]
        # every entry exactly once, in order: nothing lost, nothing applied twice
        assert len(page["entries"]) == 40
        assert minutes == sorted(minutes) and len(set(minutes)) == 40
        assert container.projection_host is not None
        assert container.listener is not None and container.listener.connected.wait(10)
    finally:
        container.close()
