"""The NATS relay, SIGKILLed over and over mid-stream, still delivers each event exactly
once, in log order, as a real JetStream consumer sees it; and writes one access record
per delivery, not one per attempt."""

import random
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api.support import AUDITOR, MEDICATION, entry, patient, settled, subscribe, under_care
from tests.e2e.nats_consumer import collect, purge
from tests.e2e.relay_stack import relay_stack

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.nats]

KILLS = 6


def test_kill_minus_nine_then_restart_gives_no_duplicate_and_no_gap(
    postgres_server: str, nats_server: str, tmp_path: Path
) -> None:
    rng = random.Random(7)
    with relay_stack(postgres_server, nats_server, tmp_path) as stack:
        client = stack.client
        pharmacy, _ = subscribe(client, content="full")
        subject = f"careledger.{pharmacy}"
        patients = [patient(client, f"KILL-{n}") for n in range(4)]
        for patient_id in patients:
            under_care(client, patient_id)
        written: list[str] = []
        stop_writing = threading.Event()

        def write() -> None:
            n = 0
            while not stop_writing.is_set():
                written.append(entry(client, patients[n % len(patients)], MEDICATION))
                n += 1

        writer = threading.Thread(target=write)
        writer.start()
        try:
            for _ in range(KILLS):
                time.sleep(rng.uniform(0.5, 2.0))
                stack.relay.kill()
                time.sleep(rng.uniform(0.0, 0.5))
                stack.relay.start()
        finally:
            stop_writing.set()
            writer.join()
        try:
            messages = collect(stack.nats_url, subject, expect=len(written), timeout=120)
            ids = [m.body["payload"]["entry_id"] for m in messages]
            # Exactly once and in log order: the consumer's sequence is what was written
            assert len(ids) == len(set(ids)), "a duplicate reached the consumer"
            assert ids == written, "a gap or a reordering reached the consumer"
            positions = [m.body["position"] for m in messages]
            assert positions == sorted(positions)
            assert len({m.msg_id for m in messages}) == len(messages)
            # One access record per delivered message, however many attempts it took
            records = access_records(client, pharmacy)
            assert sorted(r["access_id"] for r in records) == sorted(m.access_id for m in messages)
            assert stack.relay.starts == KILLS + 1 and len(written) > 50
        finally:
            purge(stack.nats_url, subject)


def access_records(client: httpx.Client, subscriber_id: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        params: dict[str, Any] = {
            "action": "deliver",
            "actor_id": subscriber_id,
            "limit": 500,
            **settled(client),
        }
        if cursor:
            params["cursor"] = cursor
        page = client.get("/v1/audit/accesses", params=params, headers=AUDITOR).json()
        items += [r for r in page["items"] if r["source"] == "nats"]
        cursor = page["next_cursor"]
        if not cursor:
            return items
