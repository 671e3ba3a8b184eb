"""SMART v2 scopes narrow what the policy permits, on /fhir and /v1, and never widen it.

A clinician's app that asked only for ``user/Observation.rs`` reads Observations and
nothing else; a ``patient/`` scope reads only its launch patient; a token without a
``scope`` claim is served as before. Every refusal is a 403 with a recorded denial.
"""

import time
from pathlib import Path
from typing import Any
from uuid import uuid4

import jwt as pyjwt
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner, Result

from api.cli import cli
from api.dependencies import request_context
from api.scope_routes import PUBLIC, ROUTES
from application.scopes import Grant, Need, parse_scope
from tests.api.support import settled
from tests.conftest import ENTRY_BODY, JWT_SECRET, REGISTER_BODY, auth
from tests.fhir.support import (
    HEART_RATE,
    VISIT,
    caught_up,
    outcome,
    record_entry,
    register,
    under_care,
    validated,
)

# ---- the route table ---------------------------------------------------------------------


def _routes(client: TestClient) -> dict[tuple[str, str], Any]:
    """Every (method, path) served under /v1, /fhir and /.well-known, with its route
    (whatever the FastAPI version nests included routers in)."""
    found: dict[tuple[str, str], Any] = {}

    def visit(route: Any) -> None:
        path, methods = getattr(route, "path", None), getattr(route, "methods", None)
        if isinstance(path, str) and methods and path.startswith(("/v1", "/fhir", "/.well")):
            for method in set(methods) - {"HEAD", "OPTIONS"}:
                found[(method, path)] = route
        contexts = getattr(route, "effective_route_contexts", None)
        for child in [
            *(contexts() if callable(contexts) else ()),
            *(getattr(route, "routes", None) or ()),
        ]:
            visit(child)

    for route in client.app.routes:  # type: ignore[attr-defined]
        visit(route)
    return found


def _depends_on_context(route: Any) -> bool:
    pending = list(route.dependant.dependencies)
    while pending:
        dependant = pending.pop()
        if dependant.call is request_context:
            return True
        pending.extend(dependant.dependencies)
    return False


def test_every_v1_and_fhir_route_is_in_the_scope_table(client: TestClient) -> None:
    served = _routes(client)
    assert len(served) > 90, sorted(served)
    missing = set(served) - set(ROUTES) - PUBLIC
    assert missing == set(), "routes without a row in api/scope_routes.py"
    assert set(ROUTES) - set(served) == set(), "rows for routes that no longer exist"
    # A tabled route is checked only if it builds the request context: each one does,
    # and no public route does.
    unchecked = [key for key in ROUTES if not _depends_on_context(served[key])]
    assert unchecked == []
    assert [key for key in PUBLIC if key in served and _depends_on_context(served[key])] == []


# ---- the grammar -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "context", "resource", "permissions"),
    [
        ("patient/*.rs", "patient", "*", "rs"),
        ("user/Observation.rs", "user", "Observation", "rs"),
        ("user/*.cruds", "user", "*", "cruds"),
        ("system/*.rs", "system", "*", "rs"),
        ("patient/*.read", "patient", "*", "rs"),  # v1 forms read as v2
        ("user/Observation.write", "user", "Observation", "cud"),
        ("user/*.*", "user", "*", "cruds"),
    ],
)
def test_a_scope_parses_to_its_permissions(
    text: str, context: str, resource: str, permissions: str
) -> None:
    scope = parse_scope(text)
    assert scope is not None
    assert (scope.context, scope.resource, scope.permissions) == (
        context,
        resource,
        frozenset(permissions),
    )


@pytest.mark.parametrize(
    "text",
    [
        "openid",
        "launch/patient",
        "fhirUser",
        "user/Observation.sr",  # out of order
        "user/Observation.rr",
        "user/Observation.x",
        "user/observation.rs",
        "admin/*.rs",
        "patient/Observation.rs?category=laboratory",  # granular scopes: nothing, not all
    ],
)
def test_a_scope_that_names_no_data_or_does_not_parse_grants_nothing(text: str) -> None:
    assert parse_scope(text) is None
    assert Grant.of([text], None).refusal([Need("Observation", "r")], None) is not None


def test_patient_scopes_hold_only_for_the_launch_patient() -> None:
    pinned, other = uuid4(), uuid4()
    grant = Grant.of(["patient/*.rs"], pinned)
    assert grant.refusal([Need("Observation", "r")], pinned) is None
    assert "launch patient" in str(grant.refusal([Need("Observation", "r")], other))
    assert "launch patient" in str(grant.refusal([Need("Observation", "r")], None))
    unpinned = Grant.of(["patient/*.rs"], None)
    assert unpinned.refusal([Need("Observation", "r")], pinned) is not None
    assert grant.refusal([Need("Observation", "c")], pinned) == (
        "the token's scopes do not allow create of Observation"
    )


# ---- stories on both backends --------------------------------------------------------------


def _chart(client: TestClient, mrn: str = "MRN-0001") -> str:
    patient_id = register(client, {**REGISTER_BODY, "mrn": mrn})
    under_care(client, patient_id)
    record_entry(client, patient_id, HEART_RATE)
    record_entry(client, patient_id, VISIT)
    caught_up(client)
    return patient_id


def _denials(client: TestClient, patient_id: str) -> list[dict[str, Any]]:
    found = client.get(
        "/v1/audit/accesses",
        params={"decision": "deny", "patient_id": patient_id, "limit": 200, **settled(client)},
        headers=auth("auditor", sub="auditor-main"),
    )
    assert found.status_code == 200, found.text
    items: list[dict[str, Any]] = found.json()["items"]
    return items


def test_discovery_is_served_without_a_token(client: TestClient) -> None:
    smart = client.get("/.well-known/smart-configuration")
    assert smart.status_code == 200, smart.text
    body = smart.json()
    assert body["code_challenge_methods_supported"] == ["S256"]
    for capability in ("permission-v2", "permission-patient", "permission-user"):
        assert capability in body["capabilities"]
    assert "patient/*.rs" in body["scopes_supported"]
    # No authorization server configured: no endpoints are invented.
    assert "authorization_endpoint" not in body and "token_endpoint" not in body
    metadata = client.get("/fhir/metadata")
    assert metadata.status_code == 200
    statement = metadata.json()
    validated(statement)
    service = statement["rest"][0]["security"]["service"][0]["coding"][0]
    assert service["code"] == "SMART-on-FHIR"
    assert "extension" not in statement["rest"][0]["security"]


def test_configured_authorization_endpoints_are_published(client: TestClient) -> None:
    container = client.app.state.container  # type: ignore[attr-defined]
    kept = container.settings
    container.settings = kept.model_copy(
        update={
            "smart_authorization_endpoint": "https://idp.example/authorize",
            "smart_token_endpoint": "https://idp.example/token",
            "jwt_issuer": "https://idp.example",
        }
    )
    try:
        body = client.get("/.well-known/smart-configuration").json()
        statement = client.get("/fhir/metadata").json()
    finally:
        container.settings = kept
    assert body["authorization_endpoint"] == "https://idp.example/authorize"
    assert body["token_endpoint"] == "https://idp.example/token"
    assert body["issuer"] == "https://idp.example"
    validated(statement)
    (oauth,) = statement["rest"][0]["security"]["extension"]
    uris = {e["url"]: e["valueUri"] for e in oauth["extension"]}
    assert uris == {
        "authorize": "https://idp.example/authorize",
        "token": "https://idp.example/token",
    }


def test_an_observation_app_reads_observations_and_nothing_else(client: TestClient) -> None:
    patient_id = _chart(client)
    app = auth("clinician", sub="dr-main", scope="openid user/Observation.rs")
    unscoped = auth("clinician", sub="dr-main")
    observations = client.get("/fhir/Observation", params={"patient": patient_id}, headers=app)
    assert observations.status_code == 200, observations.text
    assert len(validated(observations.json())) == 1
    refused = client.get("/fhir/Encounter", params={"patient": patient_id}, headers=app)
    assert "do not allow search of Encounter" in outcome(refused, 403)["issue"][0]["diagnostics"]
    # The same request without a scope claim is served as before.
    assert (
        client.get("/fhir/Encounter", params={"patient": patient_id}, headers=unscoped).status_code
        == 200
    )
    # /v1 alike: the timeline of observations only, no demographics, no write.
    timeline = f"/v1/patients/{patient_id}/timeline"
    assert client.get(timeline, params={"kind": "observation"}, headers=app).status_code == 200
    assert client.get(timeline, headers=app).status_code == 403
    assert client.get(f"/v1/patients/{patient_id}", headers=app).status_code == 403
    write = client.post(f"/v1/patients/{patient_id}/entries", json=ENTRY_BODY, headers=app)
    assert write.status_code == 403
    assert write.headers["content-type"].startswith("application/problem+json")
    reasons = [d["reason"] for d in _denials(client, patient_id)]
    assert "the token's scopes do not allow search of Encounter" in reasons
    assert "the token's scopes do not allow create of Observation" in reasons


def test_scopes_never_widen_what_the_role_may_do(client: TestClient) -> None:
    patient_id = _chart(client)
    everything = "user/*.cruds system/*.cruds"
    admin = auth("admin", sub="admin-main", scope=everything)
    assert client.get(f"/v1/patients/{patient_id}/timeline", headers=admin).status_code == 403
    stranger = auth("clinician", sub="dr-other", org="org-other", scope=everything)
    assert client.get(f"/fhir/Patient/{patient_id}", headers=stranger).status_code == 404
    patient = auth("patient", sub="pat", patient=patient_id, scope="patient/*.cruds")
    write = client.post(f"/v1/patients/{patient_id}/entries", json=ENTRY_BODY, headers=patient)
    assert write.status_code == 403
    assert client.get(f"/fhir/Patient/{patient_id}", headers=patient).status_code == 200


def test_a_launch_patient_pins_patient_scopes(client: TestClient) -> None:
    mine, other = _chart(client), _chart(client, "MRN-0002")
    launched = auth("clinician", sub="dr-main", patient=mine, scope="launch/patient patient/*.rs")
    assert client.get(f"/fhir/Patient/{mine}", headers=launched).status_code == 200
    assert (
        client.get("/fhir/Observation", params={"patient": mine}, headers=launched).status_code
        == 200
    )
    refused = client.get(f"/fhir/Patient/{other}", headers=launched)
    assert "launch patient" in outcome(refused, 403)["issue"][0]["diagnostics"]
    assert client.get(f"/v1/patients/{other}/timeline", headers=launched).status_code == 403
    # A search that names no patient is not pinned to one: refused.
    assert (
        client.get("/fhir/Patient", params={"identifier": "x|y"}, headers=launched).status_code
        == 403
    )
    # patient/ scopes without a launch patient read nobody.
    unpinned = auth("clinician", sub="dr-main", scope="patient/*.rs")
    assert client.get(f"/fhir/Patient/{mine}", headers=unpinned).status_code == 403
    # A patient's own token is pinned to its own patient claim.
    own = auth("patient", sub="pat", patient=mine, scope="patient/*.read")
    assert client.get(f"/fhir/Patient/{mine}/$everything", headers=own).status_code == 200
    assert client.get("/v1/me/access-log", headers=own).status_code == 200
    assert any(d["reason"].endswith("does not name that patient") for d in _denials(client, other))


def test_everything_and_bundles_need_every_type_they_touch(client: TestClient) -> None:
    patient_id = _chart(client)
    narrow = auth("clinician", sub="dr-main", scope="user/Patient.r user/Observation.rs")
    path = f"/fhir/Patient/{patient_id}/$everything"
    assert client.get(path, headers=narrow).status_code == 403
    only = client.get(path, params={"_type": "Observation"}, headers=narrow)
    assert only.status_code == 200, only.text
    bundle = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            {
                "resource": {
                    "resourceType": "Condition",
                    "subject": {"reference": f"Patient/{patient_id}"},
                },
                "request": {"method": "POST", "url": "Condition"},
            }
        ],
    }
    writer = auth("clinician", sub="dr-main", scope="user/Observation.cruds")
    refused = client.post(
        "/fhir", json=bundle, headers=writer.with_headers({"Content-Type": "application/fhir+json"})
    )
    assert "create of Condition" in outcome(refused, 403)["issue"][0]["diagnostics"]


def test_an_unreadable_scope_claim_is_401(client: TestClient) -> None:

    import jwt as pyjwt

    from tests.conftest import JWT_SECRET

    now = int(time.time())
    claims = {"sub": "dr", "role": "clinician", "org": "org-main", "iat": now, "exp": now + 60}
    bad = pyjwt.encode({**claims, "scope": 7}, JWT_SECRET, algorithm="HS256")
    got = client.get("/v1/patients", headers={"Authorization": f"Bearer {bad}"})
    assert got.status_code == 401
    assert "scope claim" in got.json()["detail"]


# ---- careledger token --scope ---------------------------------------------------------------


def _cli(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, *args: str) -> Result:
    monkeypatch.setenv("CARELEDGER_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("CARELEDGER_JWT_SECRET", JWT_SECRET)
    return CliRunner().invoke(cli, list(args))


def test_the_token_command_mints_scoped_tokens_and_keeps_its_other_options(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    patient = str(uuid4())
    minted = _cli(
        monkeypatch,
        tmp_path,
        *("token", "--role", "clinician", "--sub", "dr-app", "--patient", patient),
        *("--scope", "launch/patient patient/*.rs", "--scope", "user/Observation.read"),
    )
    assert minted.exit_code == 0, minted.output
    claims = pyjwt.decode(minted.stdout.strip(), JWT_SECRET, algorithms=["HS256"])
    assert claims["scope"] == "launch/patient patient/*.rs user/Observation.read"
    assert claims["patient"] == patient and claims["role"] == "clinician"
    # Without --scope, no scope claim: the token is not narrowed.
    plain = _cli(monkeypatch, tmp_path, "token", "--role", "auditor", "--sub", "a")
    assert "scope" not in pyjwt.decode(plain.stdout.strip(), JWT_SECRET, algorithms=["HS256"])
    login = _cli(monkeypatch, tmp_path, "token", "--login", "--role", "auditor", "--sub", "a")
    assert login.exit_code == 0 and "/console/login?code=" in login.stdout
    for bad, message in (
        (["--scope", "user/Observation.sr"], "not a SMART v2 (or v1) scope"),
        (["--scope", "  "], "at least one scope"),
        (["--scope", "user/*.rs", "--login"], "console login link carries none"),
    ):
        refused = _cli(monkeypatch, tmp_path, "token", "--role", "auditor", "--sub", "a", *bad)
        assert refused.exit_code == 2, bad
        assert message in refused.stderr


@pytest.mark.parametrize("entries", [7, "x", {"a": 1}, [1, None, {"resource": 3}]])
def test_a_scoped_bundle_of_any_shape_is_judged_never_a_500(
    client: TestClient, entries: object
) -> None:
    writer = auth("clinician", sub="dr-main", scope="user/*.cruds")
    headers = writer.with_headers({"Content-Type": "application/fhir+json"})
    body = {"resourceType": "Bundle", "type": "batch", "entry": entries}
    got = client.post("/fhir", json=body, headers=headers)
    assert got.status_code in (200, 400, 422), got.text  # a batch answers entry by entry
    narrow = auth("clinician", sub="dr-main", scope="user/Observation.c")
    refused = client.post(
        "/fhir", json=body, headers=narrow.with_headers({"Content-Type": "application/fhir+json"})
    )
    assert refused.status_code == 403, refused.text  # an unreadable Bundle needs every type
