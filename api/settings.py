"""Configuration, read from CARELEDGER_* environment variables or a .env file."""

import base64
import binascii
import json
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from domain.grantee import ORGANISATION_ID
from infrastructure.stores import StoreConfigError, database_identity

LOG_LEVELS = ("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG")
STORE_SCHEMES = ("sqlite:///", "postgresql://", "postgres://")
NATS_SCHEMES = ("nats", "tls", "ws", "wss")


class ConfigError(Exception):
    """A setting is wrong. The message names the setting and never its secret value."""


@dataclass(frozen=True)
class OrgDatabase:
    """One organisation's store: the service's URL and, on PostgreSQL, its owner's."""

    url: str
    owner_url: str | None = None


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CARELEDGER_", env_file=".env", extra="ignore")

    database_url: str = "sqlite:///./var/careledger.db"
    # PostgreSQL: the role that owns the schema and runs migrations. The service itself
    # then connects as database_url's role, which owns nothing.
    owner_database_url: str | None = None
    # PostgreSQL only: a streaming replica of database_url that serves the read models'
    # queries (docs/operations.md, Read replicas); writes and checks stay on the primary.
    read_database_url: str | None = None
    jwt_secret: SecretStr | None = None
    jwt_jwks_url: str | None = None
    jwt_issuer: str | None = None
    # Checked whenever set; required with a JWKS, as is the issuer.
    jwt_audience: str | None = None
    # The longest a token may live (exp - iat, or exp - now): 12 h.
    jwt_max_lifetime_seconds: int = Field(default=43200, gt=0)
    master_key: SecretStr | None = None
    master_key_file: Path | None = None
    # One NATS server, or a cluster's servers separated by commas (the client fails over).
    nats_url: str | None = None
    # Copies of the CARELEDGER stream JetStream keeps: 3 on a three-node cluster. Unset,
    # a new stream gets 1 and an existing one keeps its own count.
    nats_replicas: int | None = Field(default=None, ge=1, le=5)
    org: str = "org-main"
    # Organisations routed to databases of their own (docs/scale-out.md): a JSON object
    # of organisation id to a store URL, or to {"url": ..., "owner_url": ...}.
    org_databases: Annotated[dict[str, OrgDatabase] | None, NoDecode] = None
    var_dir: Path = Path("./var")
    max_body_bytes: int = Field(default=1024 * 1024, gt=0)
    key_cache_size: int = Field(default=10_000, gt=0)
    # Read models: how long a min_position query waits before 503, the events per
    # projection transaction, and the lag (in events) past which /readyz fails.
    read_wait_seconds: float = Field(default=5.0, ge=0)
    projection_batch_size: int = Field(default=1000, gt=0)
    max_projection_lag: int = Field(default=10_000, gt=0)
    log_level: str = "INFO"
    # How long a finished Bulk Data export's sealed files are kept (var_dir/exports).
    export_expiry_seconds: int = Field(default=3600, gt=0)
    # SMART on FHIR: the authorization server's endpoints, published as given in
    # /.well-known/smart-configuration and the CapabilityStatement (CareLedger is a
    # resource server; it issues no tokens of its own).
    smart_authorization_endpoint: str | None = None
    smart_token_endpoint: str | None = None
    # The console's OpenID Connect sign-in (docs/console.md): on when the issuer is set.
    oidc_issuer: str | None = None
    oidc_client_id: str | None = None
    oidc_client_secret: SecretStr | None = None  # none: a public client (PKCE alone)
    oidc_redirect_uri: str | None = None
    oidc_scope: str = "openid"
    oidc_sub_claim: str = "sub"
    oidc_role_claim: str = "role"
    oidc_org_claim: str = "org"
    oidc_patient_claim: str = "patient"

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        if value.upper() not in LOG_LEVELS:
            raise ValueError(f"must be one of {', '.join(LOG_LEVELS)}")
        return value.upper()

    @field_validator("database_url", "owner_database_url", "read_database_url")
    @classmethod
    def _store_url(cls, value: str | None) -> str | None:
        if value is not None and not value.lower().startswith(STORE_SCHEMES):
            raise ValueError("must be sqlite:///path/to.db or postgresql://user@host/db")
        return value

    @field_validator("nats_url")
    @classmethod
    def _nats_servers(cls, value: str | None) -> str | None:
        servers = nats_servers(value or "")
        for server in servers:
            scheme, _, address = server.partition("://")
            if scheme not in NATS_SCHEMES or not address:
                raise ValueError("must be nats://host:port, or several separated by commas")
        return ",".join(servers) or None

    @property
    def nats_cluster(self) -> list[str]:
        """CARELEDGER_NATS_URL's servers, as the broker takes them (none when unset)."""
        return nats_servers(self.nats_url or "")

    @field_validator(
        "jwt_jwks_url",
        "smart_authorization_endpoint",
        "smart_token_endpoint",
        "oidc_issuer",
        "oidc_redirect_uri",
    )
    @classmethod
    def _server_url(cls, value: str | None) -> str | None:
        if value and "://" not in value:
            raise ValueError("must be a URL (scheme://host...)")
        return value or None

    @field_validator("org_databases", mode="before")
    @classmethod
    def _org_databases(cls, value: Any) -> dict[str, OrgDatabase] | None:
        return None if value is None or value == "" else org_databases(value)

    @field_validator("org")
    @classmethod
    def _org(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value


def _is_store_url(value: object) -> bool:
    return isinstance(value, str) and value.lower().startswith(STORE_SCHEMES)


def org_databases(value: Any) -> dict[str, OrgDatabase]:
    """The routing table, checked whole; a message names an organisation, never a URL
    (which may carry a password)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise ValueError("must be a JSON object of organisation id to store URL") from None
    if not isinstance(value, dict) or not value:
        raise ValueError("must be a JSON object naming at least one organisation")
    table: dict[str, OrgDatabase] = {}
    for org, given in value.items():
        if not isinstance(org, str) or not ORGANISATION_ID.match(org):
            raise ValueError(f"{str(org)[:40]!r} is not an organisation id")
        entry = given
        if isinstance(given, OrgDatabase):
            entry = {"url": given.url, "owner_url": given.owner_url}
        elif isinstance(given, str):
            entry = {"url": given}
        if not isinstance(entry, dict) or set(entry) - {"url", "owner_url"}:
            raise ValueError(f"{org}: must be a store URL or {{url, owner_url}}")
        owner = entry.get("owner_url")
        if not _is_store_url(entry.get("url")) or not (owner is None or _is_store_url(owner)):
            raise ValueError(f"{org}: must be sqlite:///path/to.db or postgresql://user@host/db")
        try:
            identity = database_identity(entry["url"])
            owned = database_identity(owner) if owner is not None else identity
        except StoreConfigError as error:
            raise ValueError(f"{org}: {error}") from None
        if owned != identity:
            # An owner URL migrates, and grants on, whatever database it names.
            raise ValueError(f"{org}: owner_url must name the same database as url")
        table[org] = OrgDatabase(entry["url"], owner)
    identities = [database_identity(database.url) for database in table.values()]
    if len(set(identities)) != len(identities):
        # Two containers on one log would each number and chain it as their own.
        raise ValueError("two organisations name the same database")
    return table


def nats_servers(value: str) -> list[str]:
    """A cluster's servers, as nats-py takes them: one URL per comma-separated item."""
    return [server.strip() for server in value.split(",") if server.strip()]


@dataclass(frozen=True)
class Secrets:
    jwt_secret: bytes
    master_key: bytes


def load_settings() -> Settings:
    try:
        return Settings()
    except ValueError as error:
        raise ConfigError(_explained(error)) from None


def _explained(error: ValueError) -> str:
    """One line naming each bad setting and what it must be: pydantic's ``msg`` states
    the rule (its ``input``, which may be a secret, is left out)."""
    problems = [
        f"CARELEDGER_{str(e['loc'][0]).upper() if e['loc'] else '?'}: "
        + str(e["msg"]).removeprefix("Value error, ")
        for e in getattr(error, "errors", list)()
    ]
    return "invalid setting: " + ("; ".join(problems) or "unknown")


def check_secrets(settings: Settings) -> None:
    """The secrets the settings give are usable, checked before anything is opened;
    development secrets are not generated here."""
    resolve_secrets(settings, generate=False)


def resolve_secrets(settings: Settings, *, generate: bool = True) -> Secrets:
    """The JWT secret and master key, generating development ones into var/ once."""
    check_token_settings(settings)
    check_read_replica(settings)
    if settings.jwt_secret is not None:
        jwt_secret = settings.jwt_secret.get_secret_value().encode()
        if len(jwt_secret) < 32:
            raise ConfigError("CARELEDGER_JWT_SECRET: must be at least 32 characters")
    elif not generate or settings.jwt_jwks_url:
        jwt_secret = b""
    else:
        jwt_secret = _generated(settings.var_dir / "jwt-secret", lambda: secrets.token_urlsafe(48))
    given = settings.master_key is not None or settings.master_key_file is not None
    master_key = _master_key(settings) if generate or given else b""
    return Secrets(jwt_secret=jwt_secret, master_key=master_key)


def check_token_settings(settings: Settings) -> None:
    """A JWKS trusts a whole identity provider, so its tokens must be pinned to one
    issuer and to this service's audience, or a token minted for another client works."""
    check_oidc_settings(settings)
    if not settings.jwt_jwks_url:
        return
    for value, name in ((settings.jwt_issuer, "ISSUER"), (settings.jwt_audience, "AUDIENCE")):
        if not value:
            raise ConfigError(f"CARELEDGER_JWT_{name}: required with CARELEDGER_JWT_JWKS_URL")


def check_read_replica(settings: Settings) -> None:
    """A read replica is a PostgreSQL hot standby of a PostgreSQL primary: SQLite has
    no streaming replication, so either side being SQLite is a mistake, not a fallback."""
    url = settings.read_database_url
    if url is None:
        return
    if settings.org_databases is not None:
        raise ConfigError(
            "CARELEDGER_READ_DATABASE_URL: a replica copies one database; unset it with "
            "CARELEDGER_ORG_DATABASES"
        )
    if url.lower().startswith("sqlite:"):
        raise ConfigError(
            "CARELEDGER_READ_DATABASE_URL: must be a PostgreSQL streaming replica "
            "(postgresql://user@host/db), not SQLite"
        )
    if settings.database_url.lower().startswith("sqlite:"):
        raise ConfigError(
            "CARELEDGER_READ_DATABASE_URL: a read replica needs CARELEDGER_DATABASE_URL "
            "on PostgreSQL; unset it with SQLite"
        )


def check_oidc_settings(settings: Settings) -> None:
    """OpenID Connect sign-in needs its client id and redirect URI with its issuer."""
    if not settings.oidc_issuer:
        return
    for value, name in (
        (settings.oidc_client_id, "CLIENT_ID"),
        (settings.oidc_redirect_uri, "REDIRECT_URI"),
    ):
        if not value:
            raise ConfigError(f"CARELEDGER_OIDC_{name}: required with CARELEDGER_OIDC_ISSUER")
    if "openid" not in settings.oidc_scope.split():
        raise ConfigError("CARELEDGER_OIDC_SCOPE: must include openid")


def _master_key(settings: Settings) -> bytes:
    if settings.master_key is not None and settings.master_key_file is not None:
        raise ConfigError("set CARELEDGER_MASTER_KEY or CARELEDGER_MASTER_KEY_FILE, not both")
    if settings.master_key is not None:
        return decode_master_key(settings.master_key.get_secret_value(), "CARELEDGER_MASTER_KEY")
    if settings.master_key_file is not None:
        try:
            text = settings.master_key_file.read_text()
        except OSError as error:
            raise ConfigError(
                f"CARELEDGER_MASTER_KEY_FILE: cannot read {settings.master_key_file} "
                f"({error.strerror})"
            ) from None
        return decode_master_key(text, "CARELEDGER_MASTER_KEY_FILE")
    generated = _generated(
        settings.var_dir / "master.key",
        lambda: base64.b64encode(secrets.token_bytes(32)).decode(),
    )
    return decode_master_key(generated.decode(), "the generated var/master.key")


def decode_master_key(text: str, source: str) -> bytes:
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(f"{source}: must be base64 of a 32-byte key") from None
    if len(key) != 32:
        raise ConfigError(f"{source}: must be base64 of a 32-byte key (got {len(key)} bytes)")
    return key


def _generated(path: Path, make: Callable[[], str]) -> bytes:
    """Read a development secret, creating it with mode 0600 on first use."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(make())
    return path.read_bytes().strip()
