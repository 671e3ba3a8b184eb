"""Memberships through HTTP: enrol, renew, cancel and list, as an admin."""

from typing import Any

from fastapi.testclient import TestClient

from tests.api.support import (
    ADMIN,
    UNKNOWN_ID,
    assert_problem,
    enrol,
    enrol_body,
    register,
    settled,
)
from tests.conftest import REGISTER_BODY


def _listed(client: TestClient, **params: str) -> list[dict[str, Any]]:
    response = client.get("/v1/memberships", params={**params, **settled(client)}, headers=ADMIN)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def test_an_admin_enrols_a_patient(client: TestClient) -> None:
    # Given a registered patient
    patient_id = register(client)
    # When an admin enrols them in an individual plan
    response = client.post("/v1/memberships", json=enrol_body(patient_id), headers=ADMIN)
    # Then a membership is created at version 1
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == {"id", "version", "position"} and body["version"] == 1
    assert response.headers["etag"] == '"1"'


def test_an_active_membership_is_renewed(client: TestClient) -> None:
    # Given an active membership ending 2026-12-31
    membership_id = enrol(client, register(client))
    # When an admin renews it to the end of 2027
    response = client.post(
        f"/v1/memberships/{membership_id}/renew", json={"ends_on": "2027-12-31"}, headers=ADMIN
    )
    # Then it is renewed, and the list shows the new end
    assert response.status_code == 200, response.text
    assert response.json()["version"] == 2
    [item] = _listed(client)
    assert item["ends_on"] == "2027-12-31" and item["status"] == "active"


def test_an_active_membership_is_cancelled(client: TestClient) -> None:
    membership_id = enrol(client, register(client))
    response = client.post(
        f"/v1/memberships/{membership_id}/cancel", json={"reason": "moved away"}, headers=ADMIN
    )
    assert response.status_code == 200, response.text
    assert response.json()["version"] == 2
    assert [item["status"] for item in _listed(client)] == ["cancelled"]


def test_a_cancelled_membership_cannot_be_renewed(client: TestClient) -> None:
    # Given a cancelled membership
    membership_id = enrol(client, register(client))
    cancelled = client.post(
        f"/v1/memberships/{membership_id}/cancel", json={"reason": "moved away"}, headers=ADMIN
    )
    assert cancelled.status_code == 200
    # When an admin renews it
    response = client.post(
        f"/v1/memberships/{membership_id}/renew", json={"ends_on": "2027-12-31"}, headers=ADMIN
    )
    # Then it is refused, saying why
    assert_problem(response, 409, detail_mentions="cancelled")
    [item] = _listed(client)
    assert item["status"] == "cancelled" and item["ends_on"] == "2026-12-31"


def test_a_cancelled_membership_cannot_be_cancelled_again(client: TestClient) -> None:
    membership_id = enrol(client, register(client))
    url = f"/v1/memberships/{membership_id}/cancel"
    client.post(url, json={"reason": "moved away"}, headers=ADMIN)
    assert_problem(client.post(url, json={"reason": "again"}, headers=ADMIN), 409)


def test_an_employer_plan_without_a_sponsor_is_422_naming_sponsor_id(
    client: TestClient,
) -> None:
    # Given a registered patient
    patient_id = register(client)
    # When an admin enrols them in an employer plan with no sponsor
    response = client.post(
        "/v1/memberships", json=enrol_body(patient_id, plan="employer"), headers=ADMIN
    )
    # Then the problem names sponsor_id, and no membership exists
    assert_problem(response, 422, "sponsor_id")
    assert _listed(client, patient_id=patient_id) == []


def test_an_employer_plan_with_a_sponsor_is_enrolled(client: TestClient) -> None:
    patient_id = register(client)
    enrol(client, patient_id, plan="employer", sponsor_id="acme-corp")
    [item] = _listed(client, sponsor_id="acme-corp")
    assert item["plan"] == "employer" and item["sponsor_id"] == "acme-corp"


def test_an_individual_plan_with_a_sponsor_is_422_naming_sponsor_id(client: TestClient) -> None:
    patient_id = register(client)
    response = client.post(
        "/v1/memberships", json=enrol_body(patient_id, sponsor_id="acme-corp"), headers=ADMIN
    )
    assert_problem(response, 422, "sponsor_id")


def test_a_term_that_ends_before_it_starts_is_refused_with_a_clear_detail(
    client: TestClient,
) -> None:
    # Given a registered patient
    patient_id = register(client)
    # When an admin enrols them with ends_on before starts_on
    body = enrol_body(patient_id, starts_on="2026-06-01", ends_on="2026-01-01")
    response = client.post("/v1/memberships", json=body, headers=ADMIN)
    # Then it is refused as a rule violation (the app answers 409) that names both dates
    assert response.status_code in (409, 422)
    problem = assert_problem(response, response.status_code, detail_mentions="ends_on")
    assert "starts_on" in problem["detail"]
    assert _listed(client, patient_id=patient_id) == []


def test_a_renewal_that_does_not_extend_the_term_is_refused(client: TestClient) -> None:
    membership_id = enrol(client, register(client))
    response = client.post(
        f"/v1/memberships/{membership_id}/renew", json={"ends_on": "2026-06-30"}, headers=ADMIN
    )
    assert_problem(response, 409, detail_mentions="after the current period")


def test_a_negative_fee_is_422_naming_annual_fee_cents(client: TestClient) -> None:
    patient_id = register(client)
    response = client.post(
        "/v1/memberships", json=enrol_body(patient_id, annual_fee_cents=-1), headers=ADMIN
    )
    assert_problem(response, 422, "annual_fee_cents")


def test_enrolling_an_unknown_patient_is_404(client: TestClient) -> None:
    response = client.post("/v1/memberships", json=enrol_body(UNKNOWN_ID), headers=ADMIN)
    assert_problem(response, 404)


def test_renewing_an_unknown_membership_is_404(client: TestClient) -> None:
    response = client.post(
        f"/v1/memberships/{UNKNOWN_ID}/renew", json={"ends_on": "2027-12-31"}, headers=ADMIN
    )
    assert_problem(response, 404)


def test_memberships_are_listed_by_patient_with_their_status(client: TestClient) -> None:
    # Given two patients, one with a cancelled and one with an active membership
    first = register(client)
    second = register(client, _registration("MRN-0002"))
    cancelled = enrol(client, first)
    active = enrol(client, second)
    client.post(f"/v1/memberships/{cancelled}/cancel", json={"reason": "moved"}, headers=ADMIN)
    # When an admin lists the memberships of each patient, and the active ones
    of_first = _listed(client, patient_id=first)
    of_second = _listed(client, patient_id=second)
    only_active = _listed(client, status="active")
    # Then each list shows the right membership with its status
    assert [(m["id"], m["status"]) for m in of_first] == [(cancelled, "cancelled")]
    assert [(m["id"], m["status"]) for m in of_second] == [(active, "active")]
    assert [m["id"] for m in only_active] == [active]
    assert _contains(
        of_second[0],
        patient_id=second,
        plan="individual",
        sponsor_id=None,
        starts_on="2026-01-01",
        ends_on="2026-12-31",
    ), of_second[0]


def _registration(mrn: str) -> dict[str, Any]:
    return {**REGISTER_BODY, "mrn": mrn}


def _contains(item: dict[str, Any], **expected: Any) -> bool:
    return all(item.get(key) == value for key, value in expected.items())
