"""A private three-node NATS JetStream cluster on loopback, for the relay's fan-out story.

Each node is the machine's ``nats-server`` on free ports with a store of its own under
the test's directory; the shared server on 4222 is never touched. Every node started is
killed by its PID at the end, whatever happened.
"""

import asyncio
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest

from tests.e2e.server import free_port

NATS_SERVER = shutil.which("nats-server") or "/usr/sbin/nats-server"
STREAM = "CARELEDGER"


class Node:
    def __init__(self, name: str, workdir: Path) -> None:
        self.name = name
        self.port = free_port()
        self.cluster_port = free_port()
        self.monitor_port = free_port()
        self.store = workdir / name
        self.log = workdir / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self, routes: str) -> None:
        self.log.unlink(missing_ok=True)  # so that ready() waits for this start's line
        self.process = subprocess.Popen(
            [
                NATS_SERVER,
                *("-a", "127.0.0.1", "-p", str(self.port), "-n", self.name),
                *("-m", str(self.monitor_port)),
                *("-js", "-sd", str(self.store), "-l", str(self.log)),
                *("--cluster_name", "careledger-test"),
                *("--cluster", f"nats://127.0.0.1:{self.cluster_port}", "--routes", routes),
            ]
        )

    def ready(self) -> bool:
        return self.log.exists() and b"Server is ready" in self.log.read_bytes()

    def clients(self) -> list[str]:
        """The names of the clients connected to this node (its monitoring endpoint)."""
        if self.process is None:
            return []
        connz = httpx.get(f"http://127.0.0.1:{self.monitor_port}/connz", timeout=5).json()
        return [c.get("name", "") for c in connz.get("connections") or []]

    def kill(self) -> None:
        """SIGKILL: no goodbye to its peers, nothing flushed."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)
        self.process = None


class Cluster:
    def __init__(self, workdir: Path) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.nodes = [Node(f"n{i}", workdir) for i in range(1, 4)]
        self.routes = ",".join(f"nats://127.0.0.1:{n.cluster_port}" for n in self.nodes)

    @property
    def url(self) -> str:
        """CARELEDGER_NATS_URL for the cluster: every node, comma-separated."""
        return ",".join(n.url for n in self.nodes)

    def start(self) -> None:
        for node in self.nodes:
            node.start(self.routes)
        deadline = time.monotonic() + 15
        while not all(n.ready() for n in self.nodes):
            assert time.monotonic() < deadline, "the NATS cluster did not start"
            time.sleep(0.05)
        # JetStream answers once the nodes have elected a meta leader.
        asyncio.run(self._until(lambda js: js.account_info(), 30))

    def node(self, name: str) -> Node:
        return next(n for n in self.nodes if n.name == name)

    def serving(self, client: str) -> str:
        """The node the named client is connected to."""
        deadline = time.monotonic() + 30
        while True:
            for node in self.nodes:
                if client in node.clients():
                    return node.name
            assert time.monotonic() < deadline, f"{client} is connected to no node"
            time.sleep(0.2)

    def lead_elsewhere(self, node: str) -> None:
        """Has the stream's leader step down until a node other than ``node`` leads."""
        deadline = time.monotonic() + 60
        while self.stream_info().cluster.leader == node:
            assert time.monotonic() < deadline, f"{node} kept the stream's leadership"
            asyncio.run(self._until(_step_down, 10))
            time.sleep(1)

    def stream_info(self) -> Any:
        return asyncio.run(self._until(lambda js: js.stream_info(STREAM), 30))

    def live_urls(self) -> str:
        return ",".join(n.url for n in self.nodes if n.process is not None)

    async def _until(self, call: Any, timeout: float) -> Any:
        """``call(js)`` on whichever live node answers, retried until it succeeds."""
        nc = await nats.connect(servers=self.live_urls().split(","), error_cb=_quiet)
        try:
            js = nc.jetstream(timeout=2)
            deadline = time.monotonic() + timeout
            while True:
                try:
                    return await call(js)
                except (TimeoutError, nats.errors.Error):
                    if time.monotonic() > deadline:
                        raise
                    await asyncio.sleep(0.2)
        finally:
            await nc.close()

    def stop(self) -> None:
        for node in self.nodes:
            node.kill()


async def _step_down(js: Any) -> Any:
    return await js._api_request(f"$JS.API.STREAM.LEADER.STEPDOWN.{STREAM}", b"", timeout=2)


async def _quiet(error: Exception) -> None:
    """nats-py prints a traceback for each refused reconnect without an error callback."""


@contextmanager
def nats_cluster(workdir: Path) -> Iterator[Cluster]:
    if not Path(NATS_SERVER).exists():
        pytest.fail(f"nats-server not found at {NATS_SERVER}")
    cluster = Cluster(workdir)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
