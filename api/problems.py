"""Every error becomes application/problem+json here, in one place.

Messages come from domain and application errors, which never carry PHI, and from
validation, where input values are deliberately left out.
"""

import inspect
import logging
from collections.abc import Callable
from typing import Any
from uuid import UUID

import orjson
from eventsourcing.persistence import PersistenceError
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.responses import Response

from api.auth import Unauthenticated
from api.organisations import OrganisationNotServed, routed
from api.responses import Problem, problem
from api.routers import fhir
from application import errors as app_errors
from application.access.access_log import render
from application.charts.read_models import ViewsBehind
from application.fhir.export_jobs import ExportFailed
from application.fhir.resources import operation_outcome
from domain import errors as domain_errors

log = logging.getLogger("careledger.api")

_APPLICATION_STATUS: list[tuple[type[Exception], int, str]] = [
    (app_errors.NotFound, 404, "Not found"),
    (app_errors.Gone, 410, "Gone"),
    (app_errors.Forbidden, 403, "Forbidden"),
    (app_errors.VersionConflict, 409, "Version conflict"),
    (app_errors.PreconditionFailed, 412, "Precondition failed"),
    (app_errors.IdempotencyKeyReused, 409, "Idempotency key reused"),
    (app_errors.TooManyRequests, 429, "Too many requests"),
    (app_errors.Unsupported, 400, "Bad request"),
    (ExportFailed, 500, "Export failed"),
    (app_errors.StoreFull, 507, "Insufficient storage"),
    (app_errors.StoreUnavailable, 503, "Store unavailable"),
    (ViewsBehind, 503, "Views behind"),
    # Already logged as a security event and counted where it was detected.
    (app_errors.IntegrityViolation, 500, "Integrity violation"),
]


_BODY_ERROR = {"field": "body", "message": "the body is not valid JSON"}


def _field(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


def _validation(request: Request, error: Exception) -> Problem:
    assert isinstance(error, RequestValidationError)
    errors = []
    for item in error.errors():
        message = str(item.get("msg", "is invalid"))
        field = _field(tuple(item.get("loc", ())))
        if item.get("type") == "json_invalid":
            # Its location is a byte offset, not a field.
            message, field = "the body is not valid JSON", "body"
        elif item.get("type") == "extra_forbidden":
            message = "is not a known field"
        errors.append({"field": field, "message": message})
    detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:5])
    return problem(422, "Invalid input", detail, errors=errors)


def _domain(request: Request, error: Exception) -> Problem:
    if isinstance(error, domain_errors.InvalidValue):
        return problem(
            422,
            "Invalid input",
            str(error),
            errors=[{"field": error.field, "message": error.message}],
        )
    return problem(409, "Rule violated", str(error))


async def _forbidden(request: Request, error: Exception) -> Problem:
    """Every 403 is audited: a denial record is written before the answer leaves."""
    assert isinstance(error, app_errors.Forbidden)
    ctx = getattr(request.state, "context", None)
    if not error.recorded and ctx is not None:
        try:
            gate = routed(request, ctx.actor.org).charts.gate
        except OrganisationNotServed as refused:  # no database of theirs to record it in
            return _not_served(request, refused)
        try:
            await run_in_threadpool(
                gate.refuse_addressed,
                ctx,
                str(error),
                _patient_addressed(request),
                "read" if request.method in ("GET", "HEAD") else "write",
                {"route": _route(request)},
            )
        except app_errors.StoreUnavailable:
            return _application(request, app_errors.StoreUnavailable("audit"))
    return _application(request, error)


def _patient_addressed(request: Request) -> UUID | None:
    """The patient a refused request's path names, if it names a valid id (a purpose
    is refused before the path's parameters are validated)."""
    if request.url.path.startswith("/fhir/") or request.url.path == "/fhir":
        return fhir.patient_addressed(request)
    try:
        return UUID(request.path_params["patient_id"])
    except (KeyError, ValueError, TypeError):
        return None


def _route(request: Request) -> str:
    route = request.scope.get("route")
    return str(getattr(route, "path", "")) or "unknown"


def _application(request: Request, error: Exception) -> Problem:
    for cls, status, title in _APPLICATION_STATUS:
        if isinstance(error, cls):
            response = problem(status, title, str(error))
            if status in (429, 503, 507):
                response.headers["Retry-After"] = "1"
            return response
    return problem(400, "Bad request", str(error))


def _unauthenticated(request: Request, error: Exception) -> Problem:
    return problem(401, "Unauthenticated", str(error))


def _not_served(request: Request, error: Exception) -> Problem:
    return problem(403, "Forbidden", str(error))


def _http(request: Request, error: Exception) -> Problem:
    assert isinstance(error, HTTPException)
    if error.status_code == 400:
        # FastAPI's answer to a body it cannot decode (not UTF-8, say): invalid input,
        # as a body that is not JSON is.
        message = "the body is not valid JSON"
        return problem(422, "Invalid input", f"body: {message}", errors=[_BODY_ERROR])
    title = {404: "Not found", 405: "Method not allowed", 413: "Payload too large"}.get(
        error.status_code, "HTTP error"
    )
    return problem(error.status_code, title, str(error.detail))


def _store(request: Request, error: Exception) -> Problem:
    log.error("store error", extra={"error": type(error).__name__})
    response = problem(503, "Store unavailable", "the event store cannot be reached")
    response.headers["Retry-After"] = "1"
    return response


def _unexpected(request: Request, error: Exception) -> Problem:
    # Log the type only: an exception message may quote PHI from a payload.
    log.error("unhandled error", extra={"error": type(error).__name__})
    return problem(500, "Internal error", "an unexpected error occurred; it has been logged")


# The OperationOutcome issue type of each status, for errors under /fhir.
_ISSUE_TYPE = {
    400: "not-supported",
    401: "login",
    403: "forbidden",
    404: "not-found",
    405: "not-supported",
    409: "conflict",
    410: "deleted",
    413: "too-costly",
    422: "invalid",
    429: "throttled",
    503: "transient",
    507: "transient",
}


def _fhir_aware(handler: Callable[[Request, Exception], Any]) -> Callable[..., Any]:
    """The handler, answering an OperationOutcome under /fhir (same status, headers
    and message) and problem details elsewhere."""

    async def handle(request: Request, error: Exception) -> Response:
        response = handler(request, error)
        if inspect.isawaitable(response):
            response = await response
        path = request.url.path
        if not (path == "/fhir" or path.startswith("/fhir/")):
            return response
        detail = orjson.loads(response.body).get("detail", "")
        code = _ISSUE_TYPE.get(response.status_code, "exception")
        headers = {k: v for k, v in response.headers.items() if k.lower() not in _BODY_HEADERS}
        return Response(
            render(operation_outcome(code, detail)),
            status_code=response.status_code,
            media_type="application/fhir+json",
            headers=headers,
        )

    return handle


_BODY_HEADERS = ("content-length", "content-type")


def install(app: FastAPI) -> None:
    handlers: list[tuple[type[Exception], Callable[[Request, Exception], Any]]] = [
        (RequestValidationError, _validation),
        (domain_errors.DomainError, _domain),
        (app_errors.Forbidden, _forbidden),
        (app_errors.ApplicationError, _application),
        (Unauthenticated, _unauthenticated),
        (OrganisationNotServed, _not_served),
        (HTTPException, _http),
        (PersistenceError, _store),
        (Exception, _unexpected),
    ]
    for error, handler in handlers:
        app.add_exception_handler(error, _fhir_aware(handler))
