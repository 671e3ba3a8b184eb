"""The tamper-evident chain over the stored records, in log order.

Each record's link is an HMAC, under the chain key, of the previous link and the
record exactly as stored: position, stream id, version, topic and ciphertext. It never
sees plaintext, so it survives crypto-shredding. The key is a data key wrapped by the
KEK, so somebody with write access to the database but not the KEK cannot forge a
consistent chain; the exported head additionally catches a truncated tail.
"""

import hmac
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol
from uuid import UUID

GENESIS = bytes(32)
_FIXED = struct.Struct(">qq16sH")


def link(key: bytes, previous: bytes, position: int, stream_id: UUID | str, version: int,
         topic: str, state: bytes) -> bytes:  # fmt: skip
    sid = stream_id.bytes if isinstance(stream_id, UUID) else UUID(stream_id).bytes
    encoded_topic = topic.encode()
    message = previous + _FIXED.pack(position, version, sid, len(encoded_topic))
    return hmac.digest(key, message + encoded_topic + state, "sha256")


@dataclass(frozen=True)
class Head:
    position: int
    link: bytes

    def as_json(self) -> dict[str, Any]:
        return {"position": self.position, "link": self.link.hex()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Head":
        return cls(int(data["position"]), bytes.fromhex(str(data["link"])))


@dataclass(frozen=True)
class ChainRow:
    """A record and its link, either of which may be missing after tampering."""

    position: int
    stream_id: UUID | str | None  # None: the record is missing
    version: int
    topic: str
    state: bytes
    link: bytes | None  # None: the record has no link


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


def verify(key: bytes, rows: Iterable[ChainRow], anchored: Head | None = None) -> Verification:
    """Recompute the chain; stop at the first record that does not hold."""
    previous = GENESIS
    checked = 0
    head: Head | None = None
    seen_anchor = False
    for row in rows:
        position = row.position
        if row.stream_id is None:
            return _bad(checked, head, position, "the record was deleted; its link remains")
        if row.link is None:
            return _bad(checked, head, position, "the record has no link: it was inserted "
                        "outside the application")  # fmt: skip
        expected = link(key, previous, position, row.stream_id, row.version, row.topic, row.state)
        if not hmac.compare_digest(expected, row.link):
            return _bad(checked, head, position, "the record does not match its link: it was "
                        "altered, moved, or a record before it was removed")  # fmt: skip
        checked += 1
        previous = row.link
        head = Head(position, row.link)
        if anchored is not None and position == anchored.position:
            seen_anchor = True
            if not hmac.compare_digest(row.link, anchored.link):
                return _bad(checked, head, position, "the record differs from the anchored head")
    if anchored is not None and not seen_anchor:
        last = head.position if head else 0
        return _bad(checked, head, last + 1, f"the log ends at position {last}, before the "
                    f"anchored head at {anchored.position}: its tail was removed")  # fmt: skip
    return Verification(True, checked, head)


def _bad(checked: int, head: Head | None, position: int, problem: str) -> Verification:
    return Verification(False, checked, head, position, f"position {position}: {problem}")


class ChainSource(Protocol):
    def chain_rows(self) -> Iterable[ChainRow]: ...

    def chain_head(self) -> Head | None: ...


class ChainVerifier:
    """The ``SealedLog`` port over a recorder that writes links."""

    def __init__(self, source: ChainSource, key: bytes) -> None:
        self.source = source
        self.key = key

    def verify(self, anchored: dict[str, Any] | None = None) -> dict[str, Any]:
        head = Head.from_json(anchored) if anchored else None
        return verify(self.key, self.source.chain_rows(), head).as_json()

    def head(self) -> dict[str, Any] | None:
        head = self.source.chain_head()
        return head.as_json() if head else None
