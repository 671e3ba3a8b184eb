"""The document's links are real: each is declared, and following one by hand works.

A stateful tester (and a reader) takes ``$response.body#/id`` of a registration as the
``patient_id`` of the next call. These stories evaluate the declared expressions on
real answers and call the declared target, so a link that points at the wrong field,
parameter or operation fails here.
"""

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from fastapi.testclient import TestClient

from api.openapi_links import links
from tests.api.support import ADMIN, AUDITOR, CLINICIAN, GRANT_BODY, enrol_body, settled
from tests.conftest import ENTRY_BODY, REGISTER_BODY


def declared(document: dict[str, Any]) -> dict[tuple[str, str, str, str], dict[str, Any]]:
    """Every link of ``document``, by (method, path, status, name)."""
    found = {}
    for path, item in document["paths"].items():
        for method, operation in item.items():
            for status, response in operation.get("responses", {}).items():
                for name, link in response.get("links", {}).items():
                    found[(method, path, status, name)] = link
    return found


def operation_of(document: dict[str, Any], link: dict[str, Any]) -> tuple[str, str]:
    """The (method, path) a link's ``operationId`` names."""
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if operation.get("operationId") == link["operationId"]:
                return method, path
    raise AssertionError(f"no operation {link['operationId']}")


def evaluate(expression: str, request: httpx.Request, response: httpx.Response) -> str:
    """The few runtime expressions the links use (OpenAPI 3.1, 'Runtime Expressions')."""
    if expression.startswith("$response.body#/"):
        value: Any = response.json()
        pointer = expression.removeprefix("$response.body#/")
    elif expression.startswith("$request.body#/"):
        value = json.loads(request.content)
        pointer = expression.removeprefix("$request.body#/")
    elif expression.startswith("$response.header."):
        return response.headers[expression.removeprefix("$response.header.")]
    elif expression.startswith("$request.path."):
        name = expression.removeprefix("$request.path.")
        return request.extensions["path_params"][name]  # type: ignore[no-any-return]
    else:
        raise AssertionError(f"unexpected expression {expression}")
    for part in pointer.split("/"):
        value = value[int(part)] if isinstance(value, list) else value[part]
    return str(value)


class Follower:
    """Calls an operation, then follows one of its declared links by name."""

    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.document = client.get("/openapi.json").json()
        self.links = declared(self.document)

    def call(
        self, method: str, path: str, path_params: dict[str, str], headers: Any, **kwargs: Any
    ) -> tuple[httpx.Request, httpx.Response]:
        url = path.format(**path_params)
        response = self.client.request(method, url, headers=headers, **kwargs)
        response.request.extensions["path_params"] = path_params
        return response.request, response

    def follow(
        self,
        source: tuple[str, str],
        answered: tuple[httpx.Request, httpx.Response],
        name: str,
        headers: Any,
        body: dict[str, Any] | None = None,
    ) -> tuple[httpx.Request, httpx.Response]:
        request, response = answered
        link = self.links[(*source, str(response.status_code), name)]
        method, path = operation_of(self.document, link)
        values = {
            key: evaluate(expr, request, response)
            for key, expr in link.get("parameters", {}).items()
        }
        path_params = {
            k.removeprefix("path."): v for k, v in values.items() if k.startswith("path.")
        }
        query = {k.removeprefix("query."): v for k, v in values.items() if k.startswith("query.")}
        if "requestBody" in link:
            linked = {k: evaluate(v, request, response) for k, v in link["requestBody"].items()}
            body = {**(body or {}), **linked}
        if method == "get" and "min_position" not in query:
            query.update(settled(self.client))
        return self.call(method, path, path_params, headers, params=query, json=body)


def test_every_link_is_in_the_served_document_and_names_a_parameter_of_its_target(
    client: TestClient,
) -> None:
    document = client.get("/openapi.json").json()
    found = declared(document)
    for link in links():
        key = (*link.source, link.status, link.name)
        assert key in found, f"link {key} is missing from /openapi.json"
        method, path = operation_of(document, found[key])
        assert (method, path) == link.target
        names = {
            f"{parameter['in']}.{parameter['name']}"
            for parameter in document["paths"][path][method].get("parameters", [])
        }
        assert set(link.parameters) <= names, (key, names)
    assert len(found) == len(links())


def test_register_then_read_record_and_page_the_timeline_through_the_links(
    client: TestClient,
) -> None:
    chart = Follower(client)
    registered = chart.call("post", "/v1/patients", {}, CLINICIAN, json=REGISTER_BODY)
    assert registered[1].status_code == 201
    patient_id = registered[1].json()["id"]
    read = chart.follow(("post", "/v1/patients"), registered, "ReadPatient", CLINICIAN)
    assert read[1].status_code == 200 and read[1].json()["id"] == patient_id
    today = datetime.now(UTC).date()
    care = {  # from yesterday: clinical reads need an active membership
        "starts_on": (today - timedelta(days=1)).isoformat(),
        "ends_on": (today + timedelta(days=365)).isoformat(),
    }
    enrolled = chart.follow(
        ("post", "/v1/patients"), registered, "Enrol", ADMIN, enrol_body("replaced", **care)
    )
    assert enrolled[1].status_code == 201, enrolled[1].text
    recorded = chart.follow(
        ("post", "/v1/patients"), registered, "RecordEntry", CLINICIAN, ENTRY_BODY
    )
    assert recorded[1].status_code == 201
    timeline = chart.follow(
        ("post", "/v1/patients/{patient_id}/entries"), recorded, "ReadTimeline", CLINICIAN
    )
    assert timeline[1].status_code == 200, timeline[1].text
    entries = timeline[1].json()["entries"]
    assert [entry["entry_id"] for entry in entries] == [recorded[1].json()["entry_id"]]
    amended = chart.follow(
        ("post", "/v1/patients/{patient_id}/entries"),
        recorded,
        "AmendEntry",
        CLINICIAN,
        {"reason": "corrected", "value": {"quantity": 70, "unit": "/min"}},
    )
    assert amended[1].status_code == 201, amended[1].text
    replayed = chart.follow(
        ("get", "/v1/patients/{patient_id}/timeline"), timeline, "ReplayAccess", AUDITOR
    )
    assert replayed[1].status_code == 200 and replayed[1].json()["matches"] is True


def test_enrol_then_list_and_renew_the_membership_through_the_links(
    client: TestClient,
) -> None:
    chart = Follower(client)
    registered = chart.call("post", "/v1/patients", {}, CLINICIAN, json=REGISTER_BODY)
    enrolled = chart.call(
        "post", "/v1/memberships", {}, ADMIN, json=enrol_body(registered[1].json()["id"])
    )
    assert enrolled[1].status_code == 201
    listed = chart.follow(("post", "/v1/memberships"), enrolled, "ListMemberships", ADMIN)
    assert listed[1].status_code == 200
    assert [item["id"] for item in listed[1].json()["items"]] == [enrolled[1].json()["id"]]
    renewed = chart.follow(
        ("get", "/v1/memberships"), listed, "Renew", ADMIN, {"ends_on": "2027-12-31"}
    )
    assert renewed[1].status_code == 200, renewed[1].text


def test_grant_then_read_and_revoke_the_directive_through_the_links(
    client: TestClient,
) -> None:
    chart = Follower(client)
    registered = chart.call("post", "/v1/patients", {}, CLINICIAN, json=REGISTER_BODY)
    granted = chart.follow(
        ("post", "/v1/patients"), registered, "GrantDirective", CLINICIAN, GRANT_BODY
    )
    assert granted[1].status_code == 201, granted[1].text
    consents = chart.follow(
        ("post", "/v1/patients/{patient_id}/consents"), granted, "ReadConsents", CLINICIAN
    )
    assert consents[1].status_code == 200
    directive_id = granted[1].json()["directive_id"]
    assert [d["directive_id"] for d in consents[1].json()["directives"]] == [directive_id]
    revoked = chart.follow(
        ("post", "/v1/patients/{patient_id}/consents"),
        granted,
        "RevokeDirective",
        CLINICIAN,
        {"reason": "withdrawn"},
    )
    assert revoked[1].status_code == 200, revoked[1].text
