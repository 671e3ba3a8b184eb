"""The cross-organisation matrix of the patient's console pages: every /console/me route,
called by a console session of every foreign actor (org-other's patient, clinician,
auditor, admin and service), another patient of ours, and our own staff (clinician,
auditor, admin), against org-main's patient, their accesses and their directive.

The pages are the signed-in patient's own and name no patient in their URL: another
patient gets their own pages (200) with nothing of ours, and revoking our directive is
404, exactly as for an unknown one; every other role is refused (403) on every route.
No answer leaks our PHI or ids (nor their 8-character references), and our directive
stays in force. A /console/me route without a row here fails
``test_the_patient_matrix_covers_every_patient_route``; the console's other routes are
counted in test_cross_organisation_console.py.
"""

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import httpx
from fastapi.testclient import TestClient

from api.app import create_app
from tests.api.console_support import csrf_of
from tests.security.test_cross_organisation import leaks
from tests.security.two_orgs import World, settled

UNKNOWN_DIRECTIVE = "00000000-0000-4000-8000-0000000000d1"


def _until() -> str:
    return (datetime.now(UTC).date() + timedelta(days=30)).isoformat()


def _marketing(client: TestClient, csrf: str) -> dict[str, str]:
    return {"csrf": csrf, "recipient": "org-ads", "until": _until()}


def _granted(client: TestClient, world: World, directive: str, csrf: str) -> httpx.Response:
    """The text page, then its signature (the grant's own refusal, or the page after)."""
    shown = client.post("/console/me/consents/marketing", data=_marketing(client, csrf))
    if shown.status_code != 200:
        return shown
    hidden = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)">', shown.text))
    signed = client.post("/console/me/consents/marketing/grant", data={**hidden, "agree": "yes"})
    return client.get("/console/me/consents") if signed.status_code == 303 else signed


@dataclass(frozen=True)
class Row:
    route: str  # "METHOD /path" as the application declares it
    call: Callable[
        [TestClient, World, str, str], httpx.Response
    ]  # (client, world, directive, csrf)
    addresses_ours: bool  # another patient gets 404 (as for an unknown id), else 200


PATIENT_ROWS = [
    Row("GET /console/me/accesses", lambda c, w, d, t: c.get("/console/me/accesses"), False),
    Row("GET /console/me/consents", lambda c, w, d, t: c.get("/console/me/consents"), False),
    Row(
        "GET /console/me/consents/marketing",
        lambda c, w, d, t: c.get("/console/me/consents/marketing"),
        False,
    ),
    Row(
        "POST /console/me/consents/marketing",
        lambda c, w, d, t: c.post("/console/me/consents/marketing", data=_marketing(c, t)),
        False,
    ),
    Row("POST /console/me/consents/marketing/grant", _granted, False),
    Row(
        "POST /console/me/consents/{directive_id}/revoke",
        lambda c, w, d, t: c.post(
            f"/console/me/consents/{d}/revoke", data={"csrf": t, "confirm": "yes"}
        ),
        True,
    ),
]
PATIENT_ROUTES = {row.route for row in PATIENT_ROWS}


def references(world: World) -> list[str]:
    """Our ids as the patient's pages abbreviate them."""
    return [secret[:8] for secret in world.main.secret_ids() if secret]


def test_no_one_but_the_patient_gets_anything_of_their_pages(world: World) -> None:
    from tests.security.test_cross_organisation_console import claims_of, console_session

    main, other = world.main, world.other
    actors = {
        "patient of org-other": claims_of(other.patient),
        "another patient of ours": claims_of(world.second_patient),
        "clinician of org-other": claims_of(other.clinician),
        "auditor of org-other": claims_of(other.auditor),
        "admin of org-other": claims_of(other.admin),
        "service of org-other": claims_of(other.service),
        "our clinician": claims_of(main.clinician),
        "our auditor": claims_of(main.auditor),
        "our admin": claims_of(main.admin),
    }
    failures: list[str] = []
    for name, claims in actors.items():
        a_patient = claims["role"] == "patient"
        client = console_session(world, claims)
        csrf = csrf_of(client.get("/console/").text)
        for row in PATIENT_ROWS:
            for directive, label in ((main.directive_id, "ours"), (UNKNOWN_DIRECTIVE, "unknown")):
                answer = row.call(client, world, directive, csrf)
                expected = (404 if row.addresses_ours else 200) if a_patient else 403
                where = f"{name}: {row.route} ({label})"
                if answer.status_code != expected:
                    failures.append(f"{where} answered {answer.status_code}, not {expected}")
                failures += [f"{where} {leak}" for leak in leaks(world, answer)]
                failures += [
                    f"{where} leaks reference {ref}"
                    for ref in references(world)
                    if ref in answer.text
                ]
    assert failures == []

    # Our directive is still in force, and our patient sees their own pages.
    consents = world.client.get(
        f"/v1/patients/{main.patient_id}/consents",
        params=settled(world.client, main.patient),
        headers=main.patient,
    ).json()
    ours = [d for d in consents["directives"] if d["directive_id"] == main.directive_id]
    assert [d["status"] for d in ours] == ["active"]
    patient = console_session(world, claims_of(main.patient))
    assert main.read_access_id[:8] in patient.get("/console/me/accesses").text
    assert main.directive_id in patient.get("/console/me/consents").text


def test_the_patient_matrix_covers_every_patient_route() -> None:
    stub = SimpleNamespace(settings=SimpleNamespace(max_body_bytes=1_000_000))
    app = create_app(stub)  # type: ignore[arg-type]
    found: set[str] = set()

    def visit(route: Any) -> None:  # as the console matrix does, however FastAPI nests them
        path, methods = getattr(route, "path", None), getattr(route, "methods", None)
        if isinstance(path, str) and path.startswith("/console/me") and methods:
            found.update(f"{m} {path}" for m in methods if m not in ("HEAD", "OPTIONS"))
        contexts = getattr(route, "effective_route_contexts", None)
        if callable(contexts):
            for context in contexts():
                visit(context)
        for child in getattr(route, "routes", None) or ():
            visit(child)

    for route in app.routes:
        visit(route)
    assert found == PATIENT_ROUTES
