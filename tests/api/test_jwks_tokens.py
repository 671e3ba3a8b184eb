"""Production tokens verified through an issuer's JWKS, served here by a real local HTTP
server: the issuer is pinned, the audience required, the lifetime bounded, and a JWKS
configuration without an audience or an issuer refuses to start."""

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi.testclient import TestClient

from api.app import create_app
from api.bootstrap import build
from api.settings import ConfigError, Settings
from tests.api.support import assert_unauthenticated
from tests.conftest import ORG, REGISTER_BODY, make_settings

ISSUER = "https://idp.example/realms/care"
AUDIENCE = "https://careledger.example/api"
KID = "test-key-1"
KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def jwks_url() -> Iterator[str]:
    """A JWKS document for KEY's public half, served over HTTP on a free local port."""
    public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(KEY.public_key()))
    document = json.dumps({"keys": [{**public, "kid": KID, "use": "sig", "alg": "RS256"}]})

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(document.encode())

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/jwks.json"
    finally:
        server.shutdown()
        server.server_close()


def _settings(tmp_path: Path, **changes: object) -> Settings:
    base = make_settings(f"sqlite:///{tmp_path / 'careledger.db'}", tmp_path / "var")
    return base.model_copy(update={"jwt_secret": None, **changes})


@pytest.fixture
def client(tmp_path: Path, jwks_url: str) -> Iterator[TestClient]:
    settings = _settings(tmp_path, jwt_jwks_url=jwks_url, jwt_issuer=ISSUER, jwt_audience=AUDIENCE)
    container = build(settings, run_processes=True)
    try:
        with TestClient(create_app(container), raise_server_exceptions=False) as test_client:
            yield test_client
    finally:
        container.close()


def _bearer(key: Any = KEY, **changes: object) -> dict[str, str]:
    now = int(time.time())
    claims = {
        "sub": "dr-1",
        "role": "clinician",
        "org": ORG,
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + 600,
        **changes,
    }
    claims = {name: value for name, value in claims.items() if value is not None}
    signed = jwt.encode(claims, key, algorithm="RS256", headers={"kid": KID})
    return {"Authorization": f"Bearer {signed}"}


def test_a_token_from_the_issuer_for_this_audience_is_accepted(client: TestClient) -> None:
    response = client.post("/v1/patients", json=REGISTER_BODY, headers=_bearer())
    assert response.status_code == 201, response.text


@pytest.mark.parametrize(
    "changes",
    [
        {"aud": None},
        {"aud": "https://elsewhere.example/api"},
        {"iss": None},
        {"iss": "https://other-idp.example"},
        {"exp": int(time.time()) + 30 * 24 * 3600},
    ],
    ids=["no-aud", "wrong-aud", "no-iss", "wrong-iss", "thirty-day-lifetime"],
)
def test_a_token_for_another_audience_issuer_or_too_long_a_life_is_401(
    client: TestClient, changes: dict[str, object]
) -> None:
    response = client.post("/v1/patients", json=REGISTER_BODY, headers=_bearer(**changes))
    assert_unauthenticated(response)


def test_a_token_signed_by_another_key_with_the_same_kid_is_401(client: TestClient) -> None:
    impostor = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    response = client.post("/v1/patients", json=REGISTER_BODY, headers=_bearer(impostor))
    assert_unauthenticated(response)


@pytest.mark.parametrize(
    ("changes", "missing"),
    [
        ({"jwt_issuer": ISSUER}, "CARELEDGER_JWT_AUDIENCE"),
        ({"jwt_audience": AUDIENCE}, "CARELEDGER_JWT_ISSUER"),
    ],
    ids=["no-audience", "no-issuer"],
)
def test_a_jwks_configuration_without_audience_or_issuer_refuses_to_start(
    tmp_path: Path, jwks_url: str, changes: dict[str, object], missing: str
) -> None:
    settings = _settings(tmp_path, jwt_jwks_url=jwks_url, **changes)
    with pytest.raises(ConfigError, match=missing):
        build(settings, run_processes=True)
