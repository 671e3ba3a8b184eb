"""A thousand malformed and oversized requests mixed into the writers' load: none is
answered 5xx, and the writers are unaffected, every write of theirs acknowledged
(issue 23)."""

import random
import threading
import uuid
from collections import Counter
from pathlib import Path

import httpx
import pytest

from tests.api.support import ADMIN, AUDITOR, CLINICIAN
from tests.conftest import ENTRY_BODY, REGISTER_BODY
from tests.faults.figures import Figures, recorded
from tests.faults.harness import Service, Writers, audit_verifies, service_env, written_once

pytestmark = [pytest.mark.faults, pytest.mark.e2e]

WRITERS = 4
BAD_REQUESTS = 1_000
LIMIT = 1024 * 1024  # the default CARELEDGER_MAX_BODY_BYTES


def bad_request(rng: random.Random, patient: str) -> dict[str, object]:
    """One request a careless or hostile client might send, as httpx arguments."""
    entries = f"/v1/patients/{patient}/entries"
    json_headers = {"content-type": "application/json"}
    choices: list[dict[str, object]] = [
        {"method": "POST", "url": "/v1/patients", "content": b"{", "headers": json_headers},
        {"method": "POST", "url": entries, "content": b"\xff\xfe\xfa", "headers": json_headers},
        {"method": "POST", "url": entries, "content": b"x" * (LIMIT + 1), "headers": json_headers},
        {"method": "POST", "url": entries, "json": {"kind": "x" * 100_000}},
        {"method": "POST", "url": entries, "content": b"[" * 5000 + b"]" * 5000, "headers": json_headers},
        {"method": "POST", "url": entries, "json": {**ENTRY_BODY, "value": {"quantity": 1e308}}},
        {"method": "POST", "url": entries, "json": {**ENTRY_BODY, "effective_at": "9999-99-99"}},
        {"method": "POST", "url": "/v1/patients", "json": {**REGISTER_BODY, "birth_date": "0000-00-00"}},
        {"method": "POST", "url": "/v1/patients", "json": {**REGISTER_BODY, "mrn": "\u0000" * 50}},
        {"method": "POST", "url": "/v1/patients", "content": b"<xml/>", "headers": {"content-type": "application/xml"}},
        {"method": "POST", "url": "/fhir/Patient", "content": b"{\"resourceType\": 7}", "headers": {"content-type": "application/fhir+json"}},
        {"method": "POST", "url": "/fhir", "json": {"resourceType": "Bundle", "type": "transaction", "entry": [{}] * 50}},
        {"method": "GET", "url": f"/v1/patients/{patient}/timeline", "params": {"since": "x" * 5000}},
        {"method": "GET", "url": f"/v1/patients/{patient}/timeline", "params": {"limit": "-1", "cursor": "%%%"}},
        {"method": "GET", "url": "/v1/patients/not-a-uuid"},
        {"method": "GET", "url": "/fhir/Observation", "params": {"date": "ge99999", "_count": "9" * 40}},
        {"method": "GET", "url": "/v1/audit/accesses", "params": {"since": "2026-13-45T99:99Z"}, "as": AUDITOR},
        {"method": "DELETE", "url": "/v1/patients"},
        {"method": "PATCH", "url": entries, "json": {}},
        {"method": "POST", "url": entries, "json": ENTRY_BODY, "headers": {"idempotency-key": "k" * 300}},
        {"method": "POST", "url": entries, "json": ENTRY_BODY, "headers": {"if-match": "W/\"nope\""}},
        {"method": "POST", "url": entries, "json": ENTRY_BODY, "as": None},
        {"method": "POST", "url": entries, "json": ENTRY_BODY, "headers": {"authorization": "Bearer " + "a." * 2000}},
        {"method": "POST", "url": "/v1/memberships", "json": {"patient_id": patient, "plan": "gold"}, "as": ADMIN},
    ]  # fmt: skip
    return rng.choice(choices)


def test_malformed_and_oversized_requests_never_5xx_nor_disturb_writers(tmp_path: Path) -> None:
    figures = recorded(Figures("malformed and oversized requests", BAD_REQUESTS))
    url = f"sqlite:///{tmp_path / 'careledger.db'}"
    env = service_env(url, tmp_path)
    service = Service(env, tmp_path, "serve")
    service.start()
    service.healthy_in()
    answered: Counter[int] = Counter()
    server_errors: list[str] = []
    try:
        writers = Writers(service.base, WRITERS).start()
        try:

            def send_bad(seed: int, count: int) -> None:
                rng = random.Random(seed)
                with httpx.Client(base_url=service.base, timeout=60) as client:
                    for _ in range(count):
                        request = dict(bad_request(rng, rng.choice(writers.patients)))
                        actor = request.pop("as", CLINICIAN)
                        headers = dict(actor or {})  # type: ignore[call-overload]
                        headers.update(request.pop("headers", {}))  # type: ignore[arg-type]
                        if request["method"] == "POST" and "idempotency-key" not in headers:
                            headers["idempotency-key"] = uuid.uuid4().hex
                        try:
                            response = client.request(headers=headers, **request)  # type: ignore[arg-type]
                        except httpx.RemoteProtocolError:
                            answered[0] += 1  # the server closed a hopeless request
                            continue
                        answered[response.status_code] += 1
                        if response.status_code >= 500:
                            server_errors.append(f"{request}: {response.text[:200]}")

            senders = [
                threading.Thread(target=send_bad, args=(n, BAD_REQUESTS // 4)) for n in range(4)
            ]
            for sender in senders:
                sender.start()
            for sender in senders:
                sender.join(300)
        finally:
            writers.stop()
        outcome = written_once(service.base, writers)
        figures.acknowledged, figures.lost = outcome.acknowledged, outcome.lost
        figures.duplicated = outcome.duplicated
        figures.server_errors = len(server_errors)
        refused = sum(n for s, n in answered.items() if 400 <= s < 500)
        figures.note = f"{refused} refused (4xx), {answered[201]} valid after all"
        # Then no bad request was answered 5xx
        assert sum(answered.values()) == BAD_REQUESTS
        assert not server_errors, server_errors[:5]
        # And every write of the writers was acknowledged, none lost or doubled
        assert not writers.faults, writers.faults[:5]
        assert set(writers.statuses) == {201}, writers.statuses
        assert outcome.acknowledged > 0 and outcome.lost == 0 and outcome.duplicated == 0
        audit_verifies(env, tmp_path)
        figures.passed = True
    finally:
        service.stop()
