"""The clinician's trend chart: one vital sign or lab value of the open chart over time,
drawn on the server as SVG (a title and a description for assistive technology, and
the same values in a table beside it). No script, no library.

The values come from one timeline read of the code's kind (one access record, channel
``console``), so replaying that record rebuilds every value the chart drew.
"""

from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response

from api.console.clinician import BASE, charted, clinician, open_patient
from api.console.sessions import Session
from api.console.web import checked_form, page, use_cases
from domain.errors import InvalidValue

router = APIRouter(prefix=BASE, include_in_schema=False)

LOINC = "http://loinc.org"
TREND_LIMIT = 500  # the most recent values drawn are among the first 500 of the kind
# Common vital signs (observation) and lab values (lab_result), by LOINC code.
CODES: dict[str, tuple[str, str]] = {
    "8867-4": ("observation", "Heart rate"),
    "8480-6": ("observation", "Systolic blood pressure"),
    "8462-4": ("observation", "Diastolic blood pressure"),
    "9279-1": ("observation", "Respiratory rate"),
    "8310-5": ("observation", "Body temperature"),
    "59408-5": ("observation", "Oxygen saturation (pulse oximetry)"),
    "29463-7": ("observation", "Body weight"),
    "39156-5": ("observation", "Body mass index"),
    "2339-0": ("lab_result", "Glucose"),
    "4548-4": ("lab_result", "Hemoglobin A1c"),
    "2160-0": ("lab_result", "Creatinine"),
    "718-7": ("lab_result", "Hemoglobin"),
    "2093-3": ("lab_result", "Cholesterol"),
    "6298-4": ("lab_result", "Potassium"),
}
WIDTH, HEIGHT, LEFT, RIGHT, TOP, BOTTOM = 720, 280, 64, 16, 16, 48


def points(body: dict[str, Any], code: str) -> list[dict[str, Any]]:
    """The chosen code's numeric values, oldest first; entries in error are left out."""
    found = []
    for entry in body["entries"]:
        value = entry.get("value") or {}
        same = entry["code"]["system"] == LOINC and entry["code"]["code"] == code
        if not same or entry["status"] == "entered_in_error" or "quantity" not in value:
            continue
        try:
            number = Decimal(str(value["quantity"]))
        except InvalidOperation:
            continue
        found.append(
            {
                "at": entry["effective_at"],
                "value": number,
                "unit": value["unit"],
                "amended": entry["status"] == "amended",
            }
        )
    return found


def chart_geometry(found: list[dict[str, Any]]) -> dict[str, Any]:
    """Where each point goes in the SVG, and the axes' ticks."""
    if not found:
        return {}
    times = [datetime.fromisoformat(p["at"].replace("Z", "+00:00")).timestamp() for p in found]
    values = [float(p["value"]) for p in found]
    t0, t1 = min(times), max(times)
    low, high = min(values), max(values)
    pad = (high - low) * 0.1 or max(abs(high) * 0.1, 1.0)
    low, high = low - pad, high + pad
    span_t = (t1 - t0) or 1.0
    inner_w, inner_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(t: float) -> float:
        return round(LEFT + (t - t0) / span_t * inner_w if t1 > t0 else LEFT + inner_w / 2, 1)

    def y(v: float) -> float:
        return round(TOP + (high - v) / (high - low) * inner_h, 1)

    placed = [{**p, "x": x(t), "y": y(v)} for p, t, v in zip(found, times, values, strict=True)]
    ticks = [low + (high - low) * i / 4 for i in range(5)]
    return {
        "placed": placed,
        "line": " ".join(f"{p['x']},{p['y']}" for p in placed),
        "y_ticks": [{"y": y(v), "label": f"{v:.4g}"} for v in ticks],
        "x_first": placed[0],
        "x_last": placed[-1],
        "width": WIDTH,
        "height": HEIGHT,
        "left": LEFT,
        "bottom": HEIGHT - BOTTOM,
        "right": WIDTH - RIGHT,
        "top": TOP,
    }


def _trend(request: Request, session: Session) -> dict[str, Any]:
    ctx = clinician(request, session)
    patient = open_patient(session)
    code = session.clinician.get("trend")
    if code is None:
        return {}
    kind, name = CODES[code]
    disclosed = use_cases(request).charts.timeline(
        ctx, patient, kind=kind, limit=TREND_LIMIT, min_position=session.position
    )
    body = disclosed.json()
    found = points(body, code)
    units = sorted({p["unit"] for p in found})
    return {
        "code": code,
        "code_name": name,
        "found": found,
        "units": units,
        "geometry": chart_geometry(found),
        "access_id": disclosed.access_id,
        "truncated": body["next_cursor"] is not None,
    }


@router.get("/trend")
async def trend(request: Request) -> Response:
    async def show(session: Session) -> Response:
        drawn = await run_in_threadpool(_trend, request, session)
        return page(
            "clinician/trend.html",
            request,
            session,
            codes=CODES,
            who=session.clinician.get("who"),
            glass=session.clinician.get("glass"),
            limit=TREND_LIMIT,
            **drawn,
        )

    return await charted(request, show)


@router.post("/trend")
async def choose_code(request: Request) -> Response:
    async def keep(session: Session) -> Response:
        form = await checked_form(request, session)
        clinician(request, session)
        open_patient(session)
        code = form.get("code", "")
        if code not in CODES:
            raise InvalidValue("code", "choose a vital sign or a lab value from the list")
        session.clinician["trend"] = code
        return RedirectResponse(f"{BASE}/trend", status_code=303)

    return await charted(request, keep)
