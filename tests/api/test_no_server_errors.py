"""No input ever produces a 500: random JSON-ish bodies against the two busiest writes.

SQLite only, to stay fast; the property is about parsing and validation, which do not
depend on the backend.
"""

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.app import create_app
from api.bootstrap import build
from tests.api.support import CLINICIAN, ENCOUNTER_BODY, register
from tests.conftest import ENTRY_BODY, REGISTER_BODY, make_settings

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=30)
    | st.sampled_from(
        [
            "",
            " ",
            "1984-07-12",
            "2999-01-01",
            "0001-01-01",
            "2026-11-20T09:30:00Z",
            "2026-11-20T09:30:00",
            "9999-12-31T23:59:59-01:00",
            "NaN",
            "1e999999",
            "female",
            "encounter",
            "observation",
            "virtual",
            "substance_use",
            "\u0000",
            "x" * 300,
        ]
    )
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=16,
)
KNOWN_KEYS = sorted(
    {*REGISTER_BODY, *ENTRY_BODY, *ENCOUNTER_BODY, "given", "family", "phone", "email"}
    | {"system", "code", "display", "quantity", "unit", "text", "boolean", "labels"}
)
RANDOM_DICTS = st.dictionaries(
    st.sampled_from(KNOWN_KEYS) | st.text(max_size=12), JSON_VALUES, max_size=8
)


@st.composite
def mutated(draw: st.DrawFn, value: Any, depth: int = 0) -> Any:
    """A near-valid body: some fields replaced, dropped, added, or mutated in turn."""
    if not isinstance(value, dict) or depth > 3:
        return draw(st.just(value) | JSON_VALUES) if depth else value
    result = {}
    for key, inner in value.items():
        choice = draw(st.sampled_from(["keep", "keep", "mutate", "replace", "drop"]))
        if choice == "keep":
            result[key] = inner
        elif choice == "mutate":
            result[key] = draw(mutated(inner, depth + 1))
        elif choice == "replace":
            result[key] = draw(JSON_VALUES)
    result.update(draw(st.dictionaries(st.text(max_size=8), JSON_VALUES, max_size=2)))
    return result


def _encoded(body: Any) -> bytes:
    return json.dumps(body, allow_nan=True).encode()


BODIES = (
    RANDOM_DICTS.map(_encoded)
    | JSON_VALUES.map(_encoded)
    | mutated(REGISTER_BODY).map(_encoded)
    | mutated(ENTRY_BODY).map(_encoded)
    | mutated(ENCOUNTER_BODY).map(_encoded)
    | st.binary(max_size=200)
)
FUZZ_SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.fixture
def chart(tmp_path: Path) -> Iterator[tuple[TestClient, str]]:
    """A client over a fresh SQLite store, and a patient registered in it."""
    container = build(
        make_settings(f"sqlite:///{tmp_path / 'fuzz.db'}", tmp_path / "var"), run_processes=True
    )
    with TestClient(create_app(container), raise_server_exceptions=False) as client:
        yield client, register(client)


@FUZZ_SETTINGS
@given(registration=BODIES, entry=BODIES)
def test_random_bodies_never_cause_a_server_error(
    chart: tuple[TestClient, str], registration: bytes, entry: bytes
) -> None:
    # Given a clinician and a registered patient
    client, patient_id = chart
    headers = {**CLINICIAN, "content-type": "application/json"}
    # When random JSON-ish bodies are posted as a registration and as an entry
    registered = client.post("/v1/patients", content=registration, headers=headers)
    recorded = client.post(f"/v1/patients/{patient_id}/entries", content=entry, headers=headers)
    # Then neither is ever a server error, and every refusal is a problem
    for response in (registered, recorded):
        assert response.status_code < 500, (response.status_code, response.text)
        if response.status_code >= 400:
            assert response.headers["content-type"] == "application/problem+json"
            assert response.json()["status"] == response.status_code
