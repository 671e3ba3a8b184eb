"""A clinic's story against a real server process: each write's position, passed back
as ``min_position``, makes the next read show it; operators see each view's lag."""

import re
import time
from pathlib import Path

import httpx
import pytest

from tests.api.support import under_care
from tests.conftest import ENTRY_BODY, REGISTER_BODY, auth
from tests.e2e.server import running_server

pytestmark = pytest.mark.e2e

VIEWS = ("timeline", "directory", "consent_state", "roster", "access_log", "deliveries")
CLINICIAN = auth("clinician", sub="dr-http")
ADMIN = auth("admin", sub="admin-http")


def test_reads_with_min_position_show_the_writes_they_follow(
    database_url: str, tmp_path: Path
) -> None:
    with (
        running_server(database_url, tmp_path, "--with-projections") as (base, _env, log_path),
        httpx.Client(base_url=base, timeout=15) as http,
    ):
        # Given a registered patient with three entries, recorded out of time order
        registered = http.post("/v1/patients", json=REGISTER_BODY, headers=CLINICIAN)
        assert registered.status_code == 201, registered.text
        patient_id = registered.json()["id"]
        # ... under care: clinicians read a chart for treatment within a membership
        under_care(http, patient_id)
        times = ["2026-11-20T09:30:00Z", "2026-11-18T08:00:00Z", "2026-11-19T12:15:00Z"]
        position = 0
        for moment in times:
            entry = http.post(
                f"/v1/patients/{patient_id}/entries",
                json={**ENTRY_BODY, "effective_at": moment},
                headers=CLINICIAN,
            )
            assert entry.status_code == 201, entry.text
            position = entry.json()["position"]

        # When the timeline is read at the last write's position
        timeline = http.get(
            f"/v1/patients/{patient_id}/timeline",
            params={"min_position": position, "limit": 2},
            headers=CLINICIAN,
        )
        # Then it shows the entries, in effective-time order, a page at a time
        assert timeline.status_code == 200, timeline.text
        first = timeline.json()
        assert [e["effective_at"][:10] for e in first["entries"]] == ["2026-11-18", "2026-11-19"]
        rest = http.get(
            f"/v1/patients/{patient_id}/timeline",
            params={"cursor": first["next_cursor"], "limit": 2},
            headers=CLINICIAN,
        ).json()
        assert [e["effective_at"][:10] for e in rest["entries"]] == ["2026-11-20"]
        assert rest["next_cursor"] is None
        # And a cursor the API never issued is refused
        bad = http.get(
            f"/v1/patients/{patient_id}/timeline",
            params={"cursor": "not-a-cursor"},
            headers=CLINICIAN,
        )
        assert bad.status_code == 422, bad.text

        # And a search by MRN at the registration's position finds the patient
        found = http.get(
            "/v1/patients",
            params={"mrn": " mrn-0001 ", "min_position": registered.json()["position"]},
            headers=CLINICIAN,
        )
        assert found.status_code == 200, found.text
        assert [i["id"] for i in found.json()["items"]] == [patient_id]

        # When a directive is granted, Then the consents read at its position shows it
        granted = http.post(
            f"/v1/patients/{patient_id}/consents",
            headers=CLINICIAN,
            json={
                "grantee": "org-pharmacy",
                "purposes": ["TREAT"],
                "labels": [],
                "period": {"start": "2026-01-01"},
                "evidence": {
                    "form_id": "f",
                    "form_version": "1",
                    "text_sha256": "a" * 64,
                    "method": "electronic",
                },
            },
        )
        assert granted.status_code == 201, granted.text
        consents = http.get(
            f"/v1/patients/{patient_id}/consents",
            params={"min_position": granted.json()["position"]},
            headers=CLINICIAN,
        )
        assert consents.status_code == 200, consents.text
        assert consents.json()["consent_version"] == 2
        assert [d["grantee"] for d in consents.json()["directives"]] == ["org-pharmacy"]

        # When the patient is enrolled, Then the roster at that position lists them
        enrolled = http.post(
            "/v1/memberships",
            headers=ADMIN,
            json={
                "patient_id": patient_id,
                "plan": "employer",
                "sponsor_id": "acme-corp",
                "annual_fee_cents": 0,
                "starts_on": "2026-01-01",
                "ends_on": "2026-12-31",
            },
        )
        assert enrolled.status_code == 201, enrolled.text
        roster = http.get(
            "/v1/memberships",
            params={"sponsor_id": "acme-corp", "min_position": enrolled.json()["position"]},
            headers=ADMIN,
        )
        assert roster.status_code == 200, roster.text
        assert [(i["id"], i["patient_id"]) for i in roster.json()["items"]] == [
            (enrolled.json()["id"], patient_id)
        ]

        # And the operator sees every view's lag, in the metrics and in readiness
        metrics = http.get("/metrics")
        assert metrics.status_code == 200
        for view in VIEWS:
            line = re.search(
                rf'^careledger_projection_lag_events{{projection="{view}"}} (\S+)$',
                metrics.text,
                re.MULTILINE,
            )
            assert line is not None, view
            assert float(line.group(1)) >= 0
        ready = http.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert set(ready.json()["projections"]) == set(VIEWS)
        # And each view, projected in the background, soon reports no lag at all
        deadline = time.monotonic() + 15
        while any(v["lag_events"] for v in http.get("/readyz").json()["projections"].values()):
            assert time.monotonic() < deadline, http.get("/readyz").text
            time.sleep(0.1)
        assert "Traceback" not in log_path.read_text()
