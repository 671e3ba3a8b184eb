"""The NATS JetStream relay: each subscriber's deliveries, published exactly once.

Batches are pipelined: while JetStream acknowledges one batch, the next is decided and
its access records are committed; tracking moves past a batch only once every message
of it is acknowledged, and a message is published only once its record is durable.

Exactly once from the consumer's point of view rests on three things:
- tracking: the relay's position per subscriber is the library's tracking record,
  advanced only after every message up to it is acknowledged by JetStream;
- stable ids: each message carries ``Nats-Msg-Id`` = its ``event_id`` (unique per
  subscriber and event), so JetStream drops a copy republished after a crash, within
  its duplicate window;
- stable access ids: a delivery's access record id is derived from the event id, so a
  restarted relay finds the records it wrote before the crash (one query per batch)
  and publishes those messages again without writing their records twice.

The access records of a batch are durable before the batch is published.
"""

import logging
from collections.abc import Sequence
from concurrent.futures import Future
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

    def publish(self, messages: Sequence[Message]) -> "Future[int]":
        """Publish in order (after any batch published before); the future resolves
        once all are acknowledged, to how many were not duplicates."""
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
        batches_per_step: int = 20,
        ack_timeout: float = 30.0,
    ) -> None:
        self.subscriptions = subscriptions
        self.broker = broker
        self.tracking = tracking
        self.batch_size = batch_size
        self.batches_per_step = batches_per_step  # then the next subscriber's turn
        self.ack_timeout = ack_timeout
        self.published = 0
        self.republished = 0  # found already recorded: a crashed run's batch, again

    def step(self) -> int:
        """Some batches per subscriber, in turn; the number of messages published."""
        self.broker.connect()
        self.subscriptions.wait_until_current()
        sent = 0
        for spec in self.subscriptions.view.subscribers():
            sent += self.step_subscriber(spec)
        return sent

    def step_subscriber(self, spec: SubscriberSpec) -> int:
        name = tracking_name(spec.id)
        after = self.tracking.position(name)
        in_flight: tuple[Future[int], int] | None = None
        sent = 0
        for _ in range(self.batches_per_step):
            batch = self.subscriptions.decide(
                spec,
                after,
                self.batch_size,
                channel="nats",
                request_id=f"relay-{uuid4()}",
                access_id=self.subscriptions.relay_access_id,
            )
            ids = [d.access_id for d in batch.deliveries]
            found = self.subscriptions.ledger.existing(ids) if ids else set()
            self.republished += len(found)
            durable = self.subscriptions.disclosures.record_later(
                [d for d in batch.deliveries if d.access_id not in found]
            )
            if in_flight is not None:
                self._acknowledged(name, *in_flight)
                in_flight = None
            durable()  # raises AuditUnavailable: nothing of this batch is published
            if batch.scanned_to == after:
                break
            if batch.deliveries:
                messages = [message(spec.id, d) for d in batch.deliveries]
                in_flight = (self.broker.publish(messages), batch.scanned_to)
                sent += len(messages)
            else:
                self.tracking.advance(name, batch.scanned_to)
            after = batch.scanned_to
        if in_flight is not None:
            self._acknowledged(name, *in_flight)
        self.published += sent
        return sent

    def _acknowledged(self, name: str, publishing: "Future[int]", position: int) -> None:
        publishing.result(self.ack_timeout)
        self.tracking.advance(name, position)


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
