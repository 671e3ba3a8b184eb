"""A real stack for the subscription stories: PostgreSQL, ``careledger serve`` with its
projections, a ``careledger relay`` process, and the NATS server."""

import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.conftest import APP_ROLE, create_database, drop_database, role_url
from tests.e2e.server import BIN, running_server


class RelayProcess:
    """``careledger relay`` as its own process, to stop, kill and start again."""

    def __init__(self, env: dict[str, str], workdir: Path) -> None:
        self.env = env
        self.workdir = workdir
        self.log_path = workdir / "relay.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [str(BIN / "careledger"), "relay"],
            cwd=self.workdir,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()

    def stop(self) -> None:
        self._signal(signal.SIGTERM)

    def kill(self) -> None:
        """kill -9: no clean-up of any kind."""
        self._signal(signal.SIGKILL)

    def _signal(self, sig: int) -> None:
        if self.process is None:
            return
        self.process.send_signal(sig)
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
        self.process = None


@dataclass
class Stack:
    client: httpx.Client
    relay: RelayProcess
    nats_url: str


@contextmanager
def relay_stack(
    postgres_server: str, nats_url: str, workdir: Path, **relay_env: str
) -> Iterator[Stack]:
    admin_url = create_database(postgres_server)
    try:
        url = role_url(admin_url, APP_ROLE)
        with running_server(url, workdir, "--with-projections") as (base, env, _log):
            relay = RelayProcess({**env, "CARELEDGER_NATS_URL": nats_url, **relay_env}, workdir)
            relay.start()
            try:
                with httpx.Client(base_url=base, timeout=60) as client:
                    yield Stack(client, relay, nats_url)
            finally:
                relay.stop()
    finally:
        drop_database(postgres_server, admin_url)
