"""Two organisation databases, one process, one NATS stream (issue 23): each database's
relay publishes its subscribers' deliveries, and since both take turns on one shared
broker, neither's chain of expected ids is broken by the other's. Every delivery the
HTTP feed holds reaches the stream once, in the feed's order, for both organisations."""

import threading
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.organisations import build_organisations
from tests.e2e.nats_consumer import collect
from tests.e2e.test_relay_nats_restart import private_nats
from tests.security.test_org_databases import routed_settings
from tests.security.two_orgs import ORG_MAIN, ORG_OTHER, Org, build_world, entry_body, record

pytestmark = [pytest.mark.e2e, pytest.mark.nats]

WRITES = 40


def fed(client: TestClient, org: Org) -> list[str]:
    """The ids of every delivery in the subscriber's HTTP feed, in order."""
    ids: list[str] = []
    after = 0
    while True:
        page = client.get(
            f"/v1/subscribers/{org.subscriber_id}/feed",
            params={"after": after, "limit": 500},
            headers=org.service,
        ).json()
        ids += [item["event_id"] for item in page["items"]]
        if not page["items"]:
            return ids
        after = page["next_after"]


def test_two_databases_relays_deliver_everything_through_one_stream(tmp_path: Path) -> None:
    stores = {org: {"url": f"sqlite:///{tmp_path / f'{org}.db'}"} for org in (ORG_MAIN, ORG_OTHER)}
    with private_nats(tmp_path) as nats:
        settings = routed_settings(stores, tmp_path / "var").model_copy(
            update={"nats_url": nats.url}
        )
        organisations = build_organisations(settings, run_processes=True, create=True)
        relays = [c.relay_host for c in organisations.containers.values()]
        # Given one broker under both databases' relays
        assert all(r is not None for r in relays) and organisations.broker is not None
        assert {id(r.relay.broker) for r in relays if r is not None} == {id(organisations.broker)}
        with TestClient(create_app(organisations), raise_server_exceptions=False) as client:
            world = build_world(client)

            # When both organisations' clinicians write at once
            def write(org: Org) -> None:
                for n in range(WRITES):
                    record(client, org, org.patient_id, entry_body(f"{org.tag} reading {n}"))

            writers = [threading.Thread(target=write, args=(o,)) for o in (world.main, world.other)]
            for writer in writers:
                writer.start()
            for writer in writers:
                writer.join()
            # Then each subscriber's subject holds its feed, once and in order
            for org in (world.main, world.other):
                deadline = time.monotonic() + 60
                while len(expected := fed(client, org)) < WRITES:
                    assert time.monotonic() < deadline, len(expected)
                    time.sleep(0.2)
                got = collect(nats.url, f"careledger.{org.subscriber_id}", len(expected))
                assert [m.msg_id for m in got] == expected, org.id
