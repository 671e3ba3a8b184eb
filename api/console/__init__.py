"""The web console: server-rendered pages over the same use cases as the API (docs/console.md)."""

from fastapi import FastAPI
from starlette.staticfiles import StaticFiles

from api.console import auditor, auditor_reports, patient, sign_in
from api.console.clinician_pages import CLINICIAN_ROUTERS
from api.console.oidc import OpenIdSignIn
from api.console.sessions import ConsoleSessions
from api.console.web import HERE, PREFIX, ConsoleHeaders


def install(app: FastAPI) -> None:
    app.state.console_sessions = ConsoleSessions()
    settings = app.state.settings
    oidc = getattr(settings, "oidc_issuer", None)
    app.state.console_oidc = OpenIdSignIn(settings) if oidc else None
    app.include_router(sign_in.router)
    app.include_router(patient.router)
    app.include_router(auditor.router)
    app.state.console_verdicts = auditor_reports.Verdicts()
    app.include_router(auditor_reports.router)
    for router in CLINICIAN_ROUTERS:
        app.include_router(router)
    app.mount(f"{PREFIX}/static", StaticFiles(directory=HERE / "static"), name="console-static")
    app.add_middleware(ConsoleHeaders)
