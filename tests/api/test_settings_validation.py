"""Issue 20, defect 3: every setting is checked at start-up, and a bad one is one line
on stderr that names it (never its value), with a non-zero exit and no traceback."""

import pytest
from typer.testing import CliRunner

from api.cli import cli
from api.settings import ConfigError, load_settings
from tests.conftest import create_database, drop_database


def run(monkeypatch: pytest.MonkeyPatch, env: dict[str, str], *args: str) -> tuple[int, str]:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    result = CliRunner().invoke(cli, list(args))
    # A traceback would surface here as an exception other than the exit itself.
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    return result.exit_code, result.stderr


def test_an_unknown_log_level_is_one_line_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch, tmp_path: object
) -> None:
    code, stderr = run(
        monkeypatch,
        {"CARELEDGER_LOG_LEVEL": "LOUD", "CARELEDGER_VAR_DIR": str(tmp_path)},
        "serve",
    )
    assert code != 0
    assert "Traceback" not in stderr
    assert stderr.count("\n") == 1
    assert "CARELEDGER_LOG_LEVEL" in stderr and "INFO" in stderr
    assert "LOUD" not in stderr  # the rule is stated, the value is not echoed


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("CARELEDGER_DATABASE_URL", "sqlit:///var/x.db"),
        ("CARELEDGER_OWNER_DATABASE_URL", "mysql://root@db/x"),
        ("CARELEDGER_READ_DATABASE_URL", "mysql://root@replica/x"),
        ("CARELEDGER_MAX_BODY_BYTES", "-1"),
        ("CARELEDGER_KEY_CACHE_SIZE", "0"),
        ("CARELEDGER_READ_WAIT_SECONDS", "soon"),
        ("CARELEDGER_PROJECTION_BATCH_SIZE", "0"),
        ("CARELEDGER_MAX_PROJECTION_LAG", "-5"),
        ("CARELEDGER_NATS_URL", "localhost"),
        ("CARELEDGER_NATS_URL", "nats://127.0.0.1:4222,127.0.0.1:4223"),
        ("CARELEDGER_NATS_REPLICAS", "0"),
        ("CARELEDGER_NATS_REPLICAS", "6"),
        ("CARELEDGER_ORG", " "),
    ],
)
def test_each_bad_setting_is_named(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as raised:
        load_settings()
    assert str(raised.value).startswith(f"invalid setting: {name}: ")
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize(
    ("primary", "replica", "says"),
    [
        ("sqlite:///var/x.db", "postgresql://app@replica/x", "needs CARELEDGER_DATABASE_URL"),
        ("postgresql://app@primary/x", "sqlite:///var/y.db", "not SQLite"),
    ],
)
def test_a_read_replica_is_postgresql_only(
    monkeypatch: pytest.MonkeyPatch, tmp_path: object, primary: str, replica: str, says: str
) -> None:
    code, stderr = run(
        monkeypatch,
        {
            "CARELEDGER_DATABASE_URL": primary,
            "CARELEDGER_READ_DATABASE_URL": replica,
            "CARELEDGER_VAR_DIR": str(tmp_path),
        },
        "serve",
    )
    assert code != 0
    assert "Traceback" not in stderr and stderr.count("\n") == 1
    assert "CARELEDGER_READ_DATABASE_URL: " in stderr and says in stderr, stderr


def test_a_read_replica_is_refused_beside_organisation_databases(
    monkeypatch: pytest.MonkeyPatch, tmp_path: object
) -> None:
    # A replica copies one database; with one per organisation it could serve only one
    code, stderr = run(
        monkeypatch,
        {
            "CARELEDGER_ORG_DATABASES": '{"org-a": "postgresql://app@a/x"}',
            "CARELEDGER_READ_DATABASE_URL": "postgresql://app@replica/x",
            "CARELEDGER_VAR_DIR": str(tmp_path),
        },
        "serve",
    )
    assert code != 0
    assert "Traceback" not in stderr and stderr.count("\n") == 1
    assert "CARELEDGER_READ_DATABASE_URL: " in stderr and "CARELEDGER_ORG_DATABASES" in stderr


def test_a_nats_cluster_is_its_servers_separated_by_commas(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CARELEDGER_NATS_URL", " nats://127.0.0.1:14222, nats://127.0.0.1:14223,")
    monkeypatch.setenv("CARELEDGER_NATS_REPLICAS", "3")
    settings = load_settings()
    assert settings.nats_url == "nats://127.0.0.1:14222,nats://127.0.0.1:14223"
    # and the broker is given them as a list, split here once
    assert settings.nats_cluster == ["nats://127.0.0.1:14222", "nats://127.0.0.1:14223"]
    assert load_settings().model_copy(update={"nats_url": None}).nats_cluster == []
    assert settings.nats_replicas == 3


def test_a_log_level_in_lower_case_is_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CARELEDGER_LOG_LEVEL", "debug")
    assert load_settings().log_level == "DEBUG"


@pytest.mark.postgres
def test_a_read_url_that_is_not_a_standby_stops_start_up(
    monkeypatch: pytest.MonkeyPatch, tmp_path: object, postgres_server: str
) -> None:
    # Given a read URL that names the primary itself (a server that takes writes), a
    # slip that would quietly serve every read from it, then, then it is refused
    admin_url = create_database(postgres_server)
    try:
        code, stderr = run(
            monkeypatch,
            {
                "CARELEDGER_DATABASE_URL": admin_url,
                "CARELEDGER_READ_DATABASE_URL": admin_url,
                "CARELEDGER_VAR_DIR": str(tmp_path),
            },
            "serve",
        )
    finally:
        drop_database(postgres_server, admin_url)
    assert code != 0
    assert "Traceback" not in stderr and stderr.count("\n") == 1
    assert "CARELEDGER_READ_DATABASE_URL: names a server that is not a standby" in stderr
