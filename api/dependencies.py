"""Typed dependencies: the use cases, the authenticated actor, and the request context."""

import hashlib
import re
from typing import Annotated

from fastapi import Depends, Header, Query, Request
from starlette.concurrency import run_in_threadpool

from api.auth import Unauthenticated
from api.container import Container
from api.organisations import request_actor, routed
from api.settings import Settings
from application.access.policy import BREAK_GLASS_MIN_CHARS, BREAK_GLASS_MIN_WORDS, substantive
from application.access.purposes import admit_purpose, default_purpose
from application.context import Actor, RequestContext
from domain.errors import InvalidValue
from domain.vocabulary import Purpose

_IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")
_ETAG = re.compile(r'^(?:W/)?"?(\d{1,18})"?$')


def current_actor(request: Request) -> Actor:
    try:
        return request_actor(request)
    except Unauthenticated:
        raise
    except Exception:
        raise Unauthenticated("the token cannot be verified") from None


def container(request: Request) -> Container:
    """The use cases: the one container, or (organisations routed to databases of their
    own) the container of the organisation in the verified token."""
    if getattr(request.app.state, "organisations", None) is None:
        found: Container = request.app.state.container
        return found
    return routed(request, current_actor(request).org)


async def _container(request: Request) -> Container:
    """``container`` on the event loop unless verifying a token may fetch keys: FastAPI
    runs a sync dependency in a worker thread, a hop there and back per request."""
    if _fetches_keys(request):
        return await run_in_threadpool(container, request)
    return container(request)


def _fetches_keys(request: Request) -> bool:
    """Whether verifying a token may fetch signing keys over the network (a JWKS)."""
    return bool(getattr(request.app.state.verifier, "fetches_keys", True))


UseCases = Annotated[Container, Depends(_container)]


def app_settings(request: Request) -> Settings:
    """The settings, for routes that need no organisation's store."""
    single: Container | None = request.app.state.container
    found: Settings = request.app.state.settings if single is None else single.settings
    return found


AppSettings = Annotated[Settings, Depends(app_settings)]


async def _current_actor(request: Request) -> Actor:
    """``current_actor``, on the event loop unless verifying may fetch keys."""
    if _fetches_keys(request):
        return await run_in_threadpool(current_actor, request)
    return current_actor(request)


CurrentActor = Annotated[Actor, Depends(_current_actor)]


async def request_context(
    request: Request,
    actor: CurrentActor,
    x_purpose_of_use: Annotated[str | None, Header()] = None,
    x_break_glass: Annotated[str | None, Header()] = None,
    idempotency_key: Annotated[str | None, Header()] = None,
) -> RequestContext:
    purpose = default_purpose(actor)
    if x_purpose_of_use is not None:
        try:
            purpose = Purpose(x_purpose_of_use.strip().upper())
        except ValueError:
            raise InvalidValue("X-Purpose-Of-Use", "is not a known purpose of use") from None
    if x_break_glass is not None:
        if not substantive(x_break_glass):
            raise InvalidValue(
                "X-Break-Glass",
                f"the justification needs {BREAK_GLASS_MIN_CHARS}+ characters and at least "
                f"{BREAK_GLASS_MIN_WORDS} different words of three letters or more",
            )
        purpose = Purpose.ETREAT
    fingerprint = ""
    if idempotency_key is not None:
        if not _IDEMPOTENCY_KEY.match(idempotency_key):
            raise InvalidValue("Idempotency-Key", "must be 1 to 255 printable characters")
        body = await request.body()
        digest = hashlib.sha256()
        for part in (request.method.encode(), request.url.path.encode(), body):
            digest.update(len(part).to_bytes(8, "big") + part)
        fingerprint = digest.hexdigest()
    ctx = RequestContext(
        actor=actor,
        purpose=purpose,
        request_id=request.state.request_id,
        source=request.client.host if request.client else "",
        break_glass=x_break_glass.strip() if x_break_glass else None,
        idempotency_key=idempotency_key,
        request_fingerprint=fingerprint,
    )
    request.state.context = ctx  # so that a 403 raised later can be audited
    admit_purpose(ctx)
    # Imported here: the route table reads the FHIR router, which needs this module.
    from api.scope_routes import admit_scopes

    await admit_scopes(request, ctx)
    return ctx


Context = Annotated[RequestContext, Depends(request_context)]


async def expected_version(if_match: Annotated[str | None, Header()] = None) -> int | None:
    """If-Match carries the stream version as an ETag: "3", W/"3" or *."""
    if if_match is None or if_match.strip() == "*":
        return None
    found = _ETAG.match(if_match.strip())
    if not found:
        raise InvalidValue("If-Match", 'must be a version ETag such as "3"')
    return int(found.group(1))


ExpectedVersion = Annotated[int | None, Depends(expected_version)]


MinPosition = Annotated[
    int | None,
    Query(
        ge=0,
        description="Read your writes: wait (up to a bound, then 503 with Retry-After) "
        "until the read model has reached this log position.",
    ),
]
