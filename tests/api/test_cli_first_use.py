"""Issue 20, defects 4 and 6: the command line as a new user meets it. A misspelt
SQLite path is an error rather than a new empty store, an empty log has no head to
anchor, and the command says its version, completes in a shell and lists every view.
"""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from api.bootstrap import build
from api.cli import cli
from api.settings import load_settings
from application.context import Role
from infrastructure.projections.catalogue import NAMES
from tests.conftest import JWT_SECRET
from tests.contract.stories import ctx


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A first user's directory: secrets generated under it, and no store yet."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CARELEDGER_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("CARELEDGER_JWT_SECRET", JWT_SECRET)
    monkeypatch.delenv("CARELEDGER_DATABASE_URL", raising=False)
    return tmp_path


def careledger(*args: str) -> Result:
    result = CliRunner().invoke(cli, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    return result


def test_a_misspelt_sqlite_path_is_an_error_and_creates_nothing(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a store the user meant to use, and a typo in its name
    monkeypatch.setenv("CARELEDGER_DATABASE_URL", "sqlite:///./data/carelegder.db")

    # When they serve, or inspect the chain
    # (serve on a host that cannot be bound, so that a regression fails rather than serves)
    serve = ["serve", "--host", "256.0.0.1", "--port", "1"]
    for args in (serve, ["audit", "head"], ["projections", "status"]):
        result = careledger(*args)

        # Then each says there is no store there, in one line, and exits non-zero
        assert result.exit_code != 0, args
        assert result.stderr.count("\n") == 1, result.stderr
        assert "CARELEDGER_DATABASE_URL: no store at data/carelegder.db" in result.stderr
        assert "--create" in result.stderr
    # And nothing was created
    assert not (workdir / "data").exists()


def test_audit_head_of_an_empty_store_says_the_log_is_empty(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a store created explicitly, with nothing in its log yet
    monkeypatch.setenv("CARELEDGER_DATABASE_URL", f"sqlite:///{workdir / 'new.db'}")
    assert careledger("migrate").exit_code == 0
    assert (workdir / "new.db").is_file()

    # When the operator exports the head to anchor it
    result = careledger("audit", "head")

    # Then there is none: said plainly, with a failing exit, and no "null" on stdout
    assert result.exit_code == 1
    assert "the log is empty" in result.stderr
    assert result.stdout == ""


def test_the_default_path_is_created_on_a_first_demo_run(workdir: Path) -> None:
    # Given no CARELEDGER_DATABASE_URL: the README's first run, under ./var/
    result = careledger("demo", "--patients", "1")

    # Then the default store is created and seeded
    assert result.exit_code == 0, result.stderr
    assert (workdir / "var" / "careledger.db").is_file()
    # And an operator command then opens it
    assert careledger("audit", "head").exit_code == 0


def test_create_starts_a_store_at_an_explicit_path(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CARELEDGER_DATABASE_URL", f"sqlite:///{workdir / 'clinic.db'}")
    assert careledger("demo", "--patients", "1").exit_code != 0
    result = careledger("demo", "--patients", "1", "--create")
    assert result.exit_code == 0, result.stderr
    assert (workdir / "clinic.db").is_file()


def test_the_version_is_printed() -> None:
    result = careledger("--version")
    assert result.exit_code == 0
    assert result.stdout.startswith("careledger ")
    assert result.stdout.split()[1][0].isdigit()


def test_shell_completion_is_offered() -> None:
    shown = careledger("--help")
    assert "--install-completion" in shown.stdout and "--show-completion" in shown.stdout


def test_rebuild_help_names_every_view_in_the_catalogue(workdir: Path) -> None:
    assert len(NAMES) == 6
    help_text = " ".join(careledger("projections", "rebuild", "--help").stdout.split())
    for name in NAMES:
        assert name in help_text
    # And the catalogue's names are the views the service builds
    assert careledger("demo", "--patients", "1").exit_code == 0
    status = careledger("projections", "status")
    assert status.exit_code == 0, status.stderr
    assert list(json.loads(status.stdout)["projections"]) == list(NAMES)


def test_running_the_demo_twice_seeds_it_once(workdir: Path) -> None:
    # Given the demo seeded once
    first = careledger("demo", "--patients", "3")
    assert first.exit_code == 0, first.stderr
    assert first.stdout.startswith("seeded 3 patients")

    # When it runs again, and then asks for more
    again = careledger("demo", "--patients", "3")
    more = careledger("demo", "--patients", "4")

    # Then the second run says the data is there, seeds nothing, and succeeds
    assert again.exit_code == 0, again.stderr
    assert "already there" in again.stdout and "nothing seeded" in again.stdout
    # And the third seeds only the missing patient
    assert more.exit_code == 0, more.stderr
    assert more.stdout.startswith("seeded 1 patients")
    assert "3 demo patients were there already" in more.stdout
    # And the roster holds four memberships, one per demo MRN
    status = json.loads(careledger("projections", "status").stdout)
    assert status["head"] > 0
    container = build(load_settings())
    try:
        assert len(container.memberships.roster(ctx(Role.ADMIN, "admin-1"))) == 4
    finally:
        container.close()
