"""Bearer JWT authentication: HS256 with a shared secret, or an issuer's JWKS."""

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from uuid import UUID

import jwt

from api.settings import ConfigError
from application.context import Actor, Role
from application.scopes import Grant
from domain.grantee import ORGANISATION_ID, SUBJECT
from domain.vocabulary import Purpose


class Unauthenticated(Exception):
    """No token, or one that cannot be trusted. Always a 401."""


# Clock skew tolerated between the issuer's clock and ours, for iat and the lifetime.
LEEWAY_SECONDS = 60


@dataclass
class TokenVerifier:
    secret: bytes
    jwks_url: str | None = None
    issuer: str | None = None
    audience: str | None = None
    max_lifetime_seconds: int = 43200
    clock: Callable[[], float] = time.time

    def __post_init__(self) -> None:
        if self.jwks_url and not (self.issuer and self.audience):
            raise ConfigError("a JWKS verifier needs both an issuer and an audience")
        self._jwks = jwt.PyJWKClient(self.jwks_url) if self.jwks_url else None

    @property
    def fetches_keys(self) -> bool:
        """Whether ``actor`` may fetch signing keys over the network (a JWKS)."""
        return self._jwks is not None

    def actor(self, authorization: str | None, *, login: bool = False) -> Actor:
        """The token's actor. A console login code (``use: console-login``) is accepted
        only to sign in (``login``), never as a bearer token, and the reverse."""
        if not authorization:
            raise Unauthenticated("missing bearer token")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("the Authorization header must be 'Bearer <token>'")
        claims = self._decode(token.strip())
        self._check_lifetime(claims)
        if (claims.get("use") == "console-login") is not login:
            kind = "a console login code" if login else "a bearer token"
            raise Unauthenticated(f"this token is not {kind}")
        return actor_of(claims)

    def _decode(self, token: str) -> dict[str, object]:
        required = ["exp", "sub", "role", "org"]
        if self.audience:
            required.append("aud")
        try:
            if self._jwks is not None:
                key = self._jwks.get_signing_key_from_jwt(token).key
                return jwt.decode(
                    token,
                    key,
                    algorithms=["RS256", "ES256", "EdDSA"],
                    issuer=self.issuer,
                    audience=self.audience,
                    options={"require": [*required, "iss"], "verify_iat": False},
                )
            return jwt.decode(
                token,
                self.secret,
                algorithms=["HS256"],
                audience=self.audience,
                options={"require": required, "verify_iat": False},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("the token has expired") from None
        except jwt.ImmatureSignatureError:
            raise Unauthenticated("the token is not valid yet (nbf in the future)") from None
        except (jwt.InvalidAudienceError, jwt.InvalidIssuerError) as error:
            claim = "audience" if isinstance(error, jwt.InvalidAudienceError) else "issuer"
            raise Unauthenticated(f"the token is not for this service (wrong {claim})") from None
        except jwt.MissingRequiredClaimError as error:
            raise Unauthenticated(f"the token lacks the {error.claim} claim") from None
        except jwt.PyJWTError:
            raise Unauthenticated("the token is malformed or wrongly signed") from None

    def _check_lifetime(self, claims: dict[str, object]) -> None:
        """A stolen token must not outlive the maximum, whatever expiry its issuer chose."""
        now, limit = self.clock(), self.max_lifetime_seconds
        exp, iat = _numeric_date(claims, "exp"), _numeric_date(claims, "iat")
        if iat is not None and iat > now + LEEWAY_SECONDS:
            raise Unauthenticated("the token is not valid yet (iat in the future)")
        if exp is None:
            raise Unauthenticated("the token lacks the exp claim")
        if exp - now > limit + LEEWAY_SECONDS or (iat is not None and exp - iat > limit):
            raise Unauthenticated(f"the token's lifetime exceeds the maximum of {limit} seconds")


@dataclass(frozen=True)
class ClaimNames:
    """Which claims carry the actor's identity (an OpenID provider may name them otherwise)."""

    sub: str = "sub"
    role: str = "role"
    org: str = "org"
    patient: str = "patient"


def actor_of(claims: Mapping[str, object], names: ClaimNames = ClaimNames()) -> Actor:
    """The actor verified claims name; Unauthenticated if they name no valid one."""
    try:
        role = Role(str(claims[names.role])) if isinstance(claims.get(names.role), str) else None
    except ValueError:
        role = None
    if role is None:
        raise Unauthenticated(f"the token's {names.role} claim is missing or unknown")
    sub, org = claims.get(names.sub), claims.get(names.org)
    if not isinstance(sub, str) or not sub or not isinstance(org, str) or not org:
        raise Unauthenticated(f"the token must carry {names.sub} and {names.org} claims")
    # Qualified identities are written org/sub: an org that could hold a "/" (or a
    # sub with blanks) would make two identities read alike.
    if not ORGANISATION_ID.match(org) or not SUBJECT.match(sub):
        raise Unauthenticated("the token's org or sub claim has characters not allowed")
    launch = claims.get(names.patient)
    patient_id = None
    if launch is not None or role is Role.PATIENT:
        try:
            patient_id = UUID(str(launch)) if launch is not None else None
        except ValueError:
            message = f"the token's {names.patient} claim is not a patient id"
            raise Unauthenticated(message) from None
        if patient_id is None:
            raise Unauthenticated(f"a patient token must carry a {names.patient} claim")
    purposes = purposes_of_use(claims.get("purpose_of_use"))
    scopes = smart_scopes(claims.get("scope"), patient_id)
    return Actor(
        id=sub,
        role=role,
        org=org,
        # Staff tokens may carry a launch patient too, which pins only their scopes.
        patient_id=patient_id if role is Role.PATIENT else None,
        purposes=purposes,
        scopes=scopes,
    )


def smart_scopes(claim: object, launch_patient: UUID | None) -> Grant | None:
    """The ``scope`` claim (space-separated, or a list) as a grant; None without one.

    A claim we cannot read is refused rather than ignored, since ignoring it would
    leave the token unnarrowed.
    """
    if claim is None:
        return None
    texts = claim.split() if isinstance(claim, str) else claim
    if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
        raise Unauthenticated("the token's scope claim must be a space-separated string")
    return Grant.of(texts, launch_patient)


def _numeric_date(claims: dict[str, object], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Unauthenticated(f"the token's {name} claim must be a number of seconds")
    return float(value)


def purposes_of_use(claim: object) -> frozenset[Purpose] | None:
    """The ``purpose_of_use`` claim (a list, or a space-separated string, of HL7 codes).

    A claim we cannot read is refused rather than ignored: ignoring it would grant the
    role's defaults, which may be wider than what the identity provider allowed.
    """
    if claim is None:
        return None
    codes = claim.split() if isinstance(claim, str) else claim
    if not isinstance(codes, list) or not codes or not all(isinstance(c, str) for c in codes):
        raise Unauthenticated("the token's purpose_of_use claim must list HL7 purpose codes")
    try:
        return frozenset(Purpose(code) for code in codes)
    except ValueError:
        raise Unauthenticated(
            "the token's purpose_of_use claim names an unknown purpose of use"
        ) from None


def mint_token(
    secret: bytes,
    *,
    role: Role,
    sub: str,
    org: str,
    patient: UUID | None,
    ttl_seconds: int,
    now: int,
    audience: str | None = None,
    extra: dict[str, object] | None = None,
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
    if audience:
        claims["aud"] = audience
    claims.update(extra or {})
    return jwt.encode(claims, secret, algorithm="HS256")
