"""A projection worker SIGKILLed over and over while the log grows still ends with
views identical to a rebuild from scratch: no batch lost, none applied twice.

PostgreSQL only: that is where the worker runs as a process of its own.
"""

import json
import os
import random
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from uuid import UUID

import pytest

from api.bootstrap import build
from api.container import Container
from domain.subscriber import ContentLevel
from domain.values import HumanName, TextValue
from domain.vocabulary import EntryKind, Plan, Purpose, SensitivityLabel
from tests.conftest import (
    APP_ROLE,
    JWT_SECRET,
    create_database,
    drop_database,
    make_settings,
    owner_url_for,
    role_url,
)
from tests.contract.read_model_support import (
    T0,
    VIEWS,
    admin,
    all_digests,
    clinician,
    grant,
    minutes,
    record,
    record_many,
    register,
    rows_per_version,
    versions,
    view_digest,
)
from tests.e2e.server import BIN

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

MASTER_KEY = "A" * 43 + "="  # the key make_settings gives the test's own container
KILLS = 15


@pytest.fixture
def pg_url(postgres_server: str) -> Iterator[str]:
    admin_url = create_database(postgres_server)
    try:
        yield role_url(admin_url, APP_ROLE)
    finally:
        drop_database(postgres_server, admin_url)


@dataclass
class Written:
    patients: list[UUID] = field(default_factory=list)
    entries: set[UUID] = field(default_factory=set)
    memberships: set[UUID] = field(default_factory=set)


def write_patients(container: Container, count: int, prefix: str, written: Written) -> None:
    """Patients with entries, amendments, errors, consents and memberships."""
    for n in range(count):
        patient_id = register(container, f"{prefix}-{n:04d}", family=f"Fam{prefix}{n}")
        written.patients.append(patient_id)
        # Two entries through the use case, ten more in one commit of the same events
        entries = []
        for i in range(2):
            kind = EntryKind.OBSERVATION if i else EntryKind.NOTE
            entry_id, _ = record(container, patient_id, at=T0 + minutes(i * 7 + n), kind=kind)
            entries.append(entry_id)
        moments = [T0 + minutes(i * 11 + n) for i in range(10)]
        entries += record_many(container, patient_id, moments, EntryKind.OBSERVATION)
        written.entries.update(entries)
        container.patients.amend_entry(
            clinician(),
            patient_id,
            entries[0],
            reason="corrected",
            code=None,
            value=TextValue(f"amended {n}"),
            effective_at=None,
            modality=None,
            labels=None,
        )
        container.patients.mark_entered_in_error(clinician(), patient_id, entries[1], reason="dup")
        directive = grant(container, patient_id, labels=frozenset({SensitivityLabel.GENETIC}))
        if n % 3 == 0:
            container.consents.revoke_directive(clinician(), patient_id, directive, reason="no")
        if n % 7 == 0:
            container.patients.update_demographics(
                clinician(),
                patient_id,
                name=HumanName("Renamed", f"New{prefix}{n}"),
                birth_date=None,
                sex=None,
                contact=None,
            )
        sponsor = f"sponsor-{n % 4}" if n % 2 else None
        outcome = container.memberships.enrol(
            admin(),
            patient_id=patient_id,
            plan=Plan.EMPLOYER if sponsor else Plan.INDIVIDUAL,
            sponsor_id=sponsor,
            annual_fee_cents=0 if sponsor else 19900,
            starts_on=date(2026, 1, 1),
            ends_on=date(2026, 12, 31),
        )
        membership = UUID(outcome.result["id"])
        written.memberships.add(membership)
        if n % 4 == 0:
            container.memberships.cancel(admin(), membership, reason="left")
        elif n % 5 == 0:
            container.memberships.renew(admin(), membership, ends_on=date(2027, 12, 31))


class Worker:
    """`careledger worker` as a real process, started and SIGKILLed at will."""

    def __init__(self, env: dict[str, str], workdir: Path) -> None:
        self.env = env
        self.workdir = workdir
        self.starts = 0
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.starts += 1
        log_path = self.workdir / f"worker-{self.starts}.log"
        with log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [str(BIN / "careledger"), "worker"],
                cwd=self.workdir,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 30
        while b"worker: running" not in log_path.read_bytes():
            if self.process.poll() is not None:
                raise RuntimeError(f"worker exited: {log_path.read_text()[-2000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError("the worker did not start in 30 s")
            time.sleep(0.01)

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def positions(container: Container) -> dict[str, int]:
    return {p.name: p.active().position for p in container.projectors}


def careledger(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "careledger"), *args],
        env=env,
        cwd=cwd,
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_worker_killed_at_random_converges_to_a_rebuild(pg_url: str, tmp_path: Path) -> None:
    # Given a store, and a worker configured with small batches so kills land mid-stream
    (tmp_path / "master.key").write_text(MASTER_KEY)
    env = {
        **os.environ,
        "CARELEDGER_DATABASE_URL": pg_url,
        "CARELEDGER_OWNER_DATABASE_URL": owner_url_for(pg_url) or "",
        "CARELEDGER_JWT_SECRET": JWT_SECRET,
        "CARELEDGER_MASTER_KEY_FILE": str(tmp_path / "master.key"),
        "CARELEDGER_VAR_DIR": str(tmp_path / "var"),
        "CARELEDGER_PROJECTION_BATCH_SIZE": "50",
        "CARELEDGER_LOG_LEVEL": "WARNING",
    }
    env.pop("CARELEDGER_MASTER_KEY", None)
    container = build(make_settings(pg_url, tmp_path / "var"))  # migrates; projects nothing
    worker = Worker(env, tmp_path)
    written = Written()
    try:
        # And a subscriber (public health: no membership needed), and a backlog written
        # before any worker runs
        container.subscriptions.register(
            admin(),
            name="Registry feed",
            recipient_org="org-main",
            purpose=Purpose.PUBHLTH,
            kinds=[EntryKind.OBSERVATION, EntryKind.NOTE],
            labels=[],
            content=ContentLevel.FULL,
        )
        write_patients(container, 70, "A", written)
        assert all(p == 0 for p in positions(container).values())

        # When more is written while the worker is SIGKILLed at random moments, 15 times
        failures: list[BaseException] = []

        def write_more() -> None:
            try:
                write_patients(container, 80, "B", written)
            except BaseException as error:  # reported by the test thread
                failures.append(error)

        writer = threading.Thread(target=write_more)
        writer.start()
        rng = random.Random()
        mid_stream = 0
        seen = positions(container)
        for _ in range(KILLS):
            worker.start()
            time.sleep(rng.uniform(0.05, 0.4))
            worker.kill()
            head = container.ledger.recorder.max_notification_id() or 0
            now = positions(container)
            if any(seen[n] < now[n] < head for n in now):
                mid_stream += 1  # it had applied some batches, and not all of them
            seen = now
        writer.join(120)
        assert not writer.is_alive() and not failures, failures
        head = container.ledger.recorder.max_notification_id() or 0
        assert head >= 2500, head  # a few thousand events

        # And a final worker is left to catch up
        worker.start()
        deadline = time.monotonic() + 45
        while min(positions(container).values()) < head:
            assert time.monotonic() < deadline, f"no catch-up: {positions(container)} < {head}"
            time.sleep(0.1)
        worker.stop()
    finally:
        worker.stop()

    try:
        # Then the kills interrupted a worker that was projecting
        assert mid_stream >= 2, f"only {mid_stream} of {KILLS} kills landed mid-stream"
        assert worker.starts == KILLS + 1
        # And the status command reports every view at the head
        status = careledger(env, tmp_path, "projections", "status")
        assert status.returncode == 0, status.stderr
        reported = json.loads(status.stdout)
        assert reported["head"] == head
        lags = {n: v["lag_events"] for n, v in reported["projections"].items()}
        assert lags == dict.fromkeys([*VIEWS, "access_log", "deliveries"], 0)
        # And no row is missing or doubled
        counts = {name: rows_per_version(container, name) for name in VIEWS}
        assert counts["timeline"] == {1: len(written.entries)}
        assert counts["directory"] == {1: len(written.patients)}
        assert counts["consent_state"] == {1: len(written.patients)}
        assert counts["roster"] == {1: len(written.memberships)}
        assert rows_per_version(container, "deliveries")[1] >= len(written.entries)
        projected = {**all_digests(container), "deliveries": view_digest(container, "deliveries")}

        # When every view is rebuilt from scratch by the operator's command
        rebuilt = careledger(env, tmp_path, "projections", "rebuild")
        assert rebuilt.returncode == 0, rebuilt.stderr
        versions_after = {n: r["version"] for n, r in json.loads(rebuilt.stdout).items()}
        assert versions_after == dict.fromkeys([*VIEWS, "access_log", "deliveries"], 2)

        # Then the rebuilt views equal the ones the killed-and-restarted worker built
        for name in (*VIEWS, "deliveries"):
            assert versions(container, name) == [(2, "active", head)], name
        rebuilt_digests = {
            **all_digests(container),
            "deliveries": view_digest(container, "deliveries"),
        }
        assert rebuilt_digests == projected
    finally:
        container.close()
