"""Signing in with a one-time login link, the home page, and signing out.

The session cookie is HttpOnly, SameSite=Strict and Secure. Only a plain-HTTP request
from a loopback address (a developer's machine, the browser tests) gets it without
Secure, since a browser would not send a Secure cookie back over http there; plain
HTTP from anywhere else is refused sign-in.
"""

import ipaddress
from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response

from api.console.sessions import ABSOLUTE_SECONDS, COOKIE, Session
from api.console.web import PREFIX, checked_form, failure, page, sessions, signed_in, use_cases

router = APIRouter(prefix=PREFIX, include_in_schema=False)


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


@router.get("/login")
async def login(request: Request, code: str = "") -> Response:
    """Spend a login code (from ``careledger token --login``) and open a session."""
    secure = request.url.scheme == "https"
    if not secure and not loopback(request):
        message = "sign in over HTTPS (plain HTTP is allowed from this machine only)"
        return page("error.html", request, None, 400, title="Sign in", message=message)
    try:
        verifier = use_cases(request).verifier
        session = await run_in_threadpool(sessions(request).sign_in, verifier, code)
    except Exception as error:
        return await run_in_threadpool(failure, request, None, error)
    # 303 to the home page, so the spent code leaves the address bar and the history.
    response = RedirectResponse(f"{PREFIX}/", status_code=303)
    response.set_cookie(
        COOKIE,
        sessions(request).cookie(session),
        max_age=ABSOLUTE_SECONDS,
        path=PREFIX,
        secure=secure,
        httponly=True,
        samesite="strict",
    )
    return response


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
