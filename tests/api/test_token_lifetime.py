"""Token lifetime and audience: a token lives at most ``CARELEDGER_JWT_MAX_LIFETIME_SECONDS``
(12 h by default), is not issued in the future, and names this service's audience
whenever ``CARELEDGER_JWT_AUDIENCE`` is set. Refusals are 401 and say why."""

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import jwt
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from api.app import create_app
from api.bootstrap import build
from api.cli import cli
from api.container import Container
from tests.api.support import assert_unauthenticated
from tests.conftest import JWT_SECRET, ORG, REGISTER_BODY, make_settings

AUDIENCE = "https://careledger.example/api"
HOUR = 3600
YEAR_9999 = int(datetime(9999, 12, 31, tzinfo=UTC).timestamp())

Client = Callable[..., TestClient]


def _claims(**changes: object) -> dict[str, object]:
    now = int(time.time())
    return {"sub": "dr-1", "role": "clinician", "org": ORG, "iat": now, "exp": now + 600, **changes}


def _bearer(claims: dict[str, object]) -> dict[str, str]:
    return {"Authorization": f"Bearer {jwt.encode(claims, JWT_SECRET, algorithm='HS256')}"}


def _register(client: TestClient, claims: dict[str, object]) -> httpx.Response:
    response: httpx.Response = client.post(
        "/v1/patients", json=REGISTER_BODY, headers=_bearer(claims)
    )
    return response


@pytest.fixture
def configured(tmp_path: Path) -> Iterator[Client]:
    """A client on a SQLite store whose settings take the given changes."""
    opened: list[tuple[Container, TestClient]] = []

    def make(**changes: object) -> TestClient:
        settings = make_settings(f"sqlite:///{tmp_path / 'careledger.db'}", tmp_path / "var")
        container = build(settings.model_copy(update=changes), run_processes=True)
        client = TestClient(create_app(container), raise_server_exceptions=False).__enter__()
        opened.append((container, client))
        return client

    yield make
    for container, client in opened:
        client.__exit__(None, None, None)
        container.close()


def test_a_token_that_expires_in_the_year_9999_is_401(client: TestClient) -> None:
    # Given a correctly signed token whose expiry is in the year 9999
    response = _register(client, _claims(exp=YEAR_9999))
    # Then it is refused, and the problem names the lifetime
    assert_unauthenticated(response)
    assert "lifetime" in response.json()["detail"]


def test_a_token_without_iat_that_expires_beyond_the_maximum_is_401(client: TestClient) -> None:
    claims = _claims(exp=int(time.time()) + 13 * HOUR)
    del claims["iat"]
    assert_unauthenticated(_register(client, claims))


def test_a_token_issued_long_ago_whose_exp_minus_iat_exceeds_the_maximum_is_401(
    client: TestClient,
) -> None:
    # Given a token issued 13 hours ago that is valid for one more hour (a 14 h lifetime)
    now = int(time.time())
    response = _register(client, _claims(iat=now - 13 * HOUR, exp=now + HOUR))
    assert_unauthenticated(response)
    assert "lifetime" in response.json()["detail"]


def test_a_token_issued_in_the_future_is_401(client: TestClient) -> None:
    now = int(time.time())
    response = _register(client, _claims(iat=now + HOUR, exp=now + 2 * HOUR))
    assert_unauthenticated(response)


def test_a_token_within_the_default_lifetime_is_accepted(client: TestClient) -> None:
    # Given tokens of an 11 h and a 12 h lifetime, and one without iat expiring in 11 h
    now = int(time.time())
    without_iat = _claims(exp=now + 11 * HOUR)
    del without_iat["iat"]
    tokens = (_claims(exp=now + 11 * HOUR), _claims(exp=now + 12 * HOUR), without_iat)
    for index, claims in enumerate(tokens):
        # When each is used, Then it is accepted
        body = {**REGISTER_BODY, "mrn": f"MRN-LIFE-{index}"}
        response = client.post("/v1/patients", json=body, headers=_bearer(claims))
        assert response.status_code == 201, response.text


def test_the_maximum_lifetime_is_configurable(configured: Client) -> None:
    # Given a service whose tokens live at most ten minutes
    client = configured(jwt_max_lifetime_seconds=600)
    now = int(time.time())
    # When a one-hour token is used, Then it is refused; a five-minute one is accepted
    assert_unauthenticated(_register(client, _claims(exp=now + HOUR)))
    accepted = _register(client, _claims(exp=now + 300))
    assert accepted.status_code == 201, accepted.text


def test_with_an_audience_set_a_token_must_name_it(configured: Client) -> None:
    # Given a service configured with its audience
    client = configured(jwt_audience=AUDIENCE)
    # When a token names no audience, or another one, Then it is refused
    for claims in (_claims(), _claims(aud="https://elsewhere.example/api")):
        assert_unauthenticated(_register(client, claims))
    # And a token naming this service's audience is accepted
    accepted = _register(client, _claims(aud=AUDIENCE))
    assert accepted.status_code == 201, accepted.text


def test_the_token_command_names_the_audience_when_one_is_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a development secret and an audience in the environment
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CARELEDGER_JWT_SECRET", JWT_SECRET)
    monkeypatch.setenv("CARELEDGER_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("CARELEDGER_JWT_AUDIENCE", AUDIENCE)
    # When a token is minted
    result = CliRunner().invoke(cli, ["token", "--role", "clinician", "--sub", "dr-cli"])
    assert result.exit_code == 0, result.output
    minted = result.stdout.strip().splitlines()[-1]
    # Then it carries the audience, and verifies against it
    claims = jwt.decode(minted, JWT_SECRET, algorithms=["HS256"], audience=AUDIENCE)
    assert claims["aud"] == AUDIENCE
