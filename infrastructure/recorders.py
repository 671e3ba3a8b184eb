"""The library's process recorders, extended for what CareLedger must hold atomically.

In the same transaction as the events they concern, under the write lock the library
already takes:
- the idempotency claims of the saves (``idempotency=[claim, ...]``, from
  ``CareLedger.record_saves``), so a retried request either finds the first outcome
  or writes nothing;
- the hash-chain link of every record, so no record is ever unsealed;
- the new data keys the events are sealed under (staged by the key ring), so no event
  commits without its key, and a registration costs no commit of its own for its key;
- the snapshots the save brings due (``SNAPSHOTS``), so a save costs one commit, and
  no save is acknowledged whose snapshot then failed.
"""

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from eventsourcing.persistence import StoredEvent

from application.ports import (
    FOLLOW_UP,
    SNAPSHOTS,
    FollowUp,
    IdempotencyClaim,
    IdempotentOutcome,
)
from infrastructure.chain import Head, link
from infrastructure.key_tables import (
    PostgresKeyTable,
    SQLiteKeyTable,
)

NEW_KEYS = "careledger_new_data_keys"  # the keyword that carries them to _insert_events


def claims_of(kwargs: dict[str, Any]) -> list[IdempotencyClaim]:
    """The idempotency claims a save carries: one per grouped command that has one."""
    return list(kwargs.get("idempotency") or ())


class CarriesNewKeys:
    """Passes the staged keys that a batch is sealed under into its transaction.

    They are chosen once, before the library's ``insert_events`` (which PostgreSQL's
    ``@retry`` may re-run whole), so every attempt writes them again; only once it has
    returned (committed) are they taken off the staging area.
    """

    keys: SQLiteKeyTable | PostgresKeyTable

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        new_keys = self.keys.staging.needed_by(stored_events)
        if not new_keys:
            return super().insert_events(stored_events, **kwargs)  # type: ignore[misc]
        ids = super().insert_events(stored_events, **kwargs, **{NEW_KEYS: new_keys})  # type: ignore[misc]
        self.keys.staging.stored(new_keys)
        return ids  # type: ignore[no-any-return]


class WritesSnapshots:
    """Holds the snapshot store's recorder, whose table is in the same database, so
    that a save's snapshots go into the save's own transaction."""

    snapshot_recorder: Any = None

    def snapshot_into(self, snapshot_recorder: object) -> None:
        self.snapshot_recorder = snapshot_recorder

    def _snapshots_in(self, kwargs: dict[str, Any]) -> Sequence[StoredEvent]:
        sealed: Callable[[], Sequence[StoredEvent]] | None = kwargs.get(SNAPSHOTS)
        if sealed is None:
            return ()
        if self.snapshot_recorder is None:
            raise RuntimeError("snapshots to write, and no snapshot recorder: snapshot_into()")
        return sealed()


class Sealing:
    """The chain key, bound after construction (it is itself a wrapped data key)."""

    chain_key: bytes | None = None

    def seal_with(self, chain_key: bytes) -> None:
        self.chain_key = chain_key

    @staticmethod
    def _followed_up(
        stored_events: Sequence[StoredEvent],
        ids: Sequence[int],
        kwargs: dict[str, Any],
        insert: Callable[[Sequence[StoredEvent]], Sequence[int] | None],
    ) -> tuple[Sequence[StoredEvent], Sequence[int]]:
        """The transaction's records and positions to chain: its events, then what a
        ``FollowUp`` adds once it knows their positions, inserted by ``insert`` in the
        same transaction."""
        follow_up: FollowUp | None = kwargs.get(FOLLOW_UP)
        if follow_up is None:
            return stored_events, ids
        chained, chained_ids = list(stored_events), list(ids)
        if more := follow_up.events(ids):
            more_ids = insert(more)
            assert more_ids is not None
            follow_up.recorded(more_ids)
            chained += more
            chained_ids += more_ids
        return chained, chained_ids

    def _links(
        self, previous: bytes, ids: Sequence[int], stored_events: Sequence[StoredEvent]
    ) -> list[tuple[int, bytes]]:
        if self.chain_key is None:
            raise RuntimeError("the recorder has no chain key: call seal_with() first")
        links = []
        for position, e in zip(ids, stored_events, strict=True):
            previous = link(
                self.chain_key,
                previous,
                position,
                e.originator_id,
                e.originator_version,
                e.topic,
                e.state,
            )
            links.append((position, previous))
        return links


class LedgerReads:
    """The one-row reads both recorders answer alike: each backend gives its SQL (with
    the same column names) and how to run it in a read transaction (``_one_row``)."""

    _select_head: Any  # position, link of the last link
    _select_orphan: Any  # p: the first link whose record is gone
    _select_claim: Any  # fingerprint, result, position of a claim's event

    def _one_row(self, statement: Any, params: Sequence[Any] = ()) -> Mapping[str, Any] | None:
        raise NotImplementedError

    def chain_head(self) -> Head | None:
        row = self._one_row(self._select_head)
        return Head(row["position"], bytes(row["link"])) if row else None

    def first_orphan_link(self) -> int | None:
        """The first link whose record is gone."""
        row = self._one_row(self._select_orphan)
        return None if row is None or row["p"] is None else int(row["p"])

    def find_outcome(self, scope: str) -> IdempotentOutcome | None:
        row = self._one_row(self._select_claim, (scope,))
        if row is None:
            return None
        return IdempotentOutcome(row["fingerprint"], bytes(row["result"]), row["position"])
