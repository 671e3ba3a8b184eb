"""Valid tokens that are not allowed: 403 for the wrong role, 404 outside one's reach."""

from fastapi.testclient import TestClient

from tests.api.support import (
    ADMIN,
    AUDITOR,
    CLINICIAN,
    GRANT_BODY,
    OUTSIDER,
    UNKNOWN_ID,
    assert_problem,
    chart,
    enrol,
    enrol_body,
    grant,
    patient_token,
    record_entry,
    register,
    settled,
)
from tests.conftest import ENTRY_BODY, REGISTER_BODY, auth

# The wrong role -----------------------------------------------------------------------------


def test_an_admin_may_not_record_an_entry(client: TestClient) -> None:
    # Given a registered patient
    patient_id = register(client)
    # When an admin records a clinical entry
    response = client.post(f"/v1/patients/{patient_id}/entries", json=ENTRY_BODY, headers=ADMIN)
    # Then it is forbidden, and the chart is unchanged
    assert_problem(response, 403, detail_mentions="admin")
    assert chart(client, patient_id)["entry_count"] == 0


def test_a_clinician_may_not_enrol_a_membership(client: TestClient) -> None:
    # Given a registered patient
    patient_id = register(client)
    # When a clinician enrols them in a membership
    response = client.post("/v1/memberships", json=enrol_body(patient_id), headers=CLINICIAN)
    # Then it is forbidden
    assert_problem(response, 403, detail_mentions="clinician")
    # And no membership exists
    listed = client.get(
        "/v1/memberships", params={"patient_id": patient_id, **settled(client)}, headers=ADMIN
    )
    assert listed.json()["items"] == []


def test_a_clinician_may_not_list_memberships(client: TestClient) -> None:
    assert_problem(client.get("/v1/memberships", headers=CLINICIAN), 403)


def test_a_patient_may_not_read_another_patient(client: TestClient) -> None:
    # Given two registered patients
    mine = register(client)
    theirs = register(client, {**REGISTER_BODY, "mrn": "MRN-0002"})
    # When the first patient reads the second one's demographics
    response = client.get(f"/v1/patients/{theirs}", headers=patient_token(mine))
    # Then the other chart does not exist for them
    problem = assert_problem(response, 404)
    assert "Example" not in response.text and theirs not in problem["detail"]


def test_a_patient_may_read_themselves(client: TestClient) -> None:
    mine = register(client)
    response = client.get(f"/v1/patients/{mine}", headers=patient_token(mine))
    assert response.status_code == 200 and response.json()["id"] == mine


def test_a_patient_may_not_record_entries_in_their_own_chart(client: TestClient) -> None:
    mine = register(client)
    response = client.post(
        f"/v1/patients/{mine}/entries", json=ENTRY_BODY, headers=patient_token(mine)
    )
    assert_problem(response, 403)


def test_an_auditor_may_not_register_a_patient(client: TestClient) -> None:
    response = client.post("/v1/patients", json=REGISTER_BODY, headers=AUDITOR)
    assert_problem(response, 403, detail_mentions="auditor")


def test_an_auditor_may_not_record_an_entry(client: TestClient) -> None:
    patient_id = register(client)
    response = client.post(f"/v1/patients/{patient_id}/entries", json=ENTRY_BODY, headers=AUDITOR)
    assert_problem(response, 403)
    assert chart(client, patient_id)["entry_count"] == 0


def test_an_auditor_may_not_change_demographics(client: TestClient) -> None:
    patient_id = register(client)
    response = client.patch(f"/v1/patients/{patient_id}", json={"sex": "other"}, headers=AUDITOR)
    assert_problem(response, 403)


def test_an_auditor_may_not_grant_consent(client: TestClient) -> None:
    patient_id = register(client)
    response = client.post(f"/v1/patients/{patient_id}/consents", json=GRANT_BODY, headers=AUDITOR)
    assert_problem(response, 403)


def test_an_auditor_may_not_enrol_a_membership(client: TestClient) -> None:
    patient_id = register(client)
    response = client.post("/v1/memberships", json=enrol_body(patient_id), headers=AUDITOR)
    assert_problem(response, 403)


def test_the_wrong_role_is_403_even_for_a_patient_that_does_not_exist(
    client: TestClient,
) -> None:
    # The role check comes first, so it cannot be used to probe for charts
    response = client.post(f"/v1/patients/{UNKNOWN_ID}/entries", json=ENTRY_BODY, headers=ADMIN)
    assert_problem(response, 403)


# Another organisation's patient -------------------------------------------------------


def test_a_clinician_of_another_organisation_cannot_read_the_patient(
    client: TestClient,
) -> None:
    # Given a patient registered by org-main
    patient_id = register(client)
    # When a clinician of org-other reads them
    response = client.get(f"/v1/patients/{patient_id}", headers=OUTSIDER)
    # Then the chart is not found, exactly like one that does not exist
    unknown = client.get(f"/v1/patients/{UNKNOWN_ID}", headers=OUTSIDER)
    assert_problem(response, 404)
    assert_problem(unknown, 404)
    assert response.json()["detail"] == unknown.json()["detail"]


def test_a_clinician_of_another_organisation_cannot_record_an_entry(
    client: TestClient,
) -> None:
    patient_id = register(client)
    response = client.post(f"/v1/patients/{patient_id}/entries", json=ENTRY_BODY, headers=OUTSIDER)
    assert_problem(response, 404)
    assert chart(client, patient_id)["entry_count"] == 0


def test_a_clinician_of_another_organisation_cannot_change_demographics(
    client: TestClient,
) -> None:
    patient_id = register(client)
    response = client.patch(f"/v1/patients/{patient_id}", json={"sex": "other"}, headers=OUTSIDER)
    assert_problem(response, 404)
    assert chart(client, patient_id)["version"] == 1


def test_a_clinician_of_another_organisation_cannot_amend_an_entry(client: TestClient) -> None:
    patient_id = register(client)
    entry_id = record_entry(client, patient_id)
    response = client.post(
        f"/v1/patients/{patient_id}/entries/{entry_id}/amendments",
        json={"reason": "mine now"},
        headers=OUTSIDER,
    )
    assert_problem(response, 404)


def test_a_clinician_of_another_organisation_cannot_read_or_grant_consent(
    client: TestClient,
) -> None:
    patient_id = register(client)
    url = f"/v1/patients/{patient_id}/consents"
    assert_problem(client.get(url, headers=OUTSIDER), 404)
    assert_problem(client.post(url, json=GRANT_BODY, headers=OUTSIDER), 404)


def test_an_admin_of_another_organisation_cannot_see_or_change_memberships(
    client: TestClient,
) -> None:
    # Given a membership of org-main
    patient_id = register(client)
    membership_id = enrol(client, patient_id)
    other_admin = auth("admin", sub="admin-other", org="org-other")
    # When an admin of org-other lists, renews or enrols against it
    listed = client.get(
        "/v1/memberships",
        params={"patient_id": patient_id, **settled(client)},
        headers=other_admin,
    )
    renew = client.post(
        f"/v1/memberships/{membership_id}/renew",
        json={"ends_on": "2027-06-30"},
        headers=other_admin,
    )
    enrolment = client.post("/v1/memberships", json=enrol_body(patient_id), headers=other_admin)
    # Then none of it is within their reach
    assert listed.status_code == 200 and listed.json()["items"] == []
    assert_problem(renew, 404)
    assert_problem(enrolment, 404)


def test_if_match_does_not_reveal_a_patient_of_another_organisation(
    client: TestClient,
) -> None:
    # Given a patient registered by org-main
    patient_id = register(client)
    # When a clinician of org-other writes to it with an If-Match
    response = client.post(
        f"/v1/patients/{patient_id}/entries",
        json=ENTRY_BODY,
        headers={**OUTSIDER, "If-Match": '"7"'},
    )
    # Then the chart is still not found, and its version is not disclosed
    assert_problem(response, 404)
    assert "version" not in response.json()["detail"]


def test_if_match_does_not_reveal_demographics_version_to_another_organisation(
    client: TestClient,
) -> None:
    patient_id = register(client)
    response = client.patch(
        f"/v1/patients/{patient_id}",
        json={"sex": "other"},
        headers={**OUTSIDER, "If-Match": '"7"'},
    )
    assert_problem(response, 404)


def test_if_match_does_not_reveal_a_membership_of_another_organisation(
    client: TestClient,
) -> None:
    patient_id = register(client)
    membership_id = enrol(client, patient_id)
    other_admin = auth("admin", sub="admin-other", org="org-other")
    response = client.post(
        f"/v1/memberships/{membership_id}/renew",
        json={"ends_on": "2027-06-30"},
        headers={**other_admin, "If-Match": '"7"'},
    )
    assert_problem(response, 404)


# A patient and their own consent ----------------------------------------------------------


def test_a_patient_may_grant_and_revoke_their_own_consent(client: TestClient) -> None:
    # Given a registered patient holding a token for themselves
    patient_id = register(client)
    me = patient_token(patient_id)
    # When they grant a directive
    granted = client.post(f"/v1/patients/{patient_id}/consents", json=GRANT_BODY, headers=me)
    # Then it is created
    assert granted.status_code == 201, granted.text
    directive_id = granted.json()["directive_id"]
    # And when they revoke it
    revoked = client.post(
        f"/v1/patients/{patient_id}/consents/{directive_id}/revoke",
        json={"reason": "changed my mind"},
        headers=me,
    )
    # Then it is revoked
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["consent_version"] == granted.json()["consent_version"] + 1


def test_a_patient_may_not_grant_consent_for_another_patient(client: TestClient) -> None:
    # Given two patients
    mine = register(client)
    theirs = register(client, {**REGISTER_BODY, "mrn": "MRN-0002"})
    # When the first grants a directive on the second's record
    response = client.post(
        f"/v1/patients/{theirs}/consents", json=GRANT_BODY, headers=patient_token(mine)
    )
    # Then the other record is not found, and nothing was granted
    assert_problem(response, 404)
    consents = client.get(
        f"/v1/patients/{theirs}/consents", params=settled(client), headers=CLINICIAN
    ).json()
    assert consents["directives"] == []


def test_a_patient_may_not_revoke_another_patients_consent(client: TestClient) -> None:
    # Given another patient's directive
    mine = register(client)
    theirs = register(client, {**REGISTER_BODY, "mrn": "MRN-0002"})
    directive_id = grant(client, theirs)
    # When the first patient revokes it
    response = client.post(
        f"/v1/patients/{theirs}/consents/{directive_id}/revoke",
        json={"reason": "not mine to revoke"},
        headers=patient_token(mine),
    )
    # Then the record is not found, and the directive stays active
    assert_problem(response, 404)
    consents = client.get(
        f"/v1/patients/{theirs}/consents", params=settled(client), headers=CLINICIAN
    ).json()
    assert [d["status"] for d in consents["directives"]] == ["active"]
