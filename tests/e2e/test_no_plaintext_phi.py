"""No plaintext PHI at rest, in logs or in errors: a canary scan against a real server.

Unique canary values go in through the API, in valid requests and in invalid ones.
Then the raw bytes of the store (the SQLite file with its WAL, or a ``pg_dump`` of the
PostgreSQL database), the server's captured logs and every error response are searched
for each canary. Any hit fails.
"""

import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from tests.api.support import under_care
from tests.conftest import auth, role_url
from tests.e2e.server import running_server

CANARIES = {
    "family": "Qzvcanaryfamily",
    "given": "Wxjcanarygiven",
    "mrn": "MRN-CNRY-88127",
    "phone": "+1-555-0199-7741",
    "email": "kqcanary@example.org",
    "note": "Canarynote pzqx sore throat since Tuesday",
    "new_family": "Vbncanaryrenamed",
}
CLINICIAN = auth("clinician", sub="dr-canary")


def _drive(base: str) -> list[httpx.Response]:
    """Exercise the API with the canaries; return every error response."""
    errors: list[httpx.Response] = []
    c = CANARIES
    with httpx.Client(base_url=base, headers=CLINICIAN, timeout=10) as http:

        def call(method: str, path: str, **kwargs: object) -> httpx.Response:
            response = http.request(method, path, **kwargs)  # type: ignore[arg-type]
            if response.status_code >= 400:
                errors.append(response)
            return response

        registered = call(
            "POST",
            "/v1/patients",
            json={
                "mrn": c["mrn"],
                "name": {"given": c["given"], "family": c["family"]},
                "birth_date": "1979-03-14",
                "sex": "female",
                "contact": {"phone": c["phone"], "email": c["email"]},
            },
        )
        assert registered.status_code == 201, registered.text
        patient = registered.json()["id"]
        entry = {
            "kind": "note",
            "code": {"system": "http://loinc.org", "code": "11506-3", "display": "Progress note"},
            "value": {"text": c["note"]},
            "effective_at": "2026-11-20T09:30:00Z",
        }
        recorded = call("POST", f"/v1/patients/{patient}/entries", json=entry)
        assert recorded.status_code == 201, recorded.text
        renamed = call(
            "PATCH",
            f"/v1/patients/{patient}",
            json={"name": {"given": c["given"], "family": c["new_family"]}},
        )
        assert renamed.status_code == 200, renamed.text
        assert c["new_family"] in call("GET", f"/v1/patients/{patient}").text
        # The read models hold the canaries too (encrypted), once projected; the
        # clinician reads the chart within a membership
        seen = {"min_position": under_care(http, patient)}
        timeline = call("GET", f"/v1/patients/{patient}/timeline", params=seen)
        assert c["note"] in timeline.text, timeline.text
        found = call("GET", "/v1/patients", params={"mrn": c["mrn"], **seen})
        assert c["new_family"] in found.text and patient in found.text, found.text
        # Invalid requests that carry the canaries in every place they could be echoed
        bad_bodies = [
            {"mrn": c["mrn"], "name": {"given": c["given"]}, "birth_date": "no", "sex": "x"},
            {"mrn": c["mrn"], "unexpected": c["note"]},
            {"mrn": [c["phone"]], "name": c["family"]},
        ]
        for body in bad_bodies:
            call("POST", "/v1/patients", json=body)
        call("POST", "/v1/patients", content=f'{{"mrn": "{c["mrn"]}", '.encode())
        call("POST", f"/v1/patients/{patient}/entries", json={**entry, "kind": c["note"]})
        call("PATCH", f"/v1/patients/{patient}", json={"name": {"family": c["family"]}})
        call(
            "PATCH",
            f"/v1/patients/{patient}",
            json={"sex": "other"},
            headers={**CLINICIAN, "If-Match": '"999"'},
        )
        call("GET", f"/v1/patients/{patient}", headers=auth("clinician", org="org-other"))
        call("GET", "/v1/patients/" + c["mrn"])
    assert len(errors) >= 8
    return errors


def _store_bytes(database_url: str, workdir: Path) -> bytes:
    if database_url.startswith("sqlite"):
        path = Path(database_url[len("sqlite:///") :])
        files = [p for p in path.parent.glob(path.name + "*") if p.is_file()]
        assert path in files
        return b"".join(p.read_bytes() for p in files)
    admin = role_url(database_url.split("?", maxsplit=1)[0], "postgres")
    parts = urlsplit(admin)
    dumped = subprocess.run(
        [
            "pg_dump",
            "--host",
            parts.hostname or "127.0.0.1",
            "--port",
            str(parts.port or 5432),
            "--username",
            "postgres",
            "--no-password",
            parts.path.lstrip("/"),
        ],
        capture_output=True,
        check=True,
        timeout=120,
    )
    assert b"careledger_events" in dumped.stdout
    assert b"view_timeline" in dumped.stdout and b"view_directory" in dumped.stdout
    return dumped.stdout


def test_canary_phi_appears_nowhere_but_authorised_responses(
    database_url: str, tmp_path: Path
) -> None:
    with running_server(database_url, tmp_path, "--with-projections") as (base, _env, log_path):
        errors = _drive(base)
    logs = log_path.read_bytes()
    assert b'"route"' in logs  # the access log was captured
    places = {
        "store": _store_bytes(database_url, tmp_path),
        "logs": logs,
        "errors": b"\n".join(r.content for r in errors),
    }
    hits = [
        f"{canary!r} in {place}"
        for place, content in places.items()
        for canary in CANARIES.values()
        if canary.encode() in content or canary.lower().encode() in content.lower()
    ]
    assert hits == []
