"""The authorisation matrix: every endpoint by role by own or other organisation by
purpose (the default one, break-glass, marketing) has one expected status. Zero
deviations are allowed, and every 403 leaves a denial in the access log.

A purpose the actor's token does not allow (marketing for anyone here; break-glass for
anyone but a clinician) is refused before anything is looked up: 403, never 404.

The chart is a patient of org-main under an active membership, with one entry and
no consent directive. Break-glass switches any caller's purpose to ETREAT.
"""

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from fastapi.testclient import TestClient

from application.access.purposes import ROLE_DEFAULTS
from application.context import Role
from domain.vocabulary import Purpose
from tests.api.support import GRANT_BODY, settled, under_care
from tests.conftest import ENTRY_BODY, JWT_SECRET, REGISTER_BODY, auth
from tests.fhir.support import caught_up

GLASS = "unconscious on arrival, no history available"
ACTORS = {
    "clinician": auth("clinician", sub="dr-main"),
    "clinician, other org": auth("clinician", sub="dr-other", org="org-other"),
    "admin": auth("admin", sub="admin-main"),
    "auditor": auth("auditor", sub="auditor-main"),
    "patient, self": None,  # a token for the chart's own patient, made per run
    "patient, other": auth(
        "patient", sub="someone", patient="00000000-0000-4000-8000-0000000000aa"
    ),
    "service, other org": auth("service", sub="svc-ads", org="org-ads"),
}
SUBSCRIBER_BODY = {
    "name": "Main St pharmacy",
    "recipient_org": "org-main",
    "purpose": "TREAT",
    "kinds": ["medication"],
    "content": "summary",
}
PURPOSES = {
    "default": {},
    "break-glass": {"X-Break-Glass": GLASS},
    "marketing": {"X-Purpose-Of-Use": "HMARKT"},
}

# endpoint: {actor: (default, break-glass, marketing)}
MATRIX: dict[str, dict[str, tuple[int, int, int]]] = {
    "GET patient": {
        "clinician": (200, 200, 403),
        "clinician, other org": (404, 404, 403),
        "admin": (403, 403, 403),
        "auditor": (403, 403, 403),
        "patient, self": (200, 403, 403),
        "patient, other": (404, 403, 403),
        "service, other org": (403, 403, 403),
    },
    "GET timeline": {
        "clinician": (200, 200, 403),
        "clinician, other org": (404, 404, 403),
        "admin": (403, 403, 403),
        "auditor": (403, 403, 403),
        "patient, self": (200, 403, 403),
        "patient, other": (404, 403, 403),
        "service, other org": (403, 403, 403),
    },
    "GET consents": {
        "clinician": (200, 200, 403),
        "clinician, other org": (404, 404, 403),
        "admin": (403, 403, 403),
        "auditor": (403, 403, 403),
        "patient, self": (200, 403, 403),
        "patient, other": (404, 403, 403),
        "service, other org": (403, 403, 403),
    },
    "GET search": {  # another organisation searches its own directory: found nothing
        "clinician": (200, 200, 403),
        "clinician, other org": (200, 200, 403),
        "admin": (403, 403, 403),
        "auditor": (403, 403, 403),
        "patient, self": (403, 403, 403),
        "patient, other": (403, 403, 403),
        "service, other org": (403, 403, 403),
    },
    "POST entry": {
        "clinician": (201, 201, 403),
        "clinician, other org": (404, 404, 403),
        "admin": (403, 403, 403),
        "auditor": (403, 403, 403),
        "patient, self": (403, 403, 403),
        "patient, other": (403, 403, 403),
        "service, other org": (403, 403, 403),
    },
    "GET memberships": {
        "clinician": (403, 403, 403),
        "clinician, other org": (403, 403, 403),
        "admin": (200, 403, 403),
        "auditor": (403, 403, 403),
        "patient, self": (403, 403, 403),
        "patient, other": (403, 403, 403),
        "service, other org": (403, 403, 403),
    },
    "GET disclosures": {
        "clinician": (403, 403, 403),
        "clinician, other org": (403, 403, 403),
        "admin": (403, 403, 403),
        "auditor": (200, 403, 403),
        "patient, self": (200, 403, 403),
        "patient, other": (404, 403, 403),
        "service, other org": (403, 403, 403),
    },
    # A patient sees their own rows only; "patient, other" speaks for no patient of ours.
    "GET access log": {
        "clinician": (403, 403, 403),
        "clinician, other org": (403, 403, 403),
        "admin": (403, 403, 403),
        "auditor": (200, 403, 403),
        "patient, self": (200, 403, 403),
        "patient, other": (404, 403, 403),
        "service, other org": (403, 403, 403),
    },
    "GET verify": {
        "clinician": (403, 403, 403),
        "clinician, other org": (403, 403, 403),
        "admin": (200, 403, 403),
        "auditor": (200, 403, 403),
        "patient, self": (403, 403, 403),
        "patient, other": (403, 403, 403),
        "service, other org": (403, 403, 403),
    },
}


def _request(endpoint: str, patient_id: str, seen: dict[str, int]) -> tuple[str, str, Any]:
    return {
        "GET patient": ("GET", f"/v1/patients/{patient_id}", None),
        "GET timeline": ("GET", f"/v1/patients/{patient_id}/timeline", None),
        "GET consents": ("GET", f"/v1/patients/{patient_id}/consents", None),
        "GET search": ("GET", "/v1/patients", None),
        "POST entry": ("POST", f"/v1/patients/{patient_id}/entries", ENTRY_BODY),
        "GET memberships": ("GET", "/v1/memberships", None),
        "GET disclosures": ("GET", f"/v1/patients/{patient_id}/disclosures", None),
        "GET access log": ("GET", "/v1/audit/accesses", None),
        "GET verify": ("GET", "/v1/audit/verify", None),
    }[endpoint]


@pytest.fixture
def chart(client: TestClient) -> str:
    patient = client.post("/v1/patients", json=REGISTER_BODY, headers=ACTORS["clinician"])
    patient_id: str = patient.json()["id"]
    under_care(client, patient_id)
    entry = client.post(
        f"/v1/patients/{patient_id}/entries", json=ENTRY_BODY, headers=ACTORS["clinician"]
    )
    assert entry.status_code == 201, entry.text
    return patient_id


def test_the_matrix_has_no_deviation_and_every_403_is_audited(
    client: TestClient, chart: str
) -> None:
    actors = {**ACTORS, "patient, self": auth("patient", sub="patient-self", patient=chart)}
    seen = settled(client)
    deviations = []
    forbidden = 0
    for endpoint, row in MATRIX.items():
        assert set(row) == set(actors), endpoint  # every role, own and other organisation
        method, path, body = _request(endpoint, chart, seen)
        params = {**seen, **({"mrn": "MRN-0001"} if endpoint == "GET search" else {})}
        for actor, expected in row.items():
            for (purpose, extra), status in zip(PURPOSES.items(), expected, strict=True):
                headers = {**(actors[actor] or {}), **extra}
                got = client.request(method, path, params=params, json=body, headers=headers)
                if got.status_code != status:
                    deviations.append((endpoint, actor, purpose, status, got.status_code))
                forbidden += got.status_code == 403
    assert deviations == []
    # Every 403 left a denial in the access log, seen by the auditors of the patient's
    # organisation, or (no patient addressed) of the actor's own.
    denials = []
    for org in ("org-main", "org-other", "org-ads"):
        denials += client.get(
            "/v1/audit/accesses",
            params={"decision": "deny", "limit": 500, **settled(client)},
            headers=auth("auditor", sub="auditor", org=org),
        ).json()["items"]
    assert len(denials) >= forbidden


# The rest of the endpoints. Those that change a resource once and for all (death,
# erasure, entered in error, revocation, cancellation, renewal, discontinuation, a new
# membership) get a fresh target for every call.
ONLY_ADMIN = {a: ((200, 403, 403) if a == "admin" else (403, 403, 403)) for a in ACTORS}
MATRIX_REST: dict[str, dict[str, tuple[int, int, int]]] = {
    "POST patient": {
        "clinician": (201, 201, 403),
        "clinician, other org": (201, 201, 403),
        "admin": (403, 403, 403),
        "auditor": (403, 403, 403),
        "patient, self": (403, 403, 403),
        "patient, other": (403, 403, 403),
        "service, other org": (403, 403, 403),
    },
    **{
        endpoint: {
            "clinician": (ok, ok, 403),
            "clinician, other org": (404, 404, 403),
            "admin": (403, 403, 403),
            "auditor": (403, 403, 403),
            "patient, self": (403, 403, 403),
            "patient, other": (403, 403, 403),
            "service, other org": (403, 403, 403),
        }
        for endpoint, ok in (
            ("PATCH patient", 200),
            ("POST amendment", 201),
            ("POST entered-in-error", 201),
            ("POST death", 201),
        )
    },
    **{
        endpoint: {
            "clinician": (ok, ok, 403),
            "clinician, other org": (404, 404, 403),
            "admin": (403, 403, 403),
            "auditor": (403, 403, 403),
            "patient, self": (ok, 403, 403),
            "patient, other": (404, 403, 403),
            "service, other org": (403, 403, 403),
        }
        for endpoint, ok in (("POST consent", 201), ("POST revoke", 200), ("POST restriction", 201))
    },
    "POST erase": {a: ((202, 403, 403) if a == "admin" else (403, 403, 403)) for a in ACTORS},
    "POST membership": {a: ((201, 403, 403) if a == "admin" else (403, 403, 403)) for a in ACTORS},
    "POST renew": ONLY_ADMIN,
    "POST cancel": ONLY_ADMIN,
    "POST discontinue": {a: ((202, 403, 403) if a == "admin" else (403, 403, 403)) for a in ACTORS},
    "GET head": {
        a: ((200, 403, 403) if a in ("admin", "auditor") else (403, 403, 403)) for a in ACTORS
    },
    "GET access record": {
        "clinician": (403, 403, 403),
        "clinician, other org": (403, 403, 403),
        "admin": (403, 403, 403),
        "auditor": (200, 403, 403),
        "patient, self": (200, 403, 403),
        "patient, other": (404, 403, 403),
        "service, other org": (403, 403, 403),
    },
    **{
        endpoint: {a: ((200, 403, 403) if a == "auditor" else (403, 403, 403)) for a in ACTORS}
        for endpoint in ("POST replay", "GET break-glass", "POST review")
    },
    "GET my access log": {
        **{a: (403, 403, 403) for a in ACTORS},
        "patient, self": (200, 403, 403),
        "patient, other": (404, 403, 403),
    },
    "POST subscriber": {a: ((201, 403, 403) if a == "admin" else (403, 403, 403)) for a in ACTORS},
    "GET subscribers": ONLY_ADMIN,
    # Only the subscriber's own service token reads its feed (in test_subscriptions).
    "GET feed": dict.fromkeys(ACTORS, (403, 403, 403)),
}


class Targets:
    """Fresh resources for the endpoints that can act on one only once."""

    def __init__(self, client: TestClient, chart: str) -> None:
        self.client = client
        self.chart = chart
        self.clinician = ACTORS["clinician"]
        self.admin = ACTORS["admin"]
        self.n = 0

    def patient(self) -> str:
        self.n += 1
        body = {**REGISTER_BODY, "mrn": f"MRN-M-{self.n}"}
        patient_id: str = self.client.post(
            "/v1/patients", json=body, headers=self.clinician
        ).json()["id"]
        under_care(self.client, patient_id)
        return patient_id

    def entry(self) -> str:
        entry = self.client.post(
            f"/v1/patients/{self.chart}/entries", json=ENTRY_BODY, headers=self.clinician
        )
        return str(entry.json()["entry_id"])

    def directive(self) -> str:
        granted = self.client.post(
            f"/v1/patients/{self.chart}/consents", json=GRANT_BODY, headers=self.clinician
        )
        return str(granted.json()["directive_id"])

    def subscriber(self) -> str:
        registered = self.client.post("/v1/subscribers", json=SUBSCRIBER_BODY, headers=self.admin)
        return str(registered.json()["id"])

    def membership(self) -> str:
        today = datetime.now(UTC).date()
        enrolled = self.client.post(
            "/v1/memberships",
            headers=self.admin,
            json={
                "patient_id": self.patient(),
                "plan": "individual",
                "annual_fee_cents": 0,
                "starts_on": today.isoformat(),
                "ends_on": (today + timedelta(days=90)).isoformat(),
            },
        )
        return str(enrolled.json()["id"])

    def request(self, endpoint: str, accesses: dict[str, str]) -> tuple[str, str, Any]:
        chart, today = self.chart, datetime.now(UTC).date()
        if endpoint == "POST patient":
            self.n += 1
            return "POST", "/v1/patients", {**REGISTER_BODY, "mrn": f"MRN-R-{self.n}"}
        if endpoint == "PATCH patient":
            return "PATCH", f"/v1/patients/{chart}", {"sex": "other"}
        if endpoint == "POST amendment":
            return (
                "POST",
                f"/v1/patients/{chart}/entries/{accesses['entry']}/amendments",
                {"reason": "corrected", "value": {"quantity": 70, "unit": "/min"}},
            )
        if endpoint == "POST entered-in-error":
            return (
                "POST",
                f"/v1/patients/{chart}/entries/{self.entry()}/entered-in-error",
                {"reason": "wrong chart"},
            )
        if endpoint == "POST death":
            return (
                "POST",
                f"/v1/patients/{self.patient()}/death",
                {"deceased_at": "2026-11-01T10:00:00Z"},
            )
        if endpoint == "POST consent":
            return "POST", f"/v1/patients/{chart}/consents", GRANT_BODY
        if endpoint == "POST revoke":
            return (
                "POST",
                f"/v1/patients/{chart}/consents/{self.directive()}/revoke",
                {"reason": "withdrawn"},
            )
        if endpoint == "POST restriction":
            return (
                "POST",
                f"/v1/patients/{chart}/restrictions",
                {"purposes": ["HMARKT"], "labels": [], "recipient": "org-ads"},
            )
        if endpoint == "POST erase":
            return "POST", f"/v1/patients/{self.patient()}/erase", {"legal_basis": "GDPR 17"}
        if endpoint == "POST membership":
            return (
                "POST",
                "/v1/memberships",
                {
                    "patient_id": self.patient(),
                    "plan": "individual",
                    "annual_fee_cents": 0,
                    "starts_on": today.isoformat(),
                    "ends_on": (today + timedelta(days=90)).isoformat(),
                },
            )
        if endpoint == "POST renew":
            return (
                "POST",
                f"/v1/memberships/{self.membership()}/renew",
                {"ends_on": (today + timedelta(days=400)).isoformat()},
            )
        if endpoint == "POST cancel":
            return "POST", f"/v1/memberships/{self.membership()}/cancel", {"reason": "moved"}
        if endpoint == "POST discontinue":
            self.n += 1
            return (
                "POST",
                f"/v1/sponsors/sponsor-{self.n}/discontinue",
                {"effective_on": today.isoformat()},
            )
        if endpoint == "POST subscriber":
            return "POST", "/v1/subscribers", SUBSCRIBER_BODY
        if endpoint == "GET feed":
            return "GET", f"/v1/subscribers/{self.subscriber()}/feed", None
        return {
            "GET subscribers": ("GET", "/v1/subscribers", None),
            "GET head": ("GET", "/v1/audit/head", None),
            "GET access record": ("GET", f"/v1/audit/accesses/{accesses['read']}", None),
            "POST replay": ("POST", f"/v1/audit/accesses/{accesses['read']}/replay", None),
            "GET break-glass": ("GET", "/v1/audit/break-glass", None),
            "POST review": (
                "POST",
                f"/v1/audit/accesses/{accesses['glass']}/review",
                {"outcome": "justified", "note": "confirmed"},
            ),
            "GET my access log": ("GET", "/v1/me/access-log", None),
        }[endpoint]


def test_the_rest_of_the_matrix_has_no_deviation(client: TestClient, chart: str) -> None:
    actors = {**ACTORS, "patient, self": auth("patient", sub="patient-self", patient=chart)}
    targets = Targets(client, chart)
    seen = settled(client)
    read = client.get(f"/v1/patients/{chart}", headers=ACTORS["clinician"])
    glass = client.get(
        f"/v1/patients/{chart}/timeline",
        params=seen,
        headers={**ACTORS["clinician"], "X-Break-Glass": GLASS},
    )
    accesses = {
        "read": read.headers["X-Access-Id"],
        "glass": glass.headers["X-Access-Id"],
        "entry": targets.entry(),
    }
    deviations = []
    for endpoint, row in MATRIX_REST.items():
        assert set(row) == set(actors), endpoint
        for actor, expected in row.items():
            for (purpose, extra), status in zip(PURPOSES.items(), expected, strict=True):
                method, path, body = targets.request(endpoint, accesses)
                headers = {**(actors[actor] or {}), **extra}
                got = client.request(method, path, json=body, headers=headers)
                if got.status_code != status:
                    deviations.append((endpoint, actor, purpose, status, got.status_code))
    assert deviations == []


def test_every_purpose_the_token_does_not_allow_is_403_and_recorded(
    client: TestClient, chart: str
) -> None:
    # Every endpoint of the first matrix, every caller, every purpose of use that the
    # caller's token does not allow (no purpose_of_use claim: the role's defaults).
    actors = {**ACTORS, "patient, self": auth("patient", sub="patient-self", patient=chart)}
    roles = {name: name.split(",")[0] for name in actors}
    seen = settled(client)
    refused, deviations = 0, []
    for endpoint in MATRIX:
        method, path, body = _request(endpoint, chart, seen)
        for actor, headers in actors.items():
            for purpose in Purpose:
                if purpose in ROLE_DEFAULTS[Role(roles[actor])]:
                    continue
                got = client.request(
                    method,
                    path,
                    params=seen,
                    json=body,
                    headers={**(headers or {}), "X-Purpose-Of-Use": purpose.value},
                )
                refused += 1
                if got.status_code != 403:
                    deviations.append((endpoint, actor, purpose.value, got.status_code))
    assert deviations == []
    denials = []
    for org in ("org-main", "org-other", "org-ads"):
        denials += [
            item
            for item in client.get(
                "/v1/audit/accesses",
                params={"decision": "deny", "limit": 500, **settled(client)},
                headers=auth("auditor", sub="auditor", org=org),
            ).json()["items"]
            if "purpose of use" in item["reason"]
        ]
    assert len(denials) == refused


def test_a_purpose_the_token_allows_still_needs_the_care_relationship(
    client: TestClient, chart: str
) -> None:
    # Given a clinician whose identity provider allows payment and operations
    claims = {"purpose_of_use": ["TREAT", "HPAYMT", "HOPERAT"]}
    billing = purpose_token("clinician", sub="dr-billing", **claims)
    stranger = client.post(
        "/v1/patients", json={**REGISTER_BODY, "mrn": "MRN-NO-CARE"}, headers=ACTORS["clinician"]
    ).json()["id"]
    seen = settled(client)
    for purpose in ("HPAYMT", "HOPERAT", "TREAT"):
        headers = {**billing, "X-Purpose-Of-Use": purpose}
        # Then a chart under care is served, and one without a membership is not
        cared = client.get(f"/v1/patients/{chart}/timeline", params=seen, headers=headers)
        assert cared.status_code == 200, (purpose, cared.text)
        refused = client.get(f"/v1/patients/{stranger}/timeline", params=seen, headers=headers)
        assert refused.status_code == 403, (purpose, refused.text)
        assert "care relationship" in refused.json()["detail"]
    # And a purpose outside the claim is refused, whatever the role's defaults
    public_health = {**billing, "X-Purpose-Of-Use": "PUBHLTH"}
    assert client.get(f"/v1/patients/{chart}", headers=public_health).status_code == 403


def purpose_token(role: str, *, sub: str, org: str = "org-main", **claims: Any) -> dict[str, str]:
    now = int(time.time())
    body = {"sub": sub, "role": role, "org": org, "iat": now, "exp": now + 600, **claims}
    return {"Authorization": f"Bearer {jwt.encode(body, JWT_SECRET, algorithm='HS256')}"}


# SMART scopes (docs/security.md, "SMART scopes"): the same endpoints for tokens that
# carry a scope claim, with the default purpose. Scopes narrow: every cell is the
# unscoped cell or 403, never wider; ``patient/`` scopes hold for the launch patient only.
ELSEWHERE = "00000000-0000-4000-8000-0000000000bb"
SCOPED_ACTORS: dict[str, tuple[str, dict[str, Any]]] = {
    "clinician, user/*.rs": ("clinician", {"sub": "dr-main", "scope": "user/*.rs"}),
    "clinician, user/Observation.rs": (
        "clinician",
        {"sub": "dr-main", "scope": "user/Observation.rs"},
    ),
    "clinician, patient/*.cruds, launched here": (
        "clinician",
        {"sub": "dr-main", "scope": "launch/patient patient/*.cruds", "patient": "CHART"},
    ),
    "clinician, patient/*.cruds, launched elsewhere": (
        "clinician",
        {"sub": "dr-main", "scope": "launch/patient patient/*.cruds", "patient": ELSEWHERE},
    ),
    "clinician, other org, user/*.cruds": (
        "clinician",
        {"sub": "dr-other", "org": "org-other", "scope": "user/*.cruds"},
    ),
    "admin, user/*.cruds": ("admin", {"sub": "admin-main", "scope": "user/*.cruds"}),
    "admin, user/Patient.rs": ("admin", {"sub": "admin-main", "scope": "user/Patient.rs"}),
    "auditor, user/AuditEvent.rs": (
        "auditor",
        {"sub": "auditor-main", "scope": "user/AuditEvent.rs"},
    ),
    "patient, self, patient/*.rs": (
        "patient",
        {"sub": "pat", "patient": "CHART", "scope": "patient/*.rs"},
    ),
    "patient, self, patient/Observation.rs": (
        "patient",
        {"sub": "pat", "patient": "CHART", "scope": "patient/Observation.rs"},
    ),
}
SCOPED_ENDPOINTS = [*MATRIX, "GET fhir Patient", "GET fhir Observation", "GET fhir Condition"]
# actor: one status per endpoint of SCOPED_ENDPOINTS, in order
SCOPED_MATRIX: dict[str, tuple[int, ...]] = {
    # patient timeline consents search entry membs disclos access verify | Patient Obs Cond
    "clinician, user/*.rs": (200, 200, 200, 200, 403, 403, 403, 403, 403, 200, 200, 200),
    "clinician, user/Observation.rs": (403, 403, 403, 403, 403, 403, 403, 403, 403, 403, 200, 403),
    "clinician, patient/*.cruds, launched here": (
        *(200, 200, 200, 403, 201, 403, 403, 403, 403),
        *(200, 200, 200),
    ),
    "clinician, patient/*.cruds, launched elsewhere": (
        *(403, 403, 403, 403, 403, 403, 403, 403, 403),
        *(403, 403, 403),
    ),
    "clinician, other org, user/*.cruds": (
        *(404, 404, 404, 200, 404, 403, 403, 403, 403),
        *(404, 404, 404),
    ),
    "admin, user/*.cruds": (403, 403, 403, 403, 403, 200, 403, 403, 200, 403, 403, 403),
    "admin, user/Patient.rs": (403, 403, 403, 403, 403, 403, 403, 403, 403, 403, 403, 403),
    "auditor, user/AuditEvent.rs": (403, 403, 403, 403, 403, 403, 200, 200, 200, 403, 403, 403),
    "patient, self, patient/*.rs": (200, 200, 200, 403, 403, 403, 200, 200, 403, 200, 200, 200),
    "patient, self, patient/Observation.rs": (
        *(403, 403, 403, 403, 403, 403, 403, 403, 403),
        *(403, 200, 403),
    ),
}


def _scoped_request(endpoint: str, chart: str, seen: dict[str, int]) -> tuple[str, str, Any]:
    fhir = {
        "GET fhir Patient": ("GET", f"/fhir/Patient/{chart}", None),
        "GET fhir Observation": ("GET", f"/fhir/Observation?patient={chart}", None),
        "GET fhir Condition": ("GET", f"/fhir/Condition?patient={chart}", None),
    }
    return fhir.get(endpoint) or _request(endpoint, chart, seen)


def test_scoped_tokens_get_at_most_what_their_role_gets_and_every_403_is_audited(
    client: TestClient, chart: str
) -> None:
    caught_up(client)
    seen = settled(client)
    deviations, forbidden = [], 0
    for actor, expected in SCOPED_MATRIX.items():
        role, claims = SCOPED_ACTORS[actor]
        claims = {k: (chart if v == "CHART" else v) for k, v in claims.items()}
        for endpoint, status in zip(SCOPED_ENDPOINTS, expected, strict=True):
            method, path, body = _scoped_request(endpoint, chart, seen)
            params = dict(seen)
            if path.startswith("/fhir"):  # FHIR reads take no min_position
                path, _, query = path.partition("?")
                params = dict([query.split("=")]) if query else {}
            if endpoint == "GET search":
                params["mrn"] = "MRN-0001"
            got = client.request(
                method, path, params=params, json=body, headers=auth(role, **claims)
            )
            if got.status_code != status:
                deviations.append((actor, endpoint, status, got.status_code, got.text[:120]))
            forbidden += got.status_code == 403
    assert deviations == []
    denials = []
    for org in ("org-main", "org-other"):
        denials += client.get(
            "/v1/audit/accesses",
            params={"decision": "deny", "limit": 500, **settled(client)},
            headers=auth("auditor", sub="auditor", org=org),
        ).json()["items"]
    scope_denials = [d for d in denials if "scopes" in d["reason"] or "scoped" in d["reason"]]
    assert len(denials) >= forbidden
    assert scope_denials, "scope refusals are recorded with their reason"
