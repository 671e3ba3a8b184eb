"""The relay's recovery, on both backends, step by step.

A relay that dies after its batch's access records are durable but before JetStream
acknowledged the messages leaves records and no tracking. The next relay publishes
the same messages again (same ``Nats-Msg-Id``, so JetStream drops any copy it holds)
and finds the records instead of writing them twice. The broker here is a stand-in
that keeps what it is given, as JetStream would, de-duplicating by message id; the
real NATS server is in ``tests/e2e/test_relay_kill.py``.
"""

from collections.abc import Sequence
from concurrent.futures import Future
from uuid import UUID

import pytest

from api.bootstrap import relay_for
from api.container import Container
from application.subscriptions.relay import Message, recorded_name, tracking_name
from domain.subscriber import ContentLevel
from domain.vocabulary import EntryKind, Purpose
from tests.conftest import ORG
from tests.contract.read_model_support import T0, admin, minutes, record, register


class Stream:
    """What JetStream would hold: each message id once, in order."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.published = 0
        self.fail = False

    def connect(self) -> None:
        return None

    def publish(self, messages: Sequence[Message]) -> "Future[int]":
        acknowledged: Future[int] = Future()
        if self.fail:  # the relay dies before any acknowledgement comes back
            acknowledged.set_exception(TimeoutError("no acknowledgement"))
            return acknowledged
        seen = {m.msg_id for m in self.messages}
        new = [m for m in messages if m.msg_id not in seen]
        self.messages += new
        self.published += len(messages)
        acknowledged.set_result(len(new))
        return acknowledged


def operations_feed(container: Container) -> UUID:
    # Public health, which needs no membership (operations would, for clinical content).
    outcome = container.subscriptions.register(
        admin(),
        name="Registry",
        recipient_org=ORG,
        purpose=Purpose.PUBHLTH,
        kinds=[EntryKind.NOTE],
        labels=[],
        content=ContentLevel.ID_ONLY,
    )
    return UUID(outcome.result["id"])


def test_a_relay_that_died_before_the_acknowledgement_is_finished_by_the_next(
    container: Container,
) -> None:
    # Given a subscriber and five entries it may receive
    subscriber = operations_feed(container)
    patient_id = register(container, "MRN-R1")
    written = [record(container, patient_id, at=T0 + minutes(i))[0] for i in range(5)]
    container.catch_up()
    tracking = container.ledger.recorder

    # When a relay records the batch but dies before JetStream acknowledges it
    stream = Stream()
    stream.fail = True
    with pytest.raises(TimeoutError):
        relay_for(container, stream).step()
    # Then the records are durable and nothing is tracked as published
    assert stream.messages == []
    assert (tracking.max_tracking_id(tracking_name(subscriber)) or 0) == 0
    recorded_to = tracking.max_tracking_id(recorded_name(subscriber)) or 0
    assert recorded_to > 0

    # When the next relay runs
    stream.fail = False
    relay = relay_for(container, stream)
    assert relay.step() == 5
    # Then each message reached the stream once, in order, with its record found, not
    # written again
    assert [m.body for m in stream.messages] == [
        m.body for m in sorted(stream.messages, key=lambda m: m.position)
    ]
    delivered = [UUID(m.body.decode().split('"entry_id":"')[1][:36]) for m in stream.messages]
    assert delivered == written
    assert relay.republished == 5
    assert container.ledger.existing([m.access_id for m in stream.messages]) == {
        m.access_id for m in stream.messages
    }
    assert tracking.max_tracking_id(tracking_name(subscriber)) == recorded_to

    # And what is written afterwards is recorded fresh, and published once
    later = record(container, patient_id, at=T0 + minutes(9))[0]
    container.catch_up()
    assert relay.step() == 1
    assert relay.republished == 5
    assert str(later) in stream.messages[-1].body.decode()
    assert len({m.msg_id for m in stream.messages}) == len(stream.messages) == 6


def test_a_second_relay_run_over_a_published_stretch_publishes_nothing(
    container: Container,
) -> None:
    subscriber = operations_feed(container)
    patient_id = register(container, "MRN-R2")
    for i in range(3):
        record(container, patient_id, at=T0 + minutes(i))
    container.catch_up()
    stream = Stream()
    assert relay_for(container, stream).step() == 3
    # A new relay starts from the tracked position: nothing to do, nothing recorded
    again = relay_for(container, stream)
    assert again.step() == 0 and again.republished == 0
    assert stream.published == 3
    assert container.ledger.recorder.max_tracking_id(tracking_name(subscriber))
