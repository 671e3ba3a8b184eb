"""Shared fixtures: a store per backend, a wired container, an ASGI client, tokens.

PostgreSQL tests create a database of their own per test session and drop it after.
Without a reachable server they are skipped with a visible notice, except under
CI=true, where a missing PostgreSQL is a failure.
"""

import contextlib
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.auth import mint_token
from api.bootstrap import build
from api.container import Container
from api.settings import Settings
from application.context import Role

PG_ADMIN_URL = os.environ.get("CARELEDGER_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
NATS_URL = os.environ.get("CARELEDGER_TEST_NATS", "nats://127.0.0.1:4222")
JWT_SECRET = "test-secret-" + "x" * 40
ORG = "org-main"
IN_CI = os.environ.get("CI", "").lower() == "true"


# The service connects as an application role that owns nothing; migrations run as the
# owner role. Both are cluster-wide and created once, idempotently.
OWNER_ROLE = "careledger_owner"
APP_ROLE = "careledger_app"


def role_url(url: str, role: str) -> str:
    """The same servers and database, connecting as ``role`` (trust auth)."""
    parts = urlsplit(url)
    hosts = parts.netloc.rpartition("@")[2] or "127.0.0.1"  # one host, or libpq's list
    return urlunsplit(parts._replace(netloc=f"{role}@{hosts}"))


def ensure_roles(admin_url: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        for role in (OWNER_ROLE, APP_ROLE):
            # It may exist from an earlier or a concurrent run.
            with contextlib.suppress(
                psycopg.errors.DuplicateObject, psycopg.errors.UniqueViolation
            ):
                conn.execute(f'CREATE ROLE "{role}" LOGIN')


def _pg_available() -> str | None:
    try:
        with psycopg.connect(PG_ADMIN_URL, connect_timeout=3):
            return None
    except psycopg.Error as error:
        return str(error).splitlines()[0]


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """The admin URL of a reachable PostgreSQL, or a skip (a failure under CI)."""
    problem = _pg_available()
    if problem is not None:
        message = f"PostgreSQL unreachable at {PG_ADMIN_URL}: {problem}"
        if IN_CI:
            pytest.fail(f"CI=true and {message}")
        pytest.skip(f"NOTICE: skipping PostgreSQL run - {message}")
    ensure_roles(PG_ADMIN_URL)
    yield PG_ADMIN_URL


@pytest.fixture(scope="session")
def nats_server() -> str:
    """The URL of a reachable NATS server with JetStream, or a skip (a failure under CI)."""
    parts = urlsplit(NATS_URL)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 4222), 3):
            pass
    except OSError as error:
        message = f"NATS unreachable at {NATS_URL}: {error}"
        if IN_CI:
            pytest.fail(f"CI=true and {message}")
        pytest.skip(f"NOTICE: skipping NATS run - {message}")
    return NATS_URL


def create_database(admin_url: str) -> str:
    """A new database owned by the owner role; its admin (superuser) URL."""
    name = f"careledger_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" OWNER "{OWNER_ROLE}"')
    return admin_url.rsplit("/", 1)[0] + "/" + name


def new_database(admin_url: str, reached: Callable[[str], str] | None = None) -> tuple[str, str]:
    """A new CareLedger database on ``admin_url``'s server: its admin URL, and the
    application role's URL, through ``reached(name)`` where the service reaches it by
    another address (a cluster's list of members, say)."""
    ensure_roles(admin_url)
    made = create_database(admin_url)
    name = urlsplit(made).path.lstrip("/")
    return made, role_url(reached(name) if reached else made, APP_ROLE)


def drop_database(admin_url: str, url: str) -> None:
    name = urlsplit(url).path.lstrip("/")
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty store on each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'careledger.db'}"
        return
    admin = request.getfixturevalue("postgres_server")
    url = create_database(admin)
    try:
        yield role_url(url, APP_ROLE)
    finally:
        drop_database(admin, url)


def owner_url_for(database_url: str) -> str | None:
    """The migration URL beside an application-role URL (None for SQLite)."""
    if not database_url.startswith("postgres"):
        return None
    return role_url(database_url, OWNER_ROLE)


def make_settings(database_url: str, var_dir: Path) -> Settings:
    return Settings(
        database_url=database_url,
        owner_database_url=owner_url_for(database_url),
        jwt_secret=JWT_SECRET,
        master_key="A" * 43 + "=",
        var_dir=var_dir,
        org=ORG,
    )


@pytest.fixture
def container(database_url: str, tmp_path: Path) -> Iterator[Container]:
    built = build(make_settings(database_url, tmp_path / "var"), run_processes=True)
    try:
        yield built
    finally:
        built.close()


@pytest.fixture
def client(container: Container) -> Iterator[TestClient]:
    with TestClient(create_app(container), raise_server_exceptions=False) as test_client:
        yield test_client


def token(
    role: str,
    sub: str = "actor-1",
    org: str = ORG,
    patient: uuid.UUID | str | None = None,
    ttl: int = 600,
    scope: str | None = None,
) -> str:
    """A token; ``scope`` adds SMART scopes, and ``patient`` on a staff role is its
    launch patient."""
    return mint_token(
        JWT_SECRET.encode(),
        role=Role(role),
        sub=sub,
        org=org,
        patient=uuid.UUID(str(patient)) if patient else None,
        ttl_seconds=ttl,
        now=int(time.time()),
        extra={"scope": scope} if scope is not None else None,
    )


class Auth(Mapping[str, str]):
    """An ``Authorization`` header whose token is minted each time it is read.

    Modules keep these as constants; a token minted at import would expire (600 s)
    before the last tests of a slow run use it.
    """

    def __init__(
        self, role: str, claims: dict[str, object], headers: dict[str, str] | None = None
    ) -> None:
        self.role = role
        self.claims = claims
        self.headers = headers or {}

    def with_headers(self, headers: dict[str, str]) -> "Auth":
        """The same actor with fixed headers beside the token (``{**auth}`` would freeze it)."""
        return Auth(self.role, self.claims, {**self.headers, **headers})

    def __getitem__(self, name: str) -> str:
        if name == "Authorization":
            return f"Bearer {token(self.role, **self.claims)}"  # type: ignore[arg-type]
        return self.headers[name]

    def __iter__(self) -> Iterator[str]:
        return iter(("Authorization", *self.headers))

    def __len__(self) -> int:
        return 1 + len(self.headers)


def auth(role: str, **claims: object) -> Auth:
    return Auth(role, claims)


REGISTER_BODY = {
    "mrn": "MRN-0001",
    "name": {"given": "Ada", "family": "Example"},
    "birth_date": "1984-07-12",
    "sex": "female",
    "contact": {"phone": "+1-555-0100"},
}

ENTRY_BODY = {
    "kind": "observation",
    "code": {"system": "http://loinc.org", "code": "8867-4", "display": "Heart rate"},
    "value": {"quantity": 72, "unit": "/min"},
    "effective_at": "2026-11-20T09:30:00Z",
}
