"""The patient's privacy pages: who viewed my record, and my consents, through the same
use cases as /v1/me/access-log and /v1/patients/{id}/consents.

Every page is the signed-in patient's own: the patient is the session's, never named in
a URL, so another patient's session shows that patient's own pages and nothing else;
every other role is refused (and the refusal recorded). The consents page shows PHI, so
it is disclosed by ``Consents.current`` exactly as the API's read is: one access record
(channel ``console``) naming the digest of the data the page shows, which replays. The
access log shows access-record metadata with the staff's network details left out, and,
as in the API, reading it is not itself recorded.
"""

import hashlib
import secrets
from dataclasses import replace
from datetime import timedelta
from typing import Any
from uuid import UUID

import orjson
from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response

from api.console import patient_forms as forms
from api.console.sessions import Session
from api.console.sign_in import guarded
from api.console.web import PREFIX, checked_form, context, page, use_cases
from application.context import RequestContext, Role
from application.errors import Forbidden, NotFound
from domain.errors import DirectiveNotFound, InvalidValue
from domain.values import Period
from domain.vocabulary import Purpose, SigningMethod

router = APIRouter(prefix=f"{PREFIX}/me", include_in_schema=False)

PAGE_SIZE = 50
REVOKED_HERE = "withdrawn by the patient on the My consents page"


def patient(request: Request, session: Session) -> tuple[RequestContext, UUID]:
    """The console context of a patient, and their own record; any other role is
    refused (and recorded)."""
    ctx = context(request, session)
    if ctx.actor.role is not Role.PATIENT or ctx.actor.patient_id is None:
        raise Forbidden("these pages are a patient's own")
    return ctx, ctx.actor.patient_id


@router.get("/accesses")
async def who_viewed(request: Request, cursor: str | None = None) -> Response:
    async def show(session: Session) -> Response:
        ctx, _own = patient(request, session)
        found = await run_in_threadpool(
            lambda: use_cases(request).audit.my_access_log(
                ctx, cursor=cursor, limit=PAGE_SIZE, min_position=session.position
            )
        )
        return page(
            "patient_accesses.html",
            request,
            session,
            items=found["items"],
            next_cursor=found["next_cursor"],
            paged=cursor is not None,
            words=forms,
        )

    return await guarded(request, show)


@router.get("/consents")
async def my_consents(request: Request) -> Response:
    async def show(session: Session) -> Response:
        ctx, own = patient(request, session)
        disclosed = await run_in_threadpool(
            use_cases(request).consents.current, ctx, own, session.position
        )
        # The page is rendered from the very bytes the access record's digest names.
        shown: dict[str, Any] = orjson.loads(disclosed.body)
        today = use_cases(request).consents.clock().date().isoformat()
        directives = [forms.directive_view(d, today) for d in shown["directives"]]
        return page(
            "patient_consents.html",
            request,
            session,
            in_force=[d for d in directives if d["status"] == "active" or d["upcoming"]],
            past=[d for d in directives if not (d["status"] == "active" or d["upcoming"])],
            restrictions=[forms.restriction_view(r) for r in shown["restrictions"]],
            consent_version=shown["consent_version"],
            access_id=str(disclosed.access_id),
        )

    return await guarded(request, show)


@router.get("/consents/marketing")
async def marketing_choices(request: Request) -> Response:
    async def show(session: Session) -> Response:
        patient(request, session)
        today = use_cases(request).consents.clock().date()
        suggested = (today + timedelta(days=365)).isoformat()
        return page("patient_marketing.html", request, session, chosen=None, suggested=suggested)

    return await guarded(request, show)


@router.post("/consents/marketing")
async def marketing_text(request: Request) -> Response:
    """The exact authorisation the patient's choices make, with its SHA-256, to sign."""

    async def show(session: Session) -> Response:
        form = await checked_form(request, session)
        patient(request, session)
        today = use_cases(request).consents.clock().date()
        chosen = forms.marketing_form(form, today)
        submission = secrets.token_urlsafe(18)
        return page(
            "patient_marketing.html",
            request,
            session,
            chosen=chosen,
            forms=forms,
            submission=submission,
        )

    return await guarded(request, show)


@router.post("/consents/marketing/grant")
async def grant_marketing(request: Request) -> Response:
    async def grant(session: Session) -> Response:
        form = await checked_form(request, session)
        ctx, own = patient(request, session)
        today = use_cases(request).consents.clock().date()
        chosen = forms.marketing_form(form, today)
        # The text is rendered again from the same choices; a text that is not the one
        # the patient read (a new form version, a day that turned) is not signed.
        if form.get("text_sha256", "") != chosen.text_sha256:
            raise InvalidValue("form", "the authorisation's text changed; read it again")
        if form.get("agree") != "yes":
            raise InvalidValue("agree", "tick the box to say you have read it and agree")
        # The form's one-time key makes a second submission of it (a double click, a
        # reload) answer the first one's outcome instead of granting it twice.
        submission = form.get("submission", "")
        if not 16 <= len(submission) <= 64:
            raise InvalidValue("form", "the form is incomplete; read it again")
        signed = f"{chosen.grantee}\x00{chosen.end}\x00{chosen.text_sha256}".encode()
        ctx = replace(
            ctx,
            idempotency_key=f"console-marketing-{submission}",
            request_fingerprint=hashlib.sha256(signed).hexdigest(),
        )
        done = await run_in_threadpool(
            lambda: use_cases(request).consents.grant_directive(
                ctx,
                own,
                grantee=chosen.grantee,
                purposes=frozenset({Purpose.HMARKT}),
                labels=frozenset(),
                period=Period(chosen.start, chosen.end),
                form_id=forms.FORM_ID,
                form_version=forms.FORM_VERSION,
                text_sha256=chosen.text_sha256,
                method=SigningMethod.ELECTRONIC,
            )
        )
        session.position = max(session.position or 0, done.position)
        session.notice = f"Marketing authorisation granted to {chosen.recipient}."
        return RedirectResponse(f"{PREFIX}/me/consents", status_code=303)

    return await guarded(request, grant)


@router.post("/consents/{directive_id}/revoke")
async def revoke(request: Request, directive_id: UUID) -> Response:
    async def withdraw(session: Session) -> Response:
        form = await checked_form(request, session)
        ctx, own = patient(request, session)
        if form.get("confirm") != "yes":
            raise InvalidValue("confirm", "tick the box to confirm that you want to revoke it")
        reason = form.get("reason", "").strip() or REVOKED_HERE
        if len(reason) > 200:
            raise InvalidValue("reason", "must be at most 200 characters")
        try:
            done = await run_in_threadpool(
                lambda: use_cases(request).consents.revoke_directive(
                    ctx, own, directive_id, reason=reason
                )
            )
        except DirectiveNotFound:
            raise NotFound("directive") from None
        session.position = max(session.position or 0, done.position)
        session.notice = "Revoked: it no longer allows any disclosure."
        return RedirectResponse(f"{PREFIX}/me/consents", status_code=303)

    return await guarded(request, withdraw)
