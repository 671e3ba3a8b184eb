"""A PostgreSQL cluster of the test's own (initdb in a temporary directory, on a free
port), to stop and start at will: the machine's shared server on 5432 is never
touched. Run as the ``postgres`` user when the test runs as root (as CI does)."""

import glob
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest

from tests.conftest import new_database
from tests.e2e.server import free_port


def _bin_dir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


class PrivatePostgres:
    def __init__(self, workdir: Path) -> None:
        bin_dir = _bin_dir()
        if bin_dir is None:
            pytest.fail("no PostgreSQL server binaries under /usr/lib/postgresql/*/bin")
        self.bin = bin_dir
        # Not under pytest's tmp_path, whose parents only root may enter.
        self.root = Path(tempfile.mkdtemp(prefix="careledger-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self.admin_url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        done = subprocess.run(
            [*prefix, *command], check=False, capture_output=True, text=True, timeout=120
        )
        if check and done.returncode != 0:
            raise RuntimeError(f"{command[0]} failed: {done.stdout[-1000:]} {done.stderr[-1000:]}")
        return done

    def create(self) -> None:
        os.chmod(self.root, 0o755)
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        self._run(
            str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust",
            "--no-sync",
        )  # fmt: skip

    def start(self) -> None:
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.root}"
            " -c fsync=on -c max_connections=100 -c shared_buffers=32MB"
        )
        self._run(
            str(self.bin / "pg_ctl"), "-D", str(self.data), "-o", options,
            "-l", str(self.root / "server.log"), "-w", "-t", "60", "start",
        )  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def standby(self, slot: str = "replica1") -> "PrivatePostgres":
        """A streaming replica of this running cluster, on a port of its own: a base
        backup with ``-R`` (it starts as a hot standby) and a replication slot."""
        replica = PrivatePostgres(self.root)
        os.chmod(replica.root, 0o755)
        if os.geteuid() == 0:
            shutil.chown(replica.root, "postgres", "postgres")
        self._run(
            str(self.bin / "pg_basebackup"), "-h", "127.0.0.1", "-p", str(self.port),
            "-U", "postgres", "-D", str(replica.data), "-R", "-X", "stream", "-c", "fast",
            "-C", "-S", slot,
        )  # fmt: skip
        try:
            replica.start()
        except BaseException:
            replica.destroy()
            raise
        return replica

    def destroy(self) -> None:
        """Stop (immediately) and delete the cluster."""
        self._run(
            str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop",
            check=False,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while self.accepting() and time.monotonic() < deadline:
            time.sleep(0.1)
        shutil.rmtree(self.root, ignore_errors=True)

    def accepting(self) -> bool:
        try:
            with psycopg.connect(self.admin_url, connect_timeout=1):
                return True
        except psycopg.OperationalError:
            return False

    def database(self) -> str:
        """A new database with CareLedger's roles; the application role's URL."""
        return new_database(self.admin_url)[1]


@contextmanager
def private_postgres(workdir: Path) -> Iterator[PrivatePostgres]:
    server = PrivatePostgres(workdir)
    server.create()
    server.start()
    try:
        yield server
    finally:
        server.destroy()


@contextmanager
def primary_and_standby(workdir: Path) -> Iterator[tuple[PrivatePostgres, PrivatePostgres]]:
    """A primary and its streaming replica (a hot standby), both the test's own."""
    with private_postgres(workdir) as primary:
        replica = primary.standby()
        try:
            yield primary, replica
        finally:
            replica.destroy()
