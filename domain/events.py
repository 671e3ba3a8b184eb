"""What every CareLedger event carries besides its own facts: who acted, and when."""

from datetime import datetime

from eventsourcing.domain import Aggregate


class AttributedEvent(Aggregate.Event):
    """Base of each aggregate's ``Event`` class.

    ``timestamp`` is the command's :class:`~domain.values.Provenance` time, never the
    clock's, so ``occurred_at`` is only a name that matches the design's vocabulary.
    """

    actor_id: str

    @property
    def occurred_at(self) -> datetime:
        return self.timestamp
