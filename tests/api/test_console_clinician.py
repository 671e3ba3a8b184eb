"""The clinician's console, story by story, on both backends: a search POSTed and kept
in the session opens a chart (banner, membership, consent); the timeline is filtered
and paged with no PHI in any URL; an entry is recorded and amended through the API's
use cases, a stale form is refused and saves nothing; a denied read says which rule
applied and offers the break-glass dialog; the trend chart is SVG with a table. Every
page that shows PHI has its access records (channel ``console``) and they replay to
the bytes the page was rendered from. Browser story: tests/e2e/test_console_clinician.py.
"""

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.app import create_app
from api.container import Container
from tests.api.console_support import csrf_of, signed_in
from tests.api.support import GRANT_BODY, access_records, patient_token, settled, under_care
from tests.conftest import ENTRY_BODY, REGISTER_BODY, auth

CLINICIAN = auth("clinician", sub="dr-grey")
AUDITOR = auth("auditor", sub="auditor-1")
JUSTIFICATION = "unconscious on arrival, no history available"
SECRET = {**ENTRY_BODY, "code": {**ENTRY_BODY["code"], "display": "Panic disorder follow-up"}}


@pytest.fixture
def app(container: Container) -> Iterator[FastAPI]:
    application = create_app(container)
    with TestClient(application):  # runs the lifespan: the projections follow the log
        yield application


@pytest.fixture
def api(app: FastAPI) -> TestClient:
    return TestClient(app, raise_server_exceptions=False)


def patient_with_entries(api: TestClient, *, care: bool = True, count: int = 1) -> str:
    patient: str = api.post("/v1/patients", json=REGISTER_BODY, headers=CLINICIAN).json()["id"]
    if care:
        under_care(api, patient)
    for n in range(count):
        body = {**ENTRY_BODY, "value": {"quantity": 60 + n, "unit": "/min"}}
        body["effective_at"] = f"2026-11-{1 + n % 28:02d}T09:{n // 28:02d}:00Z"
        assert api.post(f"/v1/patients/{patient}/entries", json=body, headers=CLINICIAN)
    secret = {**SECRET, "labels": ["mental_health"], "effective_at": "2026-10-01T08:00:00Z"}
    assert api.post(f"/v1/patients/{patient}/entries", json=secret, headers=CLINICIAN)
    return patient


def opened(app: FastAPI, api: TestClient, patient: str) -> tuple[TestClient, str]:
    """A clinician's console with the patient's chart open, through the search."""
    client = signed_in(app, "clinician", sub="dr-grey")
    csrf = csrf_of(client.get("/console/").text)
    searched = client.post("/console/clinician/search", data={"csrf": csrf, "mrn": "MRN-0001"})
    assert searched.headers["location"] == "/console/clinician/search"
    results = client.get("/console/clinician/search")
    assert "Open chart of Ada Example, born 1984-07-12" in results.text
    chosen = client.post("/console/clinician/chart", data={"csrf": csrf, "patient_id": patient})
    assert chosen.headers["location"] == "/console/clinician/chart"
    return client, csrf


def records(api: TestClient, patient: str, **filters: str) -> list[dict[str, Any]]:
    return access_records(api, auditor=AUDITOR, patient_id=patient, limit="200", **filters)


def replays(api: TestClient, access_id: str) -> bool:
    answer = api.post(f"/v1/audit/accesses/{access_id}/replay", headers=AUDITOR)
    assert answer.status_code == 200, answer.text
    return bool(answer.json()["matches"])


def test_search_opens_a_chart_whose_every_page_is_recorded_and_replays(
    app: FastAPI, api: TestClient
) -> None:
    patient = patient_with_entries(api)
    client, _csrf = opened(app, api, patient)
    chart = client.get("/console/clinician/chart")
    assert chart.status_code == 200, chart.text
    assert chart.headers["cache-control"] == "no-store"
    assert "Ada Example" in chart.text and "MRN-0001" in chart.text
    assert "Active</span>: active" in chart.text  # the membership
    assert "No directive of the patient's consent shares a sensitive label" in chart.text
    assert "Entries labelled genetic, mental health, sexual health, substance use" in chart.text
    consents = client.get("/console/clinician/consents")
    assert consents.status_code == 200, consents.text
    assert "No consent directive" in consents.text and "Ada Example" in consents.text
    timeline = client.get("/console/clinician/timeline")
    assert "Heart rate" in timeline.text
    assert "Panic disorder" not in timeline.text  # hidden by its label, and not hinted at

    mine = records(api, patient, actor_id="dr-grey")
    console = [r for r in mine if r["channel"] == "console"]
    # the search hit, the banner's demographics, the consent page and the timeline
    assert sorted(r["action"] for r in console) == ["read", "read", "read", "search"]
    assert all(r["decision"] == "permit" and r["response_sha256"] for r in console)
    for record in console:
        assert record["access_id"] not in client.get("/console/").text  # nothing leaks home
        assert replays(api, record["access_id"])
    timeline_record = next(r for r in console if len(r["entry_ids"]) == 1)
    assert timeline_record["access_id"] in timeline.text


def page_records(api: TestClient, patient: str, seen: set[str]) -> list[dict[str, Any]]:
    """The clinician's console records of the patient not in ``seen`` (which it grows)."""
    new = [
        r
        for r in records(api, patient, actor_id="dr-grey")
        if r["channel"] == "console" and r["access_id"] not in seen
    ]
    seen.update(r["access_id"] for r in new)
    return new


@pytest.mark.parametrize("glass", [False, True], ids=["in-care", "break-glass"])
def test_every_chart_page_makes_one_access_record_for_its_patient_and_it_replays(
    app: FastAPI, api: TestClient, glass: bool
) -> None:
    """One response, one disclosure, one record per patient: counted page by page,
    each record named on its page, with a digest, and replaying to a match."""
    patient = patient_with_entries(api, care=not glass, count=3)
    # The patient's own directive shares their mental-health entries with the clinic.
    grant = {**GRANT_BODY, "grantee": "org:org-main", "labels": ["mental_health"]}
    granted = api.post(
        f"/v1/patients/{patient}/consents", json=grant, headers=patient_token(patient)
    )
    assert granted.status_code == 201, granted.text
    client, csrf = opened(app, api, patient)
    if glass:
        broken = client.post(
            "/console/clinician/break-glass", data={"csrf": csrf, "justification": JUSTIFICATION}
        )
        assert broken.status_code == 303
    client.post("/console/clinician/trend", data={"csrf": csrf, "code": "8867-4"})
    seen = {r["access_id"] for r in records(api, patient)}
    for path in ("chart", "consents", "timeline", "trend"):
        shown = client.get(f"/console/clinician/{path}")
        assert shown.status_code == 200, (path, shown.text)
        made = page_records(api, patient, seen)
        assert len(made) == 1, (path, made)
        record = made[0]
        assert (record["decision"], record["action"], record["patient_id"]) == (
            "permit",
            "read",
            patient,
        )
        assert record["access_id"] in shown.text and len(record["response_sha256"]) == 64
        assert replays(api, record["access_id"]), path
        if glass:
            assert record["basis"]["break_glass"] == JUSTIFICATION
    entry = next(
        r["entry_ids"][0] for r in records(api, patient, actor_id="dr-grey") if r["entry_ids"]
    )
    amend = client.get(f"/console/clinician/entries/{entry}/amend")
    assert amend.status_code == 200, amend.text
    assert [r["action"] for r in page_records(api, patient, seen)] == ["read"]
    chart = client.get("/console/clinician/chart").text
    if glass:
        assert "Under emergency access every label is shown" in chart
    else:
        assert "consent shares entries labelled mental health with you" in chart
    assert "mental health" in client.get("/console/clinician/consents").text


def test_no_phi_in_any_url_and_every_page_is_no_store(app: FastAPI, api: TestClient) -> None:
    patient = patient_with_entries(api, count=3)
    client, csrf = opened(app, api, patient)
    seen: list[httpx.Response] = []
    client.event_hooks["response"] = [seen.append]
    client.get("/console/clinician/chart")
    client.post(
        "/console/clinician/timeline",
        data={"csrf": csrf, "kind": "observation", "since": "2026-11-01"},
    )
    client.get("/console/clinician/timeline")
    client.get("/console/clinician/trend")
    client.post("/console/clinician/trend", data={"csrf": csrf, "code": "8867-4"})
    client.get("/console/clinician/trend")
    client.get("/console/clinician/break-glass")
    client.get("/console/clinician/entries/new")
    for answer in seen:
        url = str(answer.request.url) + answer.headers.get("location", "")
        for phi in ("MRN-0001", "Example", "1984", "2026-11", patient, "observation"):
            assert phi not in url
        assert answer.headers["cache-control"] == "no-store"
        assert "default-src 'none'" in answer.headers["content-security-policy"]
        assert "script-src" not in answer.headers["content-security-policy"]


def test_the_timeline_filters_and_pages_and_marks_amended_and_in_error_entries(
    app: FastAPI, api: TestClient
) -> None:
    patient = patient_with_entries(api, count=55)
    entries = api.get(
        f"/v1/patients/{patient}/timeline", params={**settled(api), "limit": 2}, headers=CLINICIAN
    ).json()["entries"]
    amend = {"reason": "transcription", "value": {"quantity": 99, "unit": "/min"}}
    assert api.post(
        f"/v1/patients/{patient}/entries/{entries[0]['entry_id']}/amendments",
        json=amend,
        headers=CLINICIAN,
    )
    assert api.post(
        f"/v1/patients/{patient}/entries/{entries[1]['entry_id']}/entered-in-error",
        json={"reason": "wrong patient"},
        headers=CLINICIAN,
    )
    client, csrf = opened(app, api, patient)
    first = client.get("/console/clinician/timeline").text
    assert "Page 1: 50 entries" in first
    assert '<span class="status amended">Amended</span>' in first
    assert '<span class="status in-error">Entered in error</span>' in first
    assert "?page=2" in first
    second = client.get("/console/clinician/timeline?page=2").text
    assert "Page 2: 5 entries" in second and "Next page" not in second
    filtered = client.post(
        "/console/clinician/timeline",
        data={"csrf": csrf, "kind": "note", "since": "2026-11-01", "until": "2026-11-30"},
    )
    assert filtered.headers["location"] == "/console/clinician/timeline"
    assert "No entry matches the filter" in client.get("/console/clinician/timeline").text
    client.post("/console/clinician/timeline", data={"csrf": csrf, "since": "2026-11-28"})
    assert "Page 1: 1 entry" in client.get("/console/clinician/timeline").text
    bad = client.post("/console/clinician/timeline", data={"csrf": csrf, "kind": "gossip"})
    assert bad.status_code == 422


def test_record_and_amend_an_entry_and_a_stale_form_saves_nothing(
    app: FastAPI, api: TestClient
) -> None:
    patient = patient_with_entries(api)
    client, csrf = opened(app, api, patient)
    client.get("/console/clinician/chart")  # the form takes the chart's version
    form = client.get("/console/clinician/entries/new").text
    version = form.split('name="version" value="')[1].split('"')[0]
    entry = {
        "csrf": csrf,
        "version": version,
        "kind": "observation",
        "system": "loinc",
        "code": "29463-7",
        "display": "Body weight",
        "effective_at": "2026-11-29T08:15",
        "quantity": "71.5",
        "unit": "kg",
    }
    done = client.post("/console/clinician/entries", data=entry)
    assert done.status_code == 303, done.text
    timeline = client.get("/console/clinician/timeline").text
    assert "Entry recorded" in timeline and "71.5 kg" in timeline
    entry_id = timeline.split("Amend Body weight")[0].rsplit("/console/clinician/entries/", 1)[1]
    entry_id = entry_id.split("/amend")[0]

    again = client.post("/console/clinician/entries", data=entry)  # the same, stale, form
    assert again.status_code == 412
    assert "Nothing was saved" in again.text

    amend_page = client.get(f"/console/clinician/entries/{entry_id}/amend?page=1")
    assert amend_page.status_code == 200
    assert 'value="71.5"' in amend_page.text
    version = amend_page.text.split('name="version" value="')[1].split('"')[0]
    amended = client.post(
        f"/console/clinician/entries/{entry_id}/amend",
        data={
            "csrf": csrf,
            "version": version,
            "reason": "scale not zeroed",
            "system": "loinc",
            "code": "29463-7",
            "display": "Body weight",
            "effective_at": "2026-11-29T08:15",
            "quantity": "70.9",
            "unit": "kg",
        },
    )
    assert amended.status_code == 303, amended.text
    shown = client.get("/console/clinician/timeline").text
    assert "Entry amended" in shown and "70.9 kg" in shown and "Amended</span>" in shown

    writes = [r for r in records(api, patient, action="write") if r["channel"] == "console"]
    assert len(writes) == 2  # the writes' own records (a write's echo is not replayed)
    assert all(r["decision"] == "permit" and r["response_sha256"] for r in writes)
    amend_read = [
        r for r in records(api, patient, action="read") if r["access_id"] in amend_page.text
    ]
    assert len(amend_read) == 1 and replays(api, amend_read[0]["access_id"])
    chart = api.get(f"/v1/patients/{patient}/timeline", params=settled(api), headers=CLINICIAN)
    weights = [e for e in chart.json()["entries"] if e["code"]["code"] == "29463-7"]
    assert [(e["value"]["quantity"], e["status"]) for e in weights] == [(70.9, "amended")]


def test_a_denied_read_says_why_and_breaking_the_glass_is_recorded_for_review(
    app: FastAPI, api: TestClient
) -> None:
    patient = patient_with_entries(api, care=False)
    client, csrf = opened(app, api, patient)
    chart = client.get("/console/clinician/chart")
    assert "None</span>: no membership" in chart.text
    assert "You may not read the clinical entries: no active membership" in chart.text
    denied = client.get("/console/clinician/timeline")
    assert denied.status_code == 403
    assert "no active membership" in denied.text
    assert "Heart rate" not in denied.text and "Panic" not in denied.text
    assert "/console/clinician/break-glass" in denied.text
    dialog = client.get("/console/clinician/break-glass").text
    assert "An auditor of org-main reviews each emergency access" in dialog
    weak = client.post(
        "/console/clinician/break-glass", data={"csrf": csrf, "justification": "x" * 30}
    )
    assert weak.status_code == 422
    broken = client.post(
        "/console/clinician/break-glass", data={"csrf": csrf, "justification": JUSTIFICATION}
    )
    assert broken.headers["location"] == "/console/clinician/timeline"
    seen = client.get("/console/clinician/timeline").text
    assert "Emergency access is on" in seen
    assert "Heart rate" in seen and "Panic disorder follow-up" in seen  # labels too
    ended = client.post("/console/clinician/break-glass", data={"csrf": csrf, "end": "1"})
    assert ended.status_code == 303
    assert client.get("/console/clinician/timeline").status_code == 403

    queue = api.get("/v1/audit/break-glass", params=settled(api), headers=AUDITOR).json()
    glass = [i for i in queue["items"] if i["patient_id"] == patient]
    assert [(i["channel"], i["basis"]["break_glass"]) for i in glass] == [
        ("console", JUSTIFICATION)
    ]
    assert replays(api, glass[0]["access_id"])
    denials = records(api, patient, decision="deny")
    assert {d["channel"] for d in denials} == {"console"}
    assert len(denials) == 2


def test_the_trend_is_svg_with_a_title_a_description_and_a_table(
    app: FastAPI, api: TestClient
) -> None:
    patient = patient_with_entries(api, count=4)
    client, csrf = opened(app, api, patient)
    client.post("/console/clinician/trend", data={"csrf": csrf, "code": "8867-4"})
    page = client.get("/console/clinician/trend").text
    assert '<svg role="img" aria-labelledby="trend-title trend-desc"' in page
    assert '<title id="trend-title">Heart rate over time</title>' in page
    assert "4 values from 2026-11-01 to 2026-11-04, between 60 and 63 /min" in page
    assert page.count("<circle") == 4
    assert page.count("<tr><td><time") == 4
    record = next(r for r in records(api, patient, actor_id="dr-grey") if len(r["entry_ids"]) == 4)
    assert record["access_id"] in page and record["channel"] == "console"
    assert replays(api, record["access_id"])
    assert (
        client.post("/console/clinician/trend", data={"csrf": csrf, "code": "1-1"}).status_code
        == 422
    )


def test_pages_need_an_open_chart_the_csrf_token_and_the_clinician_role(
    app: FastAPI, api: TestClient
) -> None:
    patient = patient_with_entries(api)
    fresh = signed_in(app, "clinician", sub="dr-grey")
    chart = fresh.get("/console/clinician/timeline")
    assert chart.status_code == 303 and chart.headers["location"] == "/console/clinician/search"
    assert fresh.post("/console/clinician/chart", data={"patient_id": patient}).status_code == 403
    for role in ("auditor", "admin", "patient"):
        claims = {"patient": patient} if role == "patient" else {}
        other = signed_in(app, role, sub=f"{role}-9", **claims)
        csrf = csrf_of(other.get("/console/").text)
        assert (
            other.post(
                "/console/clinician/chart", data={"csrf": csrf, "patient_id": patient}
            ).status_code
            == 403
        )
        assert other.get("/console/clinician/search").status_code == 403
