"""The web console's foundation, story by story: a one-time login link opens a session
in an HttpOnly, Secure, SameSite=Strict cookie; every form needs the session's CSRF
token; every page is no-store with a strict Content-Security-Policy; search terms stay
out of URLs; the replay page is disclosed through the same use case as the API, with an
access record (channel ``console``) whose own replay matches. Browser stories:
tests/e2e/test_console_auditor.py."""

import csv
import io
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.app import create_app
from api.console import sessions as console_sessions
from api.container import Container
from tests.api.console_support import browser, code_for, csrf_of, signed_in
from tests.api.support import settled, under_care
from tests.conftest import ENTRY_BODY, REGISTER_BODY, auth

CLINICIAN = auth("clinician", sub="dr-grey")
AUDITOR = auth("auditor", sub="auditor-1")
JUSTIFICATION = "unconscious on arrival, no history available"


def glass() -> dict[str, str]:
    """The clinician's headers breaking the glass, minted now (a token minted at import
    would expire before the last tests of a long run use it)."""
    return {**CLINICIAN, "X-Break-Glass": JUSTIFICATION}


@pytest.fixture
def app(container: Container) -> Iterator[FastAPI]:
    application = create_app(container)
    with TestClient(application):  # runs the lifespan: the projections follow the log
        yield application


@pytest.fixture
def api(app: FastAPI) -> TestClient:
    return TestClient(app, raise_server_exceptions=False)


def broken_glass(api: TestClient) -> tuple[str, str]:
    """A patient, and a clinician's break-glass read of their timeline: (patient, access)."""
    patient = api.post("/v1/patients", json=REGISTER_BODY, headers=CLINICIAN).json()["id"]
    assert api.post(f"/v1/patients/{patient}/entries", json=ENTRY_BODY, headers=CLINICIAN)
    read = api.get(f"/v1/patients/{patient}/timeline", params=settled(api), headers=glass())
    assert read.status_code == 200, read.text
    api.get("/v1/audit/accesses", params=settled(api), headers=AUDITOR)  # the view caught up
    return patient, read.headers["X-Access-Id"]


def test_a_login_link_opens_a_strict_session_once(app: FastAPI) -> None:
    code = code_for("auditor", sub="auditor-1")
    first = browser(app)
    answer = first.get("/console/login", params={"code": code})
    assert answer.status_code == 303
    assert answer.headers["location"] == "/console/"  # the spent code leaves the address bar
    cookie = answer.headers["set-cookie"].lower()
    for flag in ("httponly", "secure", "samesite=strict", "path=/console"):
        assert flag in cookie
    home = first.get("/console/")
    assert home.status_code == 200
    assert "auditor-1" in home.text

    again = browser(app).get("/console/login", params={"code": code})
    assert again.status_code == 401
    assert "already used" in again.text


def test_a_login_link_is_not_a_bearer_token_nor_a_bearer_token_a_login_link(
    app: FastAPI, api: TestClient
) -> None:
    code = code_for("auditor", sub="auditor-1")
    as_bearer = api.get("/v1/audit/accesses", headers={"Authorization": f"Bearer {code}"})
    assert as_bearer.status_code == 401
    bearer = AUDITOR["Authorization"].split()[1]
    as_code = browser(app).get("/console/login", params={"code": bearer})
    assert as_code.status_code == 401
    assert "set-cookie" not in as_code.headers


def test_without_a_session_every_page_asks_to_sign_in(app: FastAPI) -> None:
    anonymous = browser(app)
    for path in ("/console/", "/console/audit/accesses", "/console/audit/break-glass"):
        answer = anonymous.get(path)
        assert answer.status_code == 401
        assert "careledger token --login" in answer.text
    forged = browser(app)
    forged.cookies.set(console_sessions.COOKIE, "made-up.0000", domain="testserver")
    assert forged.get("/console/").status_code == 401


def test_plain_http_signs_in_only_from_this_machine(app: FastAPI) -> None:
    # Starlette's TestClient connects from "testclient", which is no loopback address.
    remote = TestClient(app, follow_redirects=False)
    answer = remote.get("/console/login", params={"code": code_for("auditor")})
    assert answer.status_code == 400
    assert "set-cookie" not in answer.headers


def test_an_idle_session_expires(app: FastAPI) -> None:
    now = [1_000_000.0]
    app.state.console_sessions.clock = lambda: now[0]
    client = signed_in(app, "auditor", sub="auditor-1")
    assert client.get("/console/").status_code == 200
    now[0] += console_sessions.IDLE_SECONDS - 1
    assert client.get("/console/").status_code == 200  # each page restarts the idle clock
    now[0] += console_sessions.IDLE_SECONDS
    assert client.get("/console/").status_code == 401


def test_every_page_is_no_store_under_a_strict_content_security_policy(
    app: FastAPI, api: TestClient
) -> None:
    _patient, access = broken_glass(api)
    client = signed_in(app, "auditor", sub="auditor-1")
    page = client.get(f"/console/audit/accesses/{access}")
    replay = client.post(
        f"/console/audit/accesses/{access}/replay", data={"csrf": csrf_of(page.text)}
    )
    answers = [
        client.get(path)
        for path in (
            "/console/",
            "/console/audit/accesses",
            "/console/audit/accesses.csv",
            f"/console/audit/accesses/{access}",
            "/console/audit/break-glass",
            "/console/audit/accesses/00000000-0000-4000-8000-00000000acce",  # a 404
        )
    ]
    for answer in [*answers, replay, browser(app).get("/console/audit/accesses")]:
        assert answer.headers["cache-control"] == "no-store", answer.url
        policy = answer.headers["content-security-policy"]
        assert "default-src 'none'" in policy
        assert "script-src" not in policy  # no script at all
        assert "frame-ancestors 'none'" in policy
        assert answer.headers["referrer-policy"] == "no-referrer"
    assert [a.status_code for a in answers] == [200, 200, 200, 200, 200, 404]
    assert replay.status_code == 200
    css = client.get("/console/static/console.css")
    assert css.status_code == 200
    assert "no-store" not in css.headers.get("cache-control", "")  # no PHI in a stylesheet


def test_a_form_without_the_sessions_csrf_token_changes_nothing(
    app: FastAPI, api: TestClient
) -> None:
    _patient, access = broken_glass(api)
    client = signed_in(app, "auditor", sub="auditor-1")
    review = f"/console/audit/break-glass/{access}/review"
    for form in ({"outcome": "justified"}, {"outcome": "justified", "csrf": "forged"}):
        answer = client.post(review, data=form)
        assert answer.status_code == 403
        assert "did not come from this console" in answer.text
    other = signed_in(app, "auditor", sub="auditor-2")  # another session's token
    stolen = csrf_of(other.get("/console/").text)
    assert client.post(review, data={"outcome": "justified", "csrf": stolen}).status_code == 403
    assert client.post("/console/logout", data={}).status_code == 403
    queue = api.get("/v1/audit/break-glass", params=settled(api), headers=AUDITOR).json()
    assert [item["review"] for item in queue["items"]] == [None]
    assert client.get("/console/").status_code == 200  # still signed in


def test_search_terms_are_posted_kept_in_the_session_and_exported(
    app: FastAPI, api: TestClient
) -> None:
    patient, access = broken_glass(api)
    client = signed_in(app, "auditor", sub="auditor-1")
    csrf = csrf_of(client.get("/console/audit/accesses").text)
    searched = client.post(
        "/console/audit/accesses",
        data={"csrf": csrf, "patient_id": patient, "purpose": "ETREAT", "decision": "permit"},
    )
    assert searched.status_code == 303
    assert searched.headers["location"] == "/console/audit/accesses"  # no term in the URL
    shown = client.get("/console/audit/accesses").text
    assert access in shown
    assert "1 record on this page" in shown
    exported = client.get("/console/audit/accesses.csv")
    assert exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert [(r["access_id"], r["break_glass"], r["channel"]) for r in rows] == [
        (access, JUSTIFICATION, "api")
    ]
    bad = client.post("/console/audit/accesses", data={"csrf": csrf, "patient_id": "Ada"})
    assert bad.status_code == 422
    assert "patient id" in bad.text
    cleared = client.post("/console/audit/accesses", data={"csrf": csrf, "clear": "1"})
    assert cleared.status_code == 303
    assert "(filtered)" not in client.get("/console/audit/accesses").text


def test_the_replay_page_is_itself_a_console_access_whose_replay_matches(
    app: FastAPI, api: TestClient
) -> None:
    patient, access = broken_glass(api)
    client = signed_in(app, "auditor", sub="auditor-1")
    page = client.get(f"/console/audit/accesses/{access}")
    assert JUSTIFICATION in page.text
    shown = client.post(
        f"/console/audit/accesses/{access}/replay", data={"csrf": csrf_of(page.text)}
    )
    assert shown.status_code == 200
    assert "Digest matches" in shown.text
    assert "Heart rate" in shown.text  # the rebuilt timeline, as the clinician saw it

    records = api.get(
        "/v1/audit/accesses",
        params={**settled(api), "patient_id": patient, "action": "replay"},
        headers=AUDITOR,
    ).json()["items"]
    assert [(r["channel"], r["actor"]["id"], r["decision"]) for r in records] == [
        ("console", "auditor-1", "permit")
    ]
    console_record = records[0]
    assert console_record["access_id"] in shown.text
    # Replaying the console's own record rebuilds exactly what the auditor was shown.
    again: dict[str, Any] = api.post(
        f"/v1/audit/accesses/{console_record['access_id']}/replay",
        headers=auth("auditor", sub="auditor-2"),
    ).json()
    assert again["matches"] is True
    assert again["body"]["access_id"] == access
    assert again["body"]["matches"] is True


def test_a_review_leaves_the_queue_and_shows(app: FastAPI, api: TestClient) -> None:
    _patient, access = broken_glass(api)
    client = signed_in(app, "auditor", sub="auditor-1")
    queue = client.get("/console/audit/break-glass").text
    assert "Waiting for review (1)" in queue
    assert JUSTIFICATION in queue
    done = client.post(
        f"/console/audit/break-glass/{access}/review",
        data={"csrf": csrf_of(queue), "outcome": "justified", "note": "ED admission confirmed"},
    )
    assert done.status_code == 303
    after = client.get("/console/audit/break-glass").text
    assert "Review recorded: justified." in after
    assert "Waiting for review (0)" in after
    assert "ED admission confirmed" in after
    twice = client.post(
        f"/console/audit/break-glass/{access}/review",
        data={"csrf": csrf_of(after), "outcome": "unjustified"},
    )
    assert twice.status_code == 409  # reviewed once


@pytest.mark.parametrize(
    ("role", "claims"),
    [("clinician", {"sub": "dr-grey"}), ("admin", {"sub": "admin-1"}), ("service", {})],
)
def test_other_roles_are_refused_the_auditors_pages_and_the_refusal_is_recorded(
    app: FastAPI, api: TestClient, role: str, claims: dict[str, str]
) -> None:
    _patient, access = broken_glass(api)
    client = signed_in(app, role, **claims)
    assert client.get("/console/").status_code == 200  # they are signed in
    csrf = csrf_of(client.get("/console/").text)
    for answer in (
        client.get("/console/audit/accesses"),
        client.get("/console/audit/accesses.csv"),
        client.get(f"/console/audit/accesses/{access}"),
        client.post(f"/console/audit/accesses/{access}/replay", data={"csrf": csrf}),
        client.get("/console/audit/break-glass"),
        client.post(
            f"/console/audit/break-glass/{access}/review",
            data={"csrf": csrf, "outcome": "justified"},
        ),
    ):
        assert answer.status_code == 403
        assert JUSTIFICATION not in answer.text
    denials = api.get(
        "/v1/audit/accesses",
        params={**settled(api), "decision": "deny", "actor_id": claims.get("sub", "actor-1")},
        headers=AUDITOR,
    ).json()["items"]
    assert len(denials) == 6
    assert {d["channel"] for d in denials} == {"console"}


def test_the_accounting_of_disclosures_for_a_patient_chosen_by_post(
    app: FastAPI, api: TestClient
) -> None:
    patient, _access = broken_glass(api)
    under_care(api, patient)
    report = api.get(
        f"/v1/patients/{patient}", headers={**CLINICIAN, "X-Purpose-Of-Use": "PUBHLTH"}
    )
    assert report.status_code == 200, report.text
    api.get("/v1/audit/accesses", params=settled(api), headers=AUDITOR)  # the view caught up
    client = signed_in(app, "auditor", sub="auditor-1")
    page = client.get("/console/audit/disclosures")
    assert "No disclosure" not in page.text  # no patient chosen yet
    chosen = client.post(
        "/console/audit/disclosures", data={"csrf": csrf_of(page.text), "patient_id": patient}
    )
    assert chosen.status_code == 303
    assert chosen.headers["location"] == "/console/audit/disclosures"
    shown = client.get("/console/audit/disclosures").text
    assert report.headers["X-Access-Id"] in shown  # the public-health report
    assert "1 disclosure," in shown  # the treatment and break-glass reads are exempt
    assert "PUBHLTH" in shown


def test_the_integrity_page_runs_a_verification_and_keeps_its_verdict(app: FastAPI) -> None:
    client = signed_in(app, "auditor", sub="auditor-1")
    before = client.get("/console/audit/integrity").text
    assert "Not verified from the console" in before
    ran = client.post("/console/audit/integrity", data={"csrf": csrf_of(before)})
    assert ran.status_code == 303
    after = client.get("/console/audit/integrity").text
    assert "The chain was verified: intact." in after
    assert "Intact:" in after and "by auditor-1" in after
    other_org = signed_in(app, "auditor", sub="auditor-9", org="org-other")
    assert "Not verified from the console" in other_org.get("/console/audit/integrity").text
