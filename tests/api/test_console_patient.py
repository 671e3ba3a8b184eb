"""The patient's privacy pages, story by story, on both backends: a clinician reads the
chart and the patient sees that access (with no staff network detail) in "Who viewed my
record"; "My consents" is disclosed through the API's use case, with an access record
(channel ``console``) whose replay matches; a marketing authorisation is granted with
the SHA-256 of the exact text the page shows as its evidence, and revoked only with the
CSRF token and a confirmation. Browser story: tests/e2e/test_console_patient.py."""

import hashlib
import html
import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.app import create_app
from api.console import patient as patient_pages
from api.console.patient_forms import FORM_ID
from api.container import Container
from tests.api.console_support import csrf_of, signed_in
from tests.api.support import patient_token, settled, under_care
from tests.conftest import ENTRY_BODY, REGISTER_BODY, auth

CLINICIAN = auth("clinician", sub="dr-grey")
AUDITOR = auth("auditor", sub="auditor-1")
STAFF_REQUEST_ID = "staff-request-7f3a9c"
PAGES = ("/console/me/accesses", "/console/me/consents", "/console/me/consents/marketing")


@pytest.fixture
def app(container: Container) -> Iterator[FastAPI]:
    application = create_app(container)
    with TestClient(application):  # runs the lifespan: the projections follow the log
        yield application


@pytest.fixture
def api(app: FastAPI) -> TestClient:
    return TestClient(app, raise_server_exceptions=False)


def read_chart(api: TestClient) -> tuple[str, str]:
    """A patient under care, whose timeline a clinician read: (patient, access id)."""
    patient = api.post("/v1/patients", json=REGISTER_BODY, headers=CLINICIAN).json()["id"]
    under_care(api, patient)
    assert api.post(f"/v1/patients/{patient}/entries", json=ENTRY_BODY, headers=CLINICIAN)
    read = api.get(
        f"/v1/patients/{patient}/timeline",
        params=settled(api),
        headers=CLINICIAN.with_headers({"X-Request-Id": STAFF_REQUEST_ID}),
    )
    assert read.status_code == 200, read.text
    api.get("/v1/audit/accesses", params=settled(api), headers=AUDITOR)  # the view caught up
    return patient, read.headers["X-Access-Id"]


def shown_text(page: str) -> str:
    """The authorisation text between the page's <pre> tags, as the browser shows it."""
    found = re.search(r'<pre class="form-text"[^>]*>(.*?)</pre>', page, re.S)
    assert found is not None
    return html.unescape(found.group(1))


def authorised(client: TestClient, recipient: str = "org-ads") -> tuple[str, str]:
    """The marketing authorisation's text page for the recipient: (its html, csrf)."""
    choices = client.get("/console/me/consents/marketing").text
    suggested = re.search(r'name="until" value="([0-9-]+)"', choices)
    assert suggested is not None
    csrf = csrf_of(choices)
    step = client.post(
        "/console/me/consents/marketing",
        data={"csrf": csrf, "recipient": recipient, "until": suggested.group(1)},
    )
    assert step.status_code == 200, step.text
    return step.text, csrf


def granted(client: TestClient, page: str, csrf: str, **changes: str) -> Any:
    fields = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)">', page))
    return client.post(
        "/console/me/consents/marketing/grant",
        data={**fields, "csrf": csrf, "agree": "yes", **changes},
    )


def test_the_patient_sees_who_viewed_their_record_without_staff_network_details(
    app: FastAPI, api: TestClient
) -> None:
    patient, access = read_chart(api)
    staff_view = api.get(f"/v1/audit/accesses/{access}", headers=AUDITOR).json()
    assert staff_view["request_id"] == STAFF_REQUEST_ID and staff_view["source"]

    client = signed_in(app, "patient", sub="ada", patient=patient)
    page = client.get("/console/me/accesses")
    assert page.status_code == 200
    assert page.headers["cache-control"] == "no-store"
    row = next(r for r in page.text.split("<tr>") if access[:8] in r)
    for fact in ("dr-grey", "clinician", "org-main", "your care (treatment)", "looked at"):
        assert fact in row
    assert "allowed" in row
    assert STAFF_REQUEST_ID not in page.text
    assert f">{staff_view['source']}<" not in page.text
    # The same records as the API's own patient view, in the same order.
    mine = api.get(
        "/v1/me/access-log", params=settled(api), headers=patient_token(patient, "ada")
    ).json()["items"]
    assert [m["access_id"][:8] for m in mine] == re.findall(
        r"<td><code>([0-9a-f]{8})</code></td>", page.text
    )


def test_the_access_log_pages_through_every_access(
    app: FastAPI, api: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    patient, _access = read_chart(api)
    for _ in range(2):
        api.get(f"/v1/patients/{patient}", headers=CLINICIAN)
    api.get("/v1/audit/accesses", params=settled(api), headers=AUDITOR)
    every = api.get(
        "/v1/me/access-log", params={**settled(api), "limit": 500}, headers=patient_token(patient)
    ).json()["items"]
    monkeypatch.setattr(patient_pages, "PAGE_SIZE", 2)
    client = signed_in(app, "patient", patient=patient)
    seen: list[str] = []
    path: str | None = "/console/me/accesses"
    while path is not None:
        page = client.get(path).text
        seen += re.findall(r"<td><code>([0-9a-f]{8})</code></td>", page)
        older = re.search(r'<a href="(/console/me/accesses\?cursor=[^"]+)" rel="next"', page)
        path = html.unescape(older.group(1)) if older else None
    assert len(every) >= 5
    assert seen == [item["access_id"][:8] for item in every]


def test_my_consents_is_disclosed_as_the_api_does_and_its_record_replays(
    app: FastAPI, api: TestClient
) -> None:
    patient, _access = read_chart(api)
    client = signed_in(app, "patient", sub="ada", patient=patient)
    page = client.get("/console/me/consents")
    assert page.status_code == 200, page.text
    assert "No permission beyond your care is in force." in page.text
    records = api.get(
        "/v1/audit/accesses",
        params={**settled(api), "patient_id": patient, "actor_id": "ada"},
        headers=AUDITOR,
    ).json()["items"]
    assert [(r["channel"], r["action"], r["decision"]) for r in records] == [
        ("console", "read", "permit")
    ]
    assert records[0]["access_id"][:8] in page.text
    replayed = api.post(f"/v1/audit/accesses/{records[0]['access_id']}/replay", headers=AUDITOR)
    assert replayed.json()["matches"] is True
    assert replayed.json()["body"]["patient_id"] == patient


def test_marketing_is_granted_with_the_hash_of_the_text_shown_and_revoked_with_confirmation(
    app: FastAPI, api: TestClient
) -> None:
    patient, _access = read_chart(api)
    client = signed_in(app, "patient", sub="ada", patient=patient)
    page, csrf = authorised(client)
    text = shown_text(page)
    assert "org-ads" in text and "I can revoke it at any time" in text
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    assert f'id="form-sha256">{digest}<' in page  # the fingerprint shown is the text's

    # Not signed: a text that is not the one shown, no agreement, no CSRF token.
    assert granted(client, page, csrf, text_sha256="0" * 64).status_code == 422
    assert granted(client, page, csrf, agree="").status_code == 422
    assert granted(client, page, csrf, submission="").status_code == 422
    assert granted(client, page, "forged").status_code == 403
    done = granted(client, page, csrf)
    assert done.status_code == 303
    assert done.headers["location"] == "/console/me/consents"
    twice = granted(client, page, csrf)  # the same form again: a double click, a reload
    assert twice.status_code == 303

    consents = api.get(
        f"/v1/patients/{patient}/consents",
        params=settled(api),
        headers=patient_token(patient, "ada"),
    ).json()
    [directive] = consents["directives"]  # granted once
    assert directive["grantee"] == "org:org-ads"
    assert directive["purposes"] == ["HMARKT"]
    assert directive["labels"] == []
    assert directive["evidence"]["text_sha256"] == digest
    assert directive["evidence"]["form_id"] == FORM_ID
    assert directive["evidence"]["method"] == "electronic"
    assert directive["evidence"]["recorded_by"] == "ada"
    shown = client.get("/console/me/consents").text
    assert "Marketing authorisation granted to org-ads." in shown
    assert "In force (1)" in shown
    assert "The organisation org-ads may see your record for marketing" in shown
    assert digest in shown

    revoke = f"/console/me/consents/{directive['directive_id']}/revoke"
    csrf = csrf_of(shown)
    assert client.post(revoke, data={"csrf": csrf}).status_code == 422  # not confirmed
    assert client.post(revoke, data={"confirm": "yes"}).status_code == 403  # no CSRF token
    still = api.get(
        f"/v1/patients/{patient}/consents", params=settled(api), headers=patient_token(patient)
    ).json()
    assert still["directives"][0]["status"] == "active"
    assert client.post(revoke, data={"csrf": csrf, "confirm": "yes"}).status_code == 303
    after = client.get("/console/me/consents").text
    assert "Revoked: it no longer allows any disclosure." in after
    assert "In force (0)" in after and "No longer in force (1)" in after
    gone = api.get(
        f"/v1/patients/{patient}/consents", params=settled(api), headers=patient_token(patient)
    ).json()["directives"][0]
    assert gone["status"] == "revoked"
    assert gone["revocation_reason"] == patient_pages.REVOKED_HERE
    again = client.post(revoke, data={"csrf": csrf, "confirm": "yes"})
    assert again.status_code == 409  # revoked once


def test_a_bad_recipient_or_date_is_explained(app: FastAPI, api: TestClient) -> None:
    patient, _access = read_chart(api)
    client = signed_in(app, "patient", patient=patient)
    csrf = csrf_of(client.get("/console/me/consents/marketing").text)
    for form, problem in (
        ({"recipient": "<script>", "until": "2030-01-01"}, "organisation id"),
        ({"recipient": "org-ads", "until": "soon"}, "a date such as"),
        ({"recipient": "org-ads", "until": "2001-01-01"}, "today or later"),
        ({"recipient": "org-ads", "until": "2999-01-01"}, "three years"),
    ):
        answer = client.post("/console/me/consents/marketing", data={"csrf": csrf, **form})
        assert answer.status_code == 422
        assert problem in html.unescape(answer.text)
        assert "<script>" not in answer.text


@pytest.mark.parametrize(
    ("role", "claims"),
    [
        ("clinician", {"sub": "dr-grey"}),
        ("auditor", {"sub": "auditor-1"}),
        ("admin", {"sub": "admin-1"}),
        ("service", {}),
    ],
)
def test_other_roles_are_refused_the_patients_pages_and_the_refusal_is_recorded(
    app: FastAPI, api: TestClient, role: str, claims: dict[str, str]
) -> None:
    patient, _access = read_chart(api)
    client = signed_in(app, role, **claims)
    csrf = csrf_of(client.get("/console/").text)
    directive = "00000000-0000-4000-8000-0000000000d1"
    answers = [client.get(path) for path in PAGES] + [
        client.post(
            "/console/me/consents/marketing",
            data={"csrf": csrf, "recipient": "org-ads", "until": "2027-01-01"},
        ),
        client.post(
            "/console/me/consents/marketing/grant",
            data={"csrf": csrf, "recipient": "org-ads", "until": "2027-01-01", "agree": "yes"},
        ),
        client.post(
            f"/console/me/consents/{directive}/revoke", data={"csrf": csrf, "confirm": "yes"}
        ),
    ]
    assert [a.status_code for a in answers] == [403] * 6
    assert all(patient not in a.text for a in answers)
    denials = api.get(
        "/v1/audit/accesses",
        params={**settled(api), "decision": "deny", "actor_id": claims.get("sub", "actor-1")},
        headers=AUDITOR,
    ).json()["items"]
    assert len(denials) == 6
    assert {d["channel"] for d in denials} == {"console"}


def test_another_patient_sees_only_their_own_and_cannot_revoke_ours(
    app: FastAPI, api: TestClient
) -> None:
    patient, access = read_chart(api)
    ours = signed_in(app, "patient", sub="ada", patient=patient)
    page, csrf = authorised(ours)
    assert granted(ours, page, csrf).status_code == 303
    directive = api.get(
        f"/v1/patients/{patient}/consents", params=settled(api), headers=patient_token(patient)
    ).json()["directives"][0]["directive_id"]

    grace = {**REGISTER_BODY, "mrn": "MRN-0002", "name": {"given": "Grace", "family": "Other"}}
    other_id = api.post("/v1/patients", json=grace, headers=CLINICIAN).json()["id"]
    other = signed_in(app, "patient", sub="grace", patient=other_id)
    for path in PAGES:
        answer = other.get(path)
        assert answer.status_code == 200
        for secret in (patient, access[:8], directive, "org-ads"):
            assert secret not in answer.text, path
    csrf = csrf_of(other.get("/console/").text)
    revoked = other.post(
        f"/console/me/consents/{directive}/revoke", data={"csrf": csrf, "confirm": "yes"}
    )
    assert revoked.status_code == 404
    kept = api.get(
        f"/v1/patients/{patient}/consents", params=settled(api), headers=patient_token(patient)
    ).json()
    assert kept["directives"][0]["status"] == "active"


def test_the_patients_pages_are_no_store_under_the_strict_policy(
    app: FastAPI, api: TestClient
) -> None:
    patient, _access = read_chart(api)
    client = signed_in(app, "patient", patient=patient)
    authorised(client)
    for answer in [*(client.get(path) for path in PAGES), client.get("/console/")]:
        assert answer.status_code == 200
        assert answer.headers["cache-control"] == "no-store"
        assert "default-src 'none'" in answer.headers["content-security-policy"]
        assert "<script" not in answer.text and "style=" not in answer.text
        assert patient not in str(answer.url)
    assert "Who viewed my record" in client.get("/console/").text
