"""The audit, end to end against a real server: every 2xx response that discloses PHI
has exactly one access record, whose digest is that of the bytes received.

The scenario: register, record, read, search, consent, break-glass, a denial, a
replay. Afterwards the auditor's log is compared with what the client received.
"""

import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tests.conftest import ENTRY_BODY, REGISTER_BODY, auth
from tests.e2e.server import running_server

pytestmark = pytest.mark.e2e

CLINICIAN = auth("clinician", sub="dr-e2e")
ADMIN = auth("admin", sub="admin-e2e")
AUDITOR = auth("auditor", sub="auditor-e2e")


def glass() -> dict[str, str]:
    """The clinician's headers breaking the glass, minted now (a token minted at import
    would expire before the last tests of a long run use it)."""
    return {**CLINICIAN, "X-Break-Glass": "collapsed in the waiting room, unresponsive"}


SHA256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"


def test_every_phi_response_has_exactly_one_matching_access_record(
    database_url: str, tmp_path: Path
) -> None:
    received: list[httpx.Response] = []
    with (
        running_server(database_url, tmp_path, "--with-projections") as (base, _env, _log),
        httpx.Client(base_url=base, timeout=15) as http,
    ):

        def call(method: str, path: str, **kwargs: object) -> httpx.Response:
            response = http.request(method, path, **kwargs)  # type: ignore[arg-type]
            received.append(response)
            return response

        # Register two patients and record an entry for each
        patient = call("POST", "/v1/patients", json=REGISTER_BODY, headers=CLINICIAN).json()["id"]
        stranger = call(
            "POST", "/v1/patients", json={**REGISTER_BODY, "mrn": "MRN-E2E-2"}, headers=CLINICIAN
        ).json()["id"]
        for who in (patient, stranger):
            assert (
                call(
                    "POST", f"/v1/patients/{who}/entries", json=ENTRY_BODY, headers=CLINICIAN
                ).status_code
                == 201
            )
        # One is under care; a consent directive is granted
        today = datetime.now(UTC).date()
        enrolled = call(
            "POST",
            "/v1/memberships",
            headers=ADMIN,
            json={
                "patient_id": patient,
                "plan": "individual",
                "annual_fee_cents": 0,
                "starts_on": (today - timedelta(days=1)).isoformat(),
                "ends_on": (today + timedelta(days=365)).isoformat(),
            },
        )
        granted = call(
            "POST",
            f"/v1/patients/{patient}/consents",
            headers=CLINICIAN,
            json={
                "grantee": "org-pharmacy",
                "purposes": ["TREAT"],
                "labels": [],
                "period": {"start": today.isoformat()},
                "evidence": {
                    "form_id": "f",
                    "form_version": "1",
                    "text_sha256": SHA256,
                    "method": "electronic",
                },
            },
        )
        assert enrolled.status_code == 201 and granted.status_code == 201
        seen = {"min_position": max(enrolled.json()["position"], granted.json()["position"])}
        # Reads of every kind
        reads = [
            call("GET", f"/v1/patients/{patient}", headers=CLINICIAN),
            call("GET", f"/v1/patients/{patient}/timeline", params=seen, headers=CLINICIAN),
            call("GET", "/v1/patients", params={"mrn": "MRN-0001", **seen}, headers=CLINICIAN),
            call("GET", f"/v1/patients/{patient}/consents", params=seen, headers=CLINICIAN),
            # break-glass on the patient with no membership
            call("GET", f"/v1/patients/{stranger}/timeline", params=seen, headers=glass()),
        ]
        assert [r.status_code for r in reads] == [200] * 5, [r.text for r in reads]
        # A denial: treatment read without a care relationship
        denied = call("GET", f"/v1/patients/{stranger}/timeline", params=seen, headers=CLINICIAN)
        assert denied.status_code == 403
        # A replay of the timeline page
        replayed = call(
            "POST",
            f"/v1/audit/accesses/{reads[1].headers['X-Access-Id']}/replay",
            headers=AUDITOR,
        )
        assert replayed.status_code == 200 and replayed.json()["matches"] is True

        # Then the auditor's log holds every record, once
        position = http.get("/readyz").json()["position"]  # the log's head, records included
        log: dict[str, dict[str, object]] = {}
        cursor = None
        while True:
            page = http.get(
                "/v1/audit/accesses",
                params={
                    "limit": 500,
                    "min_position": position,
                    **({"cursor": cursor} if cursor else {}),
                },
                headers=AUDITOR,
            ).json()
            for item in page["items"]:
                assert item["access_id"] not in log
                log[item["access_id"]] = item
            cursor = page["next_cursor"]
            if cursor is None:
                break

    disclosing = [r for r in received if r.status_code < 300 and "X-Access-Id" in r.headers]
    # Every response names its record except the enrolment and the consent grant (which
    # answer ids only) and the refusal
    undisclosed = {id(r) for r in received} - {id(r) for r in disclosing}
    assert undisclosed == {id(enrolled), id(granted), id(denied)}
    ids = [r.headers["X-Access-Id"] for r in disclosing]
    assert len(set(ids)) == len(ids)
    for response in disclosing:
        record = log.get(response.headers["X-Access-Id"])
        assert record is not None, response.request.url
        assert record["response_sha256"] == hashlib.sha256(response.content).hexdigest()
        assert record["decision"] == "permit"
    # And the denial is in the log, with the break-glass access and the replay
    actions = sorted((r["action"], r["decision"]) for r in log.values())
    assert ("read", "deny") in actions and ("replay", "permit") in actions
    assert any("break_glass" in r["basis"] for r in log.values())  # type: ignore[operator]
