"""The NATS JetStream relay: each subscriber's deliveries, published exactly once.

Exactly once from the consumer's point of view rests on three things:
- tracking: the relay's position per subscriber is the library's tracking record,
  advanced only after every message up to it is acknowledged by JetStream;
- stable ids: each message carries ``Nats-Msg-Id`` = its ``event_id`` (unique per
  subscriber and event), so JetStream drops a copy republished after a crash, within
  its duplicate window;
- stable access ids: a delivery's access record id is derived from the event id, so a
  restarted relay finds the records it wrote before the crash and does not write them
  twice (the first batch after a start checks; later batches cannot have any).

The access records of a batch are durable before the batch is published.
"""

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol
from uuid import UUID, uuid4

from application.access_log import Delivery
from application.delivery_rule import SubscriberSpec
from application.subscriptions import Subscriptions

log = logging.getLogger("careledger.relay")

SUBJECT_PREFIX = "careledger"


@dataclass(frozen=True)
class Message:
    subject: str
    msg_id: str  # Nats-Msg-Id
    body: bytes
    access_id: UUID
    position: int


class Broker(Protocol):
    def connect(self) -> None:
        """Connect, and make sure the stream exists; raises if the broker is down."""
        ...

    def publish(self, messages: Sequence[Message]) -> int:
        """Publish in order; return once all are acknowledged (number not duplicates)."""
        ...


class RelayTracking(Protocol):
    def position(self, name: str) -> int: ...

    def advance(self, name: str, position: int) -> None:
        """Record the position; raises if another relay moved it first."""
        ...


class Relay:
    def __init__(
        self,
        subscriptions: Subscriptions,
        broker: Broker,
        tracking: RelayTracking,
        *,
        batch_size: int = 1000,
    ) -> None:
        self.subscriptions = subscriptions
        self.broker = broker
        self.tracking = tracking
        self.batch_size = batch_size
        self._checked: set[UUID] = set()  # subscribers whose first batch was checked
        self.published = 0

    def step(self) -> int:
        """One batch per subscriber; the number of messages published."""
        self.broker.connect()
        self.subscriptions.wait_until_current()
        sent = 0
        for spec in self.subscriptions.view.subscribers():
            sent += self.step_subscriber(spec)
        return sent

    def step_subscriber(self, spec: SubscriberSpec) -> int:
        name = tracking_name(spec.id)
        after = self.tracking.position(name)
        first = spec.id not in self._checked
        batch = self.subscriptions.deliver(
            spec,
            after,
            self.batch_size,
            channel="nats",
            request_id=f"relay-{uuid4()}",
            access_id=self.subscriptions.relay_access_id,
            recorded=self.subscriptions.ledger.exists if first else None,
        )
        self._checked.add(spec.id)
        if batch.deliveries:
            self.broker.publish([message(spec.id, d) for d in batch.deliveries])
            self.published += len(batch.deliveries)
        if batch.scanned_to > after:
            self.tracking.advance(name, batch.scanned_to)
        return len(batch.deliveries)


def tracking_name(subscriber_id: UUID) -> str:
    return f"relay:{subscriber_id}"


def subject_of(subscriber_id: UUID) -> str:
    return f"{SUBJECT_PREFIX}.{subscriber_id}"


def message(subscriber_id: UUID, delivery: Delivery) -> Message:
    request = delivery.record.request
    return Message(
        subject=subject_of(subscriber_id),
        msg_id=str(request["event_id"]),
        body=delivery.body,
        access_id=delivery.access_id,
        position=int(request["position"]),
    )
