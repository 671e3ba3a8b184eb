"""Times go out with ``Z`` now (issue 20), and a disclosure served before that, with
``+00:00``, still replays byte for byte: its access record names the render version."""

import re
import time
from datetime import date
from typing import Any
from uuid import UUID

import orjson
import pytest
from fastapi.testclient import TestClient

from application.charts import disclosure_rendering, patients
from application.consents import consents
from application.context import Actor, RequestContext, Role
from domain.values import Period
from domain.vocabulary import Purpose, SigningMethod
from tests.api.support import AUDITOR, CLINICIAN, GRANT_BODY, register, settled, under_care

ZULU = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$"


def died(client: TestClient) -> str:
    patient_id = register(client)
    under_care(client, patient_id)
    response = client.post(
        f"/v1/patients/{patient_id}/death",
        json={"deceased_at": "2026-11-01T08:00:00Z"},
        headers=CLINICIAN,
    )
    assert response.status_code == 201, response.text
    return patient_id


def replayed(client: TestClient, access_id: str) -> dict[str, Any]:
    response = client.post(f"/v1/audit/accesses/{access_id}/replay", headers=AUDITOR)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_demographics_say_deceased_at_with_z_and_replay(client: TestClient) -> None:
    patient_id = died(client)
    read = client.get(f"/v1/patients/{patient_id}", headers=CLINICIAN)
    assert read.json()["deceased_at"] == "2026-11-01T08:00:00.000000Z"
    replay = replayed(client, read.headers["X-Access-Id"])
    assert replay["matches"] and replay["body"] == read.json()


def test_demographics_served_by_render_2_replay_with_their_offset(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given demographics served as render 2 did (before times went out with Z)
    patient_id = died(client)
    monkeypatch.setattr(patients, "DEMOGRAPHICS_RENDER", 2)
    monkeypatch.setattr(
        patients,
        "render_demographics",
        lambda patient: disclosure_rendering.render_demographics(patient, 2),
    )
    old = client.get(f"/v1/patients/{patient_id}", headers=CLINICIAN)
    assert old.json()["deceased_at"] == "2026-11-01T08:00:00+00:00"
    monkeypatch.undo()
    # When an auditor replays it today, Then the same bytes come back
    replay = replayed(client, old.headers["X-Access-Id"])
    assert replay["matches"], replay
    assert orjson.dumps(replay["body"]) == old.content


def test_consents_say_their_times_with_z_and_old_renders_replay(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    patient_id = register(client)
    granted = client.post(f"/v1/patients/{patient_id}/consents", json=GRANT_BODY, headers=CLINICIAN)
    assert granted.status_code == 201, granted.text
    now = client.get(
        f"/v1/patients/{patient_id}/consents", params=settled(client), headers=CLINICIAN
    )
    assert now.json()["directives"][0]["granted_at"].endswith("Z")
    # A read served by render 1 (as before the render version was recorded)
    monkeypatch.setattr(consents, "CONSENTS_RENDER", 1)
    old = client.get(
        f"/v1/patients/{patient_id}/consents", params=settled(client), headers=CLINICIAN
    )
    monkeypatch.undo()
    assert old.json()["directives"][0]["granted_at"].endswith("+00:00")
    for served in (now, old):
        replay = replayed(client, served.headers["X-Access-Id"])
        assert orjson.dumps(replay["body"]) == served.content
        assert replay["matches"], replay


def test_access_records_and_the_accounting_say_their_times_with_z(client: TestClient) -> None:
    patient_id = died(client)
    client.get(f"/v1/patients/{patient_id}", headers=CLINICIAN)
    log = client.get(
        "/v1/audit/accesses",
        params={"patient_id": patient_id, **settled(client)},
        headers=AUDITOR,
    )
    assert log.status_code == 200, log.text
    assert log.json()["items"]
    for item in log.json()["items"]:
        assert re.match(ZULU, item["occurred_at"]), item["occurred_at"]
        assert re.fullmatch(r"[0-9a-f-]{36}", item["request_id"]), item["request_id"]
    one = client.get(f"/v1/audit/accesses/{log.json()['items'][0]['access_id']}", headers=AUDITOR)
    assert re.match(ZULU, one.json()["occurred_at"])
    accounting = client.get(f"/v1/patients/{patient_id}/disclosures", headers=AUDITOR).json()
    assert re.match(ZULU, accounting["since"]) and accounting["next_cursor"] is None


def test_consents_read_while_the_view_moves_on_replays_as_served(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a chart whose consent the gate reads at one version, and the consent view has
    # moved on (a directive granted and projected) by the time the body is read
    patient_id = register(client)
    container = client.app.state.container  # type: ignore[attr-defined]
    view = container.consents.reads.views.consents
    original = view.of_patient
    calls: list[UUID] = []

    def moved_on(patient: UUID) -> dict[str, Any] | None:
        calls.append(patient)
        if len(calls) == 2:  # the gate has read the consent; the body's read is next
            staff = RequestContext(Actor("dr-main", Role.CLINICIAN, "org-main"), Purpose.TREAT, "r")
            container.consents.grant_directive(
                staff,
                patient,
                grantee="org-pharmacy",
                purposes=frozenset({Purpose.TREAT}),
                labels=frozenset(),
                period=Period(date(2020, 1, 1), None),
                form_id="f",
                form_version="1",
                text_sha256="0" * 64,
                method=SigningMethod.ELECTRONIC,
            )
            deadline = time.monotonic() + 10
            while (original(patient) or {}).get("consent_version", 0) < 2:
                assert time.monotonic() < deadline, "the consent view never caught up"
                time.sleep(0.01)
        return original(patient)

    monkeypatch.setattr(view, "of_patient", moved_on)
    served = client.get(
        f"/v1/patients/{patient_id}/consents", params=settled(client), headers=CLINICIAN
    )
    assert served.status_code == 200, served.text
    assert served.json()["directives"], "the body shows the directive granted meanwhile"
    # When an auditor replays it, Then the body comes back byte for byte
    replay = replayed(client, served.headers["X-Access-Id"])
    assert orjson.dumps(replay["body"]) == served.content
