"""The tamper-evident chain over the stored records, in log order.

Each record's link is an HMAC, under the chain key, of the previous link and the
record exactly as stored: position, stream id, version, topic and ciphertext. It never
sees plaintext, so it survives crypto-shredding. The key is a data key wrapped by the
KEK, so somebody with write access to the database but not the KEK cannot forge a
consistent chain; the exported head additionally catches a truncated tail.
"""

import hashlib
import hmac
import struct
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass
from typing import Any, Protocol
from uuid import UUID

GENESIS = bytes(32)
_FIXED = struct.Struct(">qq16sH")


def record_body(
    position: int, stream_id: UUID | str, version: int, topic: str, state: bytes
) -> bytes:
    """The signed bytes of one record, after the previous link.

    PostgreSQL builds the same bytes in SQL for verification (the recorder's
    ``_select_chain``).
    """
    sid = (
        stream_id.bytes
        if isinstance(stream_id, UUID)
        else bytes.fromhex(stream_id.replace("-", ""))
    )
    encoded_topic = topic.encode()
    return _FIXED.pack(position, version, sid, len(encoded_topic)) + encoded_topic + state


def link(
    key: bytes,
    previous: bytes,
    position: int,
    stream_id: UUID | str,
    version: int,
    topic: str,
    state: bytes,
) -> bytes:
    body = record_body(position, stream_id, version, topic, state)
    return hmac.digest(key, previous + body, "sha256")


class _PreparedMac:
    """HMAC-SHA256 with the key schedule computed once (identical output to ``hmac``):
    re-keying per call is half of the cost of verifying a record."""

    def __init__(self, key: bytes) -> None:
        block = (
            key.ljust(64, b"\x00")
            if len(key) <= 64
            else hashlib.sha256(key).digest().ljust(64, b"\x00")
        )
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in block))
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in block))

    def __call__(self, message: bytes) -> bytes:
        inner = self._inner.copy()
        inner.update(message)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()


@dataclass(frozen=True)
class Head:
    position: int
    link: bytes

    def as_json(self) -> dict[str, Any]:
        return {"position": self.position, "link": self.link.hex()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Head":
        return cls(int(data["position"]), bytes.fromhex(str(data["link"])))


ChainRow = tuple[int, bytes, bytes | None]
"""A record in log order: (position, signed body, its link or None if it has none)."""


@dataclass
class Verification:
    ok: bool
    records_checked: int
    head: Head | None
    first_bad_position: int | None = None
    problem: str | None = None

    def as_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "ok": self.ok,
            "records_checked": self.records_checked,
            "head": self.head.as_json() if self.head else None,
        }
        if not self.ok:
            body["first_bad_position"] = self.first_bad_position
            body["problem"] = self.problem
        return body


def verify(
    key: bytes,
    rows: Iterable[ChainRow],
    anchored: Head | None = None,
    orphan: int | None = None,
) -> Verification:
    """Recompute the chain; stop at the first record that does not hold.

    ``orphan`` is the first position that has a link but no record (a deleted row).
    """
    return _conclude(_walk(key, rows, anchored, orphan), anchored, orphan)


@dataclass(frozen=True)
class _Walk:
    """How far the chain held: the records checked, the last link and its position,
    and the first record that did not hold (and why), if one did not."""

    checked: int
    previous: bytes
    last: int
    failed_at: int | None = None
    problem: str = ""


def _walk(key: bytes, rows: Iterable[ChainRow], anchored: Head | None, orphan: int | None) -> _Walk:
    mac = _PreparedMac(key)
    previous = GENESIS
    checked = 0
    position = last = 0
    for position, body, stored in rows:
        if orphan is not None and orphan < position:
            break
        if stored is None:
            return _Walk(
                checked,
                previous,
                last,
                position,
                "the record has no link: it was inserted outside the application",
            )
        if mac(previous + body) != stored:
            return _Walk(
                checked,
                previous,
                last,
                position,
                "the record does not match its "
                "link: it was altered, moved, or a record before it was removed",
            )
        checked += 1
        previous, last = stored, position
        if anchored is not None and position == anchored.position and stored != anchored.link:
            return _Walk(
                checked, previous, last, position, "the record differs from the anchored head"
            )
    return _Walk(checked, previous, last)


def _conclude(walk: _Walk, anchored: Head | None, orphan: int | None) -> Verification:
    """The verdict on a walk, given the first link whose record is gone.

    A walk that did not know of a deleted record's link ran past it and stopped at the
    next record, whose link was made over the deleted one's. The state it stopped in is
    the state at the deleted record, so the deletion is named there, as a walk that
    knew would. (A link that was never in the chain is no such stop: the caller walks
    again, knowing, if the walk went past it.)
    """
    checked, previous, last = walk.checked, walk.previous, walk.last
    if walk.failed_at is not None and (orphan is None or walk.failed_at < orphan):
        return _bad(checked, previous, last, walk.failed_at, walk.problem)
    if orphan is not None:
        return _bad(checked, previous, last, orphan, "the record was deleted; its link remains")
    if anchored is not None and last < anchored.position:
        return _bad(
            checked,
            previous,
            last,
            last + 1,
            f"the log ends at position {last}, "
            f"before the anchored head at {anchored.position}: its tail was removed",
        )
    return Verification(True, checked, Head(last, previous) if checked else None)


def _bad(checked: int, previous: bytes, last: int, position: int, problem: str) -> Verification:
    head = Head(last, previous) if checked else None
    return Verification(False, checked, head, position, f"position {position}: {problem}")


class ChainSource(Protocol):
    # Whether the search for leftover links may run on a second connection while the
    # rows stream on the first: not with one connection to go round, nor on SQLite,
    # where the search is cheap and an in-memory store is one connection's own.
    reads_side_by_side: bool

    def chain_rows(self) -> Iterator[ChainRow]: ...

    def first_orphan_link(self) -> int | None: ...

    def chain_head(self) -> Head | None: ...


class ChainVerifier:
    """The ``SealedLog`` port over a recorder that writes links."""

    def __init__(self, source: ChainSource, key: bytes) -> None:
        self.source = source
        self.key = key

    def verify(self, anchored: dict[str, Any] | None = None) -> dict[str, Any]:
        return self.check(Head.from_json(anchored) if anchored else None).as_json()

    def check(
        self, anchored: Head | None = None, observe: Callable[[int], None] | None = None
    ) -> Verification:
        """The whole check; ``observe(position)`` is called every 10,000 positions.

        The search for a deleted record's leftover link is a query of its own, over both
        tables. Where the store allows, it runs beside the walk, on a connection of its
        own: the walk is bound by this process's CPU, so the database has the time
        (docs/benchmarks.md).
        """
        if not self.source.reads_side_by_side:
            orphan = self.source.first_orphan_link()
            return _conclude(self._walk(anchored, orphan, observe), anchored, orphan)
        pool = ThreadPoolExecutor(1, thread_name_prefix="orphan-links")
        try:
            orphan_search = pool.submit(self.source.first_orphan_link)
            walk = self._walk(anchored, None, observe)
            orphan = orphan_search.result()
        finally:
            pool.shutdown(wait=False, cancel_futures=True)  # on an error, do not wait
        if orphan is not None and orphan < walk.last:
            # A link where no record ever was (a forged one, before the first record or
            # in a gap), not in the chain, so the walk went on past it: walk again,
            # knowing, for the count and head a walk that knew would give. Only a
            # tampered log gets here.
            walk = self._walk(anchored, orphan, observe)
        return _conclude(walk, anchored, orphan)

    def _walk(
        self, anchored: Head | None, orphan: int | None, observe: Callable[[int], None] | None
    ) -> _Walk:
        # Closed when the walk stops, early or not: its connection (and on PostgreSQL,
        # its COPY) is given back before the search's result is waited for.
        with closing(self.source.chain_rows()) as stream:
            rows = stream if observe is None else _observed(stream, observe)
            return _walk(self.key, rows, anchored, orphan)

    def head(self) -> dict[str, Any] | None:
        head = self.source.chain_head()
        return head.as_json() if head else None


def _observed(rows: Iterable[ChainRow], observe: Callable[[int], None]) -> Iterator[ChainRow]:
    for row in rows:
        if row[0] % 10_000 == 0:
            observe(row[0])
        yield row
