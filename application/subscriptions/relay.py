"""The NATS JetStream relay: each subscriber's deliveries, published exactly once.

Batches are pipelined: while JetStream acknowledges one batch, the next is decided and
its access records are committed; tracking moves past a batch only once every message
of it is acknowledged, and a message is published only once its record is durable.

Exactly once from the consumer's point of view rests on three things:
- tracking: the relay's position per subscriber is the library's tracking record,
  advanced only after every message up to it is acknowledged by JetStream (once per
  step of up to ``batches_per_step`` batches);
- stable ids: each message carries ``Nats-Msg-Id`` = its ``event_id`` (unique per
  subscriber and event), so JetStream drops a copy republished after a crash, within
  its duplicate window;
- stable access ids: a delivery's access record id is derived from the event id, so a
  restarted relay finds the records it wrote before the crash and publishes those
  messages again without writing their records twice. How far such records may reach
  is a second tracking record (``relay-recorded:<id>``), written in the same
  transaction as the records, so only batches below it are looked up.

The access records of a batch are durable before the batch is published.
"""

import logging
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Protocol
from uuid import UUID, uuid4

from eventsourcing.persistence import Tracking

from application.access.access_log import Delivery
from application.subscriptions.delivery_rule import SubscriberSpec
from application.subscriptions.subscriptions import Subscriptions

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
        published = tracking_name(spec.id)
        recorded = recorded_name(spec.id)
        start = after = self.tracking.position(published)
        # Records written by a run that crashed before its messages were acknowledged
        # reach this far: only batches below it are checked for them.
        recorded_to = self.tracking.position(recorded)
        in_flight: tuple[Future[int], int] | None = None
        acknowledged = after
        sent = 0
        for _ in range(self.batches_per_step):
            batch = self.subscriptions.next_batch(
                spec,
                after,
                self.batch_size,
                channel="nats",
                request_id=f"relay-{uuid4()}",
                access_id=self.subscriptions.relay_access_id,
            )
            if batch.scanned_to == after:
                break
            fresh = batch.deliveries
            if after < recorded_to and fresh:
                found = self.subscriptions.ledger.existing([d.access_id for d in fresh])
                self.republished += len(found)
                fresh = [d for d in fresh if d.access_id not in found]
            marker = None
            if fresh and batch.scanned_to > recorded_to:  # in the records' own transaction
                marker = Tracking(recorded, batch.scanned_to)
            durable = self.subscriptions.disclosures.record_later(fresh, tracking=marker)
            if in_flight is not None:
                in_flight[0].result(self.ack_timeout)
                acknowledged, in_flight = in_flight[1], None
            durable()  # raises AuditUnavailable: nothing of this batch is published
            recorded_to = max(recorded_to, marker.notification_id if marker else 0)
            if batch.deliveries:
                messages = [message(spec.id, d) for d in batch.deliveries]
                in_flight = (self.broker.publish(messages), batch.scanned_to)
                sent += len(messages)
            else:
                acknowledged = batch.scanned_to
            after = batch.scanned_to
        if in_flight is not None:
            in_flight[0].result(self.ack_timeout)
            acknowledged = in_flight[1]
        if acknowledged > start:
            # Once per step, not per batch: a crash republishes a little more (dropped
            # by JetStream as duplicates), and saves a commit per batch.
            self.tracking.advance(published, acknowledged)
        self.published += sent
        return sent


def tracking_name(subscriber_id: UUID) -> str:
    return f"relay:{subscriber_id}"


def recorded_name(subscriber_id: UUID) -> str:
    return f"relay-recorded:{subscriber_id}"


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
