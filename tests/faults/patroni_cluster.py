"""A Patroni cluster of the test's own: one etcd node and three PostgreSQL members on
loopback, on free ports, under a temporary directory, with synchronous replication
(docs/operations.md, High availability). Every process is started here, run as the
``postgres`` user when the test runs as root, and stopped by its PID at the end.
"""

import contextlib
import glob
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from tests.conftest import IN_CI
from tests.e2e.server import free_port

BINARIES = ("patroni", "etcd")


def missing_binaries() -> None:
    """Fail under CI (which installs them, .ci/run), skip elsewhere, when absent."""
    missing = [name for name in BINARIES if shutil.which(name) is None]
    if not glob.glob("/usr/lib/postgresql/*/bin/postgres"):
        missing.append("postgresql server binaries")
    if not missing:
        return
    message = f"not installed: {', '.join(missing)} (apt-get install patroni etcd-server)"
    if IN_CI:
        pytest.fail(f"CI=true and {message}")
    pytest.skip(f"NOTICE: skipping the Patroni experiment - {message}")


def _children(pid: int) -> list[int]:
    try:
        listed = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return []
    return [int(child) for child in listed]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "zombie" not in _status(pid)


def _status(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/status").read_text().split("State:", 1)[1].split("\n", 1)[0]
    except (OSError, IndexError):
        return "zombie"


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


@dataclass
class Member:
    name: str
    port: int  # PostgreSQL
    api: int  # Patroni's REST API
    data: Path
    config: Path
    process: subprocess.Popen[bytes] | None = None  # runuser, or Patroni when not root

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def patroni_pid(self) -> int:
        """Patroni's own PID: ``runuser`` forks it as a child and waits."""
        assert self.process is not None
        if os.geteuid() != 0:
            return self.process.pid
        deadline = time.monotonic() + 10
        while not (children := _children(self.process.pid)):
            assert time.monotonic() < deadline, "runuser started no Patroni"
            time.sleep(0.05)
        return children[0]

    def postmaster_pid(self) -> int | None:
        try:
            pid = int((self.data / "postmaster.pid").read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return None
        return pid if _alive(pid) else None


class PatroniCluster:
    def __init__(self, members: int = 3) -> None:
        # Not under pytest's tmp_path, whose parents only root may enter.
        self.root = Path(tempfile.mkdtemp(prefix="careledger-patroni-"))
        self.bin = Path(sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"))[-1]).parent
        self.etcd_ports = (free_port(), free_port(), free_port())  # client, peer, metrics
        self.etcd: subprocess.Popen[bytes] | None = None
        self.members = [
            Member(f"m{n}", free_port(), free_port(), self.root / f"m{n}", self.root / f"m{n}.yml")
            for n in range(1, members + 1)
        ]

    def url(self, database: str) -> str:
        """Every member, for libpq to find the primary among them."""
        hosts = ",".join(f"127.0.0.1:{m.port}" for m in self.members)
        return f"postgresql://postgres@{hosts}/{database}"

    def _as_postgres(self) -> list[str]:
        return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    def _config(self, member: Member) -> dict[str, Any]:
        client = self.etcd_ports[0]
        trust = ["local all all trust", "host all all 127.0.0.1/32 trust"]
        return {
            "scope": "careledger",
            "name": member.name,
            "restapi": {
                "listen": f"127.0.0.1:{member.api}",
                "connect_address": f"127.0.0.1:{member.api}",
            },
            "etcd3": {"hosts": f"127.0.0.1:{client}"},  # not etcd: the v2 API is off
            "bootstrap": {
                "dcs": {
                    "ttl": 10,
                    "loop_wait": 2,
                    "retry_timeout": 4,
                    "synchronous_mode": True,
                    "postgresql": {"use_pg_rewind": True},
                },
                "initdb": [{"encoding": "UTF8"}, {"auth": "trust"}],
            },
            "postgresql": {
                "listen": f"127.0.0.1:{member.port}",
                "connect_address": f"127.0.0.1:{member.port}",
                "data_dir": str(member.data),
                "bin_dir": str(self.bin),
                "pgpass": str(self.root / f"{member.name}.pgpass"),
                "use_pg_rewind": True,
                # A crashed primary that cannot be rewound is copied afresh.
                "remove_data_directory_on_rewind_failure": True,
                "authentication": {
                    role: {"username": "postgres"}
                    for role in ("superuser", "replication", "rewind")
                },
                "pg_hba": [*trust, "host replication all 127.0.0.1/32 trust"],
                "parameters": {
                    "unix_socket_directories": str(self.root / "sock"),
                    "shared_buffers": "32MB",
                    "max_connections": 100,
                    "fsync": "on",
                },
            },
        }

    def start(self) -> None:
        os.chmod(self.root, 0o755)
        (self.root / "sock").mkdir()
        for member in self.members:
            member.config.write_text(json.dumps(self._config(member)))  # JSON is YAML
        if os.geteuid() == 0:
            subprocess.run(["chown", "-R", "postgres:postgres", str(self.root)], check=True)
        client, peer, metrics = self.etcd_ports
        self.etcd = subprocess.Popen(
            [
                "etcd", "--name", "n1", "--data-dir", str(self.root / "etcd"),
                "--listen-client-urls", f"http://127.0.0.1:{client}",
                "--advertise-client-urls", f"http://127.0.0.1:{client}",
                "--listen-peer-urls", f"http://127.0.0.1:{peer}",
                "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
                "--initial-cluster", f"n1=http://127.0.0.1:{peer}",
                "--listen-metrics-urls", f"http://127.0.0.1:{metrics}",
            ],
            stdout=(self.root / "etcd.log").open("ab"),
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        for member in self.members:
            self.start_member(member)

    def start_member(self, member: Member) -> None:
        with (self.root / f"{member.name}.log").open("ab") as log:
            member.process = subprocess.Popen(
                [*self._as_postgres(), "patroni", str(member.config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.root,
            )

    def roles(self) -> dict[str, str]:
        """Each running member's role, as Patroni's REST API reports the cluster."""
        for member in self.members:
            try:
                answer = httpx.get(f"http://127.0.0.1:{member.api}/cluster", timeout=1)
            except httpx.TransportError:
                continue
            if answer.status_code == 200:
                return {
                    m["name"]: m["role"]
                    for m in answer.json()["members"]
                    if m.get("state") in ("running", "streaming")
                }
        return {}

    def leader(self) -> Member:
        roles = self.roles()
        return next(m for m in self.members if roles.get(m.name) == "leader")

    def ready(self, seconds: float = 120) -> float:
        """Seconds until there is a leader, a synchronous standby, and every member
        running and accepting connections."""
        started = time.monotonic()
        while True:
            roles = self.roles()
            if (
                len(roles) == len(self.members)
                and sorted(roles.values()).count("leader") == 1
                and "sync_standby" in roles.values()
                and all(self._accepting(m) for m in self.members)
            ):
                return time.monotonic() - started
            if time.monotonic() - started > seconds:
                raise AssertionError(f"the cluster is not ready: {roles} {self.log_tail()}")
            time.sleep(0.2)

    def writable(self, *members: Member) -> bool:
        """Whether one of these members takes writes (libpq's own test of a primary)."""
        hosts = ",".join("127.0.0.1" for _ in members)
        ports = ",".join(str(m.port) for m in members)
        try:
            with psycopg.connect(
                host=hosts,
                port=ports,
                user="postgres",
                dbname="postgres",
                target_session_attrs="read-write",
                connect_timeout=1,
            ):
                return True
        except psycopg.OperationalError:
            return False

    def _accepting(self, member: Member) -> bool:
        try:
            with psycopg.connect(member.admin_url, connect_timeout=1):
                return True
        except psycopg.OperationalError:
            return False

    def crash(self, member: Member) -> None:
        """A node crash: Patroni, its postmaster and every server process, SIGKILLed."""
        patroni = member.patroni_pid()
        postmaster = member.postmaster_pid()
        victims = [patroni]
        if postmaster is not None:
            victims += [postmaster, *_children(postmaster)]
        for pid in victims:
            _kill(pid)
        assert member.process is not None
        member.process.wait(10)
        deadline = time.monotonic() + 10
        while any(_alive(pid) for pid in victims):
            assert time.monotonic() < deadline, "a crashed member's process lives on"
            time.sleep(0.05)

    def stop(self) -> None:
        """Every process this cluster started, by its PID: Patroni first (which stops
        its PostgreSQL), then whatever is left, then etcd; then the directory."""
        running = [m for m in self.members if m.process and m.process.poll() is None]
        for member in running:
            with contextlib.suppress(ProcessLookupError, AssertionError):
                os.kill(member.patroni_pid(), signal.SIGTERM)
        deadline = time.monotonic() + 20
        for member in running:
            assert member.process is not None
            with contextlib.suppress(subprocess.TimeoutExpired):
                member.process.wait(max(0.1, deadline - time.monotonic()))
        for member in self.members:
            if member.process and member.process.poll() is None:
                for pid in _children(member.process.pid):
                    _kill(pid)
                member.process.kill()
                member.process.wait(5)
            postmaster = member.postmaster_pid()
            if postmaster is not None:
                for pid in [postmaster, *_children(postmaster)]:
                    _kill(pid)
        if self.etcd is not None:
            self.etcd.kill()
            self.etcd.wait(10)
        shutil.rmtree(self.root, ignore_errors=True)

    def log_tail(self) -> str:
        tails = []
        for member in self.members:
            log = self.root / f"{member.name}.log"
            if log.exists():
                tails.append(f"--- {member.name}\n{log.read_text(errors='replace')[-1500:]}")
        return "\n".join(tails)


@contextlib.contextmanager
def patroni_cluster() -> Iterator[PatroniCluster]:
    missing_binaries()
    cluster = PatroniCluster()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
