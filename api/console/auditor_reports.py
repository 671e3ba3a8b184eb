"""The auditor's reports: a patient's accounting of disclosures (printable), and the
integrity of the log (the last verification's verdict, and running one).

The accounting is the /v1 use case's (``AuditTrail.disclosures``): access-record
metadata, not PHI, so, as in the API, reading it is not itself recorded. The patient
searched for is POSTed and kept in the session, never put in a URL.
"""

import threading
import time
from typing import Any
from uuid import UUID

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response

from api.console.auditor import auditor
from api.console.sessions import Session
from api.console.sign_in import guarded
from api.console.web import PREFIX, checked_form, page, use_cases
from application.charts.disclosure_rendering import zulu
from domain.errors import InvalidValue

router = APIRouter(prefix=f"{PREFIX}/audit", include_in_schema=False)


@router.get("/disclosures")
async def disclosures(request: Request) -> Response:
    async def show(session: Session) -> Response:
        ctx = auditor(request, session)
        patient = session.accounting
        accounting = None
        if patient is not None:
            accounting = await run_in_threadpool(
                lambda: use_cases(request).audit.disclosures(
                    ctx, UUID(patient), session.position, limit=500
                )
            )
        return page("disclosures.html", request, session, accounting=accounting, patient=patient)

    return await guarded(request, show)


@router.post("/disclosures")
async def choose_patient(request: Request) -> Response:
    async def keep(session: Session) -> Response:
        form = await checked_form(request, session)
        auditor(request, session)
        chosen = form.get("patient_id", "").strip()
        if "clear" in form or not chosen:
            session.accounting = None
        else:
            try:
                session.accounting = str(UUID(chosen))
            except ValueError:
                raise InvalidValue("patient", "must be a patient id (a UUID)") from None
        return RedirectResponse(f"{PREFIX}/audit/disclosures", status_code=303)

    return await guarded(request, keep)


class Verdicts:
    """The last verification run from the console, per organisation, in this process."""

    def __init__(self) -> None:
        self._last: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def last(self, org: str) -> dict[str, Any] | None:
        with self._lock:
            return self._last.get(org)

    def keep(self, org: str, verdict: dict[str, Any]) -> None:
        with self._lock:
            self._last[org] = verdict


def verdicts(request: Request) -> Verdicts:
    found: Verdicts = request.app.state.console_verdicts
    return found


@router.get("/integrity")
async def integrity(request: Request) -> Response:
    async def show(session: Session) -> Response:
        ctx = auditor(request, session)
        head = await run_in_threadpool(use_cases(request).integrity.head, ctx)
        last = verdicts(request).last(ctx.actor.org)
        return page("integrity.html", request, session, head=head, last=last)

    return await guarded(request, show)


@router.post("/integrity")
async def verify(request: Request) -> Response:
    async def run(session: Session) -> Response:
        await checked_form(request, session)
        ctx = auditor(request, session)
        started = time.perf_counter()
        verdict = await run_in_threadpool(use_cases(request).integrity.verify, ctx)
        verdicts(request).keep(
            ctx.actor.org,
            {
                **verdict,
                "at": zulu(use_cases(request).audit.clock()),
                "by": ctx.actor.id,
                "seconds": round(time.perf_counter() - started, 2),
            },
        )
        session.notice = "The chain was verified: " + ("intact." if verdict["ok"] else "BROKEN.")
        return RedirectResponse(f"{PREFIX}/audit/integrity", status_code=303)

    return await guarded(request, run)
