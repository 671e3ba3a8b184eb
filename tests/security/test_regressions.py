"""Issue 18, one story per rule: each test names the rule it pins down.

The tests are numbered by rule; the issue's numbered defects map to them so:

| defect | tests |
|---|---|
| 1 auditors not scoped; a second review replaced the first | test_02, test_04, test_05_*review* |
| 2 subscribers of any organisation | test_02, ``tests/api/test_subscriber_isolation.py``, ``test_cross_organisation`` |
| 3 bare-string grantees | test_01 |
| 4 a clinician grants to themself | test_06 |
| 5 a self-chosen purpose skips the care relationship | test_07 |
| 6 a multi-patient search attributed to none | test_08 |
| 7 write refusals leave no deny record | test_09 |
| 8 a relabelled entry still delivered | ``tests/contract/test_delivery_relabel.py`` |
| 9 min_position past the head | test_13, ``tests/contract/test_min_position.py`` |
| 10 idempotency scoped by sub, before authorisation | test_10 |
| 11 an erased patient is 410 to anyone | test_03 |
| 12 entry_count counts hidden entries | test_11 |
| 13 staff addresses, justification by length, token lifetime and audience | test_12, test_05_*justification*, test_14, ``tests/api/test_token_lifetime.py``, ``tests/api/test_jwks_tokens.py`` |

The store holds two organisations (``two_orgs``): org-main is ours, org-other is
theirs, and their staff share our staff's subjects (``dr-grey``, ``admin-1``,
``auditor-1``), so that only the organisation tells them apart.
"""

from collections.abc import Mapping
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from tests.api.support import assert_problem
from tests.conftest import auth
from tests.security.two_orgs import (
    CLINICIAN_SUB,
    ORG_MAIN,
    ORG_OTHER,
    SENTENCE,
    UNKNOWN_ID,
    Org,
    World,
    actor_of,
    directive_body,
    enrol,
    entry_body,
    headers,
    membership_body,
    mint,
    ok,
    record,
    register_patient,
    registration,
    settled,
)

# Helpers ----------------------------------------------------------------------------


def fresh_patient(
    world: World, *, mrn: str, family: str = "Ashgrove", member: bool = True, **changes: Any
) -> tuple[str, Mapping[str, str]]:
    """Another patient of ours with a plain and a mental-health entry; and their token."""
    main = world.main
    body = {
        **registration(main),
        "mrn": mrn,
        "name": {"given": "Corin", "family": family},
        "contact": {"phone": "+1-555-0199"},
        **changes,
    }
    patient_id = register_patient(world.client, main, body)
    if member:
        enrol(world.client, main, patient_id)
    record(world.client, main, patient_id, entry_body("Resting pulse ashgrove"))
    record(
        world.client,
        main,
        patient_id,
        entry_body("Depressive episode ashgrove", labels=["mental_health"], kind="condition"),
    )
    return patient_id, auth("patient", sub=f"patient-{mrn}", org=ORG_MAIN, patient=patient_id)


def timeline(
    client: TestClient, patient_id: str, token: Mapping[str, str], **extra: str
) -> httpx.Response:
    return client.get(
        f"/v1/patients/{patient_id}/timeline",
        params=settled(client),
        headers=headers(token, **extra),
    )


def denials(world: World, patient_id: str, token: Mapping[str, str]) -> list[dict[str, Any]]:
    """The deny records our auditor sees for this patient, made by this token's actor."""
    who = actor_of(token)
    return [
        r
        for r in world.records(patient_id=patient_id, decision="deny")
        if {k: r["actor"].get(k) for k in who} == who
    ]


def with_request_id(token: Mapping[str, str], request_id: str, **extra: str) -> dict[str, str]:
    return headers(token, X_Request_Id=request_id, **extra)


def grant(
    world: World, patient_id: str, token: Mapping[str, str], body: dict[str, Any]
) -> httpx.Response:
    return world.client.post(f"/v1/patients/{patient_id}/consents", json=body, headers=token)


def other_dr_grey(world: World) -> Mapping[str, str]:
    return world.other.clinician


# 1. Identities are qualified ------------------------------------------------------------


def test_01_a_practitioner_directive_admits_that_practitioner_of_that_organisation_only(
    world: World,
) -> None:
    client, main = world.client, world.main
    # Given our patient grants dr-grey of org-main their mental-health entries
    granted = grant(
        world,
        main.patient_id,
        main.patient,
        directive_body(f"practitioner:{ORG_MAIN}/{CLINICIAN_SUB}", ["TREAT"], ["mental_health"]),
    )
    ok(granted, 201)
    # Then our dr-grey sees the mental-health entry
    ours = timeline(client, main.patient_id, main.clinician)
    assert ours.status_code == 200, ours.text
    assert main.displays["mental"] in ours.text
    # And dr-grey of org-other, the same subject in another organisation, is told 404
    theirs = timeline(client, main.patient_id, other_dr_grey(world))
    assert_problem(theirs, 404)
    assert main.displays["mental"] not in theirs.text
    # And that attempt is a denial in our log, naming org-other's dr-grey
    assert denials(world, main.patient_id, other_dr_grey(world)) != []


@pytest.mark.parametrize("grantee", ["clinician", CLINICIAN_SUB, "service", "patient"])
def test_01_a_role_or_a_bare_subject_as_grantee_admits_nobody(world: World, grantee: str) -> None:
    """A bare grantee is an organisation id: "clinician" or "dr-grey" is an organisation
    nobody belongs to, so the directive gives no one anything."""
    client, main = world.client, world.main
    patient_id, patient = fresh_patient(world, mrn="MRN-BARE-1")
    ok(
        grant(world, patient_id, patient, directive_body(grantee, ["TREAT"], ["mental_health"])),
        201,
    )
    # Our own clinician still does not see the mental-health entry
    ours = timeline(client, patient_id, main.clinician)
    assert ours.status_code == 200, ours.text
    assert "Resting pulse ashgrove" in ours.text
    assert "Depressive episode ashgrove" not in ours.text
    # And a clinician of org-other, named by neither subject nor role, is told 404
    assert_problem(timeline(client, patient_id, other_dr_grey(world)), 404)
    assert_problem(client.get(f"/v1/patients/{patient_id}", headers=other_dr_grey(world)), 404)


# 2. Staff act only inside their own organisation --------------------------------------


def test_02_staff_of_another_organisation_reach_nothing_of_ours(world: World) -> None:
    client, main, other = world.client, world.main, world.other
    seen = settled(client)
    # Their auditor: no replay, no review, no accounting of our patient
    assert_problem(
        client.post(f"/v1/audit/accesses/{main.read_access_id}/replay", headers=other.auditor), 404
    )
    assert_problem(
        client.post(
            f"/v1/audit/accesses/{main.glass_access_id}/review",
            json={"outcome": "justified", "note": "not theirs to review"},
            headers=other.auditor,
        ),
        404,
    )
    assert_problem(
        client.get(f"/v1/patients/{main.patient_id}/disclosures", headers=other.auditor), 404
    )
    # Their administrator: no enrolment, renewal, cancellation or erasure of ours
    assert_problem(
        client.post(
            "/v1/memberships", json=membership_body(main.patient_id, None), headers=other.admin
        ),
        404,
    )
    assert_problem(
        client.post(
            f"/v1/memberships/{main.membership_id}/cancel",
            json={"reason": "not theirs"},
            headers=other.admin,
        ),
        404,
    )
    assert_problem(
        client.post(
            f"/v1/patients/{main.patient_id}/erase",
            json={"legal_basis": "not theirs"},
            headers=other.admin,
        ),
        404,
    )
    # ... and their lists show only their own memberships and subscribers
    roster = ok(client.get("/v1/memberships", params=seen, headers=other.admin), 200)
    assert {m["id"] for m in roster["items"]} == {other.membership_id}
    subscribers = ok(client.get("/v1/subscribers", headers=other.admin), 200)
    assert {s["id"] for s in subscribers["items"]} == {other.subscriber_id}
    # A service of theirs presenting our subscriber's id reads nothing of our feed
    impostor = auth("service", sub=main.subscriber_id, org=ORG_OTHER)
    feed = client.get(f"/v1/subscribers/{main.subscriber_id}/feed", headers=impostor)
    assert feed.status_code in (403, 404), feed.text
    assert main.displays["plain"] not in feed.text
    # And everything of ours still stands
    ok(client.get(f"/v1/patients/{main.patient_id}", headers=main.clinician), 200)


# 3. Outside reach is 404, even for an erased patient of ours ---------------------------


def test_03_an_erased_patient_of_ours_is_unknown_to_outsiders_and_gone_to_us(
    world: World,
) -> None:
    client, main, other = world.client, world.main, world.other
    patient_id, _ = fresh_patient(world, mrn="MRN-ERASED-1")
    erased = client.post(
        f"/v1/patients/{patient_id}/erase", json={"legal_basis": "GDPR 17"}, headers=main.admin
    )
    ok(erased, 202)
    # Our clinician is told the record is gone
    assert_problem(client.get(f"/v1/patients/{patient_id}", headers=main.clinician), 410)
    assert_problem(timeline(client, patient_id, main.clinician), 410)
    # Outsiders are told what they would be told of an unknown id: 404
    attempts = [
        ("GET", f"/v1/patients/{patient_id}", other.clinician, None),
        ("GET", f"/v1/patients/{patient_id}/timeline", other.clinician, None),
        ("GET", f"/v1/patients/{patient_id}/consents", other.clinician, None),
        ("POST", f"/v1/patients/{patient_id}/entries", other.clinician, entry_body("x")),
        ("GET", f"/v1/patients/{patient_id}", other.patient, None),
        ("GET", f"/v1/patients/{patient_id}/disclosures", other.auditor, None),
        ("POST", f"/v1/patients/{patient_id}/erase", other.admin, {"legal_basis": "x"}),
        ("GET", f"/v1/patients/{patient_id}", world.second_patient, None),
    ]
    for method, path, token, body in attempts:
        got = client.request(method, path, json=body, headers=token)
        unknown = client.request(
            method, path.replace(patient_id, UNKNOWN_ID), json=body, headers=token
        )
        assert got.status_code == 404, (method, path, actor_of(token), got.text)
        assert got.json()["detail"] == unknown.json()["detail"], (got.text, unknown.text)
    # And the outsiders' attempts are denials our auditor sees
    assert denials(world, patient_id, other.clinician) != []


# 4. Auditors: all of their organisation's patients, nothing of another's ---------------


def test_04_our_auditor_sees_outsiders_attempts_and_theirs_sees_nothing_of_ours(
    world: World,
) -> None:
    client, main, other = world.client, world.main, world.other
    # An outsider tries our patient's timeline
    tried = client.get(
        f"/v1/patients/{main.patient_id}/timeline",
        headers=with_request_id(other.clinician, "outsider-try-4"),
    )
    assert_problem(tried, 404)
    # Our auditor sees it as a denial naming the outsider, with our own reads
    ours = world.records(patient_id=main.patient_id)
    [attempt] = [r for r in ours if r["request_id"] == "outsider-try-4"]
    assert attempt["decision"] == "deny"
    assert attempt["actor"] == {"id": CLINICIAN_SUB, "role": "clinician", "org": ORG_OTHER}
    assert {main.read_access_id, main.glass_access_id} <= {r["access_id"] for r in ours}
    # Their auditor: 404 for our patient, our records and our glass; none of ours listed
    seen = settled(client)
    assert_problem(
        client.get(
            "/v1/audit/accesses", params={"patient_id": main.patient_id}, headers=other.auditor
        ),
        404,
    )
    listed = ok(
        client.get("/v1/audit/accesses", params={"limit": 500, **seen}, headers=other.auditor), 200
    )
    listed_ids = {r["access_id"] for r in listed["items"]}
    assert listed_ids.isdisjoint({main.read_access_id, main.glass_access_id, attempt["access_id"]})
    assert all(r["actor"]["org"] == ORG_OTHER for r in listed["items"]), listed
    assert other.read_access_id in listed_ids  # their own organisation's, they do see
    for access_id in (main.read_access_id, main.glass_access_id):
        assert_problem(client.get(f"/v1/audit/accesses/{access_id}", headers=other.auditor), 404)
        assert_problem(
            client.post(f"/v1/audit/accesses/{access_id}/replay", headers=other.auditor), 404
        )
    queue = ok(client.get("/v1/audit/break-glass", params=seen, headers=other.auditor), 200)
    assert {r["access_id"] for r in queue["items"]} == {other.glass_access_id}
    assert main.justification not in str(queue)
    assert_problem(
        client.post(
            f"/v1/audit/accesses/{main.glass_access_id}/review",
            json={"outcome": "unjustified", "note": ""},
            headers=other.auditor,
        ),
        404,
    )
    assert_problem(
        client.get(f"/v1/patients/{main.patient_id}/disclosures", headers=other.auditor), 404
    )


# 5. Break-glass: reviewed once, by someone else; a justification that says something ---


def review(client: TestClient, access_id: str, token: Mapping[str, str], outcome: str) -> Any:
    return client.post(
        f"/v1/audit/accesses/{access_id}/review",
        json={"outcome": outcome, "note": f"{outcome} on review"},
        headers=token,
    )


def queued(world: World, org: Org, access_id: str) -> dict[str, Any]:
    queue = ok(
        world.client.get(
            "/v1/audit/break-glass", params=settled(world.client), headers=org.auditor
        ),
        200,
    )
    [item] = [i for i in queue["items"] if i["access_id"] == access_id]
    return item


def test_05_a_break_glass_access_is_reviewed_once(world: World) -> None:
    client, main = world.client, world.main
    first = review(client, main.glass_access_id, main.auditor, "justified")
    assert first.status_code == 200, first.text
    # A second review, by another auditor of ours, is refused as a conflict
    colleague = auth("auditor", sub="auditor-2", org=ORG_MAIN)
    assert_problem(review(client, main.glass_access_id, colleague, "unjustified"), 409)
    # ... and so is the same auditor's second thought
    assert_problem(review(client, main.glass_access_id, main.auditor, "needs_follow_up"), 409)
    # The first review stands
    item = queued(world, main, main.glass_access_id)
    assert item["review"]["outcome"] == "justified", item
    assert item["review"]["note"] == "justified on review", item


def test_05_the_clinician_who_broke_the_glass_cannot_review_it(world: World) -> None:
    client, main = world.client, world.main
    assert_problem(review(client, main.glass_access_id, main.clinician, "justified"), 403)
    assert queued(world, main, main.glass_access_id)["review"] is None
    # An auditor of the same organisation reviews it, once
    assert review(client, main.glass_access_id, main.auditor, "justified").status_code == 200
    assert queued(world, main, main.glass_access_id)["review"]["outcome"] == "justified"


@pytest.mark.parametrize(
    "justification",
    ["a" * 20, " " * 20, "-" * 20, "!?.,;:-_/!?.,;:-_/!?", ". . . . . . . . . . ."],
    ids=["a x 20", "20 spaces", "- x 20", "punctuation", "dots and spaces"],
)
def test_05_a_break_glass_justification_must_say_something(
    world: World, justification: str
) -> None:
    client, main = world.client, world.main
    refused = timeline(client, main.patient_id, main.clinician, X_Break_Glass=justification)
    assert_problem(refused, 422, field="X-Break-Glass")
    assert "X-Access-Id" not in refused.headers
    assert main.displays["mental"] not in refused.text


def test_05_a_real_sentence_breaks_the_glass(world: World) -> None:
    client, main = world.client, world.main
    read = timeline(client, main.patient_id, main.clinician, X_Break_Glass=SENTENCE)
    assert read.status_code == 200, read.text
    assert main.displays["mental"] in read.text  # break-glass shows every label


# 6. Consent is the patient's -----------------------------------------------------------


def test_06_the_patient_grants_and_revokes_and_a_clinician_records_for_them(world: World) -> None:
    client, main = world.client, world.main
    body = directive_body("org:org-research", ["HRESCH"])
    directive = ok(grant(world, main.patient_id, main.patient, body), 201)["directive_id"]
    revoked = client.post(
        f"/v1/patients/{main.patient_id}/consents/{directive}/revoke",
        json={"reason": "changed my mind"},
        headers=main.patient,
    )
    ok(revoked, 200)
    # Our clinician records a signed directive naming someone else
    ok(grant(world, main.patient_id, main.clinician, directive_body("org:org-lab", ["TREAT"])), 201)


@pytest.mark.parametrize(
    "grantee",
    [
        f"practitioner:{ORG_MAIN}/{CLINICIAN_SUB}",
        f"org:{ORG_MAIN}",
        ORG_MAIN,
        f"practitioner:{ORG_MAIN}/dr-white",
        "subscriber:{own subscriber}",
    ],
    ids=[
        "themselves",
        "their organisation",
        "their organisation, bare",
        "a colleague",
        "a subscriber their organisation registered",
    ],
)
def test_06_a_clinician_never_records_a_directive_for_themselves(
    world: World, grantee: str
) -> None:
    client, main = world.client, world.main
    grantee = grantee.replace("{own subscriber}", main.subscriber_id)
    body = directive_body(grantee, ["TREAT"], ["mental_health"])
    refused = client.post(
        f"/v1/patients/{main.patient_id}/consents",
        json=body,
        headers=with_request_id(main.clinician, "self-grant-6"),
    )
    assert_problem(refused, 403)
    [denial] = [
        r
        for r in denials(world, main.patient_id, main.clinician)
        if r["request_id"] == "self-grant-6"
    ]
    assert denial["decision"] == "deny"
    # And it gave nothing: the mental-health entry stays hidden from them
    assert main.displays["mental"] not in timeline(client, main.patient_id, main.clinician).text


def test_06_a_clinician_of_another_organisation_records_no_directive_on_ours(
    world: World,
) -> None:
    main, other = world.main, world.other
    for grantee in (f"org:{ORG_OTHER}", "org:org-pharmacy", f"practitioner:{ORG_MAIN}/dr-house"):
        body = directive_body(grantee, ["TREAT"])
        assert_problem(grant(world, main.patient_id, other.clinician, body), 404)
    assert len(denials(world, main.patient_id, other.clinician)) >= 3


# 7. Purposes come from the token --------------------------------------------------------


@pytest.mark.parametrize("purpose", ["HOPERAT", "HPAYMT", "HMARKT", "HRESCH"])
def test_07_a_purpose_the_token_does_not_allow_is_refused_and_recorded(
    world: World, purpose: str
) -> None:
    client, main = world.client, world.main
    refused = timeline(
        client,
        main.patient_id,
        main.clinician,
        X_Purpose_Of_Use=purpose,
        X_Request_Id=f"purpose-{purpose}",
    )
    assert_problem(refused, 403)
    [denial] = [
        r
        for r in denials(world, main.patient_id, main.clinician)
        if r["request_id"] == f"purpose-{purpose}"
    ]
    assert denial["purpose"] == purpose


def test_07_clinical_content_needs_the_care_relationship_whatever_the_token_allows(
    world: World,
) -> None:
    client, main = world.client, world.main
    operator = mint(
        "clinician",
        sub=CLINICIAN_SUB,
        org=ORG_MAIN,
        purpose_of_use=["TREAT", "HOPERAT", "HPAYMT", "PUBHLTH"],
    )
    stranger, _ = fresh_patient(world, mrn="MRN-NOCARE-7", member=False)
    # Without a membership, neither operations nor payment reads the chart
    for purpose in ("HOPERAT", "HPAYMT", "TREAT"):
        refused = timeline(client, stranger, operator, X_Purpose_Of_Use=purpose)
        assert_problem(refused, 403)
        assert "Resting pulse ashgrove" not in refused.text
    assert len(denials(world, stranger, operator)) >= 3
    # Within one, the purposes the token allows are honoured
    allowed = timeline(client, main.patient_id, operator, X_Purpose_Of_Use="HOPERAT")
    assert allowed.status_code == 200, allowed.text
    # Public-health reporting needs no care relationship, hides every label, and is
    # in the patient's accounting of disclosures
    report = timeline(client, stranger, operator, X_Purpose_Of_Use="PUBHLTH")
    assert report.status_code == 200, report.text
    assert "Depressive episode ashgrove" not in report.text
    accounting = ok(
        client.get(
            f"/v1/patients/{stranger}/disclosures", params=settled(client), headers=main.auditor
        ),
        200,
    )
    assert report.headers["X-Access-Id"] in str(accounting)


def test_07_break_glass_needs_etreat_among_the_token_purposes(world: World) -> None:
    client, main = world.client, world.main
    no_glass = mint("clinician", sub=CLINICIAN_SUB, org=ORG_MAIN, purpose_of_use=["TREAT"])
    refused = timeline(client, main.patient_id, no_glass, X_Break_Glass=SENTENCE)
    assert_problem(refused, 403)
    assert main.displays["mental"] not in refused.text
    assert [r for r in denials(world, main.patient_id, no_glass) if r["purpose"] == "ETREAT"]
    # ETREAT is asserted only through X-Break-Glass, never as a bare purpose
    bare = timeline(client, main.patient_id, main.clinician, X_Purpose_Of_Use="ETREAT")
    assert bare.status_code in (403, 422), bare.text
    assert main.displays["mental"] not in bare.text


def test_07_the_role_defaults_bind_patients_admins_and_auditors(world: World) -> None:
    client, main = world.client, world.main
    seen = settled(client)
    # A patient asserts PATRQT only
    mine = timeline(client, main.patient_id, main.patient, X_Purpose_Of_Use="HMARKT")
    assert_problem(mine, 403)
    # An administrator asserts HOPERAT only
    assert_problem(
        client.get(
            "/v1/memberships", params=seen, headers=headers(main.admin, X_Purpose_Of_Use="TREAT")
        ),
        403,
    )
    # An auditor asserts HOPERAT only
    assert_problem(
        client.get(
            "/v1/audit/accesses",
            params=seen,
            headers=headers(main.auditor, X_Purpose_Of_Use="HMARKT"),
        ),
        403,
    )
    # A token may narrow them: an auditor allowed nothing but HOPERAT still audits
    narrowed = mint("auditor", sub="auditor-3", org=ORG_MAIN, purpose_of_use=["HOPERAT"])
    ok(client.get("/v1/audit/accesses", params=seen, headers=narrowed), 200)


# 8. A disclosure of several patients is one access record per patient -----------------


def test_08_a_search_hitting_two_patients_is_recorded_once_for_each(world: World) -> None:
    client, main = world.client, world.main
    first, first_token = fresh_patient(world, mrn="MRN-TWIN-1", family="Thistlewood")
    second, second_token = fresh_patient(world, mrn="MRN-TWIN-2", family="Thistlewood")
    found = client.get(
        "/v1/patients",
        params={"family": "Thistlewood", "birth_date": main.birth_date, **settled(client)},
        headers=with_request_id(main.clinician, "twin-search-8"),
    )
    assert found.status_code == 200, found.text
    assert {i["id"] for i in found.json()["items"]} == {first, second}
    access_ids = set()
    for patient_id, token in ((first, first_token), (second, second_token)):
        [mine] = [
            r
            for r in world.records(patient_id=patient_id, action="search")
            if r["request_id"] == "twin-search-8"
        ]
        assert mine["patient_id"] == patient_id and mine["decision"] == "permit", mine
        access_ids.add(mine["access_id"])
        log = ok(client.get("/v1/me/access-log", params=settled(client), headers=token), 200)
        [logged] = [r for r in log["items"] if r["access_id"] == mine["access_id"]]
        assert logged["action"] == "search", logged
    assert len(access_ids) == 2  # one record per patient


# 9. Every refusal is recorded, writes too ------------------------------------------------


FOREIGN_WRITES = {
    "entry": ("clinician", "POST", "/v1/patients/{p}/entries", entry_body("planted")),
    "amendment": (
        "clinician",
        "POST",
        "/v1/patients/{p}/entries/{e}/amendments",
        {"reason": "tamper", "value": {"text": "tampered"}},
    ),
    "demographics": ("clinician", "PATCH", "/v1/patients/{p}", {"sex": "other"}),
    "consent": (
        "clinician",
        "POST",
        "/v1/patients/{p}/consents",
        directive_body("org:org-other", ["TREAT"], ["mental_health"]),
    ),
    "consent, by their patient": (
        "patient",
        "POST",
        "/v1/patients/{p}/consents",
        directive_body("org:org-other", ["TREAT"]),
    ),
    "revocation": (
        "clinician",
        "POST",
        "/v1/patients/{p}/consents/{d}/revoke",
        {"reason": "tamper"},
    ),
    "restriction": (
        "clinician",
        "POST",
        "/v1/patients/{p}/restrictions",
        {"purposes": ["TREAT"], "labels": [], "recipient": "org-main"},
    ),
    "enrolment": ("admin", "POST", "/v1/memberships", None),
    "renewal": ("admin", "POST", "/v1/memberships/{m}/renew", {"ends_on": "2030-01-01"}),
    "cancellation": ("admin", "POST", "/v1/memberships/{m}/cancel", {"reason": "tamper"}),
    "erasure": ("admin", "POST", "/v1/patients/{p}/erase", {"legal_basis": "tamper"}),
}


@pytest.mark.parametrize("write", FOREIGN_WRITES)
def test_09_a_foreign_write_is_refused_as_unknown_and_recorded_for_our_auditor(
    world: World, write: str
) -> None:
    client, main, other = world.client, world.main, world.other
    role, method, template, body = FOREIGN_WRITES[write]
    token = other.patient if role == "patient" else other.staff(role)
    assert token is not None
    path = template.format(
        p=main.patient_id, e=main.entries["plain"], d=main.directive_id, m=main.membership_id
    )
    body = body if body is not None else membership_body(main.patient_id, None)
    refused = client.request(
        method, path, json=body, headers=with_request_id(token, f"foreign-{role}-write")
    )
    assert_problem(refused, 404)
    # Our auditor sees the attempt on our patient (the membership's patient, for a
    # renewal or cancellation), naming the foreign actor by organisation, role, subject
    [denial] = [
        r
        for r in world.records(patient_id=main.patient_id, decision="deny")
        if r["request_id"] == f"foreign-{role}-write"
    ]
    assert denial["actor"] == actor_of(token)
    assert denial["patient_id"] == main.patient_id


# 10. Idempotency claims are per (organisation, subject), checked after authorisation --


def test_10_an_idempotency_key_of_our_clinician_gives_their_namesake_nothing(
    world: World,
) -> None:
    client, main, other = world.client, world.main, world.other
    path = f"/v1/patients/{main.patient_id}/entries"
    body = entry_body("Idempotent glucose")
    first = client.post(path, json=body, headers=headers(main.clinician, Idempotency_Key="k-10"))
    entry_id = ok(first, 201)["entry_id"]
    # The same key, path and body, from dr-grey of org-other: 404, not our answer
    theirs = client.post(
        path,
        json=body,
        headers=headers(other.clinician, Idempotency_Key="k-10", X_Request_Id="idem-10"),
    )
    assert_problem(theirs, 404)
    assert entry_id not in theirs.text
    assert [
        r for r in denials(world, main.patient_id, other.clinician) if r["request_id"] == "idem-10"
    ]
    # Our clinician's retry still answers the first result
    again = client.post(path, json=body, headers=headers(main.clinician, Idempotency_Key="k-10"))
    assert ok(again, 201)["entry_id"] == entry_id


def test_10_registering_with_our_key_gives_their_namesake_a_patient_of_their_own(
    world: World,
) -> None:
    client, main, other = world.client, world.main, world.other
    body = {**registration(main), "mrn": "MRN-IDEM-10"}
    ours = client.post(
        "/v1/patients", json=body, headers=headers(main.clinician, Idempotency_Key="reg-10")
    )
    our_id = ok(ours, 201)["id"]
    theirs = client.post(
        "/v1/patients", json=body, headers=headers(other.clinician, Idempotency_Key="reg-10")
    )
    assert theirs.status_code == 201, theirs.text
    assert theirs.json()["id"] != our_id and our_id not in theirs.text
    # Theirs is theirs: our clinician cannot see it, theirs can
    assert_problem(client.get(f"/v1/patients/{theirs.json()['id']}", headers=main.clinician), 404)
    ok(client.get(f"/v1/patients/{theirs.json()['id']}", headers=other.clinician), 200)
    assert_problem(client.get(f"/v1/patients/{our_id}", headers=other.clinician), 404)


# 11. entry_count counts only what the reader may see ------------------------------------


def test_11_entry_count_does_not_betray_hidden_entries(world: World) -> None:
    client, main = world.client, world.main
    for token in (main.clinician, main.patient):
        visible = ok(timeline(client, main.patient_id, token), 200)["entries"]
        demographics = ok(client.get(f"/v1/patients/{main.patient_id}", headers=token), 200)
        if "entry_count" in demographics:
            assert demographics["entry_count"] == len(visible), (actor_of(token), demographics)
    # The clinician sees one of the two entries
    assert len(ok(timeline(client, main.patient_id, main.clinician), 200)["entries"]) == 1


# 12. A patient's view of their access log shows no staff addresses or request ids -------


def test_12_a_patient_sees_who_and_why_but_not_staff_addresses_or_request_ids(
    world: World,
) -> None:
    client, main = world.client, world.main
    read = client.get(
        f"/v1/patients/{main.patient_id}",
        headers=with_request_id(main.clinician, "staff-request-12"),
    )
    access_id = ok(read, 200) and read.headers["X-Access-Id"]
    seen = settled(client)
    responses = [
        client.get("/v1/me/access-log", params={"limit": 500, **seen}, headers=main.patient),
        client.get("/v1/audit/accesses", params={"limit": 500, **seen}, headers=main.patient),
        client.get(f"/v1/audit/accesses/{access_id}", headers=main.patient),
    ]
    for response in responses:
        body = ok(response, 200)
        assert "staff-request-12" not in response.text, response.request.url
        records = body.get("items", [body])
        assert access_id in {r["access_id"] for r in records}
        for r in records:
            if r["actor"]["role"] != "patient":
                assert not r.get("source"), (response.request.url, r)
                assert not r.get("request_id"), (response.request.url, r)
    # Our auditor still sees both
    [full] = [r for r in world.records(patient_id=main.patient_id) if r["access_id"] == access_id]
    assert full["request_id"] == "staff-request-12" and full["source"]


# 13. min_position past the log's head is invalid input ---------------------------------


def test_13_min_position_past_the_head_is_422_for_any_token(world: World) -> None:
    client, main = world.client, world.main
    far = settled(client)["min_position"] + 1_000_000_000
    for path, token in (
        (f"/v1/patients/{main.patient_id}/timeline", main.clinician),
        ("/v1/me/access-log", main.patient),
        ("/v1/audit/accesses", main.auditor),
        ("/v1/memberships", main.admin),
    ):
        got = client.get(path, params={"min_position": far}, headers=token)
        assert_problem(got, 422, field="min_position")
    # Read-your-writes still holds afterwards
    written = ok(
        client.post(
            f"/v1/patients/{main.patient_id}/entries",
            json=entry_body("Post-probe glucose"),
            headers=main.clinician,
        ),
        201,
    )
    page = client.get(
        f"/v1/patients/{main.patient_id}/timeline",
        params={"min_position": written["position"]},
        headers=main.clinician,
    )
    assert written["entry_id"] in {e["entry_id"] for e in ok(page, 200)["entries"]}
    log = client.get(
        "/v1/me/access-log", params={"min_position": written["position"]}, headers=main.patient
    )
    ok(log, 200)


# 14. A token must expire ----------------------------------------------------------------


def test_14_a_token_expiring_in_the_year_9999_is_refused(world: World) -> None:
    client, main = world.client, world.main
    forever = 253402300799  # 9999-12-31T23:59:59Z
    for role, claims in (
        ("clinician", {}),
        ("auditor", {}),
        ("patient", {"patient": main.patient_id}),
    ):
        sub = {"clinician": CLINICIAN_SUB, "auditor": "auditor-1", "patient": "patient-1"}[role]
        token = mint(role, sub=sub, org=ORG_MAIN, exp=forever, **claims)
        path = "/v1/audit/accesses" if role == "auditor" else f"/v1/patients/{main.patient_id}"
        got = client.get(path, headers=token)
        assert_problem(got, 401)
        assert main.mrn not in got.text
    # A token of ordinary lifetime is fine
    ok(client.get(f"/v1/patients/{main.patient_id}", headers=main.clinician), 200)
