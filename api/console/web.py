"""What every console page shares: templates, headers, the session, CSRF and errors.

Every console response is ``Cache-Control: no-store`` (a page may show PHI, and a
shared or back-button cache must not keep it) and carries a Content-Security-Policy
that admits only the package's own stylesheet: no script, no inline style, no
other origin, no framing.
"""

import hmac
import logging
from pathlib import Path
from typing import Any

from fastapi import Request
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.responses import HTMLResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.auth import Unauthenticated
from api.console.sessions import COOKIE, ConsoleSessions, Session
from api.container import Container
from api.organisations import OrganisationNotServed, routed
from application import errors as app_errors
from application.access.purposes import admit_purpose, default_purpose
from application.context import RequestContext
from domain import errors as domain_errors

log = logging.getLogger("careledger.console")

PREFIX = "/console"
HERE = Path(__file__).parent
CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
PAGE_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
]
NO_STORE = (b"cache-control", b"no-store")

templates = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)


class ConsoleHeaders:
    """The console's security headers, on every response under /console."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if not (path == PREFIX or path.startswith(PREFIX + "/")):
            await self.app(scope, receive, send)
            return
        static = path.startswith(PREFIX + "/static/")

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                kept = [
                    (k, v)
                    for k, v in message.get("headers", [])
                    if static or k.lower() != b"cache-control"
                ]
                message["headers"] = [*kept, *PAGE_HEADERS, *([] if static else [NO_STORE])]
            await send(message)

        await self.app(scope, receive, with_headers)


def sessions(request: Request) -> ConsoleSessions:
    found: ConsoleSessions = request.app.state.console_sessions
    return found


def use_cases(request: Request) -> Container:
    """The use cases of the signed-in actor's organisation (its own database, when
    organisations are routed to databases of their own)."""
    if getattr(request.app.state, "organisations", None) is None:
        found: Container = request.app.state.container
        return found
    return routed(request, signed_in(request).actor.org)


def page(
    name: str, request: Request, session: Session | None, status: int = 200, **values: Any
) -> HTMLResponse:
    notice = None
    if session is not None:
        notice, session.notice = session.notice, None
    html = templates.get_template(name).render(
        session=session,
        actor=session.actor if session else None,
        notice=notice,
        oidc=getattr(request.app.state, "console_oidc", None) is not None,
        **values,
    )
    return HTMLResponse(html, status_code=status)


def signed_in(request: Request) -> Session:
    """The session the cookie names; Unauthenticated (a 401 page) without one."""
    session = sessions(request).find(request.cookies.get(COOKIE))
    if session is None:
        raise Unauthenticated("sign in first")
    return session


async def checked_form(request: Request, session: Session) -> dict[str, str]:
    """The POSTed form, once its CSRF token is the session's (else 403, nothing done)."""
    form = await request.form()
    values = {k: v for k, v in form.items() if isinstance(v, str)}
    given = values.pop("csrf", "")
    if not hmac.compare_digest(given.encode(), session.csrf.encode()):
        raise CsrfRefused()
    return values


class CsrfRefused(Exception):
    """A POST without this session's CSRF token."""


def context(request: Request, session: Session) -> RequestContext:
    """The request context of a console request: the session's actor, exactly as a
    bearer token would make it, with the role's usual purpose and channel ``console``."""
    actor = session.actor
    ctx = RequestContext(
        actor=actor,
        purpose=default_purpose(actor),
        request_id=request.state.request_id,
        source=request.client.host if request.client else "",
        channel="console",
    )
    request.state.context = ctx
    admit_purpose(ctx)
    return ctx


_STATUS: list[tuple[type[Exception], int, str]] = [
    (app_errors.NotFound, 404, "Not found"),
    (app_errors.Gone, 410, "Gone"),
    (app_errors.Forbidden, 403, "Not allowed"),
    (OrganisationNotServed, 403, "Not allowed"),
    (app_errors.StoreUnavailable, 503, "Try again shortly"),
    (domain_errors.InvalidValue, 422, "Invalid input"),
    (domain_errors.DomainError, 409, "Not possible"),
    (app_errors.ApplicationError, 409, "Not possible"),
]


def failure(request: Request, session: Session | None, error: Exception) -> HTMLResponse:
    """An error page; a refusal is recorded as a denial first, as the API's are."""
    if isinstance(error, Unauthenticated):
        return page("error.html", request, None, 401, title="Sign in", message=str(error))
    if isinstance(error, CsrfRefused):
        message = "the form had expired or did not come from this console; reload and retry"
        return page("error.html", request, session, 403, title="Not allowed", message=message)
    if isinstance(error, app_errors.Forbidden) and not error.recorded:
        ctx = getattr(request.state, "context", None)
        if ctx is not None:
            route = str(getattr(request.scope.get("route"), "path", "")) or "unknown"
            action = "read" if request.method in ("GET", "HEAD") else "write"
            try:
                gate = use_cases(request).charts.gate
            except OrganisationNotServed as unserved:
                # No database of theirs to record it in: their own refusal page instead
                return failure(request, session, unserved)
            gate.refuse_addressed(ctx, str(error), None, action, {"route": route})
    for cls, status, title in _STATUS:
        if isinstance(error, cls):
            return page("error.html", request, session, status, title=title, message=str(error))
    raise error
