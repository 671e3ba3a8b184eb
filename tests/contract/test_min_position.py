"""``min_position`` past the log's head is a client error, and it never poisons
read-your-writes: a view's known position only ever comes from its projector's commits.
Told on SQLite and PostgreSQL."""

from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.container import Container
from application.charts.chart_reads import TIMELINE_VIEWS
from domain.errors import InvalidValue
from tests.api.support import (
    CLINICIAN,
    assert_problem,
    container_of,
    patient_token,
    record_entry,
    register,
    settled,
    under_care,
)
from tests.conftest import ENTRY_BODY
from tests.contract import read_model_support as views_support

FAR_AHEAD = 1_000_000_000


def _timeline(client: TestClient, patient_id: str, **query: Any) -> Any:
    return client.get(f"/v1/patients/{patient_id}/timeline", params=query, headers=CLINICIAN)


def test_a_min_position_past_the_head_is_422_and_later_writes_are_still_waited_for(
    client: TestClient,
) -> None:
    # Given a patient with one entry, read back once the views have caught up
    patient_id = register(client)
    under_care(client, patient_id)
    first = record_entry(client, patient_id)
    assert _timeline(client, patient_id, **settled(client)).status_code == 200
    head = settled(client)["min_position"]

    # When a clinician asks for a position far past the log's head
    response = _timeline(client, patient_id, min_position=head + FAR_AHEAD)

    # Then it is a 422 naming min_position, answered at once
    assert_problem(response, 422, field="min_position")

    # And a later write is still waited for: with nothing projecting, its read is a 503
    container = container_of(client)
    assert container.projection_host is not None
    container.projection_host.stop()
    container.charts.views.wait_seconds = 0.5
    written = client.post(
        f"/v1/patients/{patient_id}/entries",
        json={**ENTRY_BODY, "value": {"text": "second"}},
        headers=CLINICIAN,
    )
    assert written.status_code == 201, written.text
    position = written.json()["position"]
    behind = _timeline(client, patient_id, min_position=position)
    assert_problem(behind, 503)
    assert behind.headers.get("retry-after")

    # And once the views catch up, the same read shows the write
    container.catch_up()
    page = _timeline(client, patient_id, min_position=position)
    assert page.status_code == 200, page.text
    shown = {entry["entry_id"] for entry in page.json()["entries"]}
    assert shown == {first, written.json()["entry_id"]}


def test_a_patient_token_cannot_push_a_view_past_the_head_either(client: TestClient) -> None:
    # Given a patient reading their own access log
    patient_id = register(client)
    head = settled(client)["min_position"]
    # When their token asks for a position past the head
    response = client.get(
        "/v1/me/access-log",
        params={"min_position": head + FAR_AHEAD},
        headers=patient_token(patient_id),
    )
    # Then it is a 422, and no view is known to be past the head
    assert_problem(response, 422, field="min_position")
    container = container_of(client)
    known = container.positions.refresh()
    assert max(known.values()) <= container.positions.head()


def test_waiting_for_a_position_past_the_head_leaves_the_known_positions_alone(
    container: Container,
) -> None:
    # Given views caught up with the log, and nothing projecting in the background
    patient_id = views_support.register(container, "MRN-MP1")
    views_support.under_care(container, patient_id)
    container.catch_up()
    positions = container.positions
    positions.refresh()
    head = positions.head()
    before = {name: positions.known(name) for name in TIMELINE_VIEWS}

    # When something waits (briefly) for a position past the head
    reached = positions.wait_for(TIMELINE_VIEWS, head + FAR_AHEAD, timeout=0.2)

    # Then it was not reached, and no view's known position moved past what it committed
    assert reached is False
    assert {name: positions.known(name) for name in TIMELINE_VIEWS} == before
    assert all(known <= head for known in before.values())

    # And a new write is still waited for until a projector commits it
    _, position = views_support.record(container, patient_id, text="after")
    assert positions.wait_for(TIMELINE_VIEWS, position, timeout=0.3) is False
    container.catch_up()
    assert positions.wait_for(TIMELINE_VIEWS, position, timeout=5) is True


def test_a_position_a_view_has_committed_costs_no_head_query(
    container: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given views caught up with a write
    patient_id = views_support.register(container, "MRN-MP2")
    views_support.under_care(container, patient_id)
    _, position = views_support.record(container, patient_id, text="seen")
    container.catch_up()
    container.positions.refresh()
    heads: list[int] = []
    real_head = container.positions.head

    def counted_head() -> int:
        heads.append(1)
        return real_head()

    monkeypatch.setattr(container.positions, "head", counted_head)
    views = container.charts.views

    # When a read asks for that position, Then the log's head is not read
    views.caught_up(TIMELINE_VIEWS, position)
    assert heads == []

    # And a position past every known one reads the head once, and is refused
    with pytest.raises(InvalidValue) as refused:
        views.caught_up(TIMELINE_VIEWS, real_head() + FAR_AHEAD)
    assert refused.value.field == "min_position"
    assert heads == [1]
