"""The console's OpenID Connect callback refuses every answer it cannot trust, with a
clear page and never a 500. The happy path runs against a real provider in
tests/e2e/test_console_oidc.py; these are the answers a real provider will not give on
demand (a wrong nonce, another audience, an expired or foreign-signed ID token, a
replayed state), so here the provider's HTTP answers are made at the transport by a
key pair of the test's own, and everything else is the server's real code."""

import json
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
from fastapi.testclient import TestClient
from joserfc import jwt
from joserfc.jwk import RSAKey

from api.console.oidc import STATE_COOKIE, OpenIdSignIn
from api.settings import ConfigError, Settings, check_oidc_settings
from tests.api.console_support import browser

ISSUER = "https://idp.example"
CLIENT = "careledger-console"
REDIRECT = "https://testserver/console/oidc/callback"
KEY = RSAKey.generate_key(2048, parameters={"kid": "k1"})
STRANGER = RSAKey.generate_key(2048, parameters={"kid": "k1"})  # same kid, other key


class Provider:
    """The provider's HTTP answers: discovery, JWKS, and a token endpoint that returns
    the ID token the test chooses (from the nonce the server sent)."""

    def __init__(self) -> None:
        self.claims: Callable[[str], dict[str, Any]] = lambda nonce: {}
        self.key = KEY
        self.token_status = 200
        self.exchanges: list[dict[str, list[str]]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/.well-known/openid-configuration":
            return httpx.Response(
                200,
                json={
                    "issuer": ISSUER,
                    "authorization_endpoint": f"{ISSUER}/auth",
                    "token_endpoint": f"{ISSUER}/token",
                    "jwks_uri": f"{ISSUER}/jwks",
                    "response_types_supported": ["code"],
                    "code_challenge_methods_supported": ["S256"],
                },
            )
        if path == "/jwks":
            return httpx.Response(200, json={"keys": [KEY.as_dict(private=False)]})
        form = parse_qs(request.content.decode())
        self.exchanges.append(form)
        if self.token_status != 200:
            return httpx.Response(self.token_status, json={"error": "invalid_grant"})
        nonce = self.nonce
        token = jwt.encode({"alg": "RS256", "kid": "k1"}, self.claims(nonce), self.key)
        return httpx.Response(200, json={"access_token": "at", "id_token": token})

    nonce = ""


def good(nonce: str, **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "aud": CLIENT,
        "sub": "auditor-oidc",
        "nonce": nonce,
        "iat": now,
        "exp": now + 300,
        "role": "auditor",
        "org": "org-main",
    }
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


@pytest.fixture
def provider(client: TestClient) -> Provider:
    found = Provider()
    settings = Settings(
        oidc_issuer=ISSUER,
        oidc_client_id=CLIENT,
        oidc_client_secret="a client secret",
        oidc_redirect_uri=REDIRECT,
    )
    http = httpx.Client(transport=httpx.MockTransport(found))
    client.app.state.console_oidc = OpenIdSignIn(settings, http=http)  # type: ignore[attr-defined]
    return found


def start(client: TestClient, provider: Provider) -> tuple[TestClient, str]:
    """A browser that began a sign-in: its state, with the provider told the nonce."""
    user = browser(client.app)  # type: ignore[arg-type]
    begun = user.get("/console/login")
    assert begun.status_code == 303, begun.text
    sent = parse_qs(urlparse(begun.headers["location"]).query)
    assert begun.headers["location"].startswith(f"{ISSUER}/auth?")
    assert sent["code_challenge_method"] == ["S256"] and len(sent["code_challenge"][0]) == 43
    assert sent["redirect_uri"] == [REDIRECT] and sent["scope"] == ["openid"]
    provider.nonce = sent["nonce"][0]
    assert user.cookies.get(STATE_COOKIE) == sent["state"][0]
    return user, sent["state"][0]


def test_a_verified_id_token_opens_a_session(client: TestClient, provider: Provider) -> None:
    provider.claims = good
    user, state = start(client, provider)
    answer = user.get("/console/oidc/callback", params={"state": state, "code": "c0de"})
    assert answer.status_code == 200, answer.text
    assert 'http-equiv="refresh"' in answer.text
    home = user.get("/console/")
    assert "Signed in as <strong>auditor-oidc</strong> (auditor, org-main)" in home.text
    (exchange,) = provider.exchanges
    assert exchange["code"] == ["c0de"] and len(exchange["code_verifier"][0]) >= 43
    assert "client_id" not in exchange  # a confidential client authenticates by Basic
    # The state is spent: the same answer again is refused
    again = user.get("/console/oidc/callback", params={"state": state, "code": "c0de"})
    assert again.status_code == 400


@pytest.mark.parametrize(
    ("claims", "key", "message"),
    [
        (lambda n: good("another nonce"), KEY, "could not be verified"),
        (lambda n: good(n, aud="another-client"), KEY, "could not be verified"),
        (lambda n: good(n, iss="https://evil.example"), KEY, "could not be verified"),
        (lambda n: good(n, exp=int(time.time()) - 600), KEY, "could not be verified"),
        (
            lambda n: {k: v for k, v in good(n).items() if k != "nonce"},
            KEY,
            "could not be verified",
        ),
        (good, STRANGER, "could not be verified"),
        (lambda n: good(n, role=None), KEY, "no role claim"),
        (lambda n: good(n, role="superuser"), KEY, "role claim is missing or unknown"),
        (lambda n: good(n, role="patient"), KEY, "must carry a patient claim"),
        (lambda n: good(n, org="org/main"), KEY, "characters not allowed"),
        (lambda n: good(n, aud=[CLIENT, "other"]), KEY, "for another client"),
    ],
)
def test_an_id_token_that_cannot_be_trusted_is_refused_on_a_page(
    client: TestClient, provider: Provider, claims: Any, key: RSAKey, message: str
) -> None:
    provider.claims, provider.key = claims, key
    user, state = start(client, provider)
    answer = user.get("/console/oidc/callback", params={"state": state, "code": "c0de"})
    assert answer.status_code in (400, 403), answer.text
    assert message in answer.text
    assert answer.headers["content-type"].startswith("text/html")
    assert user.get("/console/").status_code == 401  # no session was opened


def test_a_bad_state_a_provider_error_or_a_refused_exchange_is_a_clear_page(
    client: TestClient, provider: Provider
) -> None:
    provider.claims = good
    user, state = start(client, provider)
    forged = user.get("/console/oidc/callback", params={"state": "forged", "code": "c"})
    assert forged.status_code == 400 and "did not start in this browser" in forged.text
    elsewhere = browser(client.app)  # type: ignore[arg-type]
    stolen = elsewhere.get("/console/oidc/callback", params={"state": state, "code": "c"})
    assert stolen.status_code == 400 and "did not start in this browser" in stolen.text
    mixed = user.get(
        "/console/oidc/callback", params={"state": state, "code": "c", "iss": "https://x"}
    )
    assert mixed.status_code == 400 and "another identity provider" in mixed.text
    denied = user.get("/console/oidc/callback", params={"error": "access_denied", "state": state})
    assert denied.status_code == 401 and "(access_denied)" in denied.text
    odd = user.get("/console/oidc/callback", params={"error": "<script>x</script>"})
    assert odd.status_code == 401 and "<script>" not in odd.text and "(error)" in odd.text
    provider.token_status = 400
    user, state = start(client, provider)
    refused = user.get("/console/oidc/callback", params={"state": state, "code": "c"})
    assert refused.status_code == 400 and "refused the sign-in" in refused.text


def test_an_unreachable_provider_is_a_502_page_and_no_oidc_is_a_404(
    client: TestClient,
) -> None:
    user = browser(client.app)  # type: ignore[arg-type]
    assert user.get("/console/oidc/callback").status_code == 404
    login = user.get("/console/login")  # without OpenID Connect, a link is needed
    assert login.status_code == 401 and "careledger token --login" in login.text
    settings = Settings(
        oidc_issuer="http://127.0.0.1:9", oidc_client_id=CLIENT, oidc_redirect_uri=REDIRECT
    )
    client.app.state.console_oidc = OpenIdSignIn(settings)  # type: ignore[attr-defined]
    down = user.get("/console/login")
    assert down.status_code == 502 and "cannot be reached" in down.text


def test_oidc_settings_are_checked_together() -> None:
    with pytest.raises(ConfigError, match="CARELEDGER_OIDC_CLIENT_ID"):
        check_oidc_settings(Settings(oidc_issuer=ISSUER, oidc_redirect_uri=REDIRECT))
    with pytest.raises(ConfigError, match="CARELEDGER_OIDC_REDIRECT_URI"):
        check_oidc_settings(Settings(oidc_issuer=ISSUER, oidc_client_id=CLIENT))
    with pytest.raises(ConfigError, match="CARELEDGER_OIDC_SCOPE"):
        check_oidc_settings(
            Settings(
                oidc_issuer=ISSUER,
                oidc_client_id=CLIENT,
                oidc_redirect_uri=REDIRECT,
                oidc_scope="profile",
            )
        )
    assert json.dumps(check_oidc_settings(Settings())) == "null"
