"""``careledger serve --workers 2`` on PostgreSQL: two processes, each with its own group
commit, share one log that a live reader follows without missing or doubling an event.

Concurrent clinicians write over HTTP, each on a keep-alive connection of its own, so
the kernel hands connections to both workers; a reader in this process follows the log
as they write, as the projections in ``careledger worker`` do, and never looks back.
"""

import multiprocessing
import os
import re
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.bootstrap import build, open_locked
from api.serving import WorkersRefused, check_workers
from tests.api.support import under_care
from tests.conftest import (
    APP_ROLE,
    ENTRY_BODY,
    JWT_SECRET,
    REGISTER_BODY,
    auth,
    create_database,
    drop_database,
    make_settings,
    role_url,
)
from tests.contract.read_model_support import T0, follow_log, minutes, record, register
from tests.e2e.server import BIN, running_server

pytestmark = pytest.mark.e2e

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


@pytest.mark.postgres
def test_two_workers_write_one_log_that_a_live_reader_sees_exactly_once(
    pg_url: str, tmp_path: Path
) -> None:
    # Two workers start after the parent has migrated the store: three start-ups in all
    with running_server(pg_url, tmp_path, "--workers", "2", startup_seconds=120) as (
        base,
        _env,
        log_path,
    ):
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

        # When sixteen clinicians write at once through both workers, followed live
        following = threading.Thread(target=follow_log, args=(recorder, start, writing, seen))
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
    # And the command says so in one line, exits 2, and creates no store
    store = tmp_path / "new.db"
    refused = subprocess.run(
        [str(BIN / "careledger"), "serve", "--workers", "2", "--create"],
        env={
            **os.environ,
            "CARELEDGER_DATABASE_URL": f"sqlite:///{store}",
            "CARELEDGER_JWT_SECRET": JWT_SECRET,
            "CARELEDGER_VAR_DIR": str(tmp_path / "var"),
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert refused.returncode == 2
    assert refused.stderr.strip().startswith("careledger: --workers > 1 needs PostgreSQL")
    assert not store.exists()


def _write_from_a_process(
    url: str, var_dir: str, prefix: str, count: int, start_at: float, opening: Any
) -> list[int]:
    """A process of its own with its own container (its own group commit): register a
    patient, then, from ``start_at`` on (both processes at once), record ``count``
    entries; the positions acknowledged. Stores are opened one at a time: two processes
    opening one SQLite store at once can fail with "database is locked"."""
    with opening:
        container = build(make_settings(url, Path(var_dir)))
    try:
        patient_id = register(container, f"MRN-{prefix}")
        time.sleep(max(0.0, start_at - time.time()))
        return [record(container, patient_id, at=T0 + minutes(i))[1] for i in range(count)]
    finally:
        container.close()


def test_on_sqlite_two_writing_processes_keep_one_gap_free_log(tmp_path: Path) -> None:
    """What a second process would keep on SQLite, were serving allowed: the file's
    write lock orders commits across processes, so a reader sees every acknowledged
    event once, in order. Opening the store is not safe at once (see the writer); and
    serving stays refused there for the projections' sake (docs/operations.md)."""
    url = f"sqlite:///{tmp_path / 'careledger.db'}"
    ledger = open_locked(make_settings(url, tmp_path / "var"))  # creates the store
    start = (ledger.recorder.max_notification_id() or 0) + 1
    context = multiprocessing.get_context("spawn")
    start_at = time.time() + 25  # after both processes have opened the store
    with context.Manager() as manager, context.Pool(2) as pool:
        opening = manager.Lock()
        var_dir = str(tmp_path / "var")
        runs = [
            pool.apply_async(_write_from_a_process, (url, var_dir, p, 300, start_at, opening))
            for p in ("A", "B")
        ]
        acknowledged = [position for run in runs for position in run.get(timeout=300)]
    try:
        seen = [n.id for n in ledger.recorder.select_notifications(start=start, limit=100_000)]
        assert len(acknowledged) == 600
        assert set(acknowledged) <= set(seen)
        assert len(seen) == len(set(seen)) and seen == sorted(seen)
    finally:
        ledger.close()
