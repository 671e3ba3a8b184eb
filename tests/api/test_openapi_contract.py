"""The OpenAPI document says exactly what the server sends (issue 20).

Every operation documents a real body with an example, every problem is
``application/problem+json``, the bearer scheme and the headers are declared, ``/docs``
works with no external URL, and a walk through every /v1 operation validates each real
answer (body and documented headers) against the document.
"""

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from tests.api.support import (
    ADMIN,
    AUDITOR,
    CLINICIAN,
    ENCOUNTER_BODY,
    GRANT_BODY,
    MEDICATION,
    enrol_body,
    patient_token,
    settled,
    under_care,
)
from tests.conftest import ENTRY_BODY, REGISTER_BODY, auth

METHODS = ("get", "post", "put", "patch", "delete")
BREAK_GLASS = {"X-Break-Glass": "unconscious patient arrived at the emergency department"}
PROBLEM = {"$ref": "#/components/schemas/Problem"}


@pytest.fixture
def document(client: TestClient) -> dict[str, Any]:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    found: dict[str, Any] = response.json()
    return found


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield path, method, operation


def test_every_operation_documents_a_real_body_with_an_example(document: dict[str, Any]) -> None:
    checked = 0
    for path, method, operation in operations(document):
        if path == "/metrics":  # Prometheus text
            continue
        successes = {c: r for c, r in operation["responses"].items() if c.startswith("2")}
        assert len(successes) == 1, (method, path, list(successes))
        for response in successes.values():
            media = response["content"]["application/json"]
            assert media["schema"] != {"type": "string"}, (method, path)
            assert media["schema"]["$ref"].startswith("#/components/schemas/"), (method, path)
            assert "example" in media, (method, path)
            validator(document, media["schema"]).validate(media["example"])
            # and the schema has teeth: an empty object is not such a body
            assert not validator(document, media["schema"]).is_valid({}), (method, path)
        checked += 1
    assert checked >= 33


def test_every_problem_is_problem_json_and_the_422_default_is_gone(
    document: dict[str, Any],
) -> None:
    for path, method, operation in operations(document):
        for code, response in operation["responses"].items():
            if int(code) >= 400 and (path, code) != ("/readyz", "503"):
                assert response["content"] == {"application/problem+json": {"schema": PROBLEM}}, (
                    method,
                    path,
                    code,
                )
        if path.startswith("/v1/"):
            assert {"401", "403", "422", "503"} <= set(operation["responses"]), (method, path)
    schemas = document["components"]["schemas"]
    assert "HTTPValidationError" not in schemas
    problem = schemas["Problem"]
    assert set(problem["required"]) == {"type", "title", "status", "detail"}
    assert problem["properties"]["errors"]["type"] == "array"


def test_a_bearer_scheme_guards_every_v1_operation(document: dict[str, Any]) -> None:
    schemes = document["components"]["securitySchemes"]
    assert schemes["bearerAuth"] == {**schemes["bearerAuth"], "type": "http", "scheme": "bearer"}
    assert schemes["bearerAuth"]["bearerFormat"] == "JWT"
    for path, method, operation in operations(document):
        expected = [{"bearerAuth": []}] if path.startswith("/v1/") else None
        assert operation.get("security") == expected, (method, path)


def test_request_and_response_headers_are_documented(document: dict[str, Any]) -> None:
    for path, method, operation in operations(document):
        if not path.startswith("/v1/"):
            continue
        headers = {p["name"].lower(): p for p in operation["parameters"] if p["in"] == "header"}
        assert headers["x-purpose-of-use"]["schema"]["enum"][0] == "TREAT", (method, path)
        assert "x-break-glass" in headers
        assert ("idempotency-key" in headers) == (method == "post"), (method, path)
    paths = document["paths"]
    assert "if-match" in {
        p["name"] for p in paths["/v1/patients/{patient_id}"]["patch"]["parameters"]
    }
    timeline = paths["/v1/patients/{patient_id}/timeline"]["get"]["responses"]["200"]
    assert timeline["headers"]["X-Access-Id"]["required"] is True
    demographics = paths["/v1/patients/{patient_id}"]["get"]["responses"]["200"]
    assert {"X-Access-Id", "ETag"} <= set(demographics["headers"])


def test_docs_and_their_assets_load_with_no_external_url(client: TestClient) -> None:
    for page in ("/docs", "/redoc"):
        html = client.get(page)
        assert html.status_code == 200
        assert "cdn" not in html.text.lower()
        assets = re.findall(r"""(?:src|href|url)\s*[:=]\s*['"]([^'"]+)['"]""", html.text)
        assert assets, html.text
        for asset in assets:
            assert not asset.startswith(("http:", "https:", "//")), asset
            assert client.get(asset).status_code == 200, asset


# --- real answers against the document ------------------------------------------------


def validator(document: dict[str, Any], schema: dict[str, Any]) -> Draft202012Validator:
    resource = Resource.from_contents(document, default_specification=DRAFT202012)
    registry: Registry[Any] = Registry().with_resource("urn:openapi", resource)
    pointer = schema["$ref"].replace("#", "urn:openapi#", 1)
    return Draft202012Validator(
        {"$ref": pointer},
        registry=registry,
        format_checker=Draft202012Validator.FORMAT_CHECKER,
    )


class Walk:
    """Calls the API and keeps each answer with the operation it answered."""

    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.seen: list[tuple[str, str, httpx.Response]] = []

    def __call__(self, method: str, template: str, ids: dict[str, str], **kw: Any) -> Any:
        response = self.client.request(method, template.format(**ids), **kw)
        self.seen.append((method.lower(), template, response))
        return response


def walk_every_operation(client: TestClient) -> list[tuple[str, str, httpx.Response]]:
    call = Walk(client)
    chart = "/v1/patients/{patient_id}"
    pid = {
        "patient_id": call(
            "POST", "/v1/patients", {}, json=REGISTER_BODY, headers=CLINICIAN
        ).json()["id"]
    }
    under_care(client, pid["patient_id"])
    written = call("POST", f"{chart}/entries", pid, json=ENTRY_BODY, headers=CLINICIAN).json()
    entry = {**pid, "entry_id": written["entry_id"]}
    call(
        "POST",
        f"{chart}/entries/{{entry_id}}/amendments",
        entry,
        json={"reason": "typo"},
        headers=CLINICIAN,
    )
    other = call("POST", f"{chart}/entries", pid, json=ENCOUNTER_BODY, headers=CLINICIAN).json()
    wrong = {**pid, "entry_id": other["entry_id"]}
    call(
        "POST",
        f"{chart}/entries/{{entry_id}}/entered-in-error",
        wrong,
        json={"reason": "wrong chart"},
        headers=CLINICIAN,
    )
    call("PATCH", chart, pid, json={"sex": "female"}, headers=CLINICIAN)
    call("PATCH", chart, pid, json={"sex": "female"}, headers={**CLINICIAN, "If-Match": '"1"'})
    call("GET", chart, pid, headers=CLINICIAN)
    call(
        "GET",
        "/v1/patients",
        {},
        params={"mrn": REGISTER_BODY["mrn"], **settled(client)},
        headers=CLINICIAN,
    )
    timeline = call(
        "GET", f"{chart}/timeline", pid, params={"limit": 1, **settled(client)}, headers=CLINICIAN
    )
    granted = call("POST", f"{chart}/consents", pid, json=GRANT_BODY, headers=CLINICIAN).json()
    call("GET", f"{chart}/consents", pid, params=settled(client), headers=CLINICIAN)
    directive = {**pid, "directive_id": granted["directive_id"]}
    call(
        "POST",
        f"{chart}/consents/{{directive_id}}/revoke",
        directive,
        json={"reason": "changed"},
        headers=CLINICIAN,
    )
    call(
        "POST",
        f"{chart}/restrictions",
        pid,
        json={"purposes": ["HMARKT"]},
        headers=patient_token(pid["patient_id"]),
    )
    enrolled = call(
        "POST",
        "/v1/memberships",
        {},
        json=enrol_body(pid["patient_id"], plan="employer", sponsor_id="acme"),
        headers=ADMIN,
    ).json()
    membership = {"membership_id": enrolled["id"]}
    call("GET", "/v1/memberships", {}, params={"limit": 1, **settled(client)}, headers=ADMIN)
    call(
        "POST",
        "/v1/memberships/{membership_id}/renew",
        membership,
        json={"ends_on": "2027-12-31"},
        headers=ADMIN,
    )
    call(
        "POST",
        "/v1/memberships/{membership_id}/cancel",
        membership,
        json={"reason": "moved"},
        headers=ADMIN,
    )
    call(
        "POST",
        "/v1/sponsors/{sponsor_id}/discontinue",
        {"sponsor_id": "acme"},
        json={"effective_on": "2026-06-01"},
        headers=ADMIN,
    )
    second = {
        "patient_id": call(
            "POST", "/v1/patients", {}, json={**REGISTER_BODY, "mrn": "MRN-2"}, headers=CLINICIAN
        ).json()["id"]
    }
    glass = call("GET", chart, second, headers={**CLINICIAN, **BREAK_GLASS})
    access = {"access_id": glass.headers["X-Access-Id"]}
    call("GET", "/v1/audit/break-glass", {}, params=settled(client), headers=AUDITOR)
    call(
        "POST",
        "/v1/audit/accesses/{access_id}/review",
        access,
        json={"outcome": "justified"},
        headers=AUDITOR,
    )
    call("GET", "/v1/audit/accesses", {}, params={"limit": 2, **settled(client)}, headers=AUDITOR)
    call("GET", "/v1/audit/accesses/{access_id}", access, headers=AUDITOR)
    call(
        "POST",
        "/v1/audit/accesses/{access_id}/replay",
        {"access_id": timeline.headers["X-Access-Id"]},
        headers=AUDITOR,
    )
    call("GET", "/v1/audit/verify", {}, headers=AUDITOR)
    call("GET", "/v1/audit/head", {}, headers=AUDITOR)
    call("GET", f"{chart}/disclosures", pid, params=settled(client), headers=AUDITOR)
    call(
        "GET",
        "/v1/me/access-log",
        {},
        params={"limit": 2, **settled(client)},
        headers=patient_token(pid["patient_id"]),
    )
    subscriber = {
        "name": "Main St pharmacy",
        "recipient_org": "org-main",
        "purpose": "TREAT",
        "kinds": ["medication"],
        "content": "full",
    }
    subscriber_id = call("POST", "/v1/subscribers", {}, json=subscriber, headers=ADMIN).json()["id"]
    service = auth("service", sub=subscriber_id)
    client.post(f"/v1/patients/{pid['patient_id']}/entries", json=MEDICATION, headers=CLINICIAN)
    call("GET", "/v1/subscribers", {}, headers=ADMIN)
    call(
        "GET",
        "/v1/subscribers/{subscriber_id}/feed",
        {"subscriber_id": subscriber_id},
        headers=service,
    )
    call(
        "POST",
        f"{chart}/death",
        second,
        json={"deceased_at": "2026-11-21T10:00:00Z"},
        headers={**CLINICIAN, **BREAK_GLASS},
    )
    call("POST", f"{chart}/erase", second, json={"legal_basis": "GDPR art. 17"}, headers=ADMIN)
    # Problems: erased, unauthenticated, forbidden, invalid, stale, not found
    call("GET", chart, second, headers=CLINICIAN)
    call("GET", f"{chart}/timeline", pid, headers={})
    call("GET", "/v1/audit/verify", {}, headers=CLINICIAN)
    call("POST", "/v1/patients", {}, json={}, headers=CLINICIAN)
    call("PATCH", chart, pid, json={"sex": "male"}, headers={**CLINICIAN, "If-Match": '"1"'})
    call(
        "GET",
        "/v1/audit/accesses/{access_id}",
        {"access_id": "00000000-0000-4000-8000-000000000000"},
        headers=AUDITOR,
    )
    call("GET", "/healthz", {})
    call("GET", "/readyz", {})
    return call.seen


def test_real_answers_match_the_documented_bodies_and_headers(
    client: TestClient, document: dict[str, Any]
) -> None:
    seen = walk_every_operation(client)
    answered: set[tuple[str, str]] = set()
    for method, template, response in seen:
        operation = document["paths"][template][method]
        code = str(response.status_code)
        assert code in operation["responses"], (method, template, code, response.text)
        documented = operation["responses"][code]
        media_type, media = next(iter(documented["content"].items()))
        assert response.headers["content-type"].split(";")[0] == media_type, (method, template)
        errors = sorted(validator(document, media["schema"]).iter_errors(response.json()), key=str)
        assert not errors, (method, template, code, [e.message for e in errors][:3])
        for name, header in documented.get("headers", {}).items():
            if header.get("required"):
                assert name.lower() in response.headers, (method, template, name)
        if code.startswith("2"):
            answered.add((method, template))
    v1 = {(m, p) for p, m, _ in operations(document) if p.startswith("/v1/")}
    assert v1 <= answered, sorted(v1 - answered)
