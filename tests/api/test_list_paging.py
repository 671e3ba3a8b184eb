"""A list is ``{items, next_cursor}`` (issue 20): memberships, the accounting of
disclosures and a directory search page by cursor, and the pages together are the
whole list, once each."""

from typing import Any

from fastapi.testclient import TestClient

from tests.api.support import (
    ADMIN,
    AUDITOR,
    CLINICIAN,
    assert_problem,
    auth,
    enrol,
    register,
    settled,
)
from tests.conftest import REGISTER_BODY


def pages(client: TestClient, path: str, headers: Any, **params: Any) -> list[dict[str, Any]]:
    """Every page of a list, following ``next_cursor`` until it is null."""
    found: list[dict[str, Any]] = []
    cursor = None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        response = client.get(path, params=query, headers=headers)
        assert response.status_code == 200, response.text
        body = response.json()
        assert len(body["items"]) <= params["limit"]
        found.append(body)
        cursor = body["next_cursor"]
        if cursor is None:
            return found


def test_memberships_page_by_cursor_and_every_one_shows_once(client: TestClient) -> None:
    patient_id = register(client)
    enrolled = {
        enrol(client, patient_id, starts_on=f"2026-0{month}-01", ends_on="2026-12-31")
        for month in (1, 2, 3, 4, 5)
    }
    listed = pages(client, "/v1/memberships", ADMIN, limit=2, **settled(client))
    assert [len(page["items"]) for page in listed] == [2, 2, 1]
    ids = [item["id"] for page in listed for item in page["items"]]
    assert set(ids) == enrolled and len(ids) == len(enrolled)
    starts = [item["starts_on"] for page in listed for item in page["items"]]
    assert starts == sorted(starts)


def test_a_full_last_page_of_memberships_says_there_is_no_more(client: TestClient) -> None:
    patient_id = register(client)
    enrol(client, patient_id)
    enrol(client, patient_id, starts_on="2026-02-01")
    listed = pages(client, "/v1/memberships", ADMIN, limit=2, **settled(client))
    assert len(listed) == 1 and len(listed[0]["items"]) == 2


def test_a_membership_cursor_not_issued_by_the_api_is_422(client: TestClient) -> None:
    response = client.get("/v1/memberships", params={"cursor": "not-a-cursor"}, headers=ADMIN)
    assert_problem(response, 422, "cursor")


def test_the_accounting_pages_by_cursor_over_accountable_disclosures(client: TestClient) -> None:
    # Given five public-health reads of a chart (accountable), among exempt treatment ones
    patient_id = register(client)
    health = auth("clinician", sub="dr-health")
    for _ in range(5):
        read = client.get(
            f"/v1/patients/{patient_id}", headers={**health, "X-Purpose-Of-Use": "PUBHLTH"}
        )
        assert read.status_code == 200, read.text
    path = f"/v1/patients/{patient_id}/disclosures"
    listed = pages(client, path, AUDITOR, limit=2, **settled(client))
    assert [len(page["items"]) for page in listed] == [2, 2, 1]
    dates = [item["date"] for page in listed for item in page["items"]]
    assert dates == sorted(dates, reverse=True) and len(set(dates)) == 5


def test_a_search_pages_by_cursor_and_each_page_replays(client: TestClient) -> None:
    # Given three patients of one family name and birth date
    for n in range(3):
        register(client, {**REGISTER_BODY, "mrn": f"MRN-PAGE-{n}"})
    query = {
        "family": REGISTER_BODY["name"]["family"],
        "birth_date": REGISTER_BODY["birth_date"],
        **settled(client),
    }
    # When a clinician pages through the hits two at a time
    listed = pages(client, "/v1/patients", CLINICIAN, limit=2, **query)
    assert [len(page["items"]) for page in listed] == [2, 1]
    ids = [item["id"] for page in listed for item in page["items"]]
    assert len(set(ids)) == 3 and ids == sorted(ids)
    # Then each page, next_cursor and all, is what an auditor's replay rebuilds
    first = client.get("/v1/patients", params={**query, "limit": 2}, headers=CLINICIAN)
    assert first.json()["next_cursor"] is not None
    replay = client.post(
        f"/v1/audit/accesses/{first.headers['X-Access-Id']}/replay", headers=AUDITOR
    ).json()
    assert replay["matches"] and replay["body"] == first.json()


def test_a_search_cursor_not_issued_by_the_api_is_422(client: TestClient) -> None:
    response = client.get(
        "/v1/patients", params={"mrn": "MRN-1", "cursor": "bm90LWEtY3Vyc29y"}, headers=CLINICIAN
    )
    assert_problem(response, 422, "cursor")
