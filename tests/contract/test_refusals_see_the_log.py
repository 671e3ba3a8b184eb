"""A refusal is never decided on a stale view: a read that the views would refuse is
decided again once they show every write the log held, so a membership or directive
acknowledged a moment ago admits the read that follows it, over /v1 and /fhir alike,
without a ``min_position`` (FHIR reads take none). Told on SQLite and PostgreSQL."""

import threading
from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient

from api.container import Container
from tests.api.support import (
    AUDITOR,
    CLINICIAN,
    OUTSIDER,
    assert_problem,
    directive,
    register,
    settled,
    under_care,
)
from tests.fhir.support import fhir_get

LATE = 0.3  # seconds the views are held back after the write the read depends on


def _container(client: TestClient) -> Container:
    return client.app.state.container  # type: ignore[attr-defined,no-any-return]


@pytest.fixture
def views_held_back(client: TestClient) -> Iterator[Callable[[], None]]:
    """Nothing projects in the background; once called (after the writes a read depends
    on), the views catch up ``LATE`` seconds later in another thread, while that read is
    being decided."""
    container = _container(client)
    container.catch_up()
    assert container.projection_host is not None
    container.projection_host.stop()
    timers: list[threading.Timer] = []

    def catch_up_late() -> None:
        timers.append(threading.Timer(LATE, container.catch_up))
        timers[-1].start()

    yield catch_up_late
    for timer in timers:  # never left to run against a closed store
        timer.join()


def _refusals(client: TestClient, patient_id: str) -> list[object]:
    _container(client).catch_up()  # the access log's view, whether or not a host projects
    found = client.get(
        "/v1/audit/accesses",
        params={"patient_id": patient_id, "decision": "deny", **settled(client)},
        headers=AUDITOR,
    )
    assert found.status_code == 200, found.text
    return list(found.json()["items"])


def test_a_read_right_after_the_membership_that_allows_it_is_admitted(
    client: TestClient, views_held_back: Callable[[], None]
) -> None:
    # Given a registered patient, and views that fall behind the writes that follow
    patient_id = register(client)
    # When an administrator puts the patient under care
    under_care(client, patient_id)
    views_held_back()
    # Then a clinician's read at once, with no position, is admitted over /v1 and /fhir
    timeline = client.get(f"/v1/patients/{patient_id}/timeline", headers=CLINICIAN)
    assert timeline.status_code == 200, timeline.text
    provenance = fhir_get(client, "/fhir/Provenance", {"target": f"Patient/{patient_id}"})
    assert provenance.status_code == 200, provenance.text
    # And no refusal was recorded on the way
    assert _refusals(client, patient_id) == []


def test_a_read_right_after_the_directive_that_names_an_outsider_is_admitted(
    client: TestClient, views_held_back: Callable[[], None]
) -> None:
    # Given a patient under care, and views that fall behind the writes that follow
    patient_id = register(client)
    under_care(client, patient_id)
    # When the patient names another organisation's clinician for treatment
    directive(client, patient_id, "practitioner:org-other/dr-other", ["TREAT"])
    views_held_back()
    # Then that clinician's read at once is admitted
    read = client.get(f"/v1/patients/{patient_id}/timeline", headers=OUTSIDER)
    assert read.status_code == 200, read.text


def test_a_refusal_the_log_bears_out_is_still_refused_and_recorded_once(
    client: TestClient,
) -> None:
    # Given a patient never put under care, and the views caught up
    patient_id = register(client)
    _container(client).catch_up()
    # When a clinician reads the chart
    refused = client.get(f"/v1/patients/{patient_id}/timeline", headers=CLINICIAN)
    # Then it is refused for want of a care relationship, with one refusal recorded
    assert_problem(refused, 403, detail_mentions="membership")
    assert len(_refusals(client, patient_id)) == 1
