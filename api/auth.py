"""Bearer JWT authentication: HS256 with a shared secret, or an issuer's JWKS."""

from dataclasses import dataclass
from uuid import UUID

import jwt

from application.context import Actor, Role


class Unauthenticated(Exception):
    """No token, or one that cannot be trusted. Always a 401."""


@dataclass
class TokenVerifier:
    secret: bytes
    jwks_url: str | None = None
    issuer: str | None = None

    def __post_init__(self) -> None:
        self._jwks = jwt.PyJWKClient(self.jwks_url) if self.jwks_url else None

    def actor(self, authorization: str | None) -> Actor:
        if not authorization:
            raise Unauthenticated("missing bearer token")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("the Authorization header must be 'Bearer <token>'")
        claims = self._decode(token.strip())
        try:
            role = Role(claims["role"])
        except (KeyError, ValueError):
            raise Unauthenticated("the token's role claim is missing or unknown") from None
        sub, org = claims.get("sub"), claims.get("org")
        if not isinstance(sub, str) or not sub or not isinstance(org, str) or not org:
            raise Unauthenticated("the token must carry sub and org claims")
        patient_id = None
        if role is Role.PATIENT:
            try:
                patient_id = UUID(str(claims["patient"]))
            except (KeyError, ValueError):
                raise Unauthenticated("a patient token must carry a patient claim") from None
        return Actor(id=sub, role=role, org=org, patient_id=patient_id)

    def _decode(self, token: str) -> dict[str, object]:
        options = {"require": ["exp", "sub", "role", "org"]}
        try:
            if self._jwks is not None:
                key = self._jwks.get_signing_key_from_jwt(token).key
                return jwt.decode(
                    token,
                    key,
                    algorithms=["RS256", "ES256", "EdDSA"],
                    issuer=self.issuer,
                    options={**options, "verify_aud": False},
                )
            return jwt.decode(token, self.secret, algorithms=["HS256"], options=options)
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("the token has expired") from None
        except jwt.PyJWTError:
            raise Unauthenticated("the token is malformed or wrongly signed") from None


def mint_token(
    secret: bytes,
    *,
    role: Role,
    sub: str,
    org: str,
    patient: UUID | None,
    ttl_seconds: int,
    now: int,
) -> str:
    """A development token signed with the configured HS256 secret."""
    claims: dict[str, object] = {
        "sub": sub,
        "role": role.value,
        "org": org,
        "iat": now,
        "exp": now + ttl_seconds,
    }
    if patient is not None:
        claims["patient"] = str(patient)
    return jwt.encode(claims, secret, algorithm="HS256")
