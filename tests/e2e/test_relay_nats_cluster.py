"""Fan-out on a three-node JetStream cluster: the stream leader is SIGKILLed while the
relay publishes under load, and a consumer still sees every event once, in order.

The relay is given every node (``CARELEDGER_NATS_URL``, comma-separated) and keeps the
``CARELEDGER`` stream on all three (``CARELEDGER_NATS_REPLICAS=3``). Killing the stream
leader is the harsh case: until the two survivors elect a new one, no publish is
stored, and messages already on their way to the dead node are lost, so the relay
must retry them without storing any later one first. CI kills one leader; ``make
faults`` kills three (the leader, the relay's own server while another leads, the
leader), restarting each killed node before the next kill.
"""

import itertools
import threading
import time
from pathlib import Path

import pytest

from tests.api.support import MEDICATION, entry, patient, subscribe, under_care
from tests.e2e.nats_cluster import Cluster, nats_cluster
from tests.e2e.nats_consumer import Received, collect
from tests.e2e.relay_stack import relay_stack
from tests.faults.figures import Figures, recorded
from tests.faults.harness import size

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.nats]

WRITERS = 4
RESUMED_WITHIN = 30.0  # seconds: an election takes about 5, an unanswered batch 10 more


def test_killing_the_stream_leader_under_load_loses_nothing_and_reorders_nothing(
    postgres_server: str, tmp_path: Path
) -> None:
    kills = size(1, 3)
    figures = recorded(Figures("NATS cluster: stream leader SIGKILLed during the relay", kills))
    with (
        nats_cluster(tmp_path / "nats") as cluster,
        relay_stack(postgres_server, cluster.url, tmp_path, CARELEDGER_NATS_REPLICAS="3") as stack,
    ):
        client = stack.client
        pharmacy, _ = subscribe(client)
        patients = [patient(client, f"CLUSTER-{n}") for n in range(WRITERS)]
        for patient_id in patients:
            under_care(client, patient_id)
        written: dict[str, list[str]] = {p: [] for p in patients}
        stop = threading.Event()

        def write(patient_id: str) -> None:
            while not stop.is_set():
                written[patient_id].append(entry(client, patient_id, MEDICATION))
                time.sleep(0.01)

        writers = [threading.Thread(target=write, args=(p,)) for p in patients]
        for writer in writers:
            writer.start()
        killed_at: list[float] = []
        killed: list[str] = []
        try:
            info = until_published(cluster, at_least=50)
            assert info.config.num_replicas == 3  # the relay made the stream on all three
            for n in range(kills):
                if n:
                    until_all_current(cluster)
                relays = cluster.serving("careledger-relay")
                if n == 1:
                    # The second kill of a full run takes the relay's own server while
                    # another leads: what the relay had sent that its server had not
                    # read is lost, and what it buffers while reconnecting is stored
                    # after, so only the chain keeps the lost ones from being passed.
                    cluster.lead_elsewhere(relays)
                    time.sleep(3)  # publishing again, to the new leader
                leader = cluster.stream_info().cluster.leader
                victim = relays if n == 1 else leader
                killed.append(describe(victim, leader, relays))
                killed_at.append(time.time())
                cluster.node(victim).kill()  # under load, mid-stream
                time.sleep(12)  # an election, the relay's retry, and publishing again
                if n + 1 < kills:
                    cluster.node(victim).start(cluster.routes)
        finally:
            stop.set()
            for writer in writers:
                writer.join()
        total = sum(len(ids) for ids in written.values())
        live = next(node.url for node in cluster.nodes if node.process is not None)
        messages = collect(live, f"careledger.{pharmacy}", expect=total, timeout=120)
        ids = [m.body["payload"]["entry_id"] for m in messages]
        ends = [*killed_at[1:], killed_at[-1] + 30]
        pauses = [pause_between(messages, k, end) for k, end in zip(killed_at, ends, strict=True)]
        relay_log = stack.relay.log_path.read_text()
        figures.acknowledged = total
        figures.lost = total - len(set(ids) & {i for w in written.values() for i in w})
        figures.duplicated = len(ids) - len(set(ids))
        figures.recoveries = pauses
        figures.note = (
            f"killed: {', '.join(killed)}; {len(messages)} messages consumed; publishing paused "
            f"{', '.join(f'{p:.1f}' for p in pauses)} s; "
            f"{relay_log.count('relay error; retrying')} batches retried"
        )
        # Every acknowledged write reached the consumer exactly once
        assert figures.duplicated == 0, "a duplicate reached the consumer"
        assert figures.lost == 0 and len(ids) == total, "a write never reached the consumer"
        # In log order, and in each writer's own order
        positions = [m.body["position"] for m in messages]
        assert positions == sorted(positions), "the stream holds a reordering"
        for entries in written.values():
            assert [i for i in ids if i in set(entries)] == entries
        # Publishing resumed after each kill, with the same relay process
        assert max(pauses) < RESUMED_WITHIN, pauses
        assert stack.relay.starts == 1
        figures.passed = True


def describe(victim: str, leader: str, relays: str) -> str:
    roles = [
        role for role, name in (("leader", leader), ("relay's server", relays)) if name == victim
    ]
    return " and ".join(roles) or "a follower"


def until_published(cluster: Cluster, at_least: int) -> object:
    """The stream's info once the relay has stored ``at_least`` messages in it."""
    deadline = time.monotonic() + 60
    while True:
        info = cluster.stream_info()
        if info.state.messages >= at_least:
            return info
        assert time.monotonic() < deadline, "the relay published nothing"
        time.sleep(0.2)


def until_all_current(cluster: Cluster) -> None:
    """A restarted node has caught up: the leader and both replicas are current."""
    deadline = time.monotonic() + 60
    while True:
        replicas = cluster.stream_info().cluster.replicas or []
        if len(replicas) == 2 and all(r.current and not r.offline for r in replicas):
            return
        assert time.monotonic() < deadline, "the restarted node did not catch up"
        time.sleep(0.5)


def pause_between(messages: list[Received], kill: float, end: float) -> float:
    """The longest time no message was stored, from a second before a kill to ``end``:
    how long the kill stopped publishing."""
    times = [m.stored_at for m in messages if kill - 1 <= m.stored_at <= end]
    return max((b - a for a, b in itertools.pairwise(times)), default=0.0)
