"""Console sign-in: one-time login codes, and the signed server-side sessions they open.

A login code is a short-lived token (the same claims as a bearer token, verified by the
same verifier) marked ``use: console-login`` with a random ``jti``; it opens one session
and is then spent. The session lives in this process: its cookie carries only a random
id and an HMAC of it under a per-process key, so a restart signs everyone out.
"""

import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import jwt

from api.auth import TokenVerifier, Unauthenticated, mint_token
from application.context import Actor, Role

LOGIN_USE = "console-login"
LOGIN_CODE_SECONDS = 300
IDLE_SECONDS = 15 * 60
ABSOLUTE_SECONDS = 8 * 3600
COOKIE = "careledger_console"


@dataclass
class Session:
    id: str
    actor: Actor
    csrf: str
    started: float
    seen: float
    filters: dict[str, str] = field(default_factory=dict)  # the access log's search
    accounting: str | None = None  # the patient whose accounting of disclosures is shown
    position: int | None = None  # the log position of this session's last write
    notice: str | None = None  # one message for the next page shown
    clinician: dict[str, Any] = field(default_factory=dict)  # the open chart (clinician.py)


class ConsoleSessions:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._key = secrets.token_bytes(32)
        self._sessions: dict[str, Session] = {}
        self._spent: dict[str, float] = {}  # login code jti -> its expiry
        self._lock = threading.Lock()

    def sign_in(self, verifier: TokenVerifier, code: str) -> Session:
        """A new session for the code's actor; the code is spent (Unauthenticated if it
        was spent before, has expired, or is not a login code)."""
        if not code or len(code) > 4096:
            raise Unauthenticated("the login link is incomplete")
        actor = verifier.actor(f"Bearer {code}", login=True)
        if actor.scopes is not None:  # the console does not narrow by scope: refuse it
            raise Unauthenticated("a console login link carries no SMART scopes")
        # The signature, expiry and lifetime were checked by the verifier above.
        claims: dict[str, Any] = jwt.decode(code, options={"verify_signature": False})
        jti, exp, iat = claims.get("jti"), claims.get("exp"), claims.get("iat")
        if not isinstance(jti, str) or len(jti) < 16:
            raise Unauthenticated("this is not a console login link")
        if not isinstance(iat, int) or not isinstance(exp, int):
            raise Unauthenticated("a login link must carry iat and exp")
        if exp - iat > LOGIN_CODE_SECONDS:
            raise Unauthenticated(f"a login link lives at most {LOGIN_CODE_SECONDS} seconds")
        now = self.clock()
        with self._lock:
            self._spent = {k: v for k, v in self._spent.items() if v > now - 60}
            if jti in self._spent:
                raise Unauthenticated("this login link was already used; ask for a new one")
            self._spent[jti] = float(exp)
        return self.open(actor)

    def open(self, actor: Actor) -> Session:
        """A new session for an actor whose identity was verified (a login code, or an
        OpenID provider's ID token)."""
        now = self.clock()
        with self._lock:
            self._sessions = {k: s for k, s in self._sessions.items() if self._alive(s, now)}
            session = Session(
                id=secrets.token_urlsafe(32),
                actor=actor,
                csrf=secrets.token_urlsafe(32),
                started=now,
                seen=now,
            )
            self._sessions[session.id] = session
        return session

    def cookie(self, session: Session) -> str:
        return f"{session.id}.{self._mac(session.id)}"

    def find(self, cookie: str | None) -> Session | None:
        """The live session the cookie names (its idle clock restarts), or None."""
        if not cookie or "." not in cookie:
            return None
        session_id, _, mac = cookie.rpartition(".")
        if not hmac.compare_digest(mac, self._mac(session_id)):
            return None
        now = self.clock()
        with self._lock:
            session = self._sessions.get(session_id)
            if session is None or not self._alive(session, now):
                self._sessions.pop(session_id, None)
                return None
            session.seen = now
            return session

    def end(self, session: Session) -> None:
        with self._lock:
            self._sessions.pop(session.id, None)

    @staticmethod
    def _alive(session: Session, now: float) -> bool:
        return now - session.seen < IDLE_SECONDS and now - session.started < ABSOLUTE_SECONDS

    def _mac(self, session_id: str) -> str:
        return hmac.new(self._key, session_id.encode(), hashlib.sha256).hexdigest()


def login_code(
    secret: bytes,
    *,
    role: Role,
    sub: str,
    org: str,
    patient: UUID | None,
    now: int,
    audience: str | None = None,
    ttl_seconds: int = LOGIN_CODE_SECONDS,
) -> str:
    """A one-time console login code: a development token marked for sign-in only."""
    return mint_token(
        secret,
        role=role,
        sub=sub,
        org=org,
        patient=patient,
        ttl_seconds=min(ttl_seconds, LOGIN_CODE_SECONDS),
        now=now,
        audience=audience,
        extra={"use": LOGIN_USE, "jti": secrets.token_urlsafe(24)},
    )
