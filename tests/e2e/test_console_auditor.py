"""The auditor's story in a real browser, against a real server process: a clinician breaks
the glass through the API; the auditor signs in to the console with a login link from
`careledger token --login`, finds that access in the access log, replays it (the digest
matches) and reviews it, and it leaves the queue; then reads the patient's accounting of
disclosures and verifies the log's integrity. Every page has no serious or critical
axe-core violation, and its screenshot goes to docs/console/ (the SQLite run of `make
screenshots`)."""

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
JUSTIFICATION = "Unresponsive in the emergency department, allergy history needed"


def test_the_auditor_finds_replays_and_reviews_a_break_glass_access(
    database_url: str, tmp_path: Path
) -> None:
    require_browser()
    shots = screenshots_for(database_url, tmp_path)
    with (
        running_server(database_url, tmp_path, "--with-projections") as (base, env, _log),
        httpx.Client(base_url=base, timeout=15) as http,
    ):
        patient = http.post("/v1/patients", json=REGISTER_BODY, headers=CLINICIAN).json()["id"]
        recorded = http.post(f"/v1/patients/{patient}/entries", json=ENTRY_BODY, headers=CLINICIAN)
        assert recorded.status_code == 201
        seen = {"min_position": recorded.json()["position"]}
        glass = {**CLINICIAN, "X-Break-Glass": JUSTIFICATION}
        read = http.get(f"/v1/patients/{patient}/timeline", params=seen, headers=glass)
        assert read.status_code == 200, read.text
        access = read.headers["X-Access-Id"]
        # Under care later, the patient is reported to public health: an accountable disclosure
        membership = membership_body(patient)
        assert http.post("/v1/memberships", json=membership, headers=ADMIN).status_code == 201
        public_health = {**CLINICIAN, "X-Purpose-Of-Use": "PUBHLTH"}
        report = http.get(f"/v1/patients/{patient}", headers=public_health)
        assert report.status_code == 200, report.text
        head = {"min_position": http.get("/readyz").json()["position"]}
        assert http.get("/v1/audit/accesses", params=head, headers=AUDITOR).status_code == 200

        login = login_link(base, env, "auditor", "auditor-lind")

        with chromium(bypass_csp=True) as browser:
            page = browser.new_page()
            pages = Pages(page, shots)
            shown = pages.shown

            page.goto(login)
            assert page.url == f"{base}/console/"  # the code is gone from the address bar
            assert page.get_by_role("heading", name="Welcome, auditor-lind").is_visible()
            shown("home")

            # The access log, searched for the clinician's emergency accesses
            page.get_by_role("link", name="Access log").first.click()
            page.get_by_label("Actor").fill("dr-okafor")
            page.get_by_label("Purpose").select_option("ETREAT")
            page.get_by_role("button", name="Search").click()
            assert "code=" not in page.url and "dr-okafor" not in page.url
            rows = page.locator("tbody tr")
            assert rows.count() == 1
            assert "break-glass" in rows.first.inner_text()
            shown("access-log")
            with page.expect_download() as download:
                page.get_by_role("link", name="Export these results as CSV").click()
            exported = Path(download.value.path()).read_text()
            assert access in exported and JUSTIFICATION in exported

            # The record, and its replay
            page.get_by_role("link", name=f"Open access record {access}").click()
            assert page.get_by_text(JUSTIFICATION).is_visible()
            shown("access-record")
            page.get_by_role("button", name="Replay").click()
            assert page.get_by_role("status").inner_text().startswith("Digest matches")
            assert page.get_by_text("Heart rate").first.is_visible()
            shown("replay")

            # The break-glass queue: review it, and it leaves the queue
            page.get_by_role("link", name="Break-glass queue").click()
            assert page.get_by_role("heading", name="Waiting for review (1)").is_visible()
            assert page.get_by_text(JUSTIFICATION).is_visible()
            shown("break-glass-queue")
            page.get_by_label("justified", exact=True).check()
            page.get_by_label("Note (no health information)").fill("Admission confirmed by ED")
            page.get_by_role("button", name="Record review").click()
            assert page.get_by_role("status").inner_text() == "Review recorded: justified."
            assert page.get_by_role("heading", name="Waiting for review (0)").is_visible()
            assert page.get_by_text("Admission confirmed by ED").is_visible()
            shown("break-glass-reviewed")

            # The patient's accounting of disclosures: the public-health report only
            page.get_by_role("link", name="Accounting of disclosures").click()
            page.get_by_label("Patient id").fill(patient)
            page.get_by_role("button", name="Show the accounting").click()
            assert patient not in page.url
            listed = page.locator("tbody tr")
            assert listed.count() == 1
            assert "PUBHLTH" in listed.first.inner_text()
            assert report.headers["X-Access-Id"] in listed.first.inner_text()
            shown("disclosures")

            # Integrity: the head, and a verification run from the page
            page.get_by_role("link", name="Integrity").click()
            assert page.get_by_text("Not verified from the console").is_visible()
            page.get_by_role("button", name="Verify the chain now").click()
            assert page.get_by_role("status").inner_text() == "The chain was verified: intact."
            shown("integrity")

            # Signed out, the console asks for a new link; the old one is spent
            page.get_by_role("button", name="Sign out").click()
            page.goto(f"{base}/console/audit/accesses")
            assert page.get_by_role("heading", name="Sign in").is_visible()
            shown("sign-in")
            page.goto(login)
            assert "already used" in page.inner_text("main")

        pages.assert_accessible(9)

        # The review is the one the API shows; the replay is recorded as a console access
        queue = http.get("/v1/audit/break-glass", params=head, headers=AUDITOR).json()
        assert [i["review"]["outcome"] for i in queue["items"] if i["access_id"] == access] == [
            "justified"
        ]
        now = {"min_position": http.get("/readyz").json()["position"]}
        replays = http.get(
            "/v1/audit/accesses", params={**now, "action": "replay"}, headers=AUDITOR
        ).json()["items"]
        assert [(r["channel"], r["actor"]["id"]) for r in replays] == [("console", "auditor-lind")]


def test_the_stylesheet_loads_under_the_content_security_policy(tmp_path: Path) -> None:
    """Without bypassing the policy: the package's own stylesheet applies, and the
    browser reports no violation (no inline style or script anywhere). The policy does
    not depend on the store, so SQLite alone."""
    require_browser()
    store = f"sqlite:///{tmp_path / 'careledger.db'}"
    with running_server(store, tmp_path) as (base, env, _log):
        login = login_link(base, env, "auditor", "a-1")
        with chromium(bypass_csp=False) as browser:
            page = browser.new_page()
            complaints: list[str] = []
            page.on("console", lambda message: complaints.append(message.text))
            page.goto(login)
            page.get_by_role("link", name="Access log").first.click()
            header = page.locator("header.bar")
            assert header.evaluate("e => getComputedStyle(e).backgroundColor") == "rgb(18, 50, 79)"
            assert [c for c in complaints if "Content Security Policy" in c] == []
