"""``careledger serve`` with ``CARELEDGER_ORG_DATABASES``: two organisations, each in a
database of its own, served by real processes.

On SQLite one ``serve`` process projects both stores itself. On PostgreSQL two HTTP
worker processes serve both organisations and one ``careledger worker`` projects every
organisation's database: a read that waits for its own write (``min_position``) answers
in each organisation only because that worker follows each log. Either way, org-main's
chart is nothing to org-other's staff, and each database, opened directly after the
run, holds only its own organisation's streams.
"""

import json
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import psycopg
import pytest

from tests.api.support import under_care
from tests.conftest import (
    APP_ROLE,
    ENTRY_BODY,
    OWNER_ROLE,
    REGISTER_BODY,
    auth,
    create_database,
    drop_database,
    role_url,
)
from tests.e2e.server import BIN, running_server

pytestmark = pytest.mark.e2e

MAIN, OTHER = "org-main", "org-other"


def staff(org: str) -> dict[str, Any]:
    return {
        role: auth(role, sub=f"{role}-1", org=org) for role in ("clinician", "admin", "auditor")
    }


def chart(http: httpx.Client, org: str, family: str, display: str) -> str:
    """An organisation's clinician registers a patient under care and writes an entry,
    then reads it back through the views (which only a projector running makes work)."""
    people = staff(org)
    body = {
        **REGISTER_BODY,
        "mrn": f"MRN-{family.upper()}",
        "name": {"given": "Ada", "family": family},
    }
    registered = http.post("/v1/patients", json=body, headers=people["clinician"])
    assert registered.status_code == 201, registered.text
    patient_id = str(registered.json()["id"])
    under_care(http, patient_id, admin=people["admin"])
    entry = {**ENTRY_BODY, "code": {**ENTRY_BODY["code"], "display": display}}
    written = http.post(
        f"/v1/patients/{patient_id}/entries", json=entry, headers=people["clinician"]
    )
    assert written.status_code == 201, written.text
    timeline = http.get(
        f"/v1/patients/{patient_id}/timeline",
        params={"min_position": written.json()["position"]},
        headers=people["clinician"],
    )
    assert timeline.status_code == 200 and display in timeline.text, timeline.text
    return patient_id


def head(http: httpx.Client, token: dict[str, str]) -> dict[str, int]:
    """The token's organisation's log head, as ``min_position``."""
    return {"min_position": http.get("/readyz", headers=token).json()["position"]}


def story(base: str) -> dict[str, str]:
    """org-main's chart; org-other's staff reach for it and get nothing of it."""
    with httpx.Client(base_url=base, timeout=60) as http:
        ours = chart(http, MAIN, "Quillfeather", "Resting heart rate quartz")
        theirs = chart(http, OTHER, "Brackenbury", "Resting heart rate basalt")
        others = staff(OTHER)
        for role, token in others.items():
            for path in ("", "/timeline", "/consents", "/disclosures"):
                answer = http.get(f"/v1/patients/{ours}{path}", headers=token)
                assert answer.status_code in (403, 404), (role, path, answer.text)
                assert "Quillfeather" not in answer.text and "quartz" not in answer.text
        search = {"family": "Quillfeather", "birth_date": REGISTER_BODY["birth_date"]}
        found = http.get("/v1/patients", params=search, headers=others["clinician"])
        assert found.status_code == 200 and found.json()["items"] == [], found.text
        # Their auditor's log holds their own attempts, none of them an allowed read of
        # ours; our auditor's holds nothing of theirs: their requests never reached it
        # (each read at its own database's head: the access-log view follows the commits)
        theirs_log = http.get(
            "/v1/audit/accesses",
            params={"limit": 500, **head(http, others["auditor"])},
            headers=others["auditor"],
        )
        assert theirs_log.status_code == 200, theirs_log.text
        records = theirs_log.json()["items"]
        assert not [r for r in records if r["patient_id"] == ours and r["decision"] == "allow"]
        assert {r["actor"]["org"] for r in records} == {OTHER}
        ours_log = http.get(
            "/v1/audit/accesses",
            params={"limit": 500, **head(http, staff(MAIN)["auditor"])},
            headers=staff(MAIN)["auditor"],
        )
        assert ours_log.status_code == 200, ours_log.text
        assert {r["actor"]["org"] for r in ours_log.json()["items"]} == {MAIN}
        # A valid token of an organisation with no database here: 403, naming nothing
        elsewhere = auth("clinician", sub="clinician-1", org="org-elsewhere")
        refused = http.get(f"/v1/patients/{ours}/timeline", headers=elsewhere)
        assert refused.status_code == 403, refused.text
        assert MAIN not in refused.text and OTHER not in refused.text
        for org in (MAIN, OTHER):
            verified = http.get("/v1/audit/verify", headers=staff(org)["auditor"])
            assert verified.status_code == 200 and verified.json()["ok"] is True, verified.text
    return {MAIN: ours, OTHER: theirs}


def streams(rows: list[tuple[Any, ...]]) -> set[str]:
    return {str(UUID(str(row[0]))) for row in rows}


def test_two_organisations_in_two_sqlite_files_served_by_one_process(tmp_path: Path) -> None:
    files = {org: tmp_path / f"{org}.db" for org in (MAIN, OTHER)}
    routing = {org: f"sqlite:///{path}" for org, path in files.items()}
    environment = {"CARELEDGER_ORG_DATABASES": json.dumps(routing)}
    with running_server(
        "sqlite:///unused.db", tmp_path, environment=environment, startup_seconds=60
    ) as (base, _env, _log):
        patients = story(base)
    held = {}
    for org, path in files.items():
        with sqlite3.connect(path) as conn:
            held[org] = streams(conn.execute("SELECT originator_id FROM stored_events").fetchall())
    assert patients[MAIN] in held[MAIN] and patients[MAIN] not in held[OTHER]
    assert patients[OTHER] in held[OTHER] and patients[OTHER] not in held[MAIN]
    assert not (tmp_path / "unused.db").exists(), "CARELEDGER_DATABASE_URL was opened"


@pytest.fixture
def two_databases(postgres_server: str) -> Iterator[dict[str, str]]:
    made = {org: create_database(postgres_server) for org in (MAIN, OTHER)}
    try:
        yield made
    finally:
        for url in made.values():
            drop_database(postgres_server, url)


@pytest.mark.postgres
def test_two_http_workers_and_one_projection_worker_serve_two_postgres_databases(
    two_databases: dict[str, str], tmp_path: Path
) -> None:
    routing = {
        org: {"url": role_url(url, APP_ROLE), "owner_url": role_url(url, OWNER_ROLE)}
        for org, url in two_databases.items()
    }
    environment = {"CARELEDGER_ORG_DATABASES": json.dumps(routing)}
    with running_server(
        role_url(two_databases[MAIN], APP_ROLE),
        tmp_path,
        "--workers",
        "2",
        environment=environment,
        startup_seconds=120,
    ) as (base, env, _log):
        worker_log = (tmp_path / "worker.log").open("wb")
        worker = subprocess.Popen(
            [str(BIN / "careledger"), "worker"],
            cwd=tmp_path,
            env=env,
            stdout=worker_log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 60
            while b"careledger worker: running" not in (tmp_path / "worker.log").read_bytes():
                assert worker.poll() is None, (tmp_path / "worker.log").read_text()
                assert time.monotonic() < deadline, "the worker did not start in 60 s"
                time.sleep(0.1)
            patients = story(base)
        finally:
            worker.terminate()
            try:
                worker.wait(15)
            except subprocess.TimeoutExpired:
                worker.kill()
            worker_log.close()
    held = {}
    for org, url in two_databases.items():
        with psycopg.connect(url) as conn:
            held[org] = streams(
                conn.execute("SELECT originator_id FROM careledger_events").fetchall()
            )
    assert patients[MAIN] in held[MAIN] and patients[MAIN] not in held[OTHER]
    assert patients[OTHER] in held[OTHER] and patients[OTHER] not in held[MAIN]
