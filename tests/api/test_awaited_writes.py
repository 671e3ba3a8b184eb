"""An entry's write awaited on the event loop (``awaited_writes``) answers as the blocking
path does: it runs only on a cached chart, and anything else (a chart not cached, a
stale copy, an Idempotency-Key, a pinned version that differs) goes the blocking way."""

import hashlib
from copy import deepcopy
from typing import Any
from uuid import UUID

import pytest
from fastapi.testclient import TestClient

from api.container import Container
from application.charts.patients import Patients
from tests.api.support import AUDITOR, CLINICIAN, chart, register, settled
from tests.conftest import ENTRY_BODY


@pytest.fixture
def blocking(monkeypatch: pytest.MonkeyPatch) -> list[UUID]:
    """The charts that ``Patients.record_entry`` (the blocking path) wrote to."""
    calls: list[UUID] = []
    original = Patients.record_entry

    def counted(self: Patients, ctx: Any, patient_id: UUID, **fields: Any) -> Any:
        calls.append(patient_id)
        return original(self, ctx, patient_id, **fields)

    monkeypatch.setattr(Patients, "record_entry", counted)
    return calls


def write_record(client: TestClient, access_id: str) -> dict[str, Any]:
    response = client.get(
        "/v1/audit/accesses", params={"action": "write", **settled(client)}, headers=AUDITOR
    )
    assert response.status_code == 200, response.text
    [record] = [r for r in response.json()["items"] if r["access_id"] == access_id]
    return record  # type: ignore[no-any-return]


def post_entry(client: TestClient, patient_id: str, **headers: str) -> Any:
    return client.post(
        f"/v1/patients/{patient_id}/entries", json=ENTRY_BODY, headers={**CLINICIAN, **headers}
    )


def test_a_cached_chart_is_written_on_the_loop_and_an_uncached_one_in_a_thread_alike(
    client: TestClient, container: Container, blocking: list[UUID]
) -> None:
    # Given a registered patient, whose chart this process has cached
    patient_id = register(client)
    # When an entry is recorded, then another once the chart is dropped from the cache
    on_loop = post_entry(client, patient_id)
    container.ledger.forget(UUID(patient_id))
    in_thread = post_entry(client, patient_id)
    # Then only the second took the blocking path
    assert blocking == [UUID(patient_id)]
    # And both are answered alike, each with its access record hashing its answer
    for response, version in ((on_loop, 2), (in_thread, 3)):
        assert response.status_code == 201, response.text
        assert response.json()["version"] == version
        assert response.headers["etag"] == f'"{version}"'
        record = write_record(client, response.headers["X-Access-Id"])
        assert record["response_sha256"] == hashlib.sha256(response.content).hexdigest()
    assert chart(client, patient_id)["entry_count"] == 2


def test_a_stale_cached_chart_is_written_again_on_fresh_state_with_one_record(
    client: TestClient, container: Container, blocking: list[UUID]
) -> None:
    # Given a chart whose cached copy is behind the store (another process wrote since)
    patient_id = register(client)
    cache = container.ledger.repository.cache
    assert cache is not None
    behind = deepcopy(cache.get(UUID(patient_id)))
    assert post_entry(client, patient_id).status_code == 201
    cache.put(UUID(patient_id), behind)
    # When an entry is recorded
    response = post_entry(client, patient_id)
    # Then the loop's save lost the race, and the blocking path wrote it on fresh state
    assert response.status_code == 201, response.text
    assert response.json()["version"] == 3
    assert blocking == [UUID(patient_id)]
    # And the refused attempt left no access record: one for the answer, hashing it
    record = write_record(client, response.headers["X-Access-Id"])
    assert record["response_sha256"] == hashlib.sha256(response.content).hexdigest()
    assert chart(client, patient_id)["entry_count"] == 2


def test_if_match_and_idempotency_keys_hold_on_either_path(
    client: TestClient, blocking: list[UUID]
) -> None:
    patient_id = register(client)
    # A pinned version that differs from the cached copy's goes the blocking way: 412
    assert post_entry(client, patient_id, **{"If-Match": '"7"'}).status_code == 412
    # The version the cached copy has is written on the loop
    assert post_entry(client, patient_id, **{"If-Match": '"1"'}).status_code == 201
    assert blocking == [UUID(patient_id)]
    # A retried Idempotency-Key is answered from its first outcome (blocking path)
    first = post_entry(client, patient_id, **{"Idempotency-Key": "k-1"})
    again = post_entry(client, patient_id, **{"Idempotency-Key": "k-1"})
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json() and again.headers["Idempotent-Replayed"] == "true"
    assert blocking == [UUID(patient_id)] * 3
    assert chart(client, patient_id)["entry_count"] == 2
