"""The relay's JetStream adapter against the real nats-server: the count it reports as
stored is what the stream took, each message id once, in order; a message nobody
stores is an error, never a count."""

import asyncio
import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import uuid4

import nats
import orjson
import pytest
from nats.js.api import StorageType, StreamConfig

from application.subscriptions.relay import SUBJECT_PREFIX, Message, subject_of
from infrastructure.nats_relay import (
    DUPLICATE_WINDOW_SECONDS,
    STREAM,
    NatsBroker,
    PublishRefused,
    ensure_stream,
)
from tests.e2e.nats_consumer import collect, purge
from tests.e2e.test_relay_nats_restart import private_nats


@pytest.fixture
def broker(nats_server: str) -> Iterator[NatsBroker]:
    broker = NatsBroker([nats_server], timeout=5.0)
    broker.connect()
    try:
        yield broker
    finally:
        broker.close()


def messages(subject: str, n: int, *, after: int = 0) -> list[Message]:
    """A subscriber's next ``n`` deliveries, at positions past ``after``."""
    return [
        Message(
            subject=subject,
            msg_id=str(uuid4()),
            body=orjson.dumps({"n": i}),
            access_id=uuid4(),
            position=after + i + 1,
        )
        for i in range(n)
    ]


def test_a_batch_is_stored_once_in_order_and_its_repeat_is_counted_as_duplicates(
    broker: NatsBroker, nats_server: str
) -> None:
    subject = subject_of(uuid4())
    batch = messages(subject, 300)
    try:
        # When a batch is published, then published again (a relay's retry)
        first = broker.publish(batch).result(10)
        again = broker.publish(batch).result(10)
        # Then the first stored every message and the repeat none
        assert (first, again) == (300, 0)
        # And a consumer sees each message once, in order, with its headers
        got = collect(nats_server, subject, expect=300, timeout=20, quiet=0.5)
        assert [r.msg_id for r in got] == [m.msg_id for m in batch]
        assert [r.access_id for r in got] == [str(m.access_id) for m in batch]
        assert [r.body["n"] for r in got] == list(range(300))
    finally:
        purge(nats_server, subject)


def test_a_message_no_stream_takes_is_refused_and_the_next_batch_still_goes(
    broker: NatsBroker, nats_server: str
) -> None:
    # When a batch holds a message on a subject outside the stream
    stray = messages(f"not-careledger.{uuid4()}", 1)
    subject = subject_of(uuid4())
    # Then publishing it fails, rather than counting it as stored
    with pytest.raises(PublishRefused):
        broker.publish([*messages(subject, 2), *stray]).result(10)
    # And a later batch is published and acknowledged as usual
    try:
        assert broker.publish(messages(subject, 3, after=2)).result(10) == 3
    finally:
        purge(nats_server, subject)


def test_after_a_lost_message_nothing_later_is_stored_ahead_of_its_retry(
    tmp_path: Path,
) -> None:
    """Lost in a dead server's socket or refused during a leader election, a message
    must not let the ones after it into the stream first: the retry would then store
    it out of order. Here the loss is a message on a subject no stream takes."""
    with private_nats(tmp_path) as server:
        broker = NatsBroker([server.url], timeout=5.0)
        broker.connect()
        try:
            subject = subject_of(uuid4())
            batch = messages(subject, 5)
            lost = dataclasses.replace(batch[2], subject=f"not-careledger.{uuid4()}")
            # When the third message of a batch is lost
            with pytest.raises(PublishRefused):
                broker.publish([*batch[:2], lost, *batch[3:]]).result(10)
            # Then the stream holds the two before it, and neither of the two after
            held = collect(server.url, subject, expect=2, timeout=10, quiet=0.5)
            assert [r.msg_id for r in held] == [m.msg_id for m in batch[:2]]
            # And the relay's retry of the whole batch stores the rest, in order, once:
            # the two already held are found in the stream and not sent again
            assert broker.publish(batch).result(10) == 3
            assert broker.trimmed == 2
            got = collect(server.url, subject, expect=5, timeout=10, quiet=0.5)
            assert [r.msg_id for r in got] == [m.msg_id for m in batch]
        finally:
            broker.close()


def test_a_retry_over_purged_messages_is_not_refused_for_ever(tmp_path: Path) -> None:
    """JetStream answers a purged message's id as a duplicate for the whole window, so
    the broker cannot find it in the stream: chaining the next message onto it would
    be refused on every retry."""
    with private_nats(tmp_path) as server:
        broker = NatsBroker([server.url], timeout=5.0)
        broker.connect()
        try:
            subject, other = subject_of(uuid4()), subject_of(uuid4())
            batch = messages(subject, 3)
            # Given two messages stored, then purged from the stream
            assert broker.publish(batch[:2]).result(10) == 2
            purge(server.url, subject)
            # And a lost message, and another subscriber's message stored after it
            with pytest.raises(PublishRefused):
                broker.publish(messages(f"not-careledger.{uuid4()}", 1)).result(10)
            assert broker.publish(messages(other, 1)).result(10) == 1
            # When the relay retries the batch from its tracking, the first attempt is
            # refused: the third message is chained onto a purged one
            with pytest.raises(PublishRefused):
                broker.publish(batch).result(10)
            # Then the next attempt leaves out what was answered as a duplicate, and
            # the third message is stored
            assert broker.publish(batch).result(10) == 1
            got = collect(server.url, subject, expect=1, timeout=10, quiet=0.5)
            assert [r.msg_id for r in got] == [batch[2].msg_id]
        finally:
            broker.close()


def test_the_relay_keeps_what_an_operator_set_on_an_existing_stream(tmp_path: Path) -> None:
    """An operator bounded how long deliveries (PHI) stay in the stream; the relay
    changes only what falls short of its needs, and no replica count it was not given."""

    async def stream_as_an_operator_made_it(url: str) -> Any:
        nc = await nats.connect(url)
        try:
            js = nc.jetstream()
            await js.add_stream(
                StreamConfig(
                    name=STREAM,
                    subjects=[f"{SUBJECT_PREFIX}.>"],
                    storage=StorageType.FILE,
                    duplicate_window=60,  # shorter than the relay relies on
                    max_age=30 * 24 * 3600,
                )
            )
            await ensure_stream(js)  # as a relay given no CARELEDGER_NATS_REPLICAS
            return (await js.stream_info(STREAM)).config
        finally:
            await nc.close()

    with private_nats(tmp_path) as server:
        config = asyncio.run(stream_as_an_operator_made_it(server.url))
    assert config.max_age == 30 * 24 * 3600
    assert config.duplicate_window == DUPLICATE_WINDOW_SECONDS
    assert config.num_replicas == 1


def test_a_single_url_string_is_refused_not_read_as_a_list_of_letters() -> None:
    with pytest.raises(TypeError, match="list of server URLs"):
        NatsBroker("nats://127.0.0.1:4222")  # type: ignore[arg-type]
