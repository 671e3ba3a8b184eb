"""``audit verify`` looks for links whose record is gone (deleted rows) beside its walk
of the chain, not before it (``ChainVerifier.check``). The walk then runs past a
deleted record without knowing of it; its verdict must be the one a walk that knew
would give: the same position, problem, count and head, whatever else was done to the
log."""

import secrets
from collections.abc import Iterator
from uuid import uuid4

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from infrastructure.chain import (
    GENESIS,
    ChainRow,
    ChainVerifier,
    Head,
    _conclude,
    _walk,
    link,
    record_body,
    verify,
)

KEY = secrets.token_bytes(32)
TOPIC = "domain.patient:Patient.EntryRecorded"


def _log(n: int) -> tuple[list[ChainRow], dict[int, bytes]]:
    """n records at positions 1, 3, 5... (a sequence leaves gaps), and their links."""
    rows: list[ChainRow] = []
    links: dict[int, bytes] = {}
    previous = GENESIS
    for i in range(n):
        position, stream, state = 2 * i + 1, uuid4(), secrets.token_bytes(40)
        previous = link(KEY, previous, position, stream, i + 1, TOPIC, state)
        links[position] = previous
        rows.append((position, record_body(position, stream, i + 1, TOPIC, state), previous))
    return rows, links


@settings(max_examples=300, deadline=None)
@given(
    n=st.integers(min_value=1, max_value=12),
    deleted=st.sets(st.integers(min_value=0, max_value=11), max_size=3),
    altered=st.one_of(st.none(), st.integers(min_value=0, max_value=11)),
    unlinked=st.one_of(st.none(), st.integers(min_value=0, max_value=11)),
    anchor=st.one_of(st.none(), st.integers(min_value=0, max_value=13)),
)
def test_a_walk_that_finds_a_deleted_record_later_gives_the_same_verdict(
    n: int, deleted: set[int], altered: int | None, unlinked: int | None, anchor: int | None
) -> None:
    # Given a log with records deleted (their links left behind), perhaps one altered,
    # one whose link is gone, and perhaps a head exported at some point
    rows, links = _log(n)
    anchored = None
    if anchor is not None:
        position = 2 * anchor + 1
        anchored = Head(position, links.get(position, secrets.token_bytes(32)))
    if altered is not None and altered < n:
        position, body, stored = rows[altered]
        rows[altered] = (position, body[:-1] + bytes([body[-1] ^ 1]), stored)
    if unlinked is not None and unlinked < n:
        rows[unlinked] = (rows[unlinked][0], rows[unlinked][1], None)
    gone = sorted(rows[i][0] for i in deleted if i < n)
    rows = [row for row in rows if row[0] not in gone]
    orphan = gone[0] if gone else None

    # When one walk knows of the first leftover link from the start, and one learns of
    # it only after walking
    knew = _conclude(_walk(KEY, rows, anchored, orphan), anchored, orphan)
    learnt = _conclude(_walk(KEY, rows, anchored, None), anchored, orphan)

    # Then both give the same verdict
    assert learnt == knew
    if orphan is not None and (altered is None or altered >= n) and (unlinked is None):
        assert knew.first_bad_position == orphan and "deleted" in str(knew.problem)


class _Store:
    """A ChainSource over rows in memory, with a leftover link at ``orphan``."""

    def __init__(self, rows: list[ChainRow], orphan: int | None, side_by_side: bool) -> None:
        self.rows, self.orphan, self.reads_side_by_side = rows, orphan, side_by_side

    def chain_rows(self) -> Iterator[ChainRow]:
        yield from self.rows

    def first_orphan_link(self) -> int | None:
        return self.orphan

    def chain_head(self) -> Head | None:
        return None


@pytest.mark.parametrize("side_by_side", [True, False])
@pytest.mark.parametrize("stray", [0, 4, 6, 99])
def test_a_link_forged_where_no_record_ever_was_is_named_as_a_walk_that_knew_would(
    stray: int, side_by_side: bool
) -> None:
    # Given an intact log at positions 1, 3, 5, 7 and a link forged at a position that
    # was never in the chain (before it, in a gap, or after it)
    rows, _ = _log(4)
    store = _Store(rows, stray, side_by_side)
    # When audit verify checks it
    verdict = ChainVerifier(store, KEY).check()
    # Then the verdict, count and head are those of a walk that knew of the link
    assert verdict == verify(KEY, rows, None, stray)
    assert verdict.first_bad_position == stray and not verdict.ok
    assert verdict.records_checked == sum(1 for position, _, _ in rows if position < stray)
