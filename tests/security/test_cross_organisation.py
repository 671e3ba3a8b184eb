"""The cross-organisation matrix: every /v1 endpoint, called by every actor of another
organisation (clinician, admin, auditor, service, patient), by a service of that
organisation presenting our subscriber's id as its subject, and by another patient of
ours, against org-main's patient, records and resources.

Each call is refused (403 or 404; 404 exactly where the actor's role could do this in
its own organisation, since the resource is outside its reach), answers exactly as the
same call naming an unknown id would (existence must not leak), leaks nothing of ours
(MRN, names, contact details, entry texts, break-glass justification, subscriber name,
ids of ours), and, where the call addresses one of our patients, leaves a deny record
that our auditor sees, naming the actor as {id, role, org}. Listing routes the actor
may use within its own organisation answer 200 and show none of ours.

A new /v1 route without a row here fails ``test_the_matrix_covers_every_route``.
"""

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import Enum
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from tests.conftest import auth
from tests.security.two_orgs import (
    ALL_KINDS,
    ORG_MAIN,
    UNKNOWN_ID,
    World,
    actor_of,
    directive_body,
    entry_body,
    membership_body,
    settled,
)

UNKNOWN_ACCESS = "00000000-0000-4000-8000-00000000acce"
UNKNOWN_ENTRY = "00000000-0000-4000-8000-00000000e17e"
UNKNOWN_DIRECTIVE = "00000000-0000-4000-8000-00000000d1ec"
UNKNOWN_MEMBERSHIP = "00000000-0000-4000-8000-00000000face"
UNKNOWN_SUBSCRIBER = "00000000-0000-4000-8000-00000000f00d"

CLINICIAN = "clinician of org-other"
ADMIN = "admin of org-other"
AUDITOR = "auditor of org-other"
SERVICE = "service of org-other"
IMPOSTOR = "service of org-other with our subscriber's id as sub"
PATIENT = "patient of org-other"
NEIGHBOUR = "another patient of ours"
ACTORS = (CLINICIAN, ADMIN, AUDITOR, SERVICE, IMPOSTOR, PATIENT, NEIGHBOUR)


def token(world: World, actor: str) -> Mapping[str, str]:
    other = world.other
    return {
        CLINICIAN: other.clinician,
        ADMIN: other.admin,
        AUDITOR: other.auditor,
        SERVICE: other.service,
        IMPOSTOR: auth("service", sub=world.main.subscriber_id, org=other.id),
        PATIENT: other.patient,
        NEIGHBOUR: world.second_patient,
    }[actor]


def own_patient(world: World, actor: str) -> str | None:
    """The patient a patient token speaks for."""
    return {PATIENT: world.other.patient_id, NEIGHBOUR: world.second_patient_id}.get(actor)


class Expect(Enum):
    REFUSED = "403 or 404"
    HIDDEN = "404, as for an unknown id"
    OWN = "allowed within the actor's own organisation, showing none of ours"
    OWN_OR_REFUSED = "200 showing none of ours, or refused (403 or 404)"


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    params: dict[str, Any] | None = None
    body: Any = None
    headers: dict[str, str] | None = None  # besides the actor's token (Prefer, say)


@dataclass(frozen=True)
class Ids:
    """The ids a call names: ours, or unknown ones in their place."""

    patient: str
    membership: str
    access: str
    glass: str
    entry: str
    directive: str
    subscriber: str

    @staticmethod
    def ours(world: World) -> "Ids":
        main = world.main
        return Ids(
            main.patient_id,
            main.membership_id,
            main.read_access_id,
            main.glass_access_id,
            main.entries["plain"],
            main.directive_id,
            main.subscriber_id,
        )

    @staticmethod
    def unknown() -> "Ids":
        return Ids(
            UNKNOWN_ID,
            UNKNOWN_MEMBERSHIP,
            UNKNOWN_ACCESS,
            UNKNOWN_ACCESS,
            UNKNOWN_ENTRY,
            UNKNOWN_DIRECTIVE,
            UNKNOWN_SUBSCRIBER,
        )


Check = Callable[[World, str, httpx.Response], list[str]]


@dataclass(frozen=True)
class Row:
    """One route: its probes, what each actor must get, and who must leave a denial."""

    probes: Callable[[World, Ids], list[Call]]
    expect: dict[str, Expect] = field(default_factory=dict)  # others: REFUSED
    # Actors whose attempt addresses our patient and must leave a deny record.
    denial: frozenset[str] = frozenset()
    check: Check | None = None  # for OWN answers: nothing of ours in it
    compare_unknown: bool = True  # the same call with unknown ids answers the same

    def expected(self, actor: str) -> Expect:
        return self.expect.get(actor, Expect.REFUSED)


def everyone(expect: Expect, *actors: str) -> dict[str, Expect]:
    return dict.fromkeys(actors, expect)


# Checks of allowed answers -------------------------------------------------------------


def items(response: httpx.Response) -> list[dict[str, Any]]:
    body = response.json()
    found = body.get("items", body.get("disclosures", []))
    assert isinstance(found, list), body
    return found


def no_patient_of_ours(world: World, actor: str, response: httpx.Response) -> list[str]:
    ours = {world.main.patient_id, world.second_patient_id}
    return [f"lists our patient {i}" for i in items(response) if i.get("id") in ours]


def no_membership_of_ours(world: World, actor: str, response: httpx.Response) -> list[str]:
    ours = {world.main.patient_id, world.second_patient_id}
    return [
        f"lists our membership {i.get('id')}"
        for i in items(response)
        if i.get("patient_id") in ours or i.get("id") == world.main.membership_id
    ]


def no_subscriber_of_ours(world: World, actor: str, response: httpx.Response) -> list[str]:
    return [
        f"lists our subscriber {i.get('id')}"
        for i in items(response)
        if i.get("id") == world.main.subscriber_id or i.get("recipient_org") == ORG_MAIN
    ]


def no_record_of_ours(world: World, actor: str, response: httpx.Response) -> list[str]:
    """Access records: an auditor of org-other sees none made by our people (none of
    them ever touched org-other's patients); a patient, only their own record's."""
    problems = []
    mine = own_patient(world, actor)
    for record in items(response):
        if mine is not None and record.get("patient_id") != mine:
            problems.append(f"shows a record of patient {record.get('patient_id')}")
        if mine is None and (record.get("actor") or {}).get("org") == ORG_MAIN:
            problems.append(f"shows our record {record.get('access_id')}")
    return problems


def nothing_discontinued(world: World, actor: str, response: httpx.Response) -> list[str]:
    """Their programme of the same sponsor has their one member, never ours too."""
    members = response.json().get("members")
    return [] if members in (None, 1) else [f"discontinued {members} members"]


def registered(world: World, actor: str, response: httpx.Response) -> list[str]:
    ours = {world.main.patient_id, world.second_patient_id}
    return [f"answered with our id {v}" for v in response.json().values() if v in ours]


def fine(world: World, actor: str, response: httpx.Response) -> list[str]:
    return []


# The matrix --------------------------------------------------------------------------

PATIENT_PATH = "/v1/patients/{i.patient}"
REACH = frozenset(ACTORS)  # every attempt on a patient path is a denial of ours
READERS = {CLINICIAN: Expect.HIDDEN, PATIENT: Expect.HIDDEN, NEIGHBOUR: Expect.HIDDEN}
WRITER = {CLINICIAN: Expect.HIDDEN}


def p(i: Ids, suffix: str = "") -> str:
    return f"/v1/patients/{i.patient}{suffix}"


def today(days: int = 0) -> str:
    return (datetime.now(UTC).date() + timedelta(days=days)).isoformat()


MATRIX: dict[str, Row] = {
    "POST /v1/patients": Row(
        lambda w, i: [
            Call(
                "POST",
                "/v1/patients",
                body={
                    "mrn": "MRN-THEIRS-0001",
                    "name": {"given": "Ike", "family": "Theirs"},
                    "birth_date": "1990-01-01",
                    "sex": "male",
                },
            )
        ],
        expect={CLINICIAN: Expect.OWN},
        check=registered,
        compare_unknown=False,
    ),
    "GET /v1/patients": Row(
        lambda w, i: [
            Call("GET", "/v1/patients", params={"mrn": w.main.mrn}),
            Call(
                "GET",
                "/v1/patients",
                params={"family": w.main.family, "birth_date": w.main.birth_date},
            ),
        ],
        expect={CLINICIAN: Expect.OWN},
        check=no_patient_of_ours,
        compare_unknown=False,
    ),
    "GET /v1/patients/{patient_id}": Row(
        lambda w, i: [Call("GET", p(i))], expect=READERS, denial=REACH
    ),
    "PATCH /v1/patients/{patient_id}": Row(
        lambda w, i: [Call("PATCH", p(i), body={"name": {"given": "Mallory", "family": "X"}})],
        expect=WRITER,
        denial=REACH,
    ),
    "GET /v1/patients/{patient_id}/timeline": Row(
        lambda w, i: [Call("GET", p(i, "/timeline"))], expect=READERS, denial=REACH
    ),
    "GET /v1/patients/{patient_id}/disclosures": Row(
        lambda w, i: [Call("GET", p(i, "/disclosures"))],
        expect={AUDITOR: Expect.HIDDEN, PATIENT: Expect.HIDDEN, NEIGHBOUR: Expect.HIDDEN},
        denial=REACH,
    ),
    "POST /v1/patients/{patient_id}/entries": Row(
        lambda w, i: [Call("POST", p(i, "/entries"), body=entry_body("Planted by outsider"))],
        expect=WRITER,
        denial=REACH,
    ),
    "POST /v1/patients/{patient_id}/entries/{entry_id}/amendments": Row(
        lambda w, i: [
            Call(
                "POST",
                p(i, f"/entries/{i.entry}/amendments"),
                body={"reason": "outsider edit", "value": {"text": "tampered"}},
            )
        ],
        expect=WRITER,
        denial=REACH,
    ),
    "POST /v1/patients/{patient_id}/entries/{entry_id}/entered-in-error": Row(
        lambda w, i: [
            Call(
                "POST",
                p(i, f"/entries/{i.entry}/entered-in-error"),
                body={"reason": "outsider removal"},
            )
        ],
        expect=WRITER,
        denial=REACH,
    ),
    "POST /v1/patients/{patient_id}/death": Row(
        lambda w, i: [Call("POST", p(i, "/death"), body={"deceased_at": "2026-11-01T10:00:00Z"})],
        expect=WRITER,
        denial=REACH,
    ),
    "POST /v1/patients/{patient_id}/erase": Row(
        lambda w, i: [Call("POST", p(i, "/erase"), body={"legal_basis": "GDPR 17 by outsider"})],
        expect={ADMIN: Expect.HIDDEN},
        denial=REACH,
    ),
    "POST /v1/patients/{patient_id}/consents": Row(
        lambda w, i: [
            Call(
                "POST",
                p(i, "/consents"),
                body=directive_body("org:org-other", ["TREAT", "HMARKT"], ["mental_health"]),
            )
        ],
        expect=READERS,
        denial=REACH,
    ),
    "GET /v1/patients/{patient_id}/consents": Row(
        lambda w, i: [Call("GET", p(i, "/consents"))], expect=READERS, denial=REACH
    ),
    "POST /v1/patients/{patient_id}/consents/{directive_id}/revoke": Row(
        lambda w, i: [
            Call(
                "POST",
                p(i, f"/consents/{i.directive}/revoke"),
                body={"reason": "outsider revocation"},
            )
        ],
        expect=READERS,
        denial=REACH,
    ),
    "POST /v1/patients/{patient_id}/restrictions": Row(
        lambda w, i: [
            Call(
                "POST",
                p(i, "/restrictions"),
                body={"purposes": ["TREAT"], "labels": [], "recipient": "org-main"},
            )
        ],
        expect=READERS,
        denial=REACH,
    ),
    "POST /v1/memberships": Row(
        lambda w, i: [Call("POST", "/v1/memberships", body=membership_body(i.patient, None))],
        expect={ADMIN: Expect.HIDDEN},
        denial=frozenset({ADMIN}),
    ),
    "GET /v1/memberships": Row(
        lambda w, i: [
            Call("GET", "/v1/memberships"),
            Call("GET", "/v1/memberships", params={"sponsor_id": w.main.sponsor_id}),
        ],
        expect={ADMIN: Expect.OWN},
        check=no_membership_of_ours,
        compare_unknown=False,
    ),
    "GET /v1/memberships?patient_id=": Row(  # a second row of the same route
        lambda w, i: [Call("GET", "/v1/memberships", params={"patient_id": i.patient})],
        expect={ADMIN: Expect.OWN_OR_REFUSED},
        check=no_membership_of_ours,
    ),
    "POST /v1/memberships/{membership_id}/renew": Row(
        lambda w, i: [
            Call("POST", f"/v1/memberships/{i.membership}/renew", body={"ends_on": today(30)})
        ],
        expect={ADMIN: Expect.HIDDEN},
        denial=frozenset({ADMIN}),
    ),
    "POST /v1/memberships/{membership_id}/cancel": Row(
        lambda w, i: [
            Call(
                "POST",
                f"/v1/memberships/{i.membership}/cancel",
                body={"reason": "outsider cancellation"},
            )
        ],
        expect={ADMIN: Expect.HIDDEN},
        denial=frozenset({ADMIN}),
    ),
    "POST /v1/sponsors/{sponsor_id}/discontinue": Row(
        lambda w, i: [
            Call(
                "POST",
                f"/v1/sponsors/{w.main.sponsor_id}/discontinue",
                body={"effective_on": today()},
            )
        ],
        expect={ADMIN: Expect.OWN},
        check=nothing_discontinued,
        compare_unknown=False,
    ),
    "GET /v1/audit/verify": Row(
        lambda w, i: [Call("GET", "/v1/audit/verify")],
        expect=everyone(Expect.OWN, ADMIN, AUDITOR),
        check=fine,
        compare_unknown=False,
    ),
    "GET /v1/audit/head": Row(
        lambda w, i: [Call("GET", "/v1/audit/head")],
        expect=everyone(Expect.OWN, ADMIN, AUDITOR),
        check=fine,
        compare_unknown=False,
    ),
    "GET /v1/audit/accesses": Row(
        lambda w, i: [
            Call("GET", "/v1/audit/accesses", params={"limit": 500}),
            Call("GET", "/v1/audit/accesses", params={"actor_id": "dr-grey", "limit": 500}),
            Call("GET", "/v1/audit/accesses", params={"action": "read", "limit": 500}),
        ],
        expect=everyone(Expect.OWN, AUDITOR, PATIENT, NEIGHBOUR),
        check=no_record_of_ours,
        compare_unknown=False,
    ),
    "GET /v1/audit/accesses?patient_id=": Row(  # a second row of the same route
        lambda w, i: [Call("GET", "/v1/audit/accesses", params={"patient_id": i.patient})],
        expect={
            AUDITOR: Expect.HIDDEN,
            PATIENT: Expect.OWN_OR_REFUSED,
            NEIGHBOUR: Expect.OWN_OR_REFUSED,
        },
        check=no_record_of_ours,
        denial=frozenset({AUDITOR}),
    ),
    "GET /v1/audit/accesses/{access_id}": Row(
        lambda w, i: [
            Call("GET", f"/v1/audit/accesses/{i.access}"),
            Call("GET", f"/v1/audit/accesses/{i.glass}"),
        ],
        expect={AUDITOR: Expect.HIDDEN, PATIENT: Expect.HIDDEN, NEIGHBOUR: Expect.HIDDEN},
    ),
    "POST /v1/audit/accesses/{access_id}/replay": Row(
        lambda w, i: [
            Call("POST", f"/v1/audit/accesses/{i.access}/replay"),
            Call("POST", f"/v1/audit/accesses/{i.glass}/replay"),
        ],
        expect={AUDITOR: Expect.HIDDEN},
    ),
    "GET /v1/audit/break-glass": Row(
        lambda w, i: [Call("GET", "/v1/audit/break-glass", params={"limit": 500})],
        expect={AUDITOR: Expect.OWN},
        check=no_record_of_ours,
        compare_unknown=False,
    ),
    "POST /v1/audit/accesses/{access_id}/review": Row(
        lambda w, i: [
            Call(
                "POST",
                f"/v1/audit/accesses/{i.glass}/review",
                body={"outcome": "unjustified", "note": "outsider review"},
            )
        ],
        expect={AUDITOR: Expect.HIDDEN},
    ),
    "GET /v1/me/access-log": Row(
        lambda w, i: [Call("GET", "/v1/me/access-log", params={"limit": 500})],
        expect=everyone(Expect.OWN, PATIENT, NEIGHBOUR),
        check=no_record_of_ours,
        compare_unknown=False,
    ),
    "POST /v1/subscribers": Row(
        lambda w, i: [
            Call(
                "POST",
                "/v1/subscribers",
                body={
                    "name": "Other Lane Registry",
                    "recipient_org": "org-other",
                    "purpose": "PUBHLTH",
                    "kinds": ALL_KINDS,
                    "labels": [],
                    "content": "full",
                },
            )
        ],
        expect={ADMIN: Expect.OWN},
        check=fine,
        compare_unknown=False,
    ),
    "GET /v1/subscribers": Row(
        lambda w, i: [Call("GET", "/v1/subscribers")],
        expect={ADMIN: Expect.OWN},
        check=no_subscriber_of_ours,
        compare_unknown=False,
    ),
    "GET /v1/subscribers/{subscriber_id}/feed": Row(
        lambda w, i: [
            Call("GET", f"/v1/subscribers/{i.subscriber}/feed"),
            Call("GET", f"/v1/subscribers/{i.subscriber}/feed", params={"after": 0}),
        ],
        compare_unknown=False,
    ),
}


def route_of(key: str) -> str:
    return key.split("?", maxsplit=1)[0]


def v1_routes(app: Any) -> set[str]:
    """Every "METHOD /v1/path" the application serves: from its routes (whatever the
    FastAPI version nests them in) and from its OpenAPI document."""
    found: set[str] = set()

    def visit(route: Any) -> None:
        path, methods = getattr(route, "path", None), getattr(route, "methods", None)
        if isinstance(path, str) and methods:
            found.update(f"{m} {path}" for m in methods if m not in ("HEAD", "OPTIONS"))
        contexts = getattr(route, "effective_route_contexts", None)
        if callable(contexts):
            for context in contexts():
                visit(context)
        for child in getattr(route, "routes", None) or ():
            visit(child)

    for route in app.routes:
        visit(route)
    for path, operations in app.openapi()["paths"].items():
        found.update(f"{method.upper()} {path}" for method in operations)
    return {key for key in found if key.split(" ", 1)[1].startswith("/v1/")}


def test_the_matrix_covers_every_route() -> None:
    # The routes need no store: a container with settings only will do
    stub = SimpleNamespace(settings=SimpleNamespace(max_body_bytes=1_000_000))
    routes = v1_routes(create_app(stub))
    rows = {route_of(key) for key in MATRIX}
    assert len(routes) >= 31, sorted(routes)
    assert routes - rows == set(), "routes without a row in the cross-organisation matrix"
    assert rows - routes == set(), "rows for routes that no longer exist"


# Running it ----------------------------------------------------------------------------


def leaks(world: World, response: httpx.Response) -> list[str]:
    text = response.text
    found = [f"leaks {secret!r}" for secret in world.main.phi() if secret in text]
    found += [f"leaks id {secret}" for secret in world.main.secret_ids() if secret in text]
    return found


def attempt(
    client: TestClient, call: Call, auth: Mapping[str, str], request_id: str
) -> httpx.Response:
    return client.request(
        call.method,
        call.path,
        params=call.params,
        json=call.body,
        headers={**auth, **(call.headers or {}), "X-Request-Id": request_id},
    )


def refused(response: httpx.Response) -> list[str]:
    problems = []
    if response.status_code not in (403, 404):
        problems.append(f"answered {response.status_code}, not 403 or 404")
    elif response.headers.get("content-type", "").split(";")[0] != "application/problem+json":
        problems.append("a refusal that is not problem+json")
    if "X-Access-Id" in response.headers:
        problems.append("a refusal that names an access record (X-Access-Id)")
    return problems


def judge(world: World, actor: str, row: Row, response: httpx.Response) -> list[str]:
    expected = row.expected(actor)
    status = response.status_code
    problems = leaks(world, response)
    if expected is Expect.HIDDEN:
        if status != 404:
            problems.append(f"answered {status}, not 404 (outside the actor's reach)")
        problems += [p for p in refused(response) if "403 or 404" not in p]
    elif expected is Expect.REFUSED or (expected is Expect.OWN_OR_REFUSED and status in (403, 404)):
        problems += refused(response)
    else:
        if not 200 <= status < 300:
            problems.append(f"answered {status}, not 2xx within its own organisation")
        else:
            assert row.check is not None
            problems += row.check(world, actor, response)
    return problems


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def same_answer(ours: httpx.Response, unknown: httpx.Response) -> list[str]:
    """A refusal of a call on our resource must look like a call on an unknown id."""
    if ours.status_code not in (403, 404):
        return []
    mine, theirs = _json(ours), _json(unknown)
    if (ours.status_code, mine.get("detail")) != (unknown.status_code, theirs.get("detail")):
        return [
            f"answers {ours.status_code} {mine.get('detail')!r}, but for an unknown id "
            f"{unknown.status_code} {theirs.get('detail')!r}"
        ]
    return []


@pytest.mark.parametrize("actor", ACTORS)
def test_another_organisation_gets_nothing_of_ours(world: World, actor: str) -> None:
    client = world.client
    auth = token(world, actor)
    deviations: list[tuple[str, str, list[str]]] = []
    awaiting_denial: dict[str, str] = {}  # request id -> call
    n = 0
    for key, row in MATRIX.items():
        ours = row.probes(world, Ids.ours(world))
        unknown = row.probes(world, Ids.unknown())
        for call, stranger in zip(ours, unknown, strict=True):
            n += 1
            request_id = f"sec-{ACTORS.index(actor)}-{n}"
            response = attempt(client, call, auth, request_id)
            problems = judge(world, actor, row, response)
            if row.compare_unknown:
                other = attempt(client, stranger, auth, f"{request_id}-unknown")
                problems += same_answer(response, other)
            if actor in row.denial:
                awaiting_denial[request_id] = f"{call.method} {call.path}"
            if problems:
                deviations.append((key, f"{call.method} {call.path} {call.params or ''}", problems))
    # Every attempt on one of our patients is in our auditor's log, as a denial by
    # exactly this actor (organisation, role and subject)
    denials = world.records(patient_id=world.main.patient_id, decision="deny")
    by_request = {r.get("request_id"): r for r in denials}
    who = actor_of(auth)
    for request_id, call in awaiting_denial.items():
        record = by_request.get(request_id)
        if record is None:
            deviations.append((call, request_id, ["no deny record for our auditor"]))
        elif {k: record["actor"].get(k) for k in who} != who:
            deviations.append((call, request_id, [f"the deny record names {record['actor']}"]))
    # And nothing of ours changed: the chart, its consent and its membership stand
    main = world.main
    seen = settled(client)
    timeline = client.get(
        f"/v1/patients/{main.patient_id}/timeline", params=seen, headers=main.clinician
    )
    assert timeline.status_code == 200, timeline.text
    assert main.displays["plain"] in timeline.text
    assert "Planted by outsider" not in timeline.text and "tampered" not in timeline.text
    consents = client.get(
        f"/v1/patients/{main.patient_id}/consents", params=seen, headers=main.patient
    )
    assert [d["status"] for d in consents.json()["directives"]] == ["active"], consents.text
    roster = client.get("/v1/memberships", params=seen, headers=main.admin).json()["items"]
    [membership] = [m for m in roster if m["id"] == main.membership_id]
    assert membership["status"] == "active" and membership["active_today"], membership
    assert not deviations, "\n" + "\n".join(
        f"{key}: {call}: {'; '.join(problems)}" for key, call, problems in deviations
    )


def test_a_subscriber_registered_elsewhere_never_delivers_our_patients(world: World) -> None:
    """Their administrator registers subscribers, even one naming us as the recipient
    organisation or asking for public-health reporting; none of them ever receives an
    event of our patients."""
    client, main, other = world.client, world.main, world.other
    specs = [
        {"recipient_org": "org-other", "purpose": "TREAT"},
        {"recipient_org": "org-other", "purpose": "PUBHLTH"},
        {"recipient_org": ORG_MAIN, "purpose": "TREAT"},
        {"recipient_org": ORG_MAIN, "purpose": "HOPERAT"},
    ]
    for spec in specs:
        body = {
            "name": "Other Lane Registry",
            "kinds": ALL_KINDS,
            "labels": [],
            "content": "full",
            **spec,
        }
        registered = client.post("/v1/subscribers", json=body, headers=other.admin)
        if registered.status_code in (403, 404, 422):
            continue  # refused outright: nothing can be delivered
        assert registered.status_code == 201, registered.text
        subscriber_id = registered.json()["id"]
        for org in {other.id, spec["recipient_org"]}:
            feed = client.get(
                f"/v1/subscribers/{subscriber_id}/feed",
                params={"after": 0, "limit": 1000},
                headers=auth("service", sub=subscriber_id, org=org),
            )
            if feed.status_code in (403, 404):
                continue
            assert feed.status_code == 200, feed.text
            patients = {item["patient_id"] for item in feed.json()["items"]}
            assert main.patient_id not in patients, (spec, org)
            assert leaks(world, feed) == [], (spec, org)
        # And the subscriber does not appear in our administrator's list
        ours = client.get("/v1/subscribers", headers=main.admin).json()["items"]
        assert subscriber_id not in {s["id"] for s in ours}


def test_their_sponsor_discontinuation_leaves_our_sponsored_members_alone(
    world: World,
) -> None:
    """Both organisations have members sponsored by "acme-corp". Their administrator
    discontinues acme-corp's programme: their member is terminated, ours is not."""
    client, main, other = world.client, world.main, world.other
    discontinued = client.post(
        f"/v1/sponsors/{other.sponsor_id}/discontinue",
        json={"effective_on": today()},
        headers=other.admin,
    )
    assert discontinued.status_code == 202, discontinued.text
    assert discontinued.json().get("members", 1) == 1, discontinued.text
    # The terminations follow from the log, in a process: wait for theirs
    deadline = time.monotonic() + 15
    while True:
        theirs = client.get("/v1/memberships", params=settled(client), headers=other.admin)
        [their_member] = [m for m in theirs.json()["items"] if m["id"] == other.membership_id]
        if their_member["status"] != "active" or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert their_member["status"] == "terminated", their_member
    assert main.membership_id not in {m["id"] for m in theirs.json()["items"]}
    ours = client.get("/v1/memberships", params=settled(client), headers=main.admin).json()
    [our_member] = [m for m in ours["items"] if m["id"] == main.membership_id]
    assert our_member["status"] == "active" and our_member["active_today"], our_member
