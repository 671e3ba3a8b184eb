"""A built container keeps its start-up heap out of full collections (``api.heap``), so
that a replay's tail is not a walk over every imported library, and gives it back to
the collector when it closes."""

import gc
from pathlib import Path

from api.bootstrap import build
from tests.conftest import make_settings


def test_a_built_container_is_frozen_until_it_closes(database_url: str, tmp_path: Path) -> None:
    # Given a container built as `careledger serve` builds it
    container = build(make_settings(database_url, tmp_path / "var"), run_processes=True)
    try:
        # Then its long-lived objects are in the permanent generation, which no
        # collection walks: the ledger is alive and tracked, but not in any generation
        ledger = container.ledger
        assert gc.is_tracked(ledger)
        assert gc.get_freeze_count() > 10_000
        assert not any(candidate is ledger for candidate in gc.get_objects())
        # And what is made after start-up is collected as before
        cycle: list[object] = []
        cycle.append(cycle)
        assert any(candidate is cycle for candidate in gc.get_objects(generation=0))
    finally:
        container.close()
    # When it closes, the collector walks its objects again, so cycles among them go
    assert gc.get_freeze_count() == 0
    assert any(candidate is ledger for candidate in gc.get_objects())
