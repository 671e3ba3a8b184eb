"""The clinician's console: patient search, the chart banner, the timeline and the
break-glass dialog, through the same use cases (and policy) as /v1/patients.

No PHI goes in a URL: search terms, the chart opened, the timeline's filters and its
page cursors are POSTed and kept in the session; a URL holds at most a page number or
an entry id. Each page that shows PHI makes one disclosure, through the API's use case,
which writes one access record per patient (channel ``console``) naming the digest of the
exact bytes the page is rendered from, so that replay shows what the clinician saw.
"""

from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import date
from decimal import Decimal
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response

from api.console.sessions import Session
from api.console.sign_in import guarded
from api.console.web import PREFIX, checked_form, context, page, templates, use_cases
from api.routers.patients import moment
from application.access.policy import BREAK_GLASS_MIN_CHARS, Content, substantive
from application.access.purposes import admit_purpose
from application.context import RequestContext, Role
from application.errors import Forbidden
from domain.errors import InvalidValue
from domain.vocabulary import EntryKind, Purpose, SensitivityLabel

BASE = f"{PREFIX}/clinician"
router = APIRouter(prefix=BASE, include_in_schema=False)

PAGE_SIZE = 50
KINDS = [kind.value for kind in EntryKind]
LABELS = [label.value for label in SensitivityLabel]


def quantity(value: Any) -> str:
    """A quantity as written (72, 71.5), not as a float prints it (72.0)."""
    return format(Decimal(str(value)).normalize(), "f")


def value_text(value: dict[str, Any] | None) -> str:
    """An entry's value in words, as a timeline row shows it."""
    if value is None:
        return "—"
    if "text" in value:
        return str(value["text"])
    if "quantity" in value:
        return f"{quantity(value['quantity'])} {value['unit']}"
    if "code" in value:
        return str(value["code"]["display"])
    if "boolean" in value:
        return "yes" if value["boolean"] else "no"
    parts = value.get("components") or []
    return "; ".join(f"{p['code']['display']}: {value_text(p['value'])}" for p in parts)


templates.filters["quantity"] = quantity
templates.filters["value_text"] = value_text


class NoChartOpen(Exception):
    """A chart page asked for before a chart was opened from the search."""


def clinician(request: Request, session: Session, *, glass: bool = True) -> RequestContext:
    """The console context of a clinician (any other role is refused, and recorded);
    with the session's break-glass justification while the glass is broken."""
    ctx = context(request, session)
    if ctx.actor.role is not Role.CLINICIAN:
        raise Forbidden("the clinician's console is for clinicians")
    justification = session.clinician.get("glass")
    if glass and justification:
        ctx = replace(ctx, purpose=Purpose.ETREAT, break_glass=justification)
        request.state.context = ctx
        admit_purpose(ctx)
    return ctx


def open_patient(session: Session) -> UUID:
    chosen = session.clinician.get("patient")
    if chosen is None:
        raise NoChartOpen()
    return UUID(chosen)


async def charted(request: Request, work: Callable[[Session], Awaitable[Response]]) -> Response:
    """A clinician's page; a read the policy refuses shows why, and how to break the glass."""

    async def run(session: Session) -> Response:
        try:
            return await work(session)
        except NoChartOpen:
            session.notice = "Find a patient and open their chart first."
            return RedirectResponse(f"{BASE}/search", status_code=303)
        except Forbidden as refusal:
            if not refusal.recorded or session.actor.role is not Role.CLINICIAN:
                raise  # a role refused: the generic page, recorded there
            # The policy's reason names the rule, never what the chart holds.
            return page(
                "clinician/denied.html",
                request,
                session,
                403,
                reason=str(refusal),
                who=session.clinician.get("who"),
                glass=session.clinician.get("glass"),
            )

    return await guarded(request, run)


# --- search ---------------------------------------------------------------------------


def search_terms(form: dict[str, str]) -> dict[str, str]:
    """An MRN alone, or a family name and a birth date together."""
    mrn = form.get("mrn", "").strip()
    family = form.get("family", "").strip()
    birth_date = form.get("birth_date", "").strip()
    if mrn and not (family or birth_date):
        if len(mrn) > 64:
            raise InvalidValue("MRN", "must be at most 64 characters")
        return {"mrn": mrn}
    if family and birth_date and not mrn:
        if len(family) > 200:
            raise InvalidValue("family name", "must be at most 200 characters")
        try:
            date.fromisoformat(birth_date)
        except ValueError:
            raise InvalidValue("birth date", "must be a date such as 1984-07-12") from None
        return {"family": family, "birth_date": birth_date}
    raise InvalidValue("search", "give an MRN, or a family name and a birth date")


@router.get("/search")
async def search_page(request: Request) -> Response:
    async def show(session: Session) -> Response:
        terms: dict[str, str] = session.clinician.get("search", {})
        found = None
        if terms:
            ctx = clinician(request, session, glass=False)
            disclosed = await run_in_threadpool(
                lambda: use_cases(request).charts.search(
                    ctx,
                    mrn=terms.get("mrn"),
                    family=terms.get("family"),
                    birth_date=date.fromisoformat(terms["birth_date"])
                    if "birth_date" in terms
                    else None,
                    limit=PAGE_SIZE,
                    min_position=session.position,
                )
            )
            found = disclosed.json()
        else:
            clinician(request, session, glass=False)
        return page("clinician/search.html", request, session, terms=terms, found=found)

    return await charted(request, show)


@router.post("/search")
async def search(request: Request) -> Response:
    async def keep(session: Session) -> Response:
        form = await checked_form(request, session)
        clinician(request, session, glass=False)
        if "clear" in form:
            session.clinician.pop("search", None)
        else:
            session.clinician["search"] = search_terms(form)
        return RedirectResponse(f"{BASE}/search", status_code=303)

    return await charted(request, keep)


# --- the chart banner -----------------------------------------------------------------


@router.post("/chart")
async def open_chart(request: Request) -> Response:
    """Open a patient's chart (chosen from the search): the session keeps it, and any
    broken glass, filter or page of the chart open before is closed."""

    async def keep(session: Session) -> Response:
        form = await checked_form(request, session)
        clinician(request, session, glass=False)
        try:
            patient = str(UUID(form.get("patient_id", "").strip()))
        except ValueError:
            raise InvalidValue("patient", "must be a patient id (a UUID)") from None
        session.clinician = {"search": session.clinician.get("search", {}), "patient": patient}
        return RedirectResponse(f"{BASE}/chart", status_code=303)

    return await charted(request, keep)


def _banner(request: Request, session: Session) -> dict[str, Any]:
    ctx = clinician(request, session)
    patient = open_patient(session)
    cases = use_cases(request)
    # One disclosure, so one access record for the patient: the consent directives are a
    # page of their own (clinician_consents.py); the banner says only what the policy
    # decides from them, recording nothing, as for the memberships.
    demographics = cases.patients.demographics(ctx, patient)
    shown = demographics.json()
    decision, memberships = cases.charts.gate.explain(ctx, patient, ctx.actor.org, Content.CLINICAL)
    today = cases.charts.clock().date()
    withheld = (
        [] if decision.allowed_labels is None else sorted(set(LABELS) - decision.allowed_labels)
    )
    name = shown.get("name") or {}
    session.clinician["who"] = {
        "name": " ".join(part for part in (name.get("given"), name.get("family")) if part),
        "birth_date": shown.get("birth_date"),
        "mrn": shown.get("mrn"),
    }
    session.clinician["version"] = int(shown["version"])
    session.clinician["withheld"] = withheld
    shared = (
        None
        if not decision.permit or decision.allowed_labels is None
        else sorted(decision.allowed_labels)
    )
    return {
        "patient": shown,
        "clinical": decision,
        "withheld": withheld,
        "shared": shared,
        "memberships": [
            {"m": m, "active": m.active_on(today)}
            for m in sorted(memberships, key=lambda m: m.starts_on, reverse=True)
        ],
        "access_id": str(demographics.access_id),
    }


@router.get("/chart")
async def chart(request: Request) -> Response:
    async def show(session: Session) -> Response:
        banner = await run_in_threadpool(_banner, request, session)
        return page(
            "clinician/chart.html",
            request,
            session,
            glass=session.clinician.get("glass"),
            **banner,
        )

    return await charted(request, show)


# --- the timeline ---------------------------------------------------------------------


def timeline_filters(form: dict[str, str]) -> dict[str, str]:
    chosen = {name: form.get(name, "").strip() for name in ("kind", "since", "until")}
    chosen = {name: value for name, value in chosen.items() if value}
    if "kind" in chosen and chosen["kind"] not in KINDS:
        raise InvalidValue("kind", f"must be one of {', '.join(KINDS)}")
    for name in ("since", "until"):
        if name in chosen:
            try:
                date.fromisoformat(chosen[name])
            except ValueError:
                raise InvalidValue(name, "must be a date such as 2026-11-20") from None
    return chosen


def read_timeline(
    request: Request, session: Session, number: int, limit: int = PAGE_SIZE
) -> tuple[dict[str, Any], UUID]:
    """Page ``number`` of the open chart's timeline under the session's filters, as
    disclosed (one access record); its next page's cursor is kept in the session."""
    ctx = clinician(request, session)
    patient = open_patient(session)
    chosen: dict[str, str] = session.clinician.get("filters", {})
    cursors: list[str | None] = session.clinician.setdefault("cursors", [None])
    number = max(1, min(number, len(cursors)))
    disclosed = use_cases(request).charts.timeline(
        ctx,
        patient,
        kind=chosen.get("kind"),
        since=moment("since", chosen.get("since"), end_of_day=False),
        until=moment("until", chosen.get("until"), end_of_day=True),
        cursor=cursors[number - 1],
        limit=limit,
        min_position=session.position,
    )
    body: dict[str, Any] = disclosed.json()
    del cursors[number:]
    if body["next_cursor"]:
        cursors.append(body["next_cursor"])
    body["page"] = number
    return body, disclosed.access_id


@router.get("/timeline")
async def timeline(
    request: Request, number: Annotated[int, Query(alias="page", ge=1, le=100_000)] = 1
) -> Response:
    async def show(session: Session) -> Response:
        body, access_id = await run_in_threadpool(read_timeline, request, session, number)
        return page(
            "clinician/timeline.html",
            request,
            session,
            timeline=body,
            access_id=access_id,
            who=session.clinician.get("who"),
            glass=session.clinician.get("glass"),
            withheld=session.clinician.get("withheld"),
            chosen=session.clinician.get("filters", {}),
            kinds=KINDS,
        )

    return await charted(request, show)


@router.post("/timeline")
async def filter_timeline(request: Request) -> Response:
    async def keep(session: Session) -> Response:
        form = await checked_form(request, session)
        clinician(request, session)
        open_patient(session)
        session.clinician["filters"] = {} if "clear" in form else timeline_filters(form)
        session.clinician["cursors"] = [None]
        return RedirectResponse(f"{BASE}/timeline", status_code=303)

    return await charted(request, keep)


# --- break-glass ----------------------------------------------------------------------


@router.get("/break-glass")
async def break_glass_dialog(request: Request) -> Response:
    async def show(session: Session) -> Response:
        clinician(request, session)
        open_patient(session)
        return page(
            "clinician/break_glass.html",
            request,
            session,
            who=session.clinician.get("who"),
            glass=session.clinician.get("glass"),
            minimum=BREAK_GLASS_MIN_CHARS,
        )

    return await charted(request, show)


@router.post("/break-glass")
async def break_glass(request: Request) -> Response:
    """Break the glass on the open chart (or end it): each read while it is broken is
    recorded as an emergency access with the justification, for an auditor's review."""

    async def keep(session: Session) -> Response:
        form = await checked_form(request, session)
        clinician(request, session, glass=False)
        open_patient(session)
        if "end" in form:
            session.clinician.pop("glass", None)
            session.notice = "Emergency access ended."
            return RedirectResponse(f"{BASE}/chart", status_code=303)
        justification = " ".join(form.get("justification", "").split())
        if not substantive(justification) or len(justification) > 2000:
            raise InvalidValue(
                "justification",
                f"say why in {BREAK_GLASS_MIN_CHARS} to 2000 characters, with at least three "
                "different words",
            )
        session.clinician["glass"] = justification
        session.clinician["cursors"] = [None]
        session.notice = "Emergency access: every page of this chart is recorded for review."
        return RedirectResponse(f"{BASE}/timeline", status_code=303)

    return await charted(request, keep)
