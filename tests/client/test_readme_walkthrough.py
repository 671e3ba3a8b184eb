"""The README's walk-through, through a client that nobody here wrote.

openapi-python-client generates a typed client from /openapi.json; the three users of
the README (and the patient) then walk through it with that client alone: every body
sent is a generated model, every answer read is a parsed one. A document that lies
about a shape fails here as it would fail a stranger. Generated models parse ``uuid``
fields into ``uuid.UUID``, so ids are compared as UUIDs.

Under CI=true a missing generator is a failure; elsewhere it is a visible skip.
"""

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any
from uuid import UUID

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.bootstrap import build
from tests.client.generated import GENERATOR, Api, forget, generate
from tests.conftest import IN_CI, make_settings, token

GLASS = "unconscious on arrival in the emergency room, no history"
ENCOUNTER = {
    "kind": "encounter",
    "modality": "virtual",
    "effective_at": "2026-11-20T10:00:00Z",
    "code": {
        "system": "http://snomed.info/sct",
        "code": "185317003",
        "display": "Telephone encounter",
    },
}
HEART_RATE = {
    "kind": "observation",
    "effective_at": "2026-11-20T10:05:00Z",
    "code": {"system": "http://loinc.org", "code": "8867-4", "display": "Heart rate"},
    "value": {"quantity": 72, "unit": "/min"},
}
PRESCRIPTION = {
    "kind": "medication",
    "effective_at": "2026-11-20T10:10:00Z",
    "code": {
        "system": "http://www.nlm.nih.gov/research/umls/rxnorm",
        "code": "197361",
        "display": "amlodipine 5 MG Oral Tablet",
    },
    "value": {"text": "one tablet daily"},
}
PATIENT = "/v1/patients/{patient_id}"


@pytest.fixture(scope="session")
def package(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    """The client generated from the document the app serves."""
    if not GENERATOR.exists():
        message = f"openapi-python-client is not at {GENERATOR} (`make install` builds it)"
        if IN_CI:
            pytest.fail(f"CI=true and {message}")
        pytest.skip(f"NOTICE: skipping the generated client - {message}")
    directory: Path = tmp_path_factory.mktemp("generated-client")
    container = build(
        make_settings(f"sqlite:///{directory / 'document.db'}", directory / "var"),
        run_processes=False,
    )
    try:
        document = create_app(container).openapi()
    finally:
        container.close()
    generated = generate(document, directory)
    yield generated
    forget(generated)


def ok(response: Any, status: int) -> Any:
    """The parsed model of a successful answer (never a Problem, never unparsed)."""
    assert response.status_code == status, response.content
    assert response.parsed is not None and type(response.parsed).__name__ != "Problem"
    return response.parsed


def test_the_walkthrough_through_the_generated_client(
    client: TestClient, package: ModuleType
) -> None:
    app = client.app
    clinician = Api(package, app, token("clinician", sub="dr-grey"))
    admin = Api(package, app, token("admin", sub="admin-1"))
    auditor = Api(package, app, token("auditor", sub="auditor-1"))

    # A clinician's timeline: register, an admin enrols, record two entries, read.
    registered = ok(
        clinician.call(
            "post",
            "/v1/patients",
            {
                "mrn": "MRN-000123",
                "name": {"given": "Ada", "family": "Example"},
                "birth_date": "1984-07-12",
                "sex": "female",
                "contact": {"phone": "+1-555-0100"},
            },
            idempotency_key="register-ada-1",
        ),
        201,
    )
    patient_id = registered.id
    assert isinstance(patient_id, UUID)
    year = datetime.now(UTC).year
    enrolled = ok(
        admin.call(
            "post",
            "/v1/memberships",
            {
                "patient_id": str(patient_id),
                "plan": "employer",
                "sponsor_id": "acme-corp",
                "annual_fee_cents": 0,
                "starts_on": f"{year}-01-01",
                "ends_on": f"{year}-12-31",
            },
        ),
        201,
    )
    memberships = ok(
        admin.call("get", "/v1/memberships", patient_id=patient_id, min_position=enrolled.position),
        200,
    )
    assert [(m.plan, m.sponsor_id, m.status) for m in memberships.items] == [
        ("employer", "acme-corp", "active")
    ]
    ok(clinician.call("post", f"{PATIENT}/entries", ENCOUNTER, patient_id=patient_id), 201)
    heart_rate = ok(
        clinician.call("post", f"{PATIENT}/entries", HEART_RATE, patient_id=patient_id), 201
    )
    read = clinician.call(
        "get", f"{PATIENT}/timeline", patient_id=patient_id, min_position=heart_rate.position
    )
    timeline = ok(read, 200)
    assert timeline.patient_id == patient_id
    assert [(e.kind, e.code.code, e.status) for e in timeline.entries] == [
        ("encounter", "185317003", "active"),
        ("observation", "8867-4", "active"),
    ]
    assert heart_rate.entry_id in [entry.entry_id for entry in timeline.entries]
    read_id = UUID(read.headers["X-Access-Id"])
    found = ok(
        clinician.call("get", "/v1/patients", mrn="MRN-000123", min_position=heart_rate.position),
        200,
    )
    assert [(hit.id, hit.name.given, hit.name.family) for hit in found.items] == [
        (patient_id, "Ada", "Example")
    ]

    # A downstream feed: the pharmacy reads the prescription, a summary, once.
    pharmacy = ok(
        admin.call(
            "post",
            "/v1/subscribers",
            {
                "name": "Main St pharmacy",
                "recipient_org": "org-main",
                "purpose": "TREAT",
                "kinds": ["medication"],
                "content": "summary",
            },
        ),
        201,
    )
    prescribed = ok(
        clinician.call("post", f"{PATIENT}/entries", PRESCRIPTION, patient_id=patient_id), 201
    )
    service = Api(package, app, token("service", sub=str(pharmacy.id)))
    feed = ok(
        service.call(
            "get",
            "/v1/subscribers/{subscriber_id}/feed",
            subscriber_id=pharmacy.id,
            after=0,
            wait=5,
        ),
        200,
    )
    assert [(item.type_, item.patient_id, item.payload.entry_id) for item in feed.items] == [
        ("EntryRecorded", patient_id, prescribed.entry_id)
    ]
    delivered = feed.items[0].payload  # the summary's other keys are additional properties
    assert (delivered["kind"], delivered["code"]["code"]) == ("medication", "197361")
    assert len(feed.access_ids) == 1 and isinstance(feed.access_ids[0], UUID)

    # An auditor's replay and break-glass review.
    glass = clinician.call("get", f"{PATIENT}/timeline", patient_id=patient_id, x_break_glass=GLASS)
    ok(glass, 200)
    glass_id = UUID(glass.headers["X-Access-Id"])
    ok(
        clinician.call(
            "get", f"{PATIENT}/timeline", patient_id=patient_id, x_purpose_of_use="PUBHLTH"
        ),
        200,
    )
    head = ok(auditor.call("get", "/v1/audit/head"), 200).head.position
    reads = ok(
        auditor.call(
            "get", "/v1/audit/accesses", patient_id=patient_id, action="read", min_position=head
        ),
        200,
    )
    assert [(r.actor.id, r.purpose, r.decision) for r in reads.items] == [
        ("dr-grey", "PUBHLTH", "permit"),
        ("dr-grey", "ETREAT", "permit"),
        ("dr-grey", "TREAT", "permit"),
    ]
    assert read_id in [record.access_id for record in reads.items]
    replayed = ok(
        auditor.call("post", "/v1/audit/accesses/{access_id}/replay", access_id=read_id), 200
    )
    assert replayed.access_id == read_id
    assert replayed.matches is True
    assert len(replayed.body["entries"]) == 2
    queue = ok(auditor.call("get", "/v1/audit/break-glass", min_position=head), 200)
    assert [(r.access_id, r.actor.id, r.basis.break_glass) for r in queue.items] == [
        (glass_id, "dr-grey", GLASS)
    ]
    reviewed = ok(
        auditor.call(
            "post",
            "/v1/audit/accesses/{access_id}/review",
            {"outcome": "justified", "note": "emergency admission confirmed"},
            access_id=glass_id,
        ),
        200,
    )
    queue = ok(auditor.call("get", "/v1/audit/break-glass", min_position=reviewed.position), 200)
    assert [(r.access_id, r.review.outcome, r.review.by) for r in queue.items] == [
        (glass_id, "justified", "auditor-1")
    ]

    # A patient's own access log, and their accounting of disclosures.
    me = Api(package, app, token("patient", sub="ada", patient=patient_id))
    log = ok(me.call("get", "/v1/me/access-log", min_position=reviewed.position), 200)
    seen = {(record.actor.id, record.action, record.purpose) for record in log.items}
    assert {
        (str(pharmacy.id), "deliver", "TREAT"),
        ("dr-grey", "read", "TREAT"),
        ("dr-grey", "read", "ETREAT"),
        ("dr-grey", "read", "PUBHLTH"),
        ("auditor-1", "replay", "HOPERAT"),
        ("dr-grey", "search", "TREAT"),
        ("dr-grey", "write", "TREAT"),
    } <= seen
    assert read_id in [record.access_id for record in log.items]
    accounting = ok(me.call("get", f"{PATIENT}/disclosures", patient_id=patient_id), 200)
    assert [(d.recipient, d.purpose) for d in accounting.items] == [("org-main", "PUBHLTH")]
