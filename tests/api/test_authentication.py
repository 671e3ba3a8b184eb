"""No token, or one that cannot be trusted: 401 with ``WWW-Authenticate: Bearer``."""

import time

import jwt
import pytest
from fastapi.testclient import TestClient

from api.auth import TokenVerifier
from domain.vocabulary import Purpose
from tests.api.support import CLINICIAN, assert_unauthenticated, register
from tests.conftest import JWT_SECRET, ORG, REGISTER_BODY, token


def _signed(claims: dict[str, object], secret: str = JWT_SECRET) -> dict[str, str]:
    return {"Authorization": f"Bearer {jwt.encode(claims, secret, algorithm='HS256')}"}


def _claims(**changes: object) -> dict[str, object]:
    now = int(time.time())
    return {"sub": "dr-1", "role": "clinician", "org": ORG, "iat": now, "exp": now + 600, **changes}


def test_no_token_is_401(client: TestClient) -> None:
    # Given no Authorization header
    # When a registration is attempted
    response = client.post("/v1/patients", json=REGISTER_BODY)
    # Then it is a 401 that asks for a bearer token
    assert_unauthenticated(response)


def test_no_token_on_a_read_is_401_and_reveals_nothing(client: TestClient) -> None:
    patient_id = register(client)
    response = client.get(f"/v1/patients/{patient_id}")
    body = assert_unauthenticated(response)
    assert patient_id not in response.text and "mrn" not in body


@pytest.mark.parametrize(
    "authorization",
    ["Bearer not.a.jwt", "Bearer ", "Bearer", "Basic dXNlcjpwYXNz", "token-without-scheme"],
    ids=["garbage-jwt", "empty-bearer", "bare-scheme", "basic-auth", "no-scheme"],
)
def test_a_malformed_token_is_401(client: TestClient, authorization: str) -> None:
    response = client.post(
        "/v1/patients", json=REGISTER_BODY, headers={"Authorization": authorization}
    )
    assert_unauthenticated(response)


def test_a_wrongly_signed_token_is_401(client: TestClient) -> None:
    # Given a token with valid claims, signed with another secret
    headers = _signed(_claims(), secret="not-the-secret-" + "y" * 40)
    # When it is used
    response = client.post("/v1/patients", json=REGISTER_BODY, headers=headers)
    # Then it is not trusted
    assert_unauthenticated(response)


def test_an_unsigned_alg_none_token_is_401(client: TestClient) -> None:
    unsigned = jwt.encode(_claims(), None, algorithm="none")  # type: ignore[arg-type]
    response = client.post(
        "/v1/patients", json=REGISTER_BODY, headers={"Authorization": f"Bearer {unsigned}"}
    )
    assert_unauthenticated(response)


def test_an_expired_token_is_401(client: TestClient) -> None:
    # Given a token that expired ten seconds ago
    headers = {"Authorization": f"Bearer {token('clinician', ttl=-10)}"}
    # When it is used
    response = client.post("/v1/patients", json=REGISTER_BODY, headers=headers)
    # Then it is refused, and the problem says why
    assert_unauthenticated(response)
    assert "expired" in response.json()["detail"]


def test_a_token_without_an_expiry_is_401(client: TestClient) -> None:
    claims = _claims()
    del claims["exp"]
    response = client.post("/v1/patients", json=REGISTER_BODY, headers=_signed(claims))
    assert_unauthenticated(response)


@pytest.mark.parametrize(
    "changes",
    [
        {"role": "wizard"},
        {"role": None},
        {"org": ""},
        {"sub": 42},
        # a qualified identity is org/sub: neither may make two of them read alike
        {"org": "org-main/dr-grey"},
        {"org": "org main"},
        {"sub": "dr grey"},
    ],
    ids=[
        "unknown-role",
        "null-role",
        "empty-org",
        "numeric-sub",
        "slash-in-org",
        "blank-in-org",
        "blank-in-sub",
    ],
)
def test_a_token_with_bad_claims_is_401(client: TestClient, changes: dict[str, object]) -> None:
    response = client.post("/v1/patients", json=REGISTER_BODY, headers=_signed(_claims(**changes)))
    assert_unauthenticated(response)


def test_a_patient_token_without_a_patient_claim_is_401(client: TestClient) -> None:
    patient_id = register(client)
    headers = _signed(_claims(role="patient"))
    response = client.get(f"/v1/patients/{patient_id}", headers=headers)
    assert_unauthenticated(response)


def test_a_valid_token_is_accepted(client: TestClient) -> None:
    response = client.post("/v1/patients", json=REGISTER_BODY, headers=CLINICIAN)
    assert response.status_code == 201


# purpose_of_use (IHE IUA): the purposes the identity provider lets the actor assert.


def _actor_purposes(claims: dict[str, object]) -> frozenset[Purpose] | None:
    verifier = TokenVerifier(JWT_SECRET.encode())
    encoded = jwt.encode(claims, JWT_SECRET, algorithm="HS256")
    return verifier.actor(f"Bearer {encoded}").purposes


@pytest.mark.parametrize(
    "claim",
    [["TREAT", "PUBHLTH"], "TREAT PUBHLTH", " TREAT  PUBHLTH "],
    ids=["list", "space-separated", "extra-spaces"],
)
def test_the_purpose_of_use_claim_is_read_as_a_list_or_a_space_separated_string(
    claim: object,
) -> None:
    assert _actor_purposes(_claims(purpose_of_use=claim)) == {Purpose.TREAT, Purpose.PUBHLTH}


def test_without_a_purpose_of_use_claim_the_role_defaults_apply() -> None:
    assert _actor_purposes(_claims()) is None


@pytest.mark.parametrize(
    "claim",
    [["TREAT", "SHOPPING"], "TREAT treat", [], "", 7, ["TREAT", 7]],
    ids=["unknown-code", "lower-case", "empty-list", "empty-string", "number", "mixed-types"],
)
def test_a_purpose_of_use_claim_naming_an_unknown_purpose_is_401(
    client: TestClient, claim: object
) -> None:
    # Given a correctly signed token whose purpose_of_use cannot be read as HL7 codes
    headers = _signed(_claims(purpose_of_use=claim))
    # When it is used, Then it is not trusted
    response = client.post("/v1/patients", json=REGISTER_BODY, headers=headers)
    assert_unauthenticated(response)
    assert "purpose_of_use" in response.json()["detail"]


def test_a_token_allowing_treatment_registers_a_patient(client: TestClient) -> None:
    headers = _signed(_claims(purpose_of_use=["TREAT"]))
    response = client.post("/v1/patients", json=REGISTER_BODY, headers=headers)
    assert response.status_code == 201, response.text
