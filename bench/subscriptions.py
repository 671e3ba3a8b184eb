"""Benchmark downstream deliveries: the NATS relay (S1) and the feed's long-poll wake (S2).

Run from the project root::

    .venv/bin/python -m bench.subscriptions [--quick]

Needs PostgreSQL (a throwaway ``careledger_bench_*`` database, dropped afterwards) and
NATS JetStream on ``CARELEDGER_BENCH_NATS`` (default ``nats://127.0.0.1:4222``).

S1  NATS relay throughput with consent filtering. Two subscribers are registered, then
    patients' stories are written through the domain (``bench.projections.fill``:
    entries of five kinds, every 9th labelled ``mental_health``, half the patients
    with an active membership, each with a TREAT directive; the chart written after the
    registration and membership) and the delivery projection catches up. Subscribers:

    pharmacy   org-main, TREAT, every kind, no labels, summary: receives the entries of
               members only, and no labelled entry (the policy decides each one twice:
               as of the event, and again at delivery);
    marketing  org-agency, HMARKT: no directive names it, so it receives nothing, but
               its outbox is empty, so it costs the relay a query per round.

    Then the relay (``application.subscriptions.relay.Relay``: delivery-time decision, one access
    record per delivery, group-committed, published with a reply subject each and
    every JetStream ack awaited, tracking committed) runs until the outbox is drained.
    Figure: deliveries per second. Goal: >= 5,000. The stream is then read back to
    check exactly once: as many messages on the subject as deliveries, no Nats-Msg-Id
    twice, and their ids exactly the event ids of the outbox (none missing, none
    extra).

S2  Long-poll wake latency, over real HTTP. ``careledger serve --with-projections`` on
    the same store; a pharmacy service holds ``GET /v1/subscribers/{id}/feed?wait=30``
    open; a clinician records a medication entry for a member. Latency: from the
    entry's 201 to the feed's 200 carrying it (projection, delivery decision, access
    record and response included). Figure: p50, p99, max. Goal: p99 <= 50 ms.

Results: a markdown table on stdout, JSON in ``bench/results/subscriptions-<time>.json``.
"""

import argparse
import asyncio
import os
import statistics
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import nats
from rich.console import Console

from api import heap
from api.auth import mint_token
from api.bootstrap import build, relay_for
from application.context import Actor, RequestContext, Role
from application.subscriptions.relay import subject_of
from bench.support import report as bench_report
from bench.support.charts import (
    ORG,
    Serial,
    head,
    patient_story,
    record_entry,
)
from bench.support.servers import careledger_serve, running_server, server_env
from bench.support.stores import (
    bench_database,
    bench_settings,
    projector,
    server_version,
)
from domain.subscriber import ContentLevel
from domain.values import Provenance
from domain.vocabulary import EntryKind, Purpose
from infrastructure.nats_relay import STREAM, NatsBroker

NATS_URL = os.environ.get("CARELEDGER_BENCH_NATS", "nats://127.0.0.1:4222")
stderr = Console(stderr=True)


def admin() -> RequestContext:
    return RequestContext(Actor("admin-bench", Role.ADMIN, ORG), Purpose.HOPERAT, "bench")


def register(container: Any, name: str, org: str, purpose: Purpose) -> Any:
    outcome = container.subscriptions.register(
        admin(),
        name=name,
        recipient_org=org,
        purpose=purpose,
        kinds=list(EntryKind),
        labels=[],
        content=ContentLevel.SUMMARY,
    )
    return outcome.result["id"]


def run_s1(settings: Any, events: int, progress: Any) -> dict[str, Any]:
    container = build(settings)
    heap.settle(container)  # as the relay's process does at its entry
    try:
        pharmacy = register(container, "Pharmacy", ORG, Purpose.TREAT)
        register(container, "Agency", "org-agency", Purpose.HMARKT)
        written = members_first(container.ledger, events, progress)
        deliveries = projector(container, "deliveries")
        started = time.perf_counter()
        while deliveries.step()[1] > 0:
            pass
        outbox_seconds = time.perf_counter() - started
        broker = NatsBroker([NATS_URL])
        relay = relay_for(container, broker)
        backlog = container.subscriptions.view.backlog(UUID(pharmacy), 0)
        # What must arrive: every outbox item, once (nothing changes between an event
        # and its delivery here, so none is refused at delivery time).
        outbox = container.subscriptions.view.pending(UUID(pharmacy), 0, backlog + 1)
        expected = {content["message"]["event_id"] for _, _, content in outbox.items}
        task = progress.add_task("S1: relaying", total=backlog)
        started = time.perf_counter()
        while relay.step() > 0:
            progress.update(task, completed=relay.published)
        seconds = time.perf_counter() - started
        progress.remove_task(task)
        ids = stream_ids(subject_of(UUID(pharmacy)))
        received = set(ids)
        broker.close()
        return {
            "events_in_log": written["events_in_log"],
            "outbox_items": backlog,
            "outbox_build_events_per_s": round(written["events_in_log"] / outbox_seconds, 1),
            "deliveries": relay.published,
            "relay_seconds": round(seconds, 3),
            "deliveries_per_s": round(relay.published / seconds, 1),
            "republished": relay.republished,
            "messages_on_subject": len(ids),
            "distinct_msg_ids": len(received),
            "outbox_items_missing": len(expected - received),
            "unexpected_msg_ids": len(received - expected),
            "exactly_once": len(ids) == len(received) == relay.published and received == expected,
            "postgres": server_version(container.ledger),
        }
    finally:
        container.close()


def members_first(ledger: Any, target: int, progress: Any) -> dict[str, Any]:
    """``fill``'s patient stories, but each patient's chart written in a later save than
    its registration, consent and membership: delivery decides as of each event, and an
    entry recorded before the membership began is (rightly) never delivered."""
    task = progress.add_task("S1: writing the log", total=target)
    serial, patients_written = Serial(), Serial()  # every other patient is a member
    while head(ledger) < target:
        by = Provenance("clinician-7", datetime.now(UTC))
        patients: list[Any] = []
        first: list[Any] = []
        for _ in range(10):
            aggregates, patient = patient_story(patients_written(), serial, 1, by)
            first += aggregates
            patients.append(patient)
        ledger.save(*first)
        for patient in patients:
            for _ in range(10):
                record_entry(patient, serial(), by)
        ledger.save(*patients)
        progress.update(task, completed=min(head(ledger), target))
    progress.remove_task(task)
    return {"events_in_log": head(ledger)}


def stream_ids(subject: str) -> list[str]:
    """Every message's Nats-Msg-Id on the subject, read back by a JetStream consumer
    (then purged)."""

    async def read_back() -> list[str]:
        nc = await nats.connect(NATS_URL)
        try:
            js = nc.jetstream()
            sub = await js.pull_subscribe(subject, stream=STREAM)
            ids: list[str] = []
            deadline = time.monotonic() + 120
            while True:
                try:
                    batch = await sub.fetch(1000, timeout=1)
                except TimeoutError:  # nats-py raises its own subclass, or the builtin
                    # A slow fetch is not the end of the stream: only nothing left is.
                    info = await sub.consumer_info()
                    if info.num_pending == 0 and info.num_ack_pending == 0:
                        break
                    if time.monotonic() > deadline:
                        raise RuntimeError("S1: the stream could not be read back") from None
                    continue
                ids += [(m.headers or {}).get("Nats-Msg-Id", "") for m in batch]
                for m in batch:
                    await m.ack()
            await sub.unsubscribe()
            await js.purge_stream(STREAM, subject=subject)
            return ids
        finally:
            await nc.close()

    return asyncio.run(read_back())


def run_s2(settings: Any, workdir: Path, rounds: int, progress: Any) -> dict[str, Any]:
    container = build(settings)
    heap.settle(container)  # as serve's process does at its entry
    try:
        pharmacy = register(container, "Wake pharmacy", ORG, Purpose.TREAT)
    finally:
        container.close()
    secret = settings.jwt_secret.get_secret_value().encode()
    now = int(time.time())
    service = mint_token(
        secret, role=Role.SERVICE, sub=pharmacy, org=ORG, patient=None, ttl_seconds=3600, now=now
    )
    clinician = bench_report.clinician_token(secret, ORG)
    admin_token = mint_token(
        secret, role=Role.ADMIN, sub="admin-bench", org=ORG, patient=None, ttl_seconds=3600, now=now
    )
    latencies: list[float] = []
    with (
        running_server(
            "audited", careledger_serve("--with-projections"), server_env(settings), workdir
        ) as (base, _pid),
        httpx.Client(base_url=base, timeout=60) as writer,
    ):
        patient_id = member(writer, clinician, admin_token)
        after = 0
        task = progress.add_task("S2: long-poll wakes", total=rounds)
        with httpx.Client(base_url=base, timeout=60) as reader:
            for _ in range(rounds):
                result: dict[str, Any] = {}

                def poll(cursor: int = after, out: dict[str, Any] = result) -> None:
                    out["response"] = reader.get(
                        f"/v1/subscribers/{pharmacy}/feed",
                        params={"after": cursor, "wait": 30},
                        headers={"Authorization": f"Bearer {service}"},
                    )
                    out["at"] = time.perf_counter()

                polling = threading.Thread(target=poll)
                polling.start()
                time.sleep(0.2)  # the poll is parked on the server
                response = writer.post(
                    f"/v1/patients/{patient_id}/entries",
                    json=MEDICATION,
                    headers={"Authorization": f"Bearer {clinician}"},
                )
                acknowledged = time.perf_counter()
                assert response.status_code == 201, response.text
                polling.join(35)
                page = result["response"].json()
                assert page["items"], page
                after = page["next_after"]
                latencies.append((result["at"] - acknowledged) * 1000)
                progress.advance(task)
        progress.remove_task(task)
    ordered = sorted(latencies)
    return {
        "rounds": rounds,
        "p50_ms": round(statistics.median(ordered), 2),
        "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))], 2),
        "max_ms": round(ordered[-1], 2),
    }


MEDICATION = {
    "kind": "medication",
    "code": {
        "system": "http://www.nlm.nih.gov/research/umls/rxnorm",
        "code": "197361",
        "display": "amlodipine 5 MG Oral Tablet",
    },
    "effective_at": "2026-11-20T09:30:00Z",
}


def member(client: httpx.Client, clinician: str, admin_token: str) -> str:
    registered = client.post(
        "/v1/patients",
        json={
            "mrn": "MRN-WAKE",
            "name": {"given": "Ada", "family": "Wake"},
            "birth_date": "1984-07-12",
            "sex": "female",
        },
        headers={"Authorization": f"Bearer {clinician}"},
    )
    assert registered.status_code == 201, registered.text
    patient_id = str(registered.json()["id"])
    today = datetime.now(UTC).date()
    enrolled = client.post(
        "/v1/memberships",
        json={
            "patient_id": patient_id,
            "plan": "individual",
            "annual_fee_cents": 0,
            "starts_on": (today - timedelta(days=1)).isoformat(),
            "ends_on": (today + timedelta(days=365)).isoformat(),
        },
        headers={"Authorization": f"Bearer {admin_token}"},
    )
    assert enrolled.status_code == 201, enrolled.text
    return patient_id


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller runs (CI smoke)")
    parser.add_argument("--json-out", type=Path, default=None)
    args = parser.parse_args()
    events = 30_000 if args.quick else 150_000
    rounds = 40 if args.quick else 200
    started = datetime.now(UTC)
    results: dict[str, Any] = {}
    with bench_report.progress(stderr) as progress, tempfile.TemporaryDirectory() as tmp:
        with bench_database() as url:
            settings = bench_settings(url, Path(tmp) / "var")
            results["S1"] = run_s1(settings, events, progress)
        with bench_database() as url:
            settings = bench_settings(url, Path(tmp) / "var2")
            results["S2"] = run_s2(settings, Path(tmp), rounds, progress)
    info = bench_report.machine("eventsourcing", "psycopg", "nats-py")
    report, out = bench_report.save("subscriptions", started, args, info, results)
    s1, s2 = results["S1"], results["S2"]
    print(f"Command: `{report['command']}`  ")
    print(f"Machine: {info['cpu']} ({info['cpu_count']} CPUs), {s1['postgres']}, NATS JetStream\n")
    print("| id | scenario | figure | goal | met |")
    print("|---|---|---|---|---|")
    print(
        f"| S1 | NATS relay, consent-filtered, audited ({s1['deliveries']:,} deliveries) | "
        f"{s1['deliveries_per_s']:,.0f} deliveries/s; exactly once: "
        f"{bench_report.yes(s1['exactly_once'])} | >= 5,000/s | "
        f"{bench_report.yes(s1['deliveries_per_s'] >= 5000 and s1['exactly_once'])} |"
    )
    print(
        f"| S2 | feed long-poll wake after a write ({s2['rounds']} rounds, real HTTP) | "
        f"p50 {s2['p50_ms']} ms, p99 {s2['p99_ms']} ms, max {s2['max_ms']} ms | "
        f"p99 <= 50 ms | {bench_report.yes(s2['p99_ms'] <= 50)} |"
    )
    print(f"\nJSON: {out}")


if __name__ == "__main__":
    main()
