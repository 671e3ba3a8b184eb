"""A serving process keeps its start-up heap out of full collections (``api.heap``),
so that a replay's tail is not a walk over every imported library, and gives it back
to the collector when it closes. It is settled at the process's entry, once, after
its build: ``build()`` itself freezes nothing (a routed process builds a container per
organisation, and a test process builds hundreds). ``careledger import`` settles
its heap too, once its store is open."""

import gc
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from typer.testing import CliRunner

from api import cli_import, serving
from api.bootstrap import build
from api.cli import cli
from api.cli_import import Summary
from tests.conftest import JWT_SECRET, make_settings


def test_build_leaves_the_heap_to_the_process_entry(database_url: str, tmp_path: Path) -> None:
    container = build(make_settings(database_url, tmp_path / "var"), run_processes=True)
    try:
        assert gc.get_freeze_count() == 0
        assert any(candidate is container.ledger for candidate in gc.get_objects())
    finally:
        container.close()


def serve_environment(monkeypatch: pytest.MonkeyPatch, database_url: str, var: Path) -> None:
    settings = make_settings(database_url, var)
    monkeypatch.setenv("CARELEDGER_DATABASE_URL", settings.database_url)
    if settings.owner_database_url:
        monkeypatch.setenv("CARELEDGER_OWNER_DATABASE_URL", settings.owner_database_url)
    monkeypatch.setenv("CARELEDGER_JWT_SECRET", JWT_SECRET)
    monkeypatch.setenv("CARELEDGER_MASTER_KEY", "A" * 43 + "=")
    monkeypatch.setenv("CARELEDGER_VAR_DIR", str(var))
    monkeypatch.setenv("CARELEDGER_ORG", settings.org)


def test_serve_settles_its_heap_once_built_until_it_closes(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given `careledger serve`, stopped where it would hand its app to uvicorn
    serve_environment(monkeypatch, database_url, tmp_path / "var")
    served: list[FastAPI] = []

    def run(app: FastAPI | None, **_: Any) -> None:
        assert app is not None
        served.append(app)
        container = app.state.container
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

    monkeypatch.setattr(serving, "run", run)
    try:
        result = CliRunner().invoke(cli, ["serve", "--with-projections", "--create"])
    finally:
        gc.unfreeze()  # whatever failed above, the tests after this one are not frozen
    assert result.exit_code == 0, result.output
    assert len(served) == 1


def test_each_uvicorn_worker_settles_its_heap_after_its_own_build(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the factory uvicorn calls in each of `serve --workers N`'s processes
    serve_environment(monkeypatch, database_url, tmp_path / "var")
    try:
        app = serving.worker_app()
        container = app.state.container
        try:
            # Then that process's heap is settled once its container is built
            assert gc.get_freeze_count() > 10_000
            assert not any(candidate is container.ledger for candidate in gc.get_objects())
        finally:
            container.close()
        assert gc.get_freeze_count() == 0
    finally:
        gc.unfreeze()


def test_an_import_settles_its_heap_once_its_store_is_open(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given `careledger import` on a store that exists, stopped where it imports its files
    serve_environment(monkeypatch, database_url, tmp_path / "var")
    build(make_settings(database_url, tmp_path / "var")).close()
    (tmp_path / "charts").mkdir()
    seen: list[int] = []

    def import_files(container: Any, *_: Any, **__: Any) -> Summary:
        # Then what it opened is out of the collector's walks while the files go in
        seen.append(gc.get_freeze_count())
        assert not any(candidate is container.ledger for candidate in gc.get_objects())
        return Summary()

    monkeypatch.setattr(cli_import, "import_files", import_files)
    try:
        result = CliRunner().invoke(cli, ["import", str(tmp_path / "charts")])
    finally:
        gc.unfreeze()
    assert result.exit_code == 0, result.output
    assert len(seen) == 1 and seen[0] > 10_000
    # And it is given back when the store closes
    assert gc.get_freeze_count() == 0
