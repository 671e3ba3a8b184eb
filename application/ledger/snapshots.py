"""Which snapshots a save brings due, taken from the aggregates in memory."""

from typing import Any
from uuid import UUID

from eventsourcing.application import ProcessingEvent


def snapshots_due(
    processing_event: ProcessingEvent[UUID],
    intervals: dict[type[Any], int],
    default_class: type[Any] | None,
) -> list[Any]:
    """A snapshot of each saved aggregate whose save crossed its interval, from memory.

    The library reads the aggregate back from the store (decrypting every event since
    its last snapshot) to snapshot it at the interval's exact version; that was more
    than half of the time of a 100-event save. The aggregate just saved is in memory at
    its new version, and a snapshot may stand at any version.
    """
    crossed: dict[UUID, Any] = {}
    for event in processing_event.events:
        aggregate = processing_event.aggregates.get(event.originator_id)
        interval = intervals.get(type(aggregate)) if aggregate else None
        if aggregate is not None and interval and event.originator_version % interval == 0:
            crossed[aggregate.id] = aggregate
    snapshots = []
    for aggregate in crossed.values():
        snapshot_class = getattr(type(aggregate), "Snapshot", default_class)
        assert snapshot_class is not None, "snapshotting needs a snapshot class"
        snapshots.append(snapshot_class.take(aggregate))
    return snapshots
