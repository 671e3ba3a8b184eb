"""One store, two care organisations: org-main (ours) and org-other (theirs).

Each organisation has a clinician, an administrator and an auditor, a patient
registered by its clinician under an active (employer) membership enrolled by its
administrator, two entries (one of them labelled ``mental_health``), a directive the
patient granted, a subscriber its administrator registered (with the service token
whose ``sub`` is the subscriber id), a plain timeline read and a break-glass read by
its clinician. org-main also has a second patient.

Both organisations' staff share their subjects on purpose (``dr-grey``, ``admin-1``,
``auditor-1``): an identity is (organisation, role, subject), so two tokens with the
same ``sub`` and different ``org`` must never be taken for one another.
"""

import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
from fastapi.testclient import TestClient

from tests.conftest import JWT_SECRET, Auth, auth

ORG_MAIN = "org-main"
ORG_OTHER = "org-other"
ORG_PHARMACY = "org-pharmacy"

CLINICIAN_SUB = "dr-grey"
ADMIN_SUB = "admin-1"
AUDITOR_SUB = "auditor-1"
PATIENT_SUB = "patient-1"

UNKNOWN_ID = "00000000-0000-4000-8000-00000000beef"
SHA256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
SENTENCE = "Patient unconscious in ED, allergy history needed"
ALL_KINDS = [
    "encounter",
    "observation",
    "condition",
    "allergy",
    "medication",
    "immunization",
    "procedure",
    "lab_result",
    "note",
]


class Token(Mapping[str, str]):
    """An ``Authorization`` header minted with PyJWT at each read, with any claims.

    ``tests.conftest.auth`` mints the standard claims only; this one also carries
    ``purpose_of_use`` or an ``exp`` of one's choosing.
    """

    def __init__(self, claims: dict[str, Any], ttl: int = 600, exp: int | None = None) -> None:
        self.claims = claims
        self.ttl = ttl
        self.exp = exp

    def __getitem__(self, name: str) -> str:
        if name != "Authorization":
            raise KeyError(name)
        now = int(time.time())
        claims = {**self.claims, "iat": now, "exp": self.exp or now + self.ttl}
        return "Bearer " + jwt.encode(claims, JWT_SECRET.encode(), algorithm="HS256")

    def __iter__(self) -> Iterator[str]:
        return iter(("Authorization",))

    def __len__(self) -> int:
        return 1


def mint(
    role: str,
    *,
    sub: str,
    org: str,
    patient: str | None = None,
    purpose_of_use: list[str] | None = None,
    exp: int | None = None,
) -> Token:
    """A bearer token with the claims sub, role, org, exp, iat, and optionally patient
    and purpose_of_use (HS256, the test secret)."""
    claims: dict[str, Any] = {"sub": sub, "role": role, "org": org}
    if patient is not None:
        claims["patient"] = str(patient)
    if purpose_of_use is not None:
        claims["purpose_of_use"] = purpose_of_use
    return Token(claims, exp=exp)


def headers(token: Mapping[str, str], **extra: str) -> dict[str, str]:
    """A token's header with extra headers (``X_Break_Glass`` -> ``X-Break-Glass``)."""
    return {**token, **{name.replace("_", "-"): value for name, value in extra.items()}}


def settled(
    client: TestClient | httpx.Client, token: Mapping[str, str] | None = None
) -> dict[str, int]:
    """Query parameters that make a read-model query see every write made so far (in
    the token's organisation's log, when organisations have databases of their own)."""
    return {"min_position": client.get("/readyz", headers=token).json()["position"]}


@dataclass
class Org:
    """One organisation's staff, patient and resources."""

    id: str
    tag: str  # distinctive words in this organisation's PHI
    clinician: Auth
    admin: Auth
    auditor: Auth
    mrn: str
    given: str
    family: str
    birth_date: str
    phone: str
    email: str
    displays: dict[str, str]
    justification: str
    subscriber_name: str
    patient_id: str = ""
    patient: Auth = None  # type: ignore[assignment]  # set by populate()
    membership_id: str = ""
    sponsor_id: str = "acme-corp"
    entries: dict[str, str] = field(default_factory=dict)  # "plain" | "mental" -> entry id
    directive_id: str = ""
    subscriber_id: str = ""
    service: Auth = None  # type: ignore[assignment]  # set by populate()
    read_access_id: str = ""
    glass_access_id: str = ""

    def staff(self, role: str) -> Auth:
        return {"clinician": self.clinician, "admin": self.admin, "auditor": self.auditor}[role]

    def phi(self) -> list[str]:
        """Strings of this organisation's patient and records that must never leak."""
        return [
            self.mrn,
            self.given,
            self.family,
            self.phone,
            self.email,
            *self.displays.values(),
            self.justification,
            self.subscriber_name,
        ]

    def secret_ids(self) -> list[str]:
        """Ids only this organisation's people have been told."""
        return [
            self.read_access_id,
            self.glass_access_id,
            self.membership_id,
            self.directive_id,
            *self.entries.values(),
        ]


def organisation(org: str, tag: str, family: str, justification: str) -> Org:
    return Org(
        id=org,
        tag=tag,
        clinician=auth("clinician", sub=CLINICIAN_SUB, org=org),
        admin=auth("admin", sub=ADMIN_SUB, org=org),
        auditor=auth("auditor", sub=AUDITOR_SUB, org=org),
        mrn=f"MRN-{tag.upper()}-7731",
        given=f"Ysolde{tag.capitalize()}",
        family=family,
        birth_date="1984-07-12",
        phone=f"+1-555-{7000 + len(tag)}",
        email=f"{tag}.patient@example.org",
        displays={
            "plain": f"Fasting glucose {tag} marker",
            "mental": f"Panic disorder {tag} follow-up",
        },
        justification=justification,
        subscriber_name=f"{tag.capitalize()} Street Pharmacy Quartz",
    )


def registration(org: Org) -> dict[str, Any]:
    return {
        "mrn": org.mrn,
        "name": {"given": org.given, "family": org.family},
        "birth_date": org.birth_date,
        "sex": "female",
        "contact": {"phone": org.phone, "email": org.email},
    }


def entry_body(
    display: str,
    *,
    labels: list[str] | None = None,
    kind: str = "observation",
    code: str = "2339-0",
) -> dict[str, Any]:
    return {
        "kind": kind,
        "code": {"system": "http://loinc.org", "code": code, "display": display},
        "value": {"text": "within range"},
        "effective_at": "2026-11-20T09:30:00Z",
        "labels": labels or [],
    }


def directive_body(
    grantee: str, purposes: list[str], labels: list[str] | None = None, start: str = "2020-01-01"
) -> dict[str, Any]:
    return {
        "grantee": grantee,
        "purposes": purposes,
        "labels": labels or [],
        "period": {"start": start},
        "evidence": {
            "form_id": "consent-form",
            "form_version": "1",
            "text_sha256": SHA256,
            "method": "electronic",
        },
    }


def membership_body(patient_id: str, sponsor_id: str | None = "acme-corp") -> dict[str, Any]:
    today = datetime.now(UTC).date()
    return {
        "patient_id": patient_id,
        "plan": "employer" if sponsor_id else "individual",
        **({"sponsor_id": sponsor_id} if sponsor_id else {}),
        "annual_fee_cents": 0,
        "starts_on": (today - timedelta(days=1)).isoformat(),
        "ends_on": (today + timedelta(days=365)).isoformat(),
    }


def ok(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, (response.request.url, response.text)
    body: dict[str, Any] = response.json()
    return body


def register_patient(client: TestClient, org: Org, body: dict[str, Any]) -> str:
    return str(ok(client.post("/v1/patients", json=body, headers=org.clinician), 201)["id"])


def enrol(client: TestClient, org: Org, patient_id: str, sponsor_id: str | None = None) -> str:
    response = client.post(
        "/v1/memberships", json=membership_body(patient_id, sponsor_id), headers=org.admin
    )
    return str(ok(response, 201)["id"])


def record(client: TestClient, org: Org, patient_id: str, body: dict[str, Any]) -> str:
    response = client.post(f"/v1/patients/{patient_id}/entries", json=body, headers=org.clinician)
    return str(ok(response, 201)["entry_id"])


def populate(client: TestClient, org: Org) -> None:
    subscriber = {
        "name": org.subscriber_name,
        "recipient_org": org.id,
        "purpose": "TREAT",
        "kinds": ALL_KINDS,
        "labels": [],
        "content": "full",
    }
    org.subscriber_id = str(
        ok(client.post("/v1/subscribers", json=subscriber, headers=org.admin), 201)["id"]
    )
    org.service = auth("service", sub=org.subscriber_id, org=org.id)
    org.patient_id = register_patient(client, org, registration(org))
    org.patient = auth("patient", sub=PATIENT_SUB, org=org.id, patient=org.patient_id)
    org.membership_id = enrol(client, org, org.patient_id, org.sponsor_id)
    org.entries["plain"] = record(client, org, org.patient_id, entry_body(org.displays["plain"]))
    org.entries["mental"] = record(
        client,
        org,
        org.patient_id,
        entry_body(
            org.displays["mental"], labels=["mental_health"], kind="condition", code="F41.0"
        ),
    )
    granted = client.post(
        f"/v1/patients/{org.patient_id}/consents",
        json=directive_body(f"org:{ORG_PHARMACY}", ["TREAT"], ["substance_use"]),
        headers=org.patient,
    )
    org.directive_id = str(ok(granted, 201)["directive_id"])
    seen = settled(client, org.clinician)
    read = client.get(f"/v1/patients/{org.patient_id}/timeline", params=seen, headers=org.clinician)
    ok(read, 200)
    org.read_access_id = read.headers["X-Access-Id"]
    glass = client.get(
        f"/v1/patients/{org.patient_id}/timeline",
        params=seen,
        headers=headers(org.clinician, X_Break_Glass=org.justification),
    )
    ok(glass, 200)
    org.glass_access_id = glass.headers["X-Access-Id"]


@dataclass
class World:
    client: TestClient
    main: Org
    other: Org
    second_patient_id: str  # another patient of org-main
    second_patient: Auth  # their token

    def records(self, auditor: Mapping[str, str] | None = None, **filters: Any) -> list[Any]:
        """Every access record an auditor (ours by default) sees, with filters."""
        items: list[Any] = []
        auditor = auditor or self.main.auditor
        params: dict[str, Any] = {"limit": 500, **settled(self.client, auditor), **filters}
        while True:
            response = self.client.get("/v1/audit/accesses", params=params, headers=auditor)
            page = ok(response, 200)
            items += page["items"]
            if not page.get("next_cursor"):
                return items
            params = {**params, "cursor": page["next_cursor"]}


def build_world(client: TestClient) -> World:
    main = organisation(ORG_MAIN, "main", "Quillfeather", SENTENCE)
    other = organisation(
        ORG_OTHER, "other", "Brackenbury", "Collapsed at the front desk, medication list needed"
    )
    populate(client, main)
    populate(client, other)
    second = {
        **registration(main),
        "mrn": "MRN-SECOND-0042",
        "name": {"given": "Hestia", "family": "Marchbanks"},
        "contact": {"phone": "+1-555-0142"},
    }
    second_id = register_patient(client, main, second)
    return World(
        client=client,
        main=main,
        other=other,
        second_patient_id=second_id,
        second_patient=auth("patient", sub="patient-2", org=ORG_MAIN, patient=second_id),
    )


def actor_of(token: Mapping[str, str]) -> dict[str, str]:
    """The {id, role, org} an access record names for this token."""
    claims = jwt.decode(token["Authorization"].split()[1], options={"verify_signature": False})
    return {"id": claims["sub"], "role": claims["role"], "org": claims["org"]}
