"""What a chart keeps per clinical entry, beside its events.

Its invariants need the entry's kind and status. The rest says where the content is:
when the entry takes effect, which orders a chart without reading it, and the stream
versions of the events that recorded and changed it, so that a replay reads those
events back rather than the whole chart. The content itself lives only in the events.

A record is never changed in place, only replaced: copies of a cached chart share
their records (see ``Patient.__deepcopy__``).
"""

from datetime import datetime
from typing import Any

from domain.vocabulary import EntryStatus

EntryRecord = dict[str, Any]


def recorded(kind: str, effective_at: datetime, version: int) -> EntryRecord:
    return {
        "kind": kind,
        "status": EntryStatus.ACTIVE,
        "effective_at": effective_at,
        "versions": [version],
    }


def changed(
    entry: EntryRecord, status: EntryStatus, effective_at: datetime | None, version: int
) -> EntryRecord:
    """The entry after an amendment (which may move it in time) or an error mark."""
    versions = entry["versions"]  # None: not known (a version 1 snapshot)
    return {
        **entry,
        "status": status,
        "effective_at": effective_at or entry["effective_at"],
        "versions": None if versions is None else [*versions, version],
    }


def from_version_1(entries: dict[str, EntryRecord]) -> dict[str, EntryRecord]:
    """Records from a snapshot taken before they said where their content is. That
    cannot be recovered from the snapshot alone: they keep ``None`` for it, and a
    replay of such a chart reads its whole log instead."""
    return {
        entry_hex: {"effective_at": None, "versions": None, **entry}
        for entry_hex, entry in entries.items()
    }
