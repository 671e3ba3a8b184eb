"""The open chart's consent directives, for its clinician: a page of its own, so that
the chart banner and this page each make one disclosure, with one access record for
the patient (``Consents.current``, channel ``console``) naming the digest of the bytes
the page is rendered from (docs/console.md)."""

from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from api.console.clinician import BASE, charted, clinician, open_patient
from api.console.sessions import Session
from api.console.web import page, use_cases

router = APIRouter(prefix=BASE, include_in_schema=False)


def _consents(request: Request, session: Session) -> dict[str, Any]:
    ctx = clinician(request, session)
    patient = open_patient(session)
    disclosed = use_cases(request).consents.current(ctx, patient, session.position)
    return {"consents": disclosed.json(), "access_id": str(disclosed.access_id)}


@router.get("/consents")
async def consents(request: Request) -> Response:
    async def show(session: Session) -> Response:
        shown = await run_in_threadpool(_consents, request, session)
        return page(
            "clinician/consents.html",
            request,
            session,
            who=session.clinician.get("who"),
            glass=session.clinician.get("glass"),
            **shown,
        )

    return await charted(request, show)
