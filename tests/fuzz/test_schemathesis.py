"""The OpenAPI document says exactly what the server sends, for every role.

Schemathesis generates requests from /openapi.json (CARELEDGER_FUZZ_EXAMPLES per
operation: 100 here, 1,000 under `make fuzz`) and checks every answer: no 5xx, a status,
content type, body and headers that the document declares. It runs as a clinician, an
admin, an auditor and a patient, on SQLite and on PostgreSQL, against a store seeded
with a chart under care, and each operation a role may use must answer it a 2xx at
least once: a run that only ever saw 403s and 404s has tested nothing.
"""

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.container import Container
from tests.fuzz import harness
from tests.fuzz.seed import Seeded, seed, with_examples

ANYONE = {"GET /healthz", "GET /readyz", "GET /metrics"}
CHART = "/v1/patients/{patient_id}"
ACCESS = "/v1/audit/accesses/{access_id}"
# The operations each role is allowed (tests/api/test_authorisation_matrix.py). The
# feed is for the subscriber's own service token, none of these four.
ALLOWED = {
    "clinician": {
        "POST /v1/patients",
        "GET /v1/patients",
        f"GET {CHART}",
        f"PATCH {CHART}",
        f"POST {CHART}/entries",
        f"POST {CHART}/entries/{{entry_id}}/amendments",
        f"POST {CHART}/entries/{{entry_id}}/entered-in-error",
        f"POST {CHART}/death",
        f"GET {CHART}/timeline",
        f"GET {CHART}/consents",
        f"POST {CHART}/consents",
        f"POST {CHART}/consents/{{directive_id}}/revoke",
        f"POST {CHART}/restrictions",
    },
    "admin": {
        "POST /v1/memberships",
        "GET /v1/memberships",
        "POST /v1/memberships/{membership_id}/renew",
        "POST /v1/memberships/{membership_id}/cancel",
        "POST /v1/sponsors/{sponsor_id}/discontinue",
        f"POST {CHART}/erase",
        "GET /v1/audit/verify",
        "GET /v1/audit/head",
        "POST /v1/subscribers",
        "GET /v1/subscribers",
    },
    "auditor": {
        f"GET {CHART}/disclosures",
        "GET /v1/audit/accesses",
        "GET /v1/audit/verify",
        "GET /v1/audit/head",
        f"GET {ACCESS}",
        f"POST {ACCESS}/replay",
        "GET /v1/audit/break-glass",
        f"POST {ACCESS}/review",
    },
    "patient": {
        f"GET {CHART}",
        f"GET {CHART}/timeline",
        f"GET {CHART}/consents",
        f"POST {CHART}/consents",
        f"POST {CHART}/consents/{{directive_id}}/revoke",
        f"POST {CHART}/restrictions",
        f"GET {CHART}/disclosures",
        "GET /v1/audit/accesses",
        f"GET {ACCESS}",
        "GET /v1/me/access-log",
    },
}


@pytest.fixture
def seeded_app(container: Container) -> Iterator[tuple[Any, Seeded, dict[str, Any]]]:
    """The app with its processes running, a seeded store, and the document it serves."""
    app = create_app(container)
    client = TestClient(app, raise_server_exceptions=False)
    harness.start_app(app)
    try:
        seeded = seed(client)
        document = client.get("/openapi.json").json()
        yield app, seeded, document
    finally:
        harness.stop_app()


@pytest.mark.parametrize("role", sorted(ALLOWED))
def test_every_answer_conforms_to_the_document(
    seeded_app: tuple[Any, Seeded, dict[str, Any]], role: str
) -> None:
    app, seeded, document = seeded_app
    claims: dict[str, Any] = {"sub": f"{role}-fuzz"}
    if role == "patient":
        claims["patient"] = seeded.patient_id
    report = harness.run(app, with_examples(document, seeded), role, claims)

    assert not report.errors and not report.failures, report.summary()
    assert report.stateful, "the stateful phase sent nothing: are the links gone?"
    operations = {
        f"{method.upper()} {path}"
        for path, item in document["paths"].items()
        for method in item
        if method in {"get", "post", "put", "patch", "delete"}
    }
    assert ALLOWED[role] | ANYONE <= operations
    never = sorted(op for op in ALLOWED[role] | ANYONE if not report.succeeded(op))
    assert never == [], {op: dict(report.statuses.get(op, {})) for op in never}
