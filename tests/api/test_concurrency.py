"""Concurrent writes to one chart: each is written or refused as a conflict, none is lost."""

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
from fastapi.testclient import TestClient

from tests.api.support import CLINICIAN, assert_problem, chart, records_written, register
from tests.conftest import ENTRY_BODY, REGISTER_BODY

WRITERS = 20


def test_twenty_concurrent_entries_are_each_201_or_409_and_none_is_lost(
    client: TestClient,
) -> None:
    # Given a registered patient (version 1)
    patient_id = register(client)
    url = f"/v1/patients/{patient_id}/entries"
    start = threading.Barrier(WRITERS)

    def post(n: int) -> tuple[int, dict[str, Any], str]:
        start.wait(timeout=30)
        body = {**ENTRY_BODY, "value": {"quantity": 60 + n, "unit": "/min"}}
        response = client.post(url, json=body, headers=CLINICIAN)
        return response.status_code, response.json(), response.headers.get("content-type", "")

    # When twenty clinicians' requests record an entry at the same moment
    with ThreadPoolExecutor(max_workers=WRITERS) as pool:
        outcomes = list(pool.map(post, range(WRITERS), timeout=120))

    # Then each is either created or refused as a version conflict
    statuses = [status for status, _, _ in outcomes]
    assert len(statuses) == WRITERS
    assert set(statuses) <= {201, 409}, statuses
    created = [body for status, body, _ in outcomes if status == 201]
    for status, body, content_type in outcomes:
        if status == 409:
            assert content_type == "application/problem+json" and body["status"] == 409
    # And every created entry has its own id and its own chart version
    assert len({body["entry_id"] for body in created}) == len(created)
    assert sorted(body["version"] for body in created) == list(range(2, 2 + len(created)))
    # And the chart counts exactly the created entries, one version each
    after = chart(client, patient_id)
    assert after["entry_count"] == len(created)
    assert after["version"] == 1 + len(created)


def test_concurrent_writers_pinned_to_one_version_are_one_201_and_the_rest_412(
    client: TestClient,
) -> None:
    # Given a registered patient at version 1
    patient_id = register(client)
    url = f"/v1/patients/{patient_id}/entries"
    writers = 8
    start = threading.Barrier(writers)

    def post(_: int) -> tuple[int, httpx.Response]:
        start.wait(timeout=30)
        response = client.post(url, json=ENTRY_BODY, headers={**CLINICIAN, "If-Match": '"1"'})
        return response.status_code, response

    # When several writers all claim version 1 at once
    with ThreadPoolExecutor(max_workers=writers) as pool:
        outcomes = list(pool.map(post, range(writers), timeout=120))

    # Then exactly one wins, and every other one fails its precondition
    statuses = sorted(status for status, _ in outcomes)
    assert statuses == [201] + [412] * (writers - 1), statuses
    for status, response in outcomes:
        if status == 412:
            assert_problem(response, 412)
    after = chart(client, patient_id)
    assert after["entry_count"] == 1 and after["version"] == 2


def test_concurrent_retries_with_one_idempotency_key_register_one_patient(
    client: TestClient,
) -> None:
    # Several rounds, so that a lost race is all but certain to happen at least once
    for round_ in range(10):
        # Given one registration retried by several impatient clients with the same key
        keyed = {**CLINICIAN, "Idempotency-Key": f"register-once-{round_}"}
        body = {**REGISTER_BODY, "mrn": f"MRN-RACE-{round_}"}
        before = records_written(client)
        # When they all arrive at once
        outcomes = _all_at_once(client, 12, keyed, body)
        # Then every one gets the one result, and one patient (with its consent and the
        # claim of its MRN) is written
        assert [status for status, _ in outcomes] == [201] * 12, outcomes
        assert len({(body["id"], body["position"]) for _, body in outcomes}) == 1
        assert records_written(client) - before == 3


def _all_at_once(
    client: TestClient, count: int, headers: dict[str, str], body: dict[str, Any]
) -> list[tuple[int, Any]]:
    """POST the same registration from ``count`` threads released together."""
    start = threading.Barrier(count)

    def post(_: int) -> tuple[int, Any]:
        start.wait(timeout=30)
        response = client.post("/v1/patients", json=body, headers=headers)
        return response.status_code, response.json()

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(post, range(count), timeout=120))
