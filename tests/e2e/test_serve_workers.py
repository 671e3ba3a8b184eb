"""``careledger serve --workers 2`` on PostgreSQL: two processes, each with its own group
commit, share one log that a live reader follows without missing or doubling an event.

Concurrent clinicians write over HTTP, each on a keep-alive connection of its own, so
the kernel hands connections to both workers; a reader in this process follows the log
as they write, as the projections in ``careledger worker`` do, and never looks back.
"""

import re
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from api.bootstrap import open_locked
from api.serving import WorkersRefused, check_workers
from tests.api.support import under_care
from tests.conftest import (
    APP_ROLE,
    ENTRY_BODY,
    REGISTER_BODY,
    auth,
    create_database,
    drop_database,
    make_settings,
    role_url,
)
from tests.e2e.server import running_server

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

WRITERS = 16
ENTRIES_EACH = 30
CLINICIAN = auth("clinician", sub="dr-workers")


@pytest.fixture
def pg_url(postgres_server: str) -> Iterator[str]:
    admin_url = create_database(postgres_server)
    try:
        yield role_url(admin_url, APP_ROLE)
    finally:
        drop_database(postgres_server, admin_url)


def test_two_workers_write_one_log_that_a_live_reader_sees_exactly_once(
    pg_url: str, tmp_path: Path
) -> None:
    with running_server(pg_url, tmp_path, "--workers", "2") as (base, _env, log_path):
        # Given a patient under care for each writer
        patients = []
        with httpx.Client(base_url=base, timeout=30) as http:
            for n in range(WRITERS):
                body = {**REGISTER_BODY, "mrn": f"MRN-W{n:03d}"}
                registered = http.post("/v1/patients", json=body, headers=CLINICIAN)
                assert registered.status_code == 201, registered.text
                patients.append(registered.json()["id"])
                under_care(http, patients[-1])
        ledger = open_locked(make_settings(pg_url, tmp_path / "reader"))
        recorder = ledger.recorder
        start = (recorder.max_notification_id() or 0) + 1
        acknowledged: list[int] = []
        failures: list[str] = []
        seen: list[int] = []
        writing = threading.Event()
        writing.set()

        def writer(patient_id: str) -> None:
            with httpx.Client(base_url=base, timeout=60) as http:  # a connection of its own
                for i in range(ENTRIES_EACH):
                    moment = f"2026-11-{1 + i % 28:02d}T09:30:00Z"
                    written = http.post(
                        f"/v1/patients/{patient_id}/entries",
                        json={**ENTRY_BODY, "effective_at": moment},
                        headers=CLINICIAN,
                    )
                    if written.status_code != 201:
                        failures.append(f"{written.status_code} {written.text[:200]}")
                        return
                    acknowledged.append(written.json()["position"])

        def reader() -> None:
            after = start - 1
            while True:
                still_writing = writing.is_set()
                found = recorder.select_notifications(start=after + 1, limit=500)
                seen.extend(n.id for n in found)
                if found:
                    after = found[-1].id
                elif not still_writing:
                    return

        # When sixteen clinicians write at once through both workers, followed live
        following = threading.Thread(target=reader)
        following.start()
        writers = [threading.Thread(target=writer, args=(p,)) for p in patients]
        for thread in writers:
            thread.start()
        for thread in writers:
            thread.join()
        writing.clear()
        following.join()
        try:
            # Then every write was acknowledged, and the live reader saw each
            # acknowledged event once, in order, and exactly what the log holds
            assert failures == []
            assert len(acknowledged) == WRITERS * ENTRIES_EACH
            assert set(acknowledged) <= set(seen), "the reader skipped acknowledged events"
            assert len(seen) == len(set(seen)), "the reader saw an event twice"
            assert seen == sorted(seen)
            whole = [n.id for n in recorder.select_notifications(start=start, limit=100_000)]
            assert whole == seen, "an event committed behind the reader's position"
        finally:
            ledger.close()
        # And both workers served: two server processes started, each its own
        log = log_path.read_text()
        assert len(set(re.findall(r"Started server process \[(\d+)\]", log))) == 2, log[-3000:]


def test_several_workers_are_refused_where_they_would_not_hold(tmp_path: Path) -> None:
    sqlite = make_settings(f"sqlite:///{tmp_path / 'careledger.db'}", tmp_path / "var")
    with pytest.raises(WorkersRefused, match="needs PostgreSQL"):
        check_workers(sqlite, 2, with_projections=False)
    check_workers(sqlite, 1, with_projections=False)  # one process is how SQLite serves
    postgres = make_settings("postgresql://u@127.0.0.1:5432/db", tmp_path / "var")
    with pytest.raises(WorkersRefused, match="careledger worker"):
        check_workers(postgres, 2, with_projections=True)
    with pytest.raises(WorkersRefused, match="at least 1"):
        check_workers(postgres, 0, with_projections=False)
