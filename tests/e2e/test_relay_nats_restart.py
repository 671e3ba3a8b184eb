"""The relay rides out a NATS restart: it reconnects with backoff, retries what was
caught by the outage, and the consumer still sees each event once, in order.

A private ``nats-server`` (the same binary as the machine's, on a free port, with a
store of its own) is stopped and started again mid-stream, so the shared server on
4222 is never disturbed.
"""

import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.api.support import MEDICATION, entry, patient, subscribe, under_care
from tests.e2e.nats_consumer import collect
from tests.e2e.relay_stack import relay_stack
from tests.e2e.server import free_port
from tests.faults.figures import Figures, recorded

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.nats]

NATS_SERVER = shutil.which("nats-server") or "/usr/sbin/nats-server"


class PrivateNats:
    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.store = workdir / "jetstream"
        self.log = workdir / "nats-server.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> None:
        command = [
            NATS_SERVER,
            "-a",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-js",
            "-sd",
            str(self.store),
            "-l",
            str(self.log),
        ]
        self.process = subprocess.Popen(command)
        deadline = time.monotonic() + 10
        while b"Server is ready" not in (self.log.read_bytes() if self.log.exists() else b""):
            assert time.monotonic() < deadline, "nats-server did not start"
            time.sleep(0.05)

    def stop(self) -> None:
        assert self.process is not None
        self.process.terminate()
        self.process.wait(10)
        self.log.unlink()  # so that start() waits for the new "ready" line


@contextmanager
def private_nats(workdir: Path) -> Iterator[PrivateNats]:
    if not Path(NATS_SERVER).exists():
        pytest.fail(f"nats-server not found at {NATS_SERVER}")
    server = PrivateNats(workdir)
    server.start()
    try:
        yield server
    finally:
        if server.process is not None and server.process.poll() is None:
            server.process.kill()
            server.process.wait(5)


def test_a_nats_restart_mid_stream_loses_nothing_and_duplicates_nothing(
    postgres_server: str, nats_server: str, tmp_path: Path
) -> None:
    with (
        private_nats(tmp_path) as nats,
        relay_stack(postgres_server, nats.url, tmp_path) as stack,
    ):
        figures = recorded(Figures("NATS stopped during the relay", 1))
        client = stack.client
        pharmacy, _ = subscribe(client)
        patient_id = patient(client, "NATS-1")
        under_care(client, patient_id)
        written: list[str] = []
        stop = threading.Event()

        def write() -> None:
            while not stop.is_set():
                written.append(entry(client, patient_id, MEDICATION))
                time.sleep(0.02)

        writer = threading.Thread(target=write)
        writer.start()
        try:
            # Once the relay has published (a slow start on a busy machine would
            # otherwise meet the outage before it ever connected)
            collect(nats.url, f"careledger.{pharmacy}", expect=1, timeout=60, quiet=0)
            time.sleep(0.5)
            nats.stop()  # the broker goes away while deliveries are being published
            outage_started = len(written)
            time.sleep(2.0)
            nats.start()
            time.sleep(1.5)
        finally:
            stop.set()
            writer.join()
        assert len(written) > outage_started > 0
        messages = collect(nats.url, f"careledger.{pharmacy}", expect=len(written), timeout=90)
        ids = [m.body["payload"]["entry_id"] for m in messages]
        figures.acknowledged = len(written)
        figures.lost = len(set(written) - set(ids))
        figures.duplicated = len(ids) - len(set(ids))
        figures.note = f"{len(messages)} messages consumed"
        assert len(ids) == len(set(ids)), "a duplicate reached the consumer"
        assert ids == written, "a gap or a reordering reached the consumer"
        # And the same relay process reconnected (it was never restarted)
        assert stack.relay.starts == 1
        # Logged from the relay's own thread once a publish is acknowledged after the
        # loss, which can be just after the consumer has read the last message.
        deadline = time.monotonic() + 30
        while "nats reconnected" not in stack.relay.log_path.read_text():
            assert time.monotonic() < deadline, stack.relay.log_path.read_text()
            time.sleep(0.1)
        figures.passed = True
