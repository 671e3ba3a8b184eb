"""The clinician's story in a real browser, against a real server process: a clinician
signs in to the console with a login link from `careledger token --login`, finds a
patient by MRN, reads the chart banner, the consent directives and the timeline, draws a
trend, records an entry and amends it (a form left open while the chart changed saves
nothing), then finds another patient by family name and birth date, is refused their
timeline (no membership) with the reason, and breaks the glass, seeing the entry a label
hid. Every page has no serious or critical axe-core violation, and its screenshot goes
to docs/console/ (the SQLite run of `make screenshots`). Then, through the API: the
clinician's access records exist with channel ``console``, each read replays to a
matching digest, and the emergency access waits in the auditor's break-glass queue."""

from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api.support import membership_body
from tests.conftest import auth
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
JUSTIFICATION = "Found unresponsive in clinic, medication and allergy history needed"
HEART_RATE = {"system": "http://loinc.org", "code": "8867-4", "display": "Heart rate"}


def registered(http: httpx.Client, mrn: str, given: str, family: str) -> str:
    body = {
        "mrn": mrn,
        "name": {"given": given, "family": family},
        "birth_date": "1961-03-14",
        "sex": "female",
        "contact": {"phone": "+1-555-0142"},
    }
    answer = http.post("/v1/patients", json=body, headers=CLINICIAN)
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


def recorded(http: httpx.Client, patient: str, body: dict[str, Any]) -> int:
    answer = http.post(f"/v1/patients/{patient}/entries", json=body, headers=CLINICIAN)
    assert answer.status_code == 201, answer.text
    return int(answer.json()["position"])


def test_the_clinician_reads_records_amends_and_breaks_the_glass(
    database_url: str, tmp_path: Path
) -> None:
    require_browser()
    shots = screenshots_for(database_url, tmp_path)
    with (
        running_server(database_url, tmp_path, "--with-projections") as (base, env, _log),
        httpx.Client(base_url=base, timeout=15) as http,
    ):
        # Grace Hopper is under the clinic's care, with three heart rates
        grace = registered(http, "MRN-E2E-0042", "Grace", "Hopper")
        membership = membership_body(grace)
        assert http.post("/v1/memberships", json=membership, headers=ADMIN).status_code == 201
        for day, rate in ((3, 88), (10, 79), (17, 71)):
            value = {"quantity": rate, "unit": "/min"}
            at = f"2026-11-{day:02d}T08:30:00Z"
            recorded(
                http,
                grace,
                {"kind": "observation", "code": HEART_RATE, "value": value, "effective_at": at},
            )
        # Edith Clarke has no membership, and an entry labelled mental health
        edith = registered(http, "MRN-E2E-0077", "Edith", "Clarke")
        hidden = {
            "kind": "condition",
            "code": {
                "system": "http://snomed.info/sct",
                "code": "35489007",
                "display": "Depressive disorder",
            },
            "effective_at": "2026-10-02T10:00:00Z",
            "labels": ["mental_health"],
        }
        recorded(http, edith, hidden)
        head = {"min_position": http.get("/readyz").json()["position"]}
        assert http.get("/v1/audit/accesses", params=head, headers=AUDITOR).status_code == 200

        login = login_link(base, env, "clinician", "dr-okafor")

        with chromium(bypass_csp=True) as browser:
            page = browser.new_page()
            pages = Pages(page, shots)
            shown = pages.shown
            urls: list[str] = []
            page.on("request", lambda request: urls.append(request.url))

            page.goto(login)
            assert page.get_by_role("heading", name="Welcome, dr-okafor").is_visible()

            # Search by MRN, and open the chart
            page.get_by_role("link", name="Find a patient").first.click()
            page.get_by_label("MRN").fill("MRN-E2E-0042")
            page.get_by_role("button", name="Search", exact=True).click()
            assert page.locator("tbody tr").count() == 1
            shown("clinician-search")
            page.get_by_role("button", name="Open chart of Grace Hopper, born 1961-03-14").click()
            assert page.get_by_role("heading", name="Grace Hopper").is_visible()
            banner = page.locator("section.banner").inner_text()
            assert "MRN-E2E-0042" in banner and "Active" in banner
            assert page.get_by_text(
                "No directive of the patient's consent shares a sensitive label with you."
            ).is_visible()
            # The banner names its one access record (the consent page has its own)
            banner_record = page.locator("p.quiet code").inner_text()
            shown("clinician-chart")

            # The consent directives, a page of its own (and one access record)
            page.get_by_role("link", name="The patient's consent directives").click()
            assert page.get_by_role("heading", name="Consent directives").is_visible()
            assert page.get_by_text("No consent directive").is_visible()
            consent_record = page.locator("p.quiet code").inner_text()
            shown("clinician-consents")

            # The timeline, filtered by kind
            page.get_by_role("navigation", name="This chart").get_by_role(
                "link", name="Timeline"
            ).click()
            assert page.locator("tbody tr").count() == 3
            page.get_by_label("Kind").select_option("lab_result")
            page.get_by_role("button", name="Filter").click()
            assert page.get_by_text("No entry matches the filter").is_visible()
            page.get_by_role("button", name="Clear").click()
            assert page.locator("tbody tr").count() == 3
            shown("clinician-timeline")

            # The heart-rate trend, drawn on the server
            page.get_by_role("link", name="Trends").click()
            page.get_by_label("Vital sign or lab value").select_option("8867-4")
            page.get_by_role("button", name="Show the trend").click()
            chart = page.get_by_role("img", name="Heart rate over time")
            assert chart.is_visible()
            assert page.locator("svg circle").count() == 3
            assert "71 /min" in page.locator("table").inner_text()
            shown("clinician-trend")

            # Record an entry
            page.get_by_role("link", name="Record an entry").click()
            page.get_by_label("Kind").select_option("observation")
            page.get_by_label("Code", exact=True).fill("29463-7")
            page.get_by_label("Name").fill("Body weight")
            page.get_by_label("When (UTC)").fill("2026-11-24T09:15")
            page.get_by_label("Number").fill("64.5")
            page.get_by_label("Unit").fill("kg")
            shown("clinician-record")
            page.get_by_role("button", name="Record the entry").click()
            assert page.get_by_role("status").inner_text().startswith("Entry recorded")
            assert page.get_by_text("64.5 kg").is_visible()

            # Amend it
            page.get_by_role("link", name="Amend Body weight of 2026-11-24").click()
            assert page.get_by_label("Number").input_value() == "64.5"
            page.get_by_label("Reason for the amendment").fill("Weighed in outdoor clothing")
            page.get_by_label("Number").fill("63.2")
            shown("clinician-amend")
            page.get_by_role("button", name="Save the amendment").click()
            assert page.get_by_role("status").inner_text().startswith("Entry amended")
            weight = page.locator("tr", has_text="Body weight")
            assert "63.2 kg" in weight.inner_text() and "Amended" in weight.inner_text()
            shown("clinician-amended")

            # A form left open while a colleague records an entry saves nothing
            page.get_by_role("link", name="Amend Body weight of 2026-11-24").click()
            page.get_by_label("Reason for the amendment").fill("Second thoughts on the scale")
            colleague = {
                "kind": "note",
                "code": {
                    "system": "http://loinc.org",
                    "code": "11506-3",
                    "display": "Progress note",
                },
                "value": {"text": "Seen by the nurse"},
                "effective_at": "2026-11-24T10:00:00Z",
            }
            recorded(http, grace, colleague)
            page.get_by_role("button", name="Save the amendment").click()
            assert page.get_by_role("alert").inner_text().startswith("Nothing was saved")
            shown("clinician-stale")

            # Another patient, by family name and birth date: no membership, so refused
            page.get_by_role("link", name="Find a patient").first.click()
            page.get_by_label("MRN").fill("")
            page.get_by_label("Family name").fill("Clarke")
            page.get_by_label("Birth date").fill("1961-03-14")
            page.get_by_role("button", name="Search", exact=True).click()
            page.get_by_role("button", name="Open chart of Edith Clarke, born 1961-03-14").click()
            assert page.get_by_text(
                "You may not read the clinical entries: no active membership"
            ).is_visible()
            page.get_by_role("navigation", name="This chart").get_by_role(
                "link", name="Timeline"
            ).click()
            assert page.get_by_role("heading", name="Not allowed").is_visible()
            assert "no active membership" in page.inner_text("main")
            assert "Depressive" not in page.content()
            shown("clinician-denied")

            # Break the glass
            page.get_by_role("link", name="break the glass", exact=True).click()
            assert page.get_by_text(
                "An auditor of org-main reviews each emergency access"
            ).is_visible()
            page.get_by_label("Justification: why the patient's care needs this now").fill(
                JUSTIFICATION
            )
            shown("clinician-break-glass")
            page.get_by_role("button", name="Break the glass and open the chart").click()
            assert page.get_by_role("status").inner_text().startswith("Emergency access")
            assert page.get_by_text(
                "Depressive disorder"
            ).is_visible()  # the label no longer hides it
            shown("clinician-emergency-timeline")
            page.get_by_role("button", name="End emergency access").click()
            assert page.get_by_role("status").inner_text() == "Emergency access ended."

        pages.assert_accessible(12)
        for url in urls:  # nothing of either patient in any address the browser asked for
            for phi in ("MRN-E2E", "Hopper", "Clarke", "1961", grace, edith, "2026-11"):
                assert phi not in url, url

        # Every page the clinician saw is recorded, through the console, and replays
        now = {"min_position": http.get("/readyz").json()["position"], "limit": 500}
        mine = http.get(
            "/v1/audit/accesses", params={**now, "actor_id": "dr-okafor"}, headers=AUDITOR
        ).json()["items"]
        console = [r for r in mine if r["channel"] == "console"]
        assert {r["action"] for r in console} >= {"search", "read", "write"}
        assert {r["patient_id"] for r in console} == {grace, edith}
        reads = [
            r for r in console if r["action"] in ("read", "search") and r["decision"] == "permit"
        ]
        assert len(reads) >= 11
        # One record per patient for each page: the chart banner's and the consent
        # page's records are separate reads, never two for one response.
        by_id = {r["access_id"]: r for r in reads}
        assert banner_record != consent_record
        assert by_id[banner_record]["patient_id"] == by_id[consent_record]["patient_id"] == grace
        for record in reads:
            replay = http.post(f"/v1/audit/accesses/{record['access_id']}/replay", headers=AUDITOR)
            assert replay.status_code == 200, replay.text
            assert replay.json()["matches"] is True, record
        writes = [r for r in console if r["action"] == "write" and r["decision"] == "permit"]
        assert len(writes) == 2  # recorded and amended; the stale form wrote nothing
        denied = [r for r in console if r["decision"] == "deny"]
        assert [(r["patient_id"], r["reason"]) for r in denied] == [
            (edith, "no active membership: clinical content needs a care relationship")
        ]
        queue = http.get("/v1/audit/break-glass", params=now, headers=AUDITOR).json()["items"]
        glass = [i for i in queue if i["patient_id"] == edith]
        assert glass and {(i["channel"], i["basis"]["break_glass"]) for i in glass} == {
            ("console", JUSTIFICATION)
        }

        # Under the real policy (no bypass): the stylesheet applies, and the server-drawn
        # SVG and the forms raise no Content Security Policy complaint
        with chromium(bypass_csp=False) as strict:
            page = strict.new_page()
            complaints: list[str] = []
            page.on("console", lambda message: complaints.append(message.text))
            page.goto(login_link(base, env, "clinician", "dr-okafor"))
            page.get_by_role("link", name="Find a patient").first.click()
            page.get_by_label("MRN").fill("MRN-E2E-0042")
            page.get_by_role("button", name="Search", exact=True).click()
            page.get_by_role("button", name="Open chart of Grace Hopper, born 1961-03-14").click()
            page.get_by_role("link", name="Trends").click()
            page.get_by_label("Vital sign or lab value").select_option("8867-4")
            page.get_by_role("button", name="Show the trend").click()
            assert page.get_by_role("img", name="Heart rate over time").is_visible()
            header = page.locator("header.bar")
            assert header.evaluate("e => getComputedStyle(e).backgroundColor") == "rgb(18, 50, 79)"
            assert [c for c in complaints if "Content Security Policy" in c] == []
