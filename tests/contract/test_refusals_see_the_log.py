"""A refusal for want of a membership or directive is not decided on a stale view: it is
weighed again once the views show every write the log held, so a membership or directive
acknowledged a moment ago admits the read that follows it, over /v1 and /fhir alike,
without a ``min_position`` (FHIR reads take none). A permit never waits, a refusal waits
a second at most, and views found stalled are not waited for again at once. Told on
SQLite and PostgreSQL."""

import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.container import Container
from application.access.chart_gate import REFUSAL_WAIT_SECONDS
from tests.api.support import (
    CLINICIAN,
    OUTSIDER,
    access_records,
    assert_problem,
    container_of,
    directive,
    patient_token,
    register,
    under_care,
)
from tests.conftest import REGISTER_BODY
from tests.fhir.support import fhir_get


@dataclass
class HeldBack:
    """The views, held back from the writes: nothing projects until the gate asks for
    them to show the log, and then another thread catches them up while it waits."""

    container: Container
    real: Callable[[Sequence[str], float], bool]
    catching_up: bool = True
    timeouts: list[float] = field(default_factory=list)
    threads: list[threading.Thread] = field(default_factory=list)

    def caught_up_with_log(self, names: Sequence[str], timeout: float) -> bool:
        self.timeouts.append(timeout)
        if self.catching_up:
            self.threads.append(threading.Thread(target=self.container.catch_up))
            self.threads[-1].start()
        return self.real(names, timeout)

    @property
    def asked(self) -> int:
        return len(self.timeouts)


@pytest.fixture
def held_back(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> Iterator[HeldBack]:
    container = container_of(client)
    container.catch_up()
    assert container.projection_host is not None
    container.projection_host.stop()
    views = container.charts.views
    held = HeldBack(container, views.caught_up_with_log)
    monkeypatch.setattr(views, "caught_up_with_log", held.caught_up_with_log)
    yield held
    for thread in held.threads:  # never left to run against a closed store
        thread.join()


def _refusals(client: TestClient, patient_id: str) -> list[dict[str, Any]]:
    container_of(client).catch_up()  # the access log's view, whether or not a host projects
    return access_records(client, patient_id=patient_id, decision="deny")


def _timeline(client: TestClient, patient_id: str) -> int:
    """The entries a clinician's timeline read shows (it must be admitted)."""
    answer = client.get(f"/v1/patients/{patient_id}/timeline", headers=CLINICIAN)
    assert answer.status_code == 200, answer.text
    return len(answer.json()["entries"])


def _provenance(client: TestClient, patient_id: str) -> int:
    """The Provenance a clinician's FHIR search finds (it must be admitted)."""
    answer = fhir_get(client, "/fhir/Provenance", {"target": f"Patient/{patient_id}"})
    assert answer.status_code == 200, answer.text
    return int(answer.json()["total"])


@pytest.mark.parametrize("read", [_timeline, _provenance], ids=["v1 timeline", "FHIR Provenance"])
def test_a_read_right_after_the_membership_that_allows_it_is_admitted(
    client: TestClient, held_back: HeldBack, read: Callable[[TestClient, str], int]
) -> None:
    # Given a patient put under care while the views are held back
    patient_id = register(client)
    under_care(client, patient_id)
    # When a clinician reads the chart at once, with no position (FHIR takes none), Then
    # it is admitted (an empty chart), having waited for the views once
    assert read(client, patient_id) == 0
    assert held_back.asked == 1
    # And no refusal is recorded
    assert _refusals(client, patient_id) == []


def test_a_read_right_after_the_directive_that_names_an_outsider_is_admitted(
    client: TestClient, held_back: HeldBack
) -> None:
    # Given a patient who names another organisation's clinician, the views held back
    patient_id = register(client)
    under_care(client, patient_id)
    directive(client, patient_id, "practitioner:org-other/dr-other", ["TREAT"])
    # When that clinician reads the chart at once, Then it is admitted, no refusal recorded
    read = client.get(f"/v1/patients/{patient_id}/timeline", headers=OUTSIDER)
    assert read.status_code == 200, read.text
    assert _refusals(client, patient_id) == []


def test_a_permit_and_a_refusal_no_view_could_turn_do_not_wait(
    client: TestClient, held_back: HeldBack
) -> None:
    # Given a patient under care, the views caught up, then held back again
    patient_id = register(client)
    under_care(client, patient_id)
    container_of(client).catch_up()
    # When the clinician reads the chart, and another patient tries to
    read = client.get(f"/v1/patients/{patient_id}/timeline", headers=CLINICIAN)
    other = register(client, {**REGISTER_BODY, "mrn": "MRN-OTHER"})
    stranger = client.get(f"/v1/patients/{patient_id}/timeline", headers=patient_token(other))
    # Then the first is admitted and the second refused, neither waiting for the views
    assert read.status_code == 200, read.text
    assert stranger.status_code in (403, 404), stranger.text
    assert held_back.asked == 0


def test_a_refusal_the_views_do_not_turn_in_time_is_answered_as_they_stand_once(
    client: TestClient, held_back: HeldBack
) -> None:
    # Given a membership the views do not show, and no projection catching them up
    held_back.catching_up = False
    patient_id = register(client)
    under_care(client, patient_id)
    # When a clinician reads the chart
    refused = client.get(f"/v1/patients/{patient_id}/timeline", headers=CLINICIAN)
    # Then, after the refusal's wait (a second, not the min_position wait's five), it is
    # refused on the views as they stand
    assert_problem(refused, 403, detail_mentions="membership")
    assert held_back.timeouts == [REFUSAL_WAIT_SECONDS]
    # And the views, found stalled, are not waited for again by the next refusal
    again = client.get(f"/v1/patients/{patient_id}/timeline", headers=CLINICIAN)
    assert_problem(again, 403, detail_mentions="membership")
    assert held_back.asked == 1
    # And each refusal is recorded once
    assert len(_refusals(client, patient_id)) == 2


def test_a_refusal_the_log_bears_out_is_still_refused_and_recorded_once(
    client: TestClient,
) -> None:
    # Given a patient never put under care, and the views caught up
    patient_id = register(client)
    container_of(client).catch_up()
    # When a clinician reads the chart
    refused = client.get(f"/v1/patients/{patient_id}/timeline", headers=CLINICIAN)
    # Then it is refused for want of a care relationship, with one refusal recorded
    assert_problem(refused, 403, detail_mentions="membership")
    assert len(_refusals(client, patient_id)) == 1
