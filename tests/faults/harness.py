"""The fault suite's common parts: a restartable ``careledger serve``, writers over real
HTTP that log only the writes they saw acknowledged, and the end-of-experiment checks
(every acknowledged write present exactly once, ``audit verify``, views equal to a
fresh rebuild, no 500).
"""

import functools
import os
import signal
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from typer.testing import CliRunner, Result

from api.bootstrap import build
from api.cli import cli
from tests.api.support import ADMIN, CLINICIAN, membership_body
from tests.conftest import ENTRY_BODY, JWT_SECRET, REGISTER_BODY, make_settings, owner_url_for
from tests.contract.read_model_support import all_digests
from tests.e2e.server import BIN, free_port
from tests.faults.figures import Figures

WRITER_UNIT = "1/min"  # marks the writers' entries apart from any other request's
FULL = os.environ.get("CARELEDGER_FAULTS", "").lower() == "full"
MASTER_KEY = "A" * 43 + "="  # the key make_settings gives the checking container


def size(ci: int, full: int) -> int:
    """An experiment's size: the short one in CI, the full one under ``make faults``."""
    return full if FULL else ci


def service_env(database_url: str, workdir: Path, **extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "CARELEDGER_DATABASE_URL": database_url,
        "CARELEDGER_JWT_SECRET": JWT_SECRET,
        "CARELEDGER_MASTER_KEY": MASTER_KEY,
        "CARELEDGER_VAR_DIR": str(workdir / "var"),
        "CARELEDGER_LOG_LEVEL": "WARNING",
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        **extra,
    }
    env.pop("CARELEDGER_MASTER_KEY_FILE", None)
    owner = owner_url_for(database_url)
    if owner:
        env["CARELEDGER_OWNER_DATABASE_URL"] = owner
    return env


class Service:
    """``careledger serve`` (or ``worker``) as a process to start, SIGKILL and start again."""

    def __init__(self, env: dict[str, str], workdir: Path, *args: str) -> None:
        self.env = env
        self.workdir = workdir
        self.args = args
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        log = (self.workdir / f"{self.args[0]}.log").open("ab")
        command = [str(BIN / "careledger"), *self.args]
        if self.args[0] == "serve":
            command += ["--port", str(self.port), "--create"]
        self.process = subprocess.Popen(
            command, cwd=self.workdir, env=self.env, stdout=log, stderr=subprocess.STDOUT
        )
        log.close()

    def healthy_in(self, seconds: float = 120) -> float:
        """Seconds from now until /healthz answers 200."""
        started = time.monotonic()
        while time.monotonic() - started < seconds:
            assert self.process is not None and self.process.poll() is None, self.log_tail()
            try:
                if httpx.get(f"{self.base}/healthz", timeout=1).status_code == 200:
                    return time.monotonic() - started
            except httpx.TransportError:
                pass
            time.sleep(0.02)
        raise AssertionError(f"not healthy in {seconds} s: {self.log_tail()}")

    def logged(self, text: str, seconds: float = 60) -> None:
        """Wait until the process's log shows ``text`` (a worker's banner, say)."""
        path = self.workdir / f"{self.args[0]}.log"
        deadline = time.monotonic() + seconds
        while text.encode() not in path.read_bytes():
            assert self.process is not None and self.process.poll() is None, self.log_tail()
            assert time.monotonic() < deadline, f"no {text!r} in {seconds} s"
            time.sleep(0.02)

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)

    def log_tail(self) -> str:
        path = self.workdir / f"{self.args[0]}.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""


@dataclass(frozen=True)
class Ack:
    writer: int
    patient: str
    marker: int  # the quantity this write carries, unique to its writer
    entry_id: str
    at: float  # time.monotonic() when the acknowledgement arrived
    position: int = 0  # the log position the answer gave
    sent: float = 0.0  # time.monotonic() when the acknowledged attempt was sent


@dataclass
class Writers:
    """Writers, one patient each, each writing entries with an Idempotency-Key and
    retrying the same request (same key) on 503, 507 or a dropped connection, as the
    README tells clients to. Only writes answered 201 are logged."""

    base: str
    count: int
    patients: list[str] = field(default_factory=list)
    acks: list[Ack] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    faults: list[str] = field(default_factory=list)  # 5xx other than 503/507, and the like
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> "Writers":
        with httpx.Client(base_url=self.base, timeout=30) as client:
            for _ in range(self.count):
                self.patients.append(patient_under_care(client))
        for n in range(self.count):
            thread = threading.Thread(target=self._write, args=(n,), name=f"writer-{n}")
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(60)
        assert not any(t.is_alive() for t in self._threads), "a writer hung"

    def acknowledged_since(self, moment: float, *, sent: bool = False) -> float | None:
        """When the first write acknowledged after ``moment`` was, if any (with ``sent``,
        only a write whose acknowledged attempt was also sent after it)."""
        with self._lock:
            after = [a.at for a in self.acks if a.at >= moment and (a.sent >= moment or not sent)]
        return min(after) if after else None

    def _write(self, n: int) -> None:
        patient = self.patients[n]
        url = f"/v1/patients/{patient}/entries"
        marker = 0
        with httpx.Client(base_url=self.base, timeout=60) as client:
            while not self._stop.is_set():
                marker += 1
                body = {**ENTRY_BODY, "value": {"quantity": marker, "unit": WRITER_UNIT}}
                headers = CLINICIAN.with_headers({"Idempotency-Key": uuid.uuid4().hex})
                while not self._stop.is_set():
                    sent = time.monotonic()
                    try:
                        response = client.post(url, json=body, headers=headers)
                    except httpx.TransportError:
                        time.sleep(0.05)  # the server is down: the same request again
                        continue
                    with self._lock:
                        self.statuses[response.status_code] += 1
                    if response.status_code == 201:
                        answer = response.json()
                        ack = Ack(
                            n,
                            patient,
                            marker,
                            answer["entry_id"],
                            time.monotonic(),
                            int(answer["position"]),
                            sent,
                        )
                        with self._lock:
                            self.acks.append(ack)
                        break
                    if response.status_code in (503, 507):
                        if "retry-after" not in response.headers:
                            self.faults.append(f"{response.status_code} without Retry-After")
                        time.sleep(0.1)
                        continue
                    self.faults.append(f"{response.status_code}: {response.text[:300]}")
                    break


def patient_under_care(client: httpx.Client) -> str:
    body = {**REGISTER_BODY, "mrn": f"MRN-{uuid.uuid4().hex[:12]}"}
    response = retried(lambda: client.post("/v1/patients", json=body, headers=CLINICIAN))
    patient = str(response.json()["id"])
    membership = membership_body(patient)
    retried(lambda: client.post("/v1/memberships", json=membership, headers=ADMIN))
    return patient


def retried(call: Any, seconds: float = 30) -> httpx.Response:
    deadline = time.monotonic() + seconds
    while True:
        try:
            response: httpx.Response = call()
            if response.status_code in (200, 201):
                return response
            assert response.status_code in (503, 507), response.text
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "no answer in time"
        time.sleep(0.1)


@dataclass
class Outcome:
    acknowledged: int
    lost: int
    duplicated: int
    committed: int


def written_once(base: str, writers: Writers) -> Outcome:
    """Each acknowledged write found in its patient's timeline, and no write found twice
    (two entries with one writer's marker)."""
    with httpx.Client(base_url=base, timeout=60) as client:
        head = retried(lambda: client.get("/readyz")).json()["position"]
        found: dict[str, set[str]] = {}
        duplicated = committed = 0
        for patient in writers.patients:
            markers: Counter[int] = Counter()
            ids: set[str] = set()
            cursor = None
            while True:
                params: dict[str, Any] = {"min_position": head, "limit": 200}
                if cursor:
                    params["cursor"] = cursor
                url = f"/v1/patients/{patient}/timeline"
                page = retried(
                    functools.partial(client.get, url, params=params, headers=CLINICIAN),
                    seconds=120,
                ).json()
                for entry in page["entries"]:
                    ids.add(entry["entry_id"])
                    if entry["value"]["unit"] == WRITER_UNIT:
                        markers[int(entry["value"]["quantity"])] += 1
                cursor = page["next_cursor"]
                if not cursor:
                    break
            found[patient] = ids
            committed += len(ids)
            duplicated += sum(count - 1 for count in markers.values())
    lost = sum(1 for a in writers.acks if a.entry_id not in found[a.patient])
    return Outcome(len(writers.acks), lost, duplicated, committed)


def counted(figures: Figures, base: str, writers: Writers) -> Outcome:
    """``written_once``, and the experiment's row filled in with it and the answers seen."""
    outcome = written_once(base, writers)
    figures.acknowledged, figures.lost = outcome.acknowledged, outcome.lost
    figures.duplicated = outcome.duplicated
    figures.unavailable = writers.statuses[503] + writers.statuses[507]
    figures.server_errors = sum(n for s, n in writers.statuses.items() if s >= 500) - (
        figures.unavailable
    )
    return outcome


def careledger(env: dict[str, str], cwd: Path, *args: str) -> Result:
    """The command, run in this process (the same code as the installed ``careledger``,
    without another interpreter's start-up, seconds on a loaded machine)."""
    changed: dict[str, str | None] = {k: v for k, v in env.items() if os.environ.get(k) != v}
    changed.update({k: None for k in os.environ if k not in env})
    previous = os.getcwd()
    os.chdir(cwd)
    try:
        return CliRunner().invoke(cli, list(args), env=changed, catch_exceptions=False)
    finally:
        os.chdir(previous)


def audit_verifies(env: dict[str, str], cwd: Path) -> None:
    verdict = careledger(env, cwd, "audit", "verify")
    assert verdict.exit_code == 0, verdict.output[-3000:]


def views_equal_a_rebuild(
    database_url: str, env: dict[str, str], workdir: Path, stop: Callable[[], None]
) -> None:
    """Every view caught up with the log; then, with the processes stopped (``stop``) so
    that nothing moves, every view equals the same view rebuilt from scratch."""
    container = build(make_settings(database_url, workdir / "check"))
    try:
        deadline = time.monotonic() + 90
        while True:
            head = container.ledger.recorder.max_notification_id() or 0
            if min(p.active().position for p in container.projectors) >= head:
                break
            assert time.monotonic() < deadline, "the views did not catch up"
            time.sleep(0.1)
        stop()
        assert (container.ledger.recorder.max_notification_id() or 0) == head
        projected = all_digests(container)
        rebuilt = careledger(env, workdir, "projections", "rebuild")
        assert rebuilt.exit_code == 0, rebuilt.output[-3000:]
        assert all_digests(container) == projected
    finally:
        container.close()
