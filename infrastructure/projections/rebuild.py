"""Rebuilding a view: a new version filled beside the live one, then switched to.

Readers select the active version in the same snapshot as the rows, so the switch
in ``activate`` is atomic for them: old view or new, never half of one. A rebuild
that is interrupted leaves its version ``building``, and the next one resumes it.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from infrastructure.projections.engine import VERSIONS_TABLE, Projector, ViewVersion, now_us


@dataclass(frozen=True)
class RebuildProgress:
    name: str
    position: int
    head: int
    events: int  # log positions covered so far in this run


def rebuild(projector: Projector, observe: Callable[[RebuildProgress], Any] | None = None) -> int:
    """Build a new version from the start of the log, switch to it, drop the old one."""
    building = start_rebuild(projector)
    covered = 0
    while True:
        building, advanced = projector.step(building)
        covered += advanced
        head = projector.recorder.max_notification_id() or 0
        if observe is not None:
            observe(RebuildProgress(projector.name, building.position, head, covered))
        if advanced == 0:
            break
    activate(projector, building)
    drop_retired(projector)
    return building.version


def start_rebuild(projector: Projector) -> ViewVersion:
    """A new building version, or the one an interrupted rebuild left (resumed)."""
    versions = projector.versions()
    for version in versions:
        if version.state == "building":
            return version
    number = max(v.version for v in versions) + 1
    store = projector.store
    with store.transaction() as cursor:
        cursor.execute(
            f"INSERT INTO {store.table(VERSIONS_TABLE)} "
            "(name, version, state, position, updated_at) VALUES (?, ?, 'building', 0, ?)",
            (projector.name, number, now_us()),
        )
    return ViewVersion(projector.name, number, "building", 0)


def activate(projector: Projector, building: ViewVersion) -> ViewVersion:
    """Flip the active version in one transaction; readers see old or new, never half."""
    store, name = projector.store, projector.name
    with store.transaction() as cursor:
        projector.advance(cursor, building, building.position)
        cursor.execute(
            f"UPDATE {store.table(VERSIONS_TABLE)} SET state = 'retired' "
            "WHERE name = ? AND state = 'active'",
            (name,),
        )
        cursor.execute(
            f"UPDATE {store.table(VERSIONS_TABLE)} SET state = 'active' "
            "WHERE name = ? AND version = ?",
            (name, building.version),
        )
        store.notify(cursor, store.positions_channel, f"{name} {building.position}")
    return ViewVersion(name, building.version, "active", building.position)


def drop_retired(projector: Projector) -> int:
    """Delete the rows of retired versions: a transaction per table, so no one lock is
    held across the whole view."""
    store, dropped = projector.store, 0
    for version in projector.versions():
        if version.state != "retired":
            continue
        for table in projector.projection.table_names():
            with store.transaction() as cursor:
                cursor.execute(
                    f"DELETE FROM {store.table(table)} WHERE version = ?", (version.version,)
                )
                dropped += max(cursor.rowcount, 0)
        with store.transaction() as cursor:
            cursor.execute(
                f"DELETE FROM {store.table(VERSIONS_TABLE)} WHERE name = ? AND version = ?",
                (projector.name, version.version),
            )
    return dropped
