"""The auditor's console: the access log, one record and its replay, and the
break-glass queue, through the same use cases (and scoping) as /v1/audit.

Search terms are POSTed and kept in the session, never put in a URL. The replay page
shows PHI, so it is disclosed by ``Replays.replay`` exactly as the API's replay is: one
access record (channel ``console``) naming the digest of the data the page shows.
"""

import csv
import io
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import orjson
from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response

from api.console.sessions import Session
from api.console.sign_in import guarded
from api.console.web import PREFIX, checked_form, context, page, use_cases
from application.context import RequestContext, Role
from application.errors import Forbidden
from domain.access_record import ACTIONS, DECISIONS, REVIEW_OUTCOMES
from domain.errors import InvalidValue
from domain.vocabulary import Purpose

router = APIRouter(prefix=f"{PREFIX}/audit", include_in_schema=False)

PAGE_SIZE = 50
CSV_LIMIT = 10_000
FILTERS = ("patient_id", "actor_id", "since", "until", "purpose", "action", "decision")
EXACT_FILTERS = ("patient_id", "actor_id", "purpose", "action", "decision")
CHOICES = {
    "purpose": sorted(p.value for p in Purpose),
    "action": sorted(ACTIONS),
    "decision": sorted(DECISIONS),
}


def auditor(request: Request, session: Session) -> RequestContext:
    """The console context of an auditor; any other role is refused (and recorded)."""
    ctx = context(request, session)
    if ctx.actor.role is not Role.AUDITOR:
        raise Forbidden("the auditor's console is for auditors")
    return ctx


def search_terms(form: dict[str, str]) -> dict[str, str]:
    """The search form's terms, checked; empty fields are no filter."""
    terms = {name: form.get(name, "").strip() for name in FILTERS}
    terms = {name: value for name, value in terms.items() if value}
    if "patient_id" in terms:
        try:
            terms["patient_id"] = str(UUID(terms["patient_id"]))
        except ValueError:
            raise InvalidValue("patient", "must be a patient id (a UUID)") from None
    if len(terms.get("actor_id", "")) > 200:
        raise InvalidValue("actor", "must be at most 200 characters")
    for name in ("since", "until"):
        if name in terms:
            _instant(name, terms[name])
    for name, allowed in CHOICES.items():
        if name in terms and terms[name] not in allowed:
            raise InvalidValue(name, f"must be one of {', '.join(allowed)}")
    return terms


def _instant(name: str, text: str) -> datetime:
    """A datetime-local field's value, read as UTC (the pages show UTC throughout)."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidValue(name, "must be a date and time such as 2026-12-06T09:30") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _search(request: Request, session: Session, cursor: str | None, limit: int) -> dict[str, Any]:
    terms = session.filters
    return use_cases(request).audit.accesses(
        auditor(request, session),
        filters={name: terms.get(name) for name in EXACT_FILTERS},
        since=_instant("since", terms["since"]) if "since" in terms else None,
        until=_instant("until", terms["until"]) if "until" in terms else None,
        cursor=cursor,
        limit=limit,
        min_position=session.position,
    )


@router.get("/accesses")
async def access_log(request: Request, cursor: str | None = None) -> Response:
    async def show(session: Session) -> Response:
        found = await run_in_threadpool(_search, request, session, cursor, PAGE_SIZE)
        return page(
            "access_log.html",
            request,
            session,
            items=found["items"],
            next_cursor=found["next_cursor"],
            paged=cursor is not None,
            terms=session.filters,
            choices=CHOICES,
        )

    return await guarded(request, show)


@router.post("/accesses")
async def search(request: Request) -> Response:
    async def keep(session: Session) -> Response:
        form = await checked_form(request, session)
        auditor(request, session)
        session.filters = {} if "clear" in form else search_terms(form)
        return RedirectResponse(f"{PREFIX}/audit/accesses", status_code=303)

    return await guarded(request, keep)


@router.get("/accesses.csv")
async def access_log_csv(request: Request) -> Response:
    """Every record the search finds (up to CSV_LIMIT), as a spreadsheet."""

    def rows(session: Session) -> str:
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(CSV_COLUMNS)
        cursor, written = None, 0
        while written < CSV_LIMIT:
            found = _search(request, session, cursor, 500)
            for item in found["items"]:
                writer.writerow([_cell(value) for value in csv_row(item)])
            written += len(found["items"])
            cursor = found["next_cursor"]
            if cursor is None:
                break
        return out.getvalue()

    async def export(session: Session) -> Response:
        body = await run_in_threadpool(rows, session)
        disposition = 'attachment; filename="access-log.csv"'
        return Response(body, media_type="text/csv", headers={"Content-Disposition": disposition})

    return await guarded(request, export)


CSV_COLUMNS = (
    "access_id",
    "occurred_at",
    "actor_id",
    "actor_role",
    "actor_org",
    "purpose",
    "action",
    "decision",
    "reason",
    "patient_id",
    "care_org",
    "channel",
    "break_glass",
    "review_outcome",
    "response_sha256",
)


def csv_row(item: dict[str, Any]) -> list[Any]:
    review = item.get("review") or {}
    return [
        item["access_id"],
        item["occurred_at"],
        item["actor"]["id"],
        item["actor"]["role"],
        item["actor"]["org"],
        item["purpose"],
        item["action"],
        item["decision"],
        item.get("reason", ""),
        item["patient_id"] or "",
        item.get("care_org") or "",
        item.get("channel", "api"),
        item["basis"].get("break_glass", ""),
        review.get("outcome", ""),
        item["response_sha256"] or "",
    ]


def _cell(value: Any) -> str:
    """A cell a spreadsheet will not run as a formula (a justification is free text)."""
    text = str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


@router.get("/accesses/{access_id}")
async def access_record(request: Request, access_id: UUID) -> Response:
    async def show(session: Session) -> Response:
        ctx = auditor(request, session)
        record = await run_in_threadpool(use_cases(request).audit.access, ctx, access_id)
        return page("access_record.html", request, session, record=record)

    return await guarded(request, show)


@router.post("/accesses/{access_id}/replay")
async def replay(request: Request, access_id: UUID) -> Response:
    async def rebuild(session: Session) -> Response:
        await checked_form(request, session)
        ctx = auditor(request, session)
        disclosed = await run_in_threadpool(use_cases(request).replays.replay, ctx, access_id)
        shown = disclosed.json()
        return page(
            "replay.html",
            request,
            session,
            replayed=shown,
            rebuilt=orjson.dumps(shown["body"], option=orjson.OPT_INDENT_2).decode(),
            replay_access_id=str(disclosed.access_id),
        )

    return await guarded(request, rebuild)


@router.get("/break-glass")
async def break_glass(request: Request) -> Response:
    async def show(session: Session) -> Response:
        ctx = auditor(request, session)
        found = await run_in_threadpool(
            lambda: use_cases(request).audit.break_glass_queue(
                ctx, limit=500, min_position=session.position
            )
        )
        items = found["items"]
        return page(
            "break_glass.html",
            request,
            session,
            waiting=[item for item in items if item["review"] is None],
            reviewed=[item for item in items if item["review"] is not None],
            outcomes=sorted(REVIEW_OUTCOMES),
        )

    return await guarded(request, show)


@router.post("/break-glass/{access_id}/review")
async def review(request: Request, access_id: UUID) -> Response:
    async def record(session: Session) -> Response:
        form = await checked_form(request, session)
        ctx = auditor(request, session)
        outcome, note = form.get("outcome", ""), form.get("note", "").strip()
        if outcome not in REVIEW_OUTCOMES:
            raise InvalidValue("outcome", "choose justified, unjustified or needs follow-up")
        if len(note) > 2000:
            raise InvalidValue("note", "must be at most 2000 characters")
        done = await run_in_threadpool(
            lambda: use_cases(request).audit.review(ctx, access_id, outcome=outcome, note=note)
        )
        session.position = max(session.position or 0, int(done["position"]))
        session.notice = f"Review recorded: {outcome.replace('_', ' ')}."
        return RedirectResponse(f"{PREFIX}/audit/break-glass", status_code=303)

    return await guarded(request, record)
