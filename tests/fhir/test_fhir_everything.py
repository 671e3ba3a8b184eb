"""``Patient/{id}/$everything``: a clinician pages through a whole chart as valid R4B,
the Patient first, hidden entries absent and uncounted, narrowed by ``_type`` and
``_since``; each page is one access record of the patient and replays byte for byte."""

from typing import Any

import orjson
from fastapi.testclient import TestClient

from tests.api.support import (
    ADMIN,
    AUDITOR,
    CLINICIAN,
    GRANT_BODY,
    OUTSIDER,
    UNKNOWN_ID,
    patient_token,
)
from tests.fhir.support import (
    caught_up,
    fhir_get,
    full_chart,
    next_url,
    outcome,
    resource_id,
    validated,
)
from tests.fhir.test_fhir_reads import assert_replays


def accesses(client: TestClient, patient_id: str, access_id: str) -> list[dict[str, Any]]:
    position = client.get("/readyz").json()["position"]
    response = client.get(
        "/v1/audit/accesses",
        params={"patient_id": patient_id, "min_position": position},
        headers=AUDITOR,
    )
    assert response.status_code == 200, response.text
    return [r for r in response.json()["items"] if r["access_id"] == access_id]


TIME_FIELDS = (
    "effectiveDateTime",
    "onsetDateTime",
    "occurrenceDateTime",
    "performedDateTime",
    "date",
)


def when(resource: dict[str, Any]) -> str:
    """The clinical time of an entry resource, whichever element carries it."""
    if "period" in resource:
        return str(resource["period"]["start"])
    return next(str(resource[f]) for f in TIME_FIELDS if f in resource)


def test_everything_pages_the_whole_chart_and_each_page_is_one_replayable_record(
    client: TestClient,
) -> None:
    patient_id, _ids = full_chart(client)
    caught_up(client)
    url: str | None = f"/fhir/Patient/{patient_id}/$everything?_count=4"
    pages, shown = [], []
    while url is not None:
        response = client.get(url, headers=CLINICIAN)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("application/fhir+json")
        bundle = response.json()
        assert bundle["type"] == "searchset"
        pages.append(bundle)
        shown += validated(bundle)
        assert_replays(client, response)
        [record] = accesses(client, patient_id, response.headers["X-Access-Id"])
        assert record["action"] == "read", record
        url = next_url(bundle)
    # The Patient and their membership first, then the ten entries the clinician may
    # see, by time; the mental-health condition (no directive) is left out, not masked
    assert shown[0]["resourceType"] == "Patient" and shown[0]["id"] == patient_id
    assert shown[1]["resourceType"] == "Coverage" and shown[1]["status"] == "active"
    coverage = fhir_get(client, "/fhir/Coverage", {"beneficiary": patient_id}).json()
    assert [e["resource"] for e in coverage["entry"]] == [shown[1]]
    assert [r["resourceType"] for r in shown[2:]].count("Condition") == 1
    assert len(shown) == 2 + 10
    times = [when(r) for r in shown[2:]]
    assert times == sorted(times)
    assert len({r["id"] for r in shown}) == len(shown)
    assert "Panic" not in orjson.dumps(pages).decode()
    # A multi-page result claims no total; a one-page result counts what it shows
    assert [("total" in page) for page in pages] == [False] * len(pages)
    whole = fhir_get(client, f"/fhir/Patient/{patient_id}/$everything").json()
    assert whole["total"] == 12 and "next" not in str(whole["link"])
    assert [e["resource"]["id"] for e in whole["entry"]] == [r["id"] for r in shown]


def test_type_and_since_narrow_everything(client: TestClient) -> None:
    patient_id, _ids = full_chart(client)
    caught_up(client)
    where = f"/fhir/Patient/{patient_id}/$everything"
    response = fhir_get(client, where, {"_type": "Encounter,Observation"})
    found = validated(response.json())
    assert sorted(r["resourceType"] for r in found) == ["Encounter"] * 2 + ["Observation"] * 2
    assert response.json()["total"] == 4
    assert_replays(client, response)
    # Only the Patient: no entry is scanned, and the page still replays
    only = fhir_get(client, where, {"_type": "Patient"})
    assert [r["resourceType"] for r in validated(only.json())] == ["Patient"]
    assert_replays(client, only)
    # _since keeps the entries from that time on (the Patient has no such time)
    since = fhir_get(client, where, {"_since": "2026-11-20T00:00:00Z", "_type": "Observation"})
    assert [r["code"]["coding"][0]["code"] for r in validated(since.json())] == [
        "8867-4",
        "2339-0",
    ]
    assert_replays(client, since)
    # Without the Patient type, a page carries entries only
    entries = fhir_get(client, where, {"_type": "Condition"})
    assert [r["resourceType"] for r in validated(entries.json())] == ["Condition"]
    # The patient reads their own everything through the same policy
    own = fhir_get(client, where, {"_type": "Patient"}, patient_token(patient_id))
    assert own.status_code == 200, own.text
    assert_replays(client, own)


def test_everything_carries_the_patient_s_consents_and_the_labels_they_show(
    client: TestClient,
) -> None:
    patient_id, ids = full_chart(client)
    directive = {**GRANT_BODY, "grantee": "org:org-main", "labels": ["mental_health"]}
    granted = client.post(
        f"/v1/patients/{patient_id}/consents", json=directive, headers=patient_token(patient_id)
    )
    assert granted.status_code == 201, granted.text
    caught_up(client)
    response = fhir_get(client, f"/fhir/Patient/{patient_id}/$everything")
    found = validated(response.json())
    assert [r["resourceType"] for r in found[:3]] == ["Patient", "Coverage", "Consent"]
    assert found[2]["status"] == "active"
    assert found[2]["provision"]["securityLabel"][0]["code"] == "MH"
    # The directive shows the mental-health condition: now 11 entries, all counted
    assert response.json()["total"] == 3 + 11
    assert resource_id(patient_id, ids["panic"]) in {r["id"] for r in found}
    assert_replays(client, response)
    only = fhir_get(client, f"/fhir/Patient/{patient_id}/$everything", {"_type": "Consent"})
    assert validated(only.json()) == [found[2]]
    coverage = fhir_get(client, f"/fhir/Patient/{patient_id}/$everything", {"_type": "Coverage"})
    assert validated(coverage.json()) == [found[1]]
    assert_replays(client, coverage)
    assert_replays(client, only)


def test_everything_refuses_what_it_must(client: TestClient) -> None:
    patient_id, _ids = full_chart(client)
    caught_up(client)
    where = f"/fhir/Patient/{patient_id}/$everything"
    outcome(client.get(where), 401)
    outcome(fhir_get(client, f"/fhir/Patient/{UNKNOWN_ID}/$everything"), 404)
    outsider = fhir_get(client, where, headers=OUTSIDER)
    outcome(outsider, 404)
    assert "X-Access-Id" not in outsider.headers
    outcome(fhir_get(client, where, headers=ADMIN), 403)
    outcome(fhir_get(client, where, {"_type": "Provenance"}), 422)
    outcome(fhir_get(client, where, {"_since": "soon"}), 422)
    outcome(fhir_get(client, where, {"start": "2026"}), 422)
    outcome(fhir_get(client, where, {"_cursor": "not-a-cursor"}), 422)
    outcome(fhir_get(client, "/fhir/Patient/not-an-id/$everything"), 404)


def test_the_capability_statement_names_the_everything_operation(client: TestClient) -> None:
    [statement] = validated(client.get("/fhir/metadata").json())
    [patient] = [r for r in statement["rest"][0]["resource"] if r["type"] == "Patient"]
    assert [op["name"] for op in patient["operation"]] == ["everything", "export"]
