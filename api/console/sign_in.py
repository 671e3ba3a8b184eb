"""Signing in (OpenID Connect, or a one-time login link), the home page, signing out.

The session cookie is HttpOnly, SameSite=Strict and Secure. Only a plain-HTTP request
from a loopback address (a developer's machine, the browser tests) gets it without
Secure, since a browser would not send a Secure cookie back over http there; plain
HTTP from anywhere else is refused sign-in.
"""

import ipaddress
import logging
from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response

from api.console.oidc import PENDING_SECONDS, STATE_COOKIE, OpenIdSignIn, SignInFailed
from api.console.sessions import ABSOLUTE_SECONDS, COOKIE, Session
from api.console.web import PREFIX, checked_form, failure, page, sessions, signed_in

router = APIRouter(prefix=PREFIX, include_in_schema=False)
log = logging.getLogger("careledger.console")


async def guarded(request: Request, work: Callable[[Session], Awaitable[Response]]) -> Response:
    """Run a page for the signed-in session; any refusal or error becomes its page."""
    session = None
    try:
        session = signed_in(request)
        return await work(session)
    except Exception as error:
        return await run_in_threadpool(failure, request, session, error)


def loopback(request: Request) -> bool:
    host = request.client.host if request.client else ""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def openid(request: Request) -> OpenIdSignIn | None:
    found: OpenIdSignIn | None = request.app.state.console_oidc
    return found


@router.get("/login")
async def login(request: Request, code: str = "") -> Response:
    """Spend a login code (from ``careledger token --login``) and open a session; without
    one, and with OpenID Connect configured, go to the identity provider."""
    secure = request.url.scheme == "https"
    if not secure and not loopback(request):
        message = "sign in over HTTPS (plain HTTP is allowed from this machine only)"
        return page("error.html", request, None, 400, title="Sign in", message=message)
    provider = openid(request)
    if not code and provider is not None:
        return await _to_provider(request, provider, secure)
    try:
        verifier = request.app.state.verifier
        session = await run_in_threadpool(sessions(request).sign_in, verifier, code)
    except Exception as error:
        return await run_in_threadpool(failure, request, None, error)
    # 303 to the home page, so the spent code leaves the address bar and the history.
    response = RedirectResponse(f"{PREFIX}/", status_code=303)
    _session_cookie(request, response, session, secure)
    return response


async def _to_provider(request: Request, provider: OpenIdSignIn, secure: bool) -> Response:
    try:
        url, state = await run_in_threadpool(provider.begin)
    except Exception as error:
        return _sign_in_failed(request, _unexpected(error))
    response = RedirectResponse(url, status_code=303)
    # Binds the callback to this browser. Lax, not Strict: the provider's redirect back
    # is a cross-site navigation, which a Strict cookie would not follow.
    response.set_cookie(
        STATE_COOKIE,
        state,
        max_age=PENDING_SECONDS,
        path=f"{PREFIX}/oidc",
        secure=secure,
        httponly=True,
        samesite="lax",
    )
    return response


@router.get("/oidc/callback")
async def oidc_callback(
    request: Request, state: str = "", code: str = "", error: str = "", iss: str = ""
) -> Response:
    """The identity provider's answer: verify it and open a session."""
    provider = openid(request)
    secure = request.url.scheme == "https"
    if provider is None:
        message = "OpenID Connect sign-in is not configured on this server"
        return page("error.html", request, None, 404, title="Sign in", message=message)
    if not secure and not loopback(request):
        message = "sign in over HTTPS (plain HTTP is allowed from this machine only)"
        return page("error.html", request, None, 400, title="Sign in", message=message)
    try:
        if error:
            # The provider's error code only (RFC 6749's vocabulary), never its free text.
            known = error if error.replace("_", "").isalpha() and len(error) < 64 else "error"
            raise SignInFailed(f"the identity provider did not sign you in ({known})", 401)
        if iss and iss != provider.issuer:  # RFC 9207: an answer from another provider
            raise SignInFailed("the answer came from another identity provider; start again")
        bound = request.cookies.get(STATE_COOKIE)
        actor = await run_in_threadpool(provider.finish, state, bound, code)
    except Exception as failure:
        response = _sign_in_failed(request, _unexpected(failure))
        response.delete_cookie(STATE_COOKIE, path=f"{PREFIX}/oidc")
        return response
    session = sessions(request).open(actor)
    # A page, not a redirect: the SameSite=Strict session cookie is not sent on a
    # redirect chain that began at the provider's site, but is on this page's refresh.
    response = page("signed_in.html", request, None, title="Signed in")
    response.delete_cookie(STATE_COOKIE, path=f"{PREFIX}/oidc")
    _session_cookie(request, response, session, secure)
    return response


def _unexpected(error: Exception) -> SignInFailed:
    """A sign-in that broke is a page too, never a 500; its type alone is logged."""
    if isinstance(error, SignInFailed):
        return error
    log.error("console oidc sign-in failed", extra={"error": type(error).__name__})
    return SignInFailed("the sign-in could not be completed; start again", 502)


def _sign_in_failed(request: Request, failed: SignInFailed) -> Response:
    log.warning("console oidc sign-in refused", extra={"status": failed.status})
    return page("error.html", request, None, failed.status, title="Sign in", message=str(failed))


def _session_cookie(request: Request, response: Response, session: Session, secure: bool) -> None:
    response.set_cookie(
        COOKIE,
        sessions(request).cookie(session),
        max_age=ABSOLUTE_SECONDS,
        path=PREFIX,
        secure=secure,
        httponly=True,
        samesite="strict",
    )


@router.get("/")
async def home(request: Request) -> Response:
    async def show(session: Session) -> Response:
        return page("home.html", request, session)

    return await guarded(request, show)


@router.post("/logout")
async def logout(request: Request) -> Response:
    async def leave(session: Session) -> Response:
        await checked_form(request, session)
        sessions(request).end(session)
        response = page("error.html", request, None, title="Signed out", message="signed out")
        response.delete_cookie(COOKIE, path=PREFIX)
        return response

    return await guarded(request, leave)
