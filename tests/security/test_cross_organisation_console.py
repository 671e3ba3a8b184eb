"""The cross-organisation matrix of the web console: every console route, called by a
console session of every foreign actor (org-other's auditor, clinician, admin, service
and patient) and of every non-auditor of ours (clinician, admin, patient), against
org-main's patient and break-glass access.

Another organisation's auditor gets only its own organisation's records: 404 where a
call addresses ours, exactly as for an unknown id, and lists that show none of ours.
Every other role is refused (403) on every auditor page. No answer leaks our PHI or
ids, and no attempt reviews our break-glass access. A new console route without a row
here fails ``test_the_console_matrix_covers_every_route`` (the patient's pages have
their rows, and their coverage test, in test_cross_organisation_console_patient.py).
"""

from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import httpx
import jwt
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from tests.api.console_support import csrf_of, signed_in
from tests.security.test_cross_organisation import UNKNOWN_ACCESS, leaks
from tests.security.test_cross_organisation_console_patient import PATIENT_ROUTES
from tests.security.two_orgs import World, settled


@dataclass(frozen=True)
class Row:
    route: str  # "METHOD /path" as the application declares it
    call: Callable[[TestClient, World, str, str], httpx.Response]  # (client, world, access, csrf)
    addresses_ours: bool  # a foreign auditor gets 404 (as for an unknown id), else 200


def _kept(path: str) -> Callable[[TestClient, World, str, str], httpx.Response]:
    """A choice of our patient POSTed to ``path`` (kept in the session), then the page
    shown with it (or the POST's refusal); the choice is cleared after."""

    def call(client: TestClient, world: World, access: str, csrf: str) -> httpx.Response:
        posted = client.post(path, data={"csrf": csrf, "patient_id": world.main.patient_id})
        if posted.status_code != 303:
            return posted
        shown = client.get(path)
        client.post(path, data={"csrf": csrf, "clear": "1"})
        return shown

    return call


def _shown_after(client: TestClient, posted: httpx.Response, page: str) -> httpx.Response:
    """The page a POST redirected to (or the POST's refusal)."""
    return client.get(page) if posted.status_code == 303 else posted


ROWS = [
    Row("GET /console/audit/accesses", lambda c, w, a, t: c.get("/console/audit/accesses"), False),
    Row("POST /console/audit/accesses", _kept("/console/audit/accesses"), True),
    Row(
        "GET /console/audit/accesses.csv",
        lambda c, w, a, t: c.get("/console/audit/accesses.csv"),
        False,
    ),
    Row(
        "GET /console/audit/accesses/{access_id}",
        lambda c, w, a, t: c.get(f"/console/audit/accesses/{a}"),
        True,
    ),
    Row(
        "POST /console/audit/accesses/{access_id}/replay",
        lambda c, w, a, t: c.post(f"/console/audit/accesses/{a}/replay", data={"csrf": t}),
        True,
    ),
    Row(
        "GET /console/audit/break-glass",
        lambda c, w, a, t: c.get("/console/audit/break-glass"),
        False,
    ),
    Row(
        "POST /console/audit/break-glass/{access_id}/review",
        lambda c, w, a, t: c.post(
            f"/console/audit/break-glass/{a}/review",
            data={"csrf": t, "outcome": "justified", "note": "not yours"},
        ),
        True,
    ),
    Row(
        "GET /console/audit/disclosures",
        lambda c, w, a, t: c.get("/console/audit/disclosures"),
        False,
    ),
    Row("POST /console/audit/disclosures", _kept("/console/audit/disclosures"), True),
    # The chain is the store's, one for every organisation, and names no record.
    Row(
        "GET /console/audit/integrity",
        lambda c, w, a, t: c.get("/console/audit/integrity"),
        False,
    ),
    Row(
        "POST /console/audit/integrity",
        lambda c, w, a, t: _shown_after(
            c, c.post("/console/audit/integrity", data={"csrf": t}), "/console/audit/integrity"
        ),
        False,
    ),
]
# Open to any signed-in actor, and showing no record: sign-in (a login link, or the
# OpenID provider's answer, tests/api/test_console_oidc.py), home, sign-out.
UNAUDITED = {
    "GET /console/login",
    "GET /console/oidc/callback",
    "GET /console/",
    "POST /console/logout",
}


def claims_of(token: Any) -> dict[str, Any]:
    """The console sign-in claims of a test bearer token (tests.conftest.Auth)."""
    decoded = jwt.decode(token["Authorization"].split()[1], options={"verify_signature": False})
    return {
        "role": decoded["role"],
        "sub": decoded["sub"],
        "org": decoded["org"],
        "patient": decoded.get("patient"),
    }


def sessions(world: World) -> dict[str, dict[str, Any]]:
    other, main = world.other, world.main
    return {
        "auditor of org-other": claims_of(other.auditor),
        "clinician of org-other": claims_of(other.clinician),
        "admin of org-other": claims_of(other.admin),
        "service of org-other": claims_of(other.service),
        "patient of org-other": claims_of(other.patient),
        "our clinician": claims_of(main.clinician),
        "our admin": claims_of(main.admin),
        "our patient": claims_of(main.patient),
    }


def console_session(world: World, claims: dict[str, Any]) -> TestClient:
    role = claims.pop("role")
    return signed_in(world.client.app, role, **claims)  # type: ignore[arg-type]


def test_foreign_and_non_auditor_sessions_get_nothing_of_ours(world: World) -> None:
    main = world.main
    failures: list[str] = []
    for name, claims in sessions(world).items():
        client = console_session(world, claims)
        csrf = csrf_of(client.get("/console/").text)
        foreign_auditor = name == "auditor of org-other"
        for row in ROWS:
            for access, label in ((main.glass_access_id, "ours"), (UNKNOWN_ACCESS, "unknown")):
                answer = row.call(client, world, access, csrf)
                expected = 403
                if foreign_auditor:
                    expected = 404 if row.addresses_ours else 200
                where = f"{name}: {row.route} ({label})"
                if answer.status_code != expected:
                    failures.append(f"{where} answered {answer.status_code}, not {expected}")
                failures += [f"{where} {leak}" for leak in leaks(world, answer)]
        if foreign_auditor:  # its own organisation's break-glass access is there
            queue = client.get("/console/audit/break-glass").text
            assert world.other.justification in queue
            assert world.other.glass_access_id in queue
    assert failures == []
    # Nothing reviewed our break-glass access, and our own auditor still sees it.
    queue = world.client.get(
        "/v1/audit/break-glass", params=settled(world.client, main.auditor), headers=main.auditor
    ).json()
    ours = [item for item in queue["items"] if item["access_id"] == main.glass_access_id]
    assert [item["review"] for item in ours] == [None]
    auditor = console_session(world, claims_of(main.auditor))
    assert main.justification in auditor.get("/console/audit/break-glass").text
    csrf = csrf_of(auditor.get("/console/").text)
    auditor.post("/console/audit/accesses", data={"csrf": csrf, "purpose": "ETREAT"})
    assert main.glass_access_id in auditor.get("/console/audit/accesses").text


def test_the_console_matrix_covers_every_route() -> None:
    stub = SimpleNamespace(settings=SimpleNamespace(max_body_bytes=1_000_000))
    app = create_app(stub)  # type: ignore[arg-type]
    found: set[str] = set()

    def visit(route: Any) -> None:  # as v1_routes does, whatever FastAPI nests them in
        path, methods = getattr(route, "path", None), getattr(route, "methods", None)
        if isinstance(path, str) and methods:
            found.update(f"{m} {path}" for m in methods if m not in ("HEAD", "OPTIONS"))
        contexts = getattr(route, "effective_route_contexts", None)
        if callable(contexts):
            for context in contexts():
                visit(context)
        for child in getattr(route, "routes", None) or ():
            visit(child)

    for route in app.routes:
        visit(route)
    # The patient's own pages (/console/me) are counted by their own matrix.
    routes = {k for k in found if k.split(" ", 1)[1].startswith("/console")} - PATIENT_ROUTES
    assert len(routes) >= 10, sorted(routes)
    from tests.security.test_cross_organisation_console_clinician import ROWS as CLINICIAN

    rows = {row.route for row in ROWS} | {row.route for row in CLINICIAN} | UNAUDITED
    assert routes - rows == set(), "console routes without a row in the console matrix"
    assert rows - routes == set(), "rows for console routes that no longer exist"


@pytest.mark.parametrize("role", ["clinician", "admin", "service", "patient"])
def test_no_other_role_reads_even_its_own_organisations_log(world: World, role: str) -> None:
    claims = claims_of(
        {"clinician": world.main.clinician, "admin": world.main.admin}.get(
            role, world.main.service if role == "service" else world.main.patient
        )
    )
    client = console_session(world, claims)
    answer = client.get("/console/audit/accesses")
    assert answer.status_code == 403
    assert leaks(world, answer) == []
