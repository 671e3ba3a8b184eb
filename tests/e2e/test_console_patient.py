"""The patient's story in a real browser, against a real server process: a clinician reads
the patient's chart through the API; the patient signs in to the console with a login
link from `careledger token --login --role patient`, sees that access in "Who viewed my
record", authorises marketing (the evidence recorded is the SHA-256 of the text the page
shows), then revokes it, and the consents page and the API agree. Every page has no
serious or critical axe-core violation, and its screenshot goes to docs/console/ (the
SQLite run of `make screenshots`). The patient's own console pages are recorded with
channel ``console``, and every one of those records replays to the same digest."""

import hashlib
from pathlib import Path

import httpx
import pytest

from tests.api.support import membership_body
from tests.conftest import ENTRY_BODY, REGISTER_BODY, auth
from tests.e2e.browser import (
    Pages,
    chromium,
    login_link,
    require_browser,
    screenshots_for,
)
from tests.e2e.server import running_server

pytestmark = pytest.mark.e2e

CLINICIAN = auth("clinician", sub="dr-okafor")
ADMIN = auth("admin", sub="admin-e2e")
AUDITOR = auth("auditor", sub="auditor-lind")
STAFF_REQUEST_ID = "ward-7-terminal-request-0042"


def test_the_patient_sees_who_read_their_record_and_grants_then_revokes_marketing(
    database_url: str, tmp_path: Path
) -> None:
    require_browser()
    shots = screenshots_for(database_url, tmp_path)
    with (
        running_server(database_url, tmp_path, "--with-projections") as (base, env, _log),
        httpx.Client(base_url=base, timeout=15) as http,
    ):
        patient = http.post("/v1/patients", json=REGISTER_BODY, headers=CLINICIAN).json()["id"]
        membership = membership_body(patient)
        assert http.post("/v1/memberships", json=membership, headers=ADMIN).status_code == 201
        recorded = http.post(f"/v1/patients/{patient}/entries", json=ENTRY_BODY, headers=CLINICIAN)
        assert recorded.status_code == 201, recorded.text
        read = http.get(
            f"/v1/patients/{patient}/timeline",
            params={"min_position": recorded.json()["position"]},
            headers=CLINICIAN.with_headers({"X-Request-Id": STAFF_REQUEST_ID}),
        )
        assert read.status_code == 200, read.text
        access = read.headers["X-Access-Id"]
        head = {"min_position": http.get("/readyz").json()["position"]}
        assert http.get("/v1/audit/accesses", params=head, headers=AUDITOR).status_code == 200

        login = login_link(base, env, "patient", "ada-example", "--patient", patient)

        with chromium(bypass_csp=True) as browser:
            page = browser.new_page()
            pages = Pages(page, shots)
            shown = pages.shown

            page.goto(login)
            assert page.url == f"{base}/console/"
            assert page.get_by_role("heading", name="Welcome, ada-example").is_visible()
            shown("patient-home")

            # Who viewed my record: the clinician's read, without the staff's network details
            page.get_by_role("link", name="Who viewed my record").first.click()
            row = page.locator("tbody tr", has_text=access[:8])
            assert row.count() == 1
            seen = row.inner_text()
            for fact in ("dr-okafor", "org-main", "your care (treatment)", "looked at", "allowed"):
                assert fact in seen
            assert STAFF_REQUEST_ID not in page.content()
            assert "127.0.0.1" not in page.inner_text("main")
            shown("patient-accesses")

            # My consents: nothing beyond care yet
            page.get_by_role("link", name="My consents").first.click()
            assert page.get_by_text("No permission beyond your care is in force.").is_visible()
            shown("patient-consents")

            # Authorise marketing: choose, read the exact text, sign
            page.get_by_role("link", name="Authorise marketing…").click()
            page.get_by_label("Organisation that may receive it (its id)").fill("org-ads")
            shown("patient-marketing")
            page.get_by_role("button", name="Show the authorisation").click()
            assert "org-ads" not in page.url
            text = page.locator("#form-text").text_content()
            assert text is not None and "the organisation org-ads for marketing" in text
            digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
            assert page.locator("#form-sha256").inner_text() == digest
            shown("patient-authorisation")
            page.get_by_label("I have read this authorisation and I agree to it.").check()
            page.get_by_role("button", name="Sign and grant").click()
            assert page.get_by_role("status").inner_text() == (
                "Marketing authorisation granted to org-ads."
            )
            assert page.get_by_role("heading", name="In force (1)").is_visible()
            assert page.get_by_text(digest).is_visible()
            shown("patient-consents-granted")

            mine = auth("patient", sub="ada-example", patient=patient)
            now = {"min_position": http.get("/readyz").json()["position"]}
            consents = http.get(f"/v1/patients/{patient}/consents", params=now, headers=mine)
            [directive] = consents.json()["directives"]
            assert directive["evidence"]["text_sha256"] == digest
            assert (directive["grantee"], directive["purposes"]) == ("org:org-ads", ["HMARKT"])

            # Revoking needs the confirmation box ticked
            revoke = page.get_by_role("button", name="Revoke this permission")
            revoke.click()  # the browser holds the form back: the box is not ticked
            assert page.get_by_role("heading", name="In force (1)").is_visible()
            page.get_by_label("Yes, I want to revoke this permission", exact=False).check()
            revoke.click()
            assert page.get_by_role("status").inner_text() == (
                "Revoked: it no longer allows any disclosure."
            )
            assert page.get_by_role("heading", name="In force (0)").is_visible()
            past = page.locator("tbody tr")
            assert past.count() == 1 and "revoked" in past.first.inner_text()
            shown("patient-consents-revoked")

            now = {"min_position": http.get("/readyz").json()["position"]}
            after = http.get(f"/v1/patients/{patient}/consents", params=now, headers=mine).json()
            assert [(d["directive_id"], d["status"]) for d in after["directives"]] == [
                (directive["directive_id"], "revoked")
            ]
            assert directive["directive_id"] not in page.content()  # no revoke form left

            # The patient's own console reads are in their log too
            page.get_by_role("link", name="Who viewed my record").first.click()
            assert page.locator("tbody tr", has_text="in the web console").count() >= 3

        pages.assert_accessible(7)

        # Each of the patient's consents pages was recorded (channel console), and replays
        now = {"min_position": http.get("/readyz").json()["position"]}
        records = http.get(
            "/v1/audit/accesses",
            params={**now, "actor_id": "ada-example", "limit": 500},
            headers=AUDITOR,
        ).json()["items"]
        console = [r for r in records if r["channel"] == "console"]
        # The consents page before, after the grant and after the revocation (the
        # permitted consent writes are kept in the consent record itself, as the API's).
        reads = [r for r in console if r["action"] == "read"]
        assert len(reads) == len(console) == 3
        assert {r["decision"] for r in console} == {"permit"}
        assert len(records) - len(console) == 2  # this test's two reads through the API
        for record in reads:
            replayed = http.post(
                f"/v1/audit/accesses/{record['access_id']}/replay", headers=AUDITOR
            )
            assert replayed.status_code == 200, replayed.text
            assert replayed.json()["matches"] is True
            assert replayed.json()["replayed_sha256"] == record["response_sha256"]


def test_the_patients_pages_keep_to_the_content_security_policy(tmp_path: Path) -> None:
    """Without bypassing the policy: each of the patient's pages is styled by the
    package's stylesheet (the authorisation text keeps its line breaks), and the browser
    reports no violation. The policy does not depend on the store, so SQLite alone."""
    require_browser()
    store = f"sqlite:///{tmp_path / 'careledger.db'}"
    with (
        running_server(store, tmp_path) as (base, env, _log),
        httpx.Client(base_url=base, timeout=15) as http,
    ):
        patient = http.post("/v1/patients", json=REGISTER_BODY, headers=CLINICIAN).json()["id"]
        login = login_link(base, env, "patient", "p-1", "--patient", patient)
        with chromium(bypass_csp=False) as browser:
            page = browser.new_page()
            complaints: list[str] = []
            page.on("console", lambda message: complaints.append(message.text))
            page.goto(login)
            page.get_by_role("link", name="Who viewed my record").first.click()
            page.get_by_role("link", name="My consents").first.click()
            page.get_by_role("link", name="Authorise marketing…").click()
            page.get_by_label("Organisation that may receive it (its id)").fill("org-ads")
            page.get_by_role("button", name="Show the authorisation").click()
            text = page.locator("#form-text")
            assert text.evaluate("e => getComputedStyle(e).whiteSpace") == "pre-wrap"
            header = page.locator("header.bar")
            assert header.evaluate("e => getComputedStyle(e).backgroundColor") == "rgb(18, 50, 79)"
            assert [c for c in complaints if "Content Security Policy" in c] == []
