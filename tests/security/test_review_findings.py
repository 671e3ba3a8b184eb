"""What an independent review of the isolation work found, each as a story.

The same two-organisation store as the regressions (``two_orgs``).
"""

from tests.api.support import assert_problem
from tests.conftest import auth
from tests.security.two_orgs import (
    ORG_OTHER,
    SENTENCE,
    World,
    actor_of,
    ok,
    register_patient,
    registration,
    settled,
)


def test_a_patient_token_of_another_organisation_does_not_speak_for_our_patient(
    world: World,
) -> None:
    # Given a patient token naming our patient but issued for org-other
    client, main = world.client, world.main
    impostor = auth("patient", sub="patient-1", org=ORG_OTHER, patient=main.patient_id)
    # Then it reads nothing of theirs, and the attempt is on our auditors' record
    for path in ("", "/timeline", "/consents", "/disclosures"):
        got = client.get(f"/v1/patients/{main.patient_id}{path}", headers=impostor)
        assert_problem(got, 404)
        assert main.family not in got.text
    assert_problem(client.get("/v1/me/access-log", headers=impostor), 404)
    attempts = [
        r
        for r in world.records(patient_id=main.patient_id, decision="deny")
        if r["actor"] == actor_of(impostor)
    ]
    assert len(attempts) >= 4


def test_a_patients_access_log_names_no_other_patient_a_search_returned(
    world: World,
) -> None:
    # Given a second patient of ours with the same family name and birth date
    client, main = world.client, world.main
    namesake = register_patient(
        client, main, {**registration(main), "mrn": "MRN-NAMESAKE-1", "contact": None}
    )
    # When our clinician searches by name and finds both
    found = client.get(
        "/v1/patients",
        params={"family": main.family, "birth_date": main.birth_date, **settled(client)},
        headers=main.clinician,
    )
    assert {item["id"] for item in ok(found, 200)["items"]} == {main.patient_id, namesake}
    # Then each patient's log shows the search, naming their own stream only
    log = ok(client.get("/v1/me/access-log", params=settled(client), headers=main.patient), 200)
    [search] = [r for r in log["items"] if r["action"] == "search"]
    assert search["stream_versions"].keys() == {main.patient_id}
    assert namesake not in str(log)
    # And our auditor sees the whole hit list, for replay
    [audited] = [r for r in world.records(patient_id=namesake) if r["action"] == "search"]
    assert audited["stream_versions"].keys() == {main.patient_id, namesake}


def test_a_refused_purpose_on_a_malformed_id_is_a_recorded_403_not_a_500(
    world: World,
) -> None:
    client, main = world.client, world.main
    for path in ("/v1/patients/not-a-uuid", "/v1/patients/not-a-uuid/timeline"):
        got = client.get(path, headers={**main.clinician, "X-Purpose-Of-Use": "HOPERAT"})
        assert_problem(got, 403)
    glass = client.get(
        "/v1/patients/not-a-uuid", headers={**main.clinician, "X-Break-Glass": SENTENCE}
    )
    assert glass.status_code == 422  # the id itself is then refused, as ever


def test_an_unknown_id_is_recorded_as_a_probe_for_the_probers_auditors(world: World) -> None:
    client, other = world.client, world.other
    unknown = "00000000-0000-4000-8000-00000000f00d"
    assert_problem(client.get(f"/v1/patients/{unknown}/timeline", headers=other.clinician), 404)
    theirs = world.records(auditor=other.auditor, decision="deny")
    assert any(r["patient_id"] == unknown for r in theirs)
    assert not any(r["patient_id"] == unknown for r in world.records(decision="deny"))
