"""Downstream subscriptions: registration, and delivery of what consent allows.

The delivery projection has already decided, as of each event's position, which
subscribers may receive it. Here each delivery is decided once more as of now, with
the state that projection has reached (the patient's consent and memberships, and the
entry's labels and status as they now stand), and written as an access record (action
``deliver``) before a byte of it leaves: over the HTTP feed or the NATS relay.

A subscriber belongs to the organisation whose administrator registered it: only that
organisation's administrators list it, and only a service token of that organisation
with the subscriber's id as its subject reads its feed.
"""

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol
from uuid import UUID, uuid5

from application.access.access_log import Delivery, Disclosures, render
from application.access.policy import Decision, deny
from application.charts.read_models import ViewsBehind
from application.context import RequestContext, Role
from application.errors import Forbidden, NotFound
from application.ledger.ledger import CareLedger, WriteOutcome
from application.ports import Clock, NewId
from application.subscriptions.delivery_rule import (
    Pending,
    SubscriberSpec,
    delivery_decision,
    labels_at_delivery,
)
from domain.subscriber import ContentLevel, Subscriber
from domain.values import Provenance
from domain.vocabulary import EntryKind, Purpose, SensitivityLabel

DELIVERY_VIEW = "deliveries"
MAX_WAIT_SECONDS = 30.0


class DeliveryView(Protocol):
    def subscriber(self, subscriber_id: UUID) -> SubscriberSpec | None: ...

    def subscribers(self) -> list[SubscriberSpec]: ...

    def pending(self, subscriber_id: UUID, after: int, limit: int) -> Pending: ...

    def backlog(self, subscriber_id: UUID, after: int) -> int: ...

    def cursor(self, subscriber_id: UUID) -> int: ...

    def acknowledge(self, subscriber_id: UUID, after: int) -> None: ...


class DeliveryProgress(Protocol):
    """Where the delivery projection has reached, and a wait for it to move."""

    def head(self) -> int: ...

    def wait_for(self, names: Sequence[str], position: int, timeout: float) -> bool: ...

    def known(self, name: str) -> int: ...

    def wait_past(self, name: str, position: int, timeout: float) -> int: ...


@dataclass(frozen=True)
class Batch:
    """Deliveries, each with its durable access record, and where the scan reached."""

    deliveries: list[Delivery]
    scanned_to: int


class Subscriptions:
    def __init__(
        self,
        ledger: CareLedger,
        view: DeliveryView,
        progress: DeliveryProgress,
        disclosures: Disclosures,
        clock: Clock,
        new_id: NewId,
        *,
        wait_seconds: float = 5.0,
        max_waiting: int = 8,
    ) -> None:
        self.ledger = ledger
        # A long-poll holds one of the server's worker threads while it waits; beyond
        # this many at once, a request with ``wait`` answers at once instead, so that
        # long-polls can never starve every other request of a thread.
        self._waiting = threading.BoundedSemaphore(max_waiting)
        self.view = view
        self.progress = progress
        self.disclosures = disclosures
        self.clock = clock
        self.new_id = new_id
        self.wait_seconds = wait_seconds

    # Registration ------------------------------------------------------------------

    def register(
        self,
        ctx: RequestContext,
        *,
        name: str,
        recipient_org: str,
        purpose: Purpose,
        kinds: list[EntryKind],
        labels: list[SensitivityLabel],
        content: ContentLevel,
    ) -> WriteOutcome:
        if ctx.actor.role is not Role.ADMIN:
            raise Forbidden("only administrators register subscribers")
        subscriber = Subscriber.register(
            subscriber_id=self.new_id(),
            name=name,
            registering_org=ctx.actor.org,  # it discloses this organisation's patients only
            recipient_org=recipient_org,
            purpose=purpose,
            kinds=kinds,
            labels=labels,
            content=content,
            by=Provenance(ctx.actor.id, self.clock()),
        )
        return self.ledger.commit(ctx, [subscriber], {"id": str(subscriber.id)})

    def listing(self, ctx: RequestContext) -> dict[str, Any]:
        if ctx.actor.role is not Role.ADMIN:
            raise Forbidden("only administrators list subscribers")
        self.wait_until_current()
        own = [s for s in self.view.subscribers() if s.registering_org == ctx.actor.org]
        return {"items": [spec.as_json() for spec in own]}

    # The HTTP feed -------------------------------------------------------------------

    def feed(
        self,
        ctx: RequestContext,
        subscriber_id: UUID,
        *,
        after: int | None,
        limit: int,
        wait: float,
    ) -> bytes:
        """A page of the feed, as the exact bytes of its body.

        ``items[i]`` is, byte for byte, what the access record ``access_ids[i]`` hashed.

        ``after`` acknowledges everything up to it, so the cursor is durable; without
        it the page starts at the last acknowledged position. With ``wait`` and nothing
        to deliver, the call returns as soon as the projection commits something new.
        """
        if ctx.actor.role is not Role.SERVICE or ctx.actor.id != str(subscriber_id):
            raise Forbidden("a feed is read only by its own subscriber's service token")
        self.wait_until_current()
        spec = self.view.subscriber(subscriber_id)
        if spec is None:
            raise NotFound("subscriber")
        if spec.registering_org != ctx.actor.org:
            # The same subject in another organisation is another actor, who may not
            # know this subscriber exists: a deny on record, answered like an unknown id.
            self.disclosures.refuse(
                ctx,
                action="read",
                decision=replace(
                    deny("a feed is read only by its registering organisation"),
                    care_organisation=spec.registering_org or None,
                ),
                patient_id=None,
                request={"view": "feed", "subscriber_id": str(subscriber_id)},
            )
            raise NotFound("subscriber")
        if after is None:
            after = self.view.cursor(subscriber_id)
        else:
            self.view.acknowledge(subscriber_id, after)
        may_wait = wait > 0 and self._waiting.acquire(blocking=False)
        try:
            return self._page(ctx, spec, after, limit, wait if may_wait else 0.0)
        finally:
            if may_wait:
                self._waiting.release()

    def _page(
        self, ctx: RequestContext, spec: SubscriberSpec, after: int, limit: int, wait: float
    ) -> bytes:
        deadline = time.monotonic() + min(max(wait, 0.0), MAX_WAIT_SECONDS)
        while True:
            seen = self.progress.known(DELIVERY_VIEW)
            batch = self.next_batch(
                spec,
                after,
                limit,
                channel="feed",
                request_id=ctx.request_id,
                access_id=lambda _event_id: self.new_id(),
            )
            self.disclosures.record_all(batch.deliveries)
            moved, after = batch.scanned_to > after, batch.scanned_to
            remaining = deadline - time.monotonic()
            if batch.deliveries or remaining <= 0:
                break
            if moved:  # everything scanned was denied at delivery time: scan on
                continue
            self.progress.wait_past(DELIVERY_VIEW, seen, remaining)
        items = b",".join(d.body for d in batch.deliveries)
        access_ids = render([str(d.access_id) for d in batch.deliveries])
        return b"".join(
            (
                b'{"items":[',
                items,
                b'],"access_ids":',
                access_ids,
                b',"next_after":',
                render(after),
                b"}",
            )
        )

    # Shared by both channels -------------------------------------------------------

    def next_batch(
        self,
        spec: SubscriberSpec,
        after: int,
        limit: int,
        *,
        channel: str,
        request_id: str,
        access_id: Callable[[str], UUID],
    ) -> Batch:
        """Decide each pending item again as of now; the permitted ones, with the access
        record each needs written (``Disclosures.record_all``) before it is sent.

        ``access_id`` names each delivery's record (the relay derives it from the
        event id, so that a relay restarted after a crash finds the records it wrote).
        """
        pending = self.view.pending(spec.id, after, limit)
        day = self.clock().date()
        ctx = RequestContext(
            actor=spec.actor, purpose=spec.purpose, request_id=request_id, source=channel
        )
        chosen: list[Delivery] = []
        # One patient's items in a batch share a subject and a day: decide each
        # (patient, kind, labels) once.
        decided: dict[tuple[UUID, str, tuple[str, ...]], Decision | None] = {}
        scanned_to = pending.scanned_to
        for position, patient_id, content in pending.items:
            subject = pending.subjects.get(patient_id)
            if subject is None:
                continue  # erased since the event: never delivered
            message = content["message"]
            now = pending.entries.get(UUID(message["payload"]["entry_id"]))
            if now is None:
                # The view does not know the entry yet (projected before it kept entry
                # facts): hold it and what follows back, rather than acknowledge it.
                scanned_to = position - 1
                break
            labels = labels_at_delivery(message["type"], frozenset(content["labels"]), now)
            if labels is None:
                continue  # entered in error since: its earlier content is never sent
            key = (patient_id, content["kind"], tuple(sorted(labels)))
            if key not in decided:
                decided[key] = delivery_decision(
                    spec, subject, patient_id, key[1], frozenset(key[2]), day
                )
            decision = decided[key]
            if decision is None:
                continue  # revoked, ended or relabelled since: nothing more reaches them
            delivery = self.disclosures.prepare(
                ctx,
                access_id=access_id(message["event_id"]),
                action="deliver",
                body=message,
                decision=decision,
                patient_id=patient_id,
                entry_ids=[message["payload"]["entry_id"]],
                stream_versions={str(patient_id): content["stream_version"]},
                request={
                    "view": "delivery",
                    "subscriber_id": str(spec.id),
                    "position": position,
                    "event_id": message["event_id"],
                    "channel": channel,
                },
            )
            chosen.append(delivery)
        return Batch(chosen, scanned_to)

    def relay_access_id(self, event_id: str) -> UUID:
        """The NATS delivery's record id: stable, so a restarted relay can find it."""
        return uuid5(UUID(event_id), "nats")

    def backlog(self, spec: SubscriberSpec, after: int) -> int:
        return self.view.backlog(spec.id, after)

    def wait_until_current(self) -> None:
        """Delivery time means now: first let the projection reach the log's head."""
        head = self.progress.head()
        if not self.progress.wait_for([DELIVERY_VIEW], head, self.wait_seconds):
            raise ViewsBehind()
