"""Feeds a process the log's events after its tracking position, in log order.

Supervised: an error (a dropped connection, a restarted database) is logged without
PHI, and the loop backs off and resumes from the process's committed tracking
position, so nothing is skipped and nothing is applied twice.
"""

import logging
import threading
from typing import Protocol
from uuid import UUID

from eventsourcing.domain import DomainEventProtocol
from eventsourcing.persistence import Tracking

from application.ledger.ledger import CareLedger
from infrastructure.retry import Backoff

log = logging.getLogger("careledger.follower")


class Process(Protocol):
    name: str
    topics: tuple[str, ...]

    def position(self) -> int: ...

    def process(self, event: DomainEventProtocol[UUID], tracking: Tracking) -> int: ...


class LogFollower:
    def __init__(
        self,
        ledger: CareLedger,
        process: Process,
        *,
        batch_size: int = 500,
        poll_interval: float = 1.0,
        max_backoff: float = 10.0,
    ) -> None:
        self.ledger = ledger
        self.process = process
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.max_backoff = max_backoff
        self._wakeup = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.errors = 0
        self._scanned = 0
        topics = frozenset(process.topics)
        ledger.on_recorded(
            lambda _position, recorded: self._wakeup.set() if recorded & topics else None
        )

    def run_once(self) -> int:
        """Process one batch after the tracking position; returns how many events."""
        # Tracking moves only when the process records something; stretches of the log
        # with none of its topics are remembered here so that they are read once.
        start = max(self.process.position(), self._scanned) + 1
        head = self.ledger.recorder.max_notification_id() or 0
        notifications = self.ledger.recorder.select_notifications(
            start=start, limit=self.batch_size, stop=head, topics=self.process.topics
        )
        for notification in notifications:
            event = self.ledger.mapper.to_domain_event(notification)
            self.process.process(event, Tracking(self.ledger.name, notification.id))
        if len(notifications) < self.batch_size:
            self._scanned = max(self._scanned, head)
        return len(notifications)

    def run_until_idle(self) -> None:
        while self.run_once() == self.batch_size:
            pass

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._loop, name=f"follower-{self.process.name}", daemon=True
            )
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        self._wakeup.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _loop(self) -> None:
        backoff = Backoff(cap=self.max_backoff)
        while not self._stopping.is_set():
            try:
                count = self.run_once()
            except Exception as error:  # supervised: log, back off, resume from tracking
                self.errors += 1
                log.warning(
                    "follower error; retrying",
                    extra={"follower": self.process.name, "error": type(error).__name__},
                )
                backoff.wait(self._stopping)
                continue
            backoff.reset()
            if count < self.batch_size:
                self._wakeup.wait(self.poll_interval)
                self._wakeup.clear()
