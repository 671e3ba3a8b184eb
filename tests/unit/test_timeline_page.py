"""The timeline's one page scan, over a chart held in memory.

The served timeline feeds it rows from the view's index range, and replay feeds it the
chart's events at the recorded versions; these stories hold for both.
"""

from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from application.access.policy import Decision
from application.charts.disclosure_rendering import Row, decode_cursor, encode_cursor, scan_page
from application.charts.read_models import Key
from domain.errors import InvalidValue

# The reader may see unlabelled entries only: a substance-use entry is hidden.
DECISION = Decision(
    True, "treatment, no consent to share substance use", allowed_labels=frozenset()
)


def admit(entry: Row) -> bool:
    return DECISION.shows(entry["labels"])


class Chart:
    """Entries keyed (effective_at, entry_hex); counts what the scan asks for and renders."""

    def __init__(self, hidden: Sequence[bool]) -> None:
        # Written out of time order, as a chart is: the scan must not rely on it.
        self.labels = {
            (f"2026-02-{1 + n:02d}T09:00:00.000000Z", f"{n:032x}"): (
                ["substance_use"] if is_hidden else []
            )
            for n, is_hidden in reversed(list(enumerate(hidden)))
        }
        self.asked: list[int] = []
        self.rendered: list[Key] = []

    @property
    def keys(self) -> list[Key]:
        return sorted(self.labels)

    def candidates(self, after: Key | None, count: int) -> list[tuple[Key, list[str]]]:
        self.asked.append(count)
        later = [key for key in self.keys if after is None or key > after]
        return [(key, self.labels[key]) for key in later[:count]]

    def rows(self, chunk: Sequence[tuple[Key, list[str]]]) -> list[Row]:
        self.rendered += [key for key, _ in chunk]
        return [{"entry_id": key[1], "labels": labels} for key, labels in chunk]

    def page(self, after: Key | None, limit: int) -> tuple[list[str], Key | None]:
        entries, next_key = scan_page(
            self.candidates, self.rows, after=after, limit=limit, admit=admit
        )
        return [entry["entry_id"] for entry in entries], next_key


def hexes(*ns: int) -> list[str]:
    return [f"{n:032x}" for n in ns]


def test_pages_follow_time_order_and_each_key_resumes_after_the_last_entry_examined() -> None:
    chart = Chart([False] * 5)
    keys = chart.keys

    first, after = chart.page(None, 2)
    assert (first, after) == (hexes(0, 1), keys[1])
    second, after = chart.page(after, 2)
    assert (second, after) == (hexes(2, 3), keys[3])
    last, after = chart.page(after, 2)
    assert (last, after) == (hexes(4), None)


def test_a_page_that_reaches_the_chart_end_exactly_offers_no_next_page() -> None:
    chart = Chart([False] * 4)

    assert chart.page(None, 4) == (hexes(0, 1, 2, 3), None)
    assert chart.page(chart.keys[1], 2) == (hexes(2, 3), None)
    # One more than the page is asked for, to know the chart goes on, but not rendered
    assert chart.asked == [5, 3]
    assert chart.rendered == chart.keys + chart.keys[2:]


def test_hidden_entries_beyond_one_chunk_are_passed_over_and_never_disclose_themselves() -> None:
    # shown, five hidden, shown, shown
    chart = Chart([False, True, True, True, True, True, False, False])
    keys = chart.keys

    entries, after = chart.page(None, 2)

    assert entries == hexes(0, 6)
    assert after == keys[6]  # the last entry examined, not the last one fetched
    # Every chunk asks for what the page still needs, plus one to look ahead
    assert chart.asked == [3, 2, 2, 2, 2, 2]
    # Only the entries examined are rendered (decrypted), each once: O(page + hidden)
    assert chart.rendered == keys[:7]
    assert chart.page(after, 2) == (hexes(7), None)


def test_a_full_page_followed_only_by_hidden_entries_leads_to_an_empty_last_page() -> None:
    chart = Chart([False, False, True, True])

    entries, after = chart.page(None, 2)
    assert (entries, after) == (hexes(0, 1), chart.keys[1])
    # Whether the rest is hidden is not known without examining it
    assert chart.page(after, 2) == ([], None)


def test_a_chart_the_reader_may_see_none_of_gives_an_empty_page_and_no_key() -> None:
    chart = Chart([True] * 3)

    assert chart.page(None, 50) == ([], None)
    assert chart.rendered == chart.keys


def test_a_page_of_no_entries_is_refused_before_anything_is_read() -> None:
    chart = Chart([False])

    with pytest.raises(ValueError):
        chart.page(None, 0)
    assert chart.asked == []


@settings(max_examples=200, deadline=None)
@given(hidden=st.lists(st.booleans(), max_size=30), limit=st.integers(1, 7))
def test_following_the_keys_yields_every_admitted_entry_once_and_renders_each_once(
    hidden: list[bool], limit: int
) -> None:
    chart = Chart(hidden)
    walked: list[str] = []
    after: Key | None = None
    for _ in range(len(hidden) + 1):
        entries, after = chart.page(after, limit)
        assert len(entries) <= limit
        assert after is None or len(entries) == limit
        walked += entries
        if after is None:
            break
    assert after is None
    assert walked == [key[1] for key in chart.keys if not chart.labels[key]]
    assert chart.rendered == chart.keys


def test_a_key_goes_out_as_an_opaque_cursor_and_comes_back_unchanged() -> None:
    key = ("2026-02-01T09:00:00.000000Z", "0f" * 16)

    assert decode_cursor(encode_cursor(key)) == key
    for forged in ("not-a-cursor", encode_cursor(("yesterday", "0f" * 16))):
        with pytest.raises(InvalidValue):
            decode_cursor(forged)
