"""Real ids for the fuzzer: a chart under care, its entries, consents, accesses and more.

Generated ids are random, so without these the fuzzer sees mostly 404s. Each seeded
resource becomes an example of the operation that addresses it (path, query and body),
so the examples phase reaches a 2xx, and the fuzzing and stateful phases start from
there. Resources that an operation changes once and for all (death, erasure, entered in
error, cancellation) get one of their own, so that they do not close the shared chart.
"""

import copy
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient

from tests.api.support import (
    CLINICIAN,
    ENCOUNTER_BODY,
    GRANT_BODY,
    enrol,
    grant,
    record_entry,
    register,
    settled,
    subscribe,
    under_care,
)
from tests.conftest import ENTRY_BODY, REGISTER_BODY

MRN = "MRN-FUZZ-1"
GLASS = "unconscious on arrival, no history available"
PATIENT = "/v1/patients/{patient_id}"
ENTRY = f"{PATIENT}/entries/{{entry_id}}"
ACCESS = "/v1/audit/accesses/{access_id}"


@dataclass(frozen=True)
class Example:
    """One operation's seeded request: path and query parameters, and a JSON body."""

    path: dict[str, str]
    query: dict[str, str] | None = None
    body: dict[str, Any] | None = None


@dataclass(frozen=True)
class Seeded:
    """What the store holds before the fuzzer starts, and the patient the patient role is."""

    patient_id: str
    examples: dict[tuple[str, str], Example]


def _patient(client: TestClient, mrn: str, *, cared_for: bool = True) -> str:
    patient_id = register(client, {**REGISTER_BODY, "mrn": mrn})
    if cared_for:
        under_care(client, patient_id)
    return patient_id


def seed(client: TestClient) -> Seeded:
    """Write the seeded resources through the API, as a clinician, an admin and a patient
    would, and return the examples that address them."""
    chart = _patient(client, MRN)
    record_entry(client, chart, ENCOUNTER_BODY)
    amended = record_entry(client, chart, ENTRY_BODY)
    withdrawn = record_entry(client, chart, ENTRY_BODY)
    revoked = grant(client, chart)
    dying = _patient(client, "MRN-FUZZ-2")
    erased = _patient(client, "MRN-FUZZ-3", cared_for=False)
    today = datetime.now(UTC).date()
    renewed = enrol(client, _patient(client, "MRN-FUZZ-4", cared_for=False))
    cancelled = enrol(client, _patient(client, "MRN-FUZZ-5", cared_for=False))
    enrolled = _patient(client, "MRN-FUZZ-6", cared_for=False)
    subscriber, _ = subscribe(client)
    seen = settled(client)
    read = client.get(f"/v1/patients/{chart}/timeline", params=seen, headers=CLINICIAN)
    glass = client.get(
        f"/v1/patients/{chart}/timeline",
        params=seen,
        headers={**CLINICIAN, "X-Break-Glass": GLASS},
    )
    assert read.status_code == glass.status_code == 200, (read.text, glass.text)
    settled(client)
    chart_path = {"patient_id": chart}
    examples = {
        ("post", "/v1/patients"): Example({}, body={**REGISTER_BODY, "mrn": "MRN-FUZZ-NEW"}),
        ("get", "/v1/patients"): Example({}, query={"mrn": MRN}),
        ("get", PATIENT): Example(chart_path),
        ("patch", PATIENT): Example(chart_path, body={"contact": {"phone": "+1-555-0199"}}),
        ("post", f"{PATIENT}/entries"): Example(chart_path, body=ENTRY_BODY),
        ("get", f"{PATIENT}/timeline"): Example(chart_path),
        ("get", f"{PATIENT}/consents"): Example(chart_path),
        ("get", f"{PATIENT}/disclosures"): Example(chart_path),
        ("post", f"{ENTRY}/amendments"): Example(
            {**chart_path, "entry_id": amended},
            body={"reason": "corrected", "value": {"quantity": 70, "unit": "/min"}},
        ),
        ("post", f"{ENTRY}/entered-in-error"): Example(
            {**chart_path, "entry_id": withdrawn}, body={"reason": "wrong chart"}
        ),
        ("post", f"{PATIENT}/death"): Example(
            {"patient_id": dying}, body={"deceased_at": "2026-11-01T10:00:00Z"}
        ),
        ("post", f"{PATIENT}/erase"): Example(
            {"patient_id": erased}, body={"legal_basis": "GDPR 17"}
        ),
        ("post", f"{PATIENT}/consents"): Example(chart_path, body=GRANT_BODY),
        ("post", f"{PATIENT}/consents/{{directive_id}}/revoke"): Example(
            {**chart_path, "directive_id": revoked}, body={"reason": "withdrawn"}
        ),
        ("post", f"{PATIENT}/restrictions"): Example(
            chart_path, body={"purposes": ["HMARKT"], "labels": [], "recipient": "org-ads"}
        ),
        ("post", "/v1/memberships"): Example(
            {},
            body={
                "patient_id": enrolled,
                "plan": "individual",
                "annual_fee_cents": 0,
                "starts_on": today.isoformat(),
                "ends_on": (today + timedelta(days=90)).isoformat(),
            },
        ),
        ("get", "/v1/memberships"): Example({}, query={"patient_id": chart}),
        ("post", "/v1/memberships/{membership_id}/renew"): Example(
            {"membership_id": renewed}, body={"ends_on": (today + timedelta(days=800)).isoformat()}
        ),
        ("post", "/v1/memberships/{membership_id}/cancel"): Example(
            {"membership_id": cancelled}, body={"reason": "moved away"}
        ),
        ("post", "/v1/sponsors/{sponsor_id}/discontinue"): Example(
            {"sponsor_id": "sponsor-fuzz"}, body={"effective_on": today.isoformat()}
        ),
        ("get", ACCESS): Example({"access_id": read.headers["X-Access-Id"]}),
        ("post", f"{ACCESS}/replay"): Example({"access_id": read.headers["X-Access-Id"]}),
        ("post", f"{ACCESS}/review"): Example(
            {"access_id": glass.headers["X-Access-Id"]},
            body={"outcome": "justified", "note": "confirmed with the attending"},
        ),
        ("get", "/v1/subscribers/{subscriber_id}/feed"): Example({"subscriber_id": subscriber}),
    }
    return Seeded(patient_id=chart, examples=examples)


def with_examples(document: dict[str, Any], seeded: Seeded) -> dict[str, Any]:
    """A copy of ``document`` whose operations carry the seeded requests as examples,
    beside any the document already has."""
    result = copy.deepcopy(document)
    for (method, path), example in seeded.examples.items():
        operation = result.get("paths", {}).get(path, {}).get(method)
        if operation is None:
            continue
        values = {"path": example.path, "query": example.query or {}}
        for parameter in operation.get("parameters", []):
            value = values.get(parameter.get("in"), {}).get(parameter.get("name"))
            if value is not None:
                _add_example(parameter, value)
        media = operation.get("requestBody", {}).get("content", {}).get("application/json")
        if example.body is not None and media is not None:
            _add_example(media, example.body)
    return result


def _add_example(holder: dict[str, Any], value: Any) -> None:
    """Add ``value`` to a parameter's or media type's ``examples`` (``example`` and
    ``examples`` exclude each other, so a documented ``example`` moves in beside it)."""
    examples = holder.setdefault("examples", {})
    if "example" in holder:
        examples["documented"] = {"value": holder.pop("example")}
    examples["seeded"] = {"value": value}
