"""OpenAPI links: how one operation's answer feeds the next (docs/architecture.md).

A link tells a reader, and a stateful tester, that the ``id`` a registration returns is
the ``patient_id`` the chart's other operations take, and so on. ``add_links`` writes
them into a generated document; the document's post-processing calls it once.
"""

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

PATIENT = "/v1/patients/{patient_id}"
ENTRY = f"{PATIENT}/entries/{{entry_id}}"
ACCESS = "/v1/audit/accesses/{access_id}"
MEMBERSHIP = "/v1/memberships/{membership_id}"

# Expressions (OpenAPI 3.1 runtime expressions) for the ids the links carry.
NEW_ID = "$response.body#/id"
SAME_PATIENT = "$request.path.patient_id"
ACCESS_ID = "$response.header.X-Access-Id"
FIRST_ACCESS = "$response.body#/items/0/access_id"
# A read that follows a write waits for the views to show it (read-your-writes).
WRITTEN_AT = {"query.min_position": "$response.body#/position"}
# The reads that take ``min_position``.
WAITING = {
    f"{PATIENT}/timeline",
    f"{PATIENT}/consents",
    f"{PATIENT}/disclosures",
    "/v1/memberships",
}


@dataclass(frozen=True)
class Link:
    """From the ``status`` answer of ``source`` to ``target``, with these parameters."""

    name: str
    source: tuple[str, str]
    status: str
    target: tuple[str, str]
    parameters: dict[str, str] = field(default_factory=dict)
    request_body: dict[str, str] | None = None
    description: str = ""


def _chart_links() -> Iterator[Link]:
    """A registration's id opens the chart: read, write, consent, account, close."""
    registered = ("post", "/v1/patients")
    for name, target in (
        ("ReadPatient", ("get", PATIENT)),
        ("UpdateDemographics", ("patch", PATIENT)),
        ("RecordEntry", ("post", f"{PATIENT}/entries")),
        ("ReadTimeline", ("get", f"{PATIENT}/timeline")),
        ("ReadConsents", ("get", f"{PATIENT}/consents")),
        ("GrantDirective", ("post", f"{PATIENT}/consents")),
        ("RequestRestriction", ("post", f"{PATIENT}/restrictions")),
        ("AccountDisclosures", ("get", f"{PATIENT}/disclosures")),
        ("RecordDeath", ("post", f"{PATIENT}/death")),
        ("ErasePatient", ("post", f"{PATIENT}/erase")),
    ):
        waits = WRITTEN_AT if target[0] == "get" and target[1] in WAITING else {}
        yield Link(name, registered, "201", target, {"path.patient_id": NEW_ID, **waits})
    yield Link(
        "Enrol",
        registered,
        "201",
        ("post", "/v1/memberships"),
        request_body={"patient_id": NEW_ID},
        description="Enrol the registered patient (admin); clinical reads need a membership.",
    )


def _entry_links() -> Iterator[Link]:
    """A recorded entry can be amended or withdrawn, and shows on its chart's timeline."""
    recorded = ("post", f"{PATIENT}/entries")
    entry = {"path.patient_id": SAME_PATIENT, "path.entry_id": "$response.body#/entry_id"}
    yield Link("AmendEntry", recorded, "201", ("post", f"{ENTRY}/amendments"), entry)
    yield Link("MarkEnteredInError", recorded, "201", ("post", f"{ENTRY}/entered-in-error"), entry)
    yield Link(
        "ReadTimeline",
        recorded,
        "201",
        ("get", f"{PATIENT}/timeline"),
        {"path.patient_id": SAME_PATIENT, **WRITTEN_AT},
    )
    yield Link(
        "AmendAgain", ("post", f"{ENTRY}/amendments"), "201", ("post", f"{ENTRY}/amendments"), entry
    )


def _consent_links() -> Iterator[Link]:
    """A granted directive can be revoked, and shows in the patient's consents."""
    granted = ("post", f"{PATIENT}/consents")
    directive = {
        "path.patient_id": SAME_PATIENT,
        "path.directive_id": "$response.body#/directive_id",
    }
    yield Link(
        "RevokeDirective",
        granted,
        "201",
        ("post", f"{PATIENT}/consents/{{directive_id}}/revoke"),
        directive,
    )
    for status, source in (("201", granted), ("201", ("post", f"{PATIENT}/restrictions"))):
        yield Link(
            "ReadConsents",
            source,
            status,
            ("get", f"{PATIENT}/consents"),
            {"path.patient_id": SAME_PATIENT, **WRITTEN_AT},
        )


def _membership_links() -> Iterator[Link]:
    """An enrolment can be renewed or cancelled, and is listed for its patient."""
    enrolled = ("post", "/v1/memberships")
    for name, target in (
        ("Renew", ("post", f"{MEMBERSHIP}/renew")),
        ("Cancel", ("post", f"{MEMBERSHIP}/cancel")),
    ):
        yield Link(name, enrolled, "201", target, {"path.membership_id": NEW_ID})
    yield Link(
        "ListMemberships",
        enrolled,
        "201",
        ("get", "/v1/memberships"),
        {"query.patient_id": "$request.body#/patient_id", **WRITTEN_AT},
    )
    listed = ("get", "/v1/memberships")
    for name, target in (
        ("Renew", ("post", f"{MEMBERSHIP}/renew")),
        ("Cancel", ("post", f"{MEMBERSHIP}/cancel")),
    ):
        yield Link(
            name, listed, "200", target, {"path.membership_id": "$response.body#/items/0/id"}
        )


def _audit_links() -> Iterator[Link]:
    """A disclosure names its access record (``X-Access-Id``); the log lists them."""
    for source in (
        ("get", PATIENT),
        ("get", f"{PATIENT}/timeline"),
        ("get", f"{PATIENT}/consents"),
        ("get", f"{PATIENT}/disclosures"),
    ):
        yield Link(
            "ReadAccessRecord", source, "200", ("get", ACCESS), {"path.access_id": ACCESS_ID}
        )
        yield Link(
            "ReplayAccess",
            source,
            "200",
            ("post", f"{ACCESS}/replay"),
            {"path.access_id": ACCESS_ID},
        )
    for source in (
        ("get", "/v1/audit/accesses"),
        ("get", "/v1/audit/break-glass"),
        ("get", "/v1/me/access-log"),
    ):
        yield Link(
            "ReadAccessRecord", source, "200", ("get", ACCESS), {"path.access_id": FIRST_ACCESS}
        )
        yield Link(
            "ReplayAccess",
            source,
            "200",
            ("post", f"{ACCESS}/replay"),
            {"path.access_id": FIRST_ACCESS},
        )
    for source in (("get", "/v1/audit/break-glass"), ("get", "/v1/audit/accesses")):
        yield Link(
            "ReviewAccess",
            source,
            "200",
            ("post", f"{ACCESS}/review"),
            {"path.access_id": FIRST_ACCESS},
        )
    yield Link(
        "ReplayAccess",
        ("get", ACCESS),
        "200",
        ("post", f"{ACCESS}/replay"),
        {"path.access_id": "$request.path.access_id"},
    )


def _subscriber_links() -> Iterator[Link]:
    """A registered subscriber reads its feed with its own service token."""
    yield Link(
        "ReadFeed",
        ("post", "/v1/subscribers"),
        "201",
        ("get", "/v1/subscribers/{subscriber_id}/feed"),
        {"path.subscriber_id": NEW_ID},
        description="Read with the service token whose `sub` is the subscriber id.",
    )


def links() -> list[Link]:
    """Every link the document declares."""
    return [
        *_chart_links(),
        *_entry_links(),
        *_consent_links(),
        *_membership_links(),
        *_audit_links(),
        *_subscriber_links(),
    ]


def _operation(document: dict[str, Any], method: str, path: str) -> dict[str, Any] | None:
    operation = document.get("paths", {}).get(path, {}).get(method)
    return operation if isinstance(operation, dict) else None


def _reference(method: str, path: str) -> str:
    """A JSON pointer to an operation (``~1`` escapes ``/``), for a target without an id."""
    return "#/paths/" + path.replace("~", "~0").replace("/", "~1") + "/" + method


def add_links(document: dict[str, Any]) -> dict[str, Any]:
    """Write every link into ``document`` (in place, and returned) where both ends exist.

    A link whose source, answer or target the document lacks is left out, so that the
    document still serves; tests/fuzz/test_openapi_links.py asserts that none is.
    """
    for link in links():
        source = _operation(document, *link.source)
        target = _operation(document, *link.target)
        if source is None or target is None:
            continue
        response = source.get("responses", {}).get(link.status)
        if not isinstance(response, dict):
            continue
        definition: dict[str, Any] = (
            {"operationId": target["operationId"]}
            if "operationId" in target
            else {"operationRef": _reference(*link.target)}
        )
        if link.parameters:
            definition["parameters"] = dict(link.parameters)
        if link.request_body is not None:
            definition["requestBody"] = dict(link.request_body)
        if link.description:
            definition["description"] = link.description
        response.setdefault("links", {})[link.name] = definition
    return document
