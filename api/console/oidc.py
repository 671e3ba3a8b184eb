"""Console sign-in with OpenID Connect: the authorization code flow with PKCE (S256).

``/console/login`` sends the browser to the identity provider with a fresh ``state``,
``nonce`` and code challenge, remembered here (one use, ten minutes) and bound to the
browser by a cookie; ``/console/oidc/callback`` exchanges the code with its verifier
and verifies the ID token (signature by the provider's JWKS, ``iss``, ``aud``,
``nonce``, ``exp``, ``iat``) before the claims named by ``CARELEDGER_OIDC_*`` become the
session's actor. Discovery metadata is checked with Authlib, tokens with joserfc (its
JOSE library). No code, token or claim is ever logged: failures log their kind only.
"""

import logging
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import httpx
from authlib.common.security import generate_token
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from authlib.oidc.discovery import OpenIDProviderMetadata
from joserfc import errors as jose_errors
from joserfc import jwt
from joserfc.jwk import KeySet

from api.auth import LEEWAY_SECONDS, ClaimNames, Unauthenticated, actor_of
from api.settings import Settings
from application.context import Actor

log = logging.getLogger("careledger.console")

PENDING_SECONDS = 600
STATE_COOKIE = "careledger_oidc"
ALGORITHMS = ["RS256", "PS256", "ES256", "EdDSA"]


class SignInFailed(Exception):
    """The sign-in cannot complete; the message is for the person, and holds no secret."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Pending:
    nonce: str
    verifier: str
    expires: float


class OpenIdSignIn:
    def __init__(
        self,
        settings: Settings,
        clock: Callable[[], float] = time.time,
        http: httpx.Client | None = None,
    ) -> None:
        assert settings.oidc_issuer and settings.oidc_client_id and settings.oidc_redirect_uri
        self.issuer = settings.oidc_issuer
        self.client_id = settings.oidc_client_id
        secret = settings.oidc_client_secret
        self._secret = secret.get_secret_value() if secret is not None else None
        self.redirect_uri = settings.oidc_redirect_uri
        self.scope = settings.oidc_scope
        self.names = ClaimNames(
            sub=settings.oidc_sub_claim,
            role=settings.oidc_role_claim,
            org=settings.oidc_org_claim,
            patient=settings.oidc_patient_claim,
        )
        self.clock = clock
        self._http = http or httpx.Client(timeout=10, follow_redirects=False)
        self._metadata: OpenIDProviderMetadata | None = None
        self._keys: KeySet | None = None
        self._pending: dict[str, Pending] = {}
        self._lock = threading.Lock()

    def begin(self) -> tuple[str, str]:
        """The provider's authorization URL for a new sign-in, and its state."""
        metadata = self.metadata()
        state, nonce, verifier = generate_token(32), generate_token(32), generate_token(64)
        now = self.clock()
        with self._lock:
            self._pending = {k: p for k, p in self._pending.items() if p.expires > now}
            self._pending[state] = Pending(nonce, verifier, now + PENDING_SECONDS)
        query = urlencode(
            {
                "response_type": "code",
                "client_id": self.client_id,
                "redirect_uri": self.redirect_uri,
                "scope": self.scope,
                "state": state,
                "nonce": nonce,
                "code_challenge": create_s256_code_challenge(verifier),
                "code_challenge_method": "S256",
            }
        )
        endpoint = str(metadata["authorization_endpoint"])
        return f"{endpoint}{'&' if '?' in endpoint else '?'}{query}", state

    def finish(self, state: str, bound: str | None, code: str) -> Actor:
        """The actor of a completed sign-in; SignInFailed otherwise."""
        if not state or not bound or not secrets.compare_digest(state, bound):
            raise SignInFailed("this sign-in did not start in this browser; start again")
        with self._lock:
            pending = self._pending.pop(state, None)
        if pending is None or pending.expires <= self.clock():
            raise SignInFailed("this sign-in has expired or was already used; start again")
        if not code or len(code) > 4096:
            raise SignInFailed("the identity provider sent no authorization code")
        tokens = self._exchange(code, pending.verifier)
        id_token = tokens.get("id_token")
        if not isinstance(id_token, str):
            raise SignInFailed("the identity provider sent no ID token", 502)
        claims = self._verified(id_token, pending.nonce)
        try:
            if claims.get(self.names.role) is None:
                raise Unauthenticated(
                    f"your identity has no {self.names.role} claim: ask your administrator "
                    "for a CareLedger role"
                )
            actor = actor_of(claims, self.names)
        except Unauthenticated as error:
            raise SignInFailed(str(error).replace("the token's", "your identity's"), 403) from None
        if actor.scopes is not None:  # an ID token's scope claim would mean nothing here
            actor = Actor(actor.id, actor.role, actor.org, actor.patient_id, actor.purposes)
        return actor

    def metadata(self) -> OpenIDProviderMetadata:
        if self._metadata is None:
            url = self.issuer.rstrip("/") + "/.well-known/openid-configuration"
            found = OpenIDProviderMetadata(self._get_json(url))
            try:
                found.validate_authorization_endpoint()
                found.validate_token_endpoint()
                found.validate_jwks_uri()
                found.validate_response_types_supported()
                found.validate_code_challenge_methods_supported()
            except Exception:
                raise SignInFailed("the identity provider's metadata is incomplete", 502) from None
            if found.get("issuer") != self.issuer:
                raise SignInFailed("the identity provider names another issuer", 502)
            methods = found.get("code_challenge_methods_supported")
            if methods is not None and "S256" not in methods:
                raise SignInFailed("the identity provider does not support PKCE S256", 502)
            self._metadata = found
        return self._metadata

    def _exchange(self, code: str, verifier: str) -> dict[str, Any]:
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": self.redirect_uri,
            "code_verifier": verifier,
        }
        auth = None
        if self._secret is None:
            form["client_id"] = self.client_id  # a public client: PKCE is its proof
        else:  # client_secret_basic: both parts form-encoded first (RFC 6749, 2.3.1)
            auth = (quote(self.client_id, safe=""), quote(self._secret, safe=""))
        try:
            answer = self._http.post(
                str(self.metadata()["token_endpoint"]),
                data=form,
                auth=auth,
                headers={"Accept": "application/json"},
            )
        except httpx.HTTPError:
            raise SignInFailed("the identity provider cannot be reached", 502) from None
        if answer.status_code != 200:
            log.warning("oidc code exchange refused", extra={"status": answer.status_code})
            raise SignInFailed("the identity provider refused the sign-in; start again")
        try:
            body = answer.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise SignInFailed("the identity provider answered the exchange oddly", 502)
        return body

    def _verified(self, id_token: str, nonce: str) -> dict[str, Any]:
        try:
            try:
                token = jwt.decode(id_token, self._key_set(), algorithms=ALGORITHMS)
            except (jose_errors.BadSignatureError, jose_errors.InvalidKeyIdError, ValueError):
                token = jwt.decode(id_token, self._key_set(refresh=True), algorithms=ALGORITHMS)
            registry = jwt.JWTClaimsRegistry(
                now=lambda: int(self.clock()),
                leeway=LEEWAY_SECONDS,
                iss={"essential": True, "value": self.issuer},
                aud={"essential": True, "value": self.client_id},
                nonce={"essential": True, "value": nonce},
                sub={"essential": True},
                exp={"essential": True},
                iat={"essential": True},
            )
            registry.validate(token.claims)
        except (jose_errors.JoseError, ValueError) as error:
            log.warning("oidc id token refused", extra={"error": type(error).__name__})
            raise SignInFailed("the identity provider's ID token could not be verified") from None
        claims = dict(token.claims)
        audience = claims.get("aud")
        if isinstance(audience, list) and len(audience) > 1 and claims.get("azp") != self.client_id:
            raise SignInFailed("the identity provider's ID token is for another client")
        return claims

    def _key_set(self, *, refresh: bool = False) -> KeySet:
        if self._keys is None or refresh:
            try:
                self._keys = KeySet.import_key_set(
                    self._get_json(str(self.metadata()["jwks_uri"]))  # type: ignore[arg-type]
                )
            except (jose_errors.JoseError, ValueError, KeyError):
                raise SignInFailed("the identity provider's keys cannot be read", 502) from None
        return self._keys

    def _get_json(self, url: str) -> dict[str, Any]:
        try:
            answer = self._http.get(url, headers={"Accept": "application/json"})
            body = answer.json() if answer.status_code == 200 else None
        except (httpx.HTTPError, ValueError):
            body = None
        if not isinstance(body, dict):
            raise SignInFailed("the identity provider cannot be reached", 502)
        return body
