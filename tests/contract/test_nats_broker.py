"""The relay's JetStream adapter against the real nats-server: the count it reports as
stored is what the stream took, each message id once, in order; a message nobody
stores is an error, never a count."""

from collections.abc import Iterator
from uuid import uuid4

import orjson
import pytest

from application.subscriptions.relay import Message, subject_of
from infrastructure.nats_relay import NatsBroker, PublishRefused
from tests.e2e.nats_consumer import collect, purge


@pytest.fixture
def broker(nats_server: str) -> Iterator[NatsBroker]:
    broker = NatsBroker(nats_server, timeout=5.0)
    broker.connect()
    try:
        yield broker
    finally:
        broker.close()


def messages(subject: str, n: int) -> list[Message]:
    return [
        Message(
            subject=subject,
            msg_id=str(uuid4()),
            body=orjson.dumps({"n": i}),
            access_id=uuid4(),
            position=i + 1,
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
        assert broker.publish(messages(subject, 3)).result(10) == 3
    finally:
        purge(nats_server, subject)
