"""The FastAPI application."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

from api import console, problems
from api.container import Container
from api.middleware import RequestGuard
from api.openapi_document import custom_openapi
from api.organisations import Organisations
from api.responses import JSON
from api.routers import (
    audit,
    consents,
    fhir,
    fhir_audit,
    fhir_bundles,
    fhir_export,
    fhir_writes,
    me,
    memberships,
    operations,
    patients,
    smart,
    subscribers,
)

DESCRIPTION = """
Event-sourced healthcare records. Every write is an event in an append-only log;
every response carries `X-Request-Id`. Errors are RFC 9457 `application/problem+json`.
Authenticate with `Authorization: Bearer <JWT>` (claims `sub`, `role`, `org`, `exp`,
and `patient` for patients): here, **Authorize** with a token from `careledger token`.
Times are RFC 3339 in UTC with `Z`; ids are UUIDs. A list is `{items, next_cursor}`
(pass `next_cursor` back as `cursor`), except the timeline's `entries` and the feed's
`next_after`. Changes to `/v1` are listed in CHANGELOG.md.
"""


def create_app(container: Container | Organisations) -> FastAPI:
    """The application over one container, or over organisations routed to databases
    of their own (each request to its token's organisation's container)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        container.start_followers()
        if isinstance(container, Organisations):
            container.open_exports()
        elif container.exports is not None:
            container.exports.open()  # what an earlier server left is cleared
        try:
            yield
        finally:
            container.close()

    # Swagger UI and ReDoc served from the package's own assets: /docs works offline.
    app = FastAPIOffline(
        title="CareLedger",
        version="0.1.0",
        description=DESCRIPTION,
        default_response_class=JSON,
        lifespan=lifespan,
    )
    app.openapi = custom_openapi(app)  # type: ignore[method-assign]
    routed = isinstance(container, Organisations)
    app.state.organisations = container if routed else None
    app.state.container = None if routed else container
    app.state.settings = container.settings
    app.state.verifier = getattr(container, "verifier", None)
    problems.install(app)
    for module in (
        patients,
        consents,
        memberships,
        audit,
        me,
        subscribers,
        operations,
        fhir_export,  # before the reads: /fhir/Patient/$export is no patient's read
        fhir,
        fhir_audit,
        smart,
    ):
        app.include_router(module.router)
    app.include_router(fhir_writes.router)
    app.include_router(fhir_bundles.router)
    console.install(app)
    app.add_middleware(RequestGuard, max_body_bytes=container.settings.max_body_bytes)
    return app
