"""A faster PostgreSQL store for the API stories: one database, a fresh schema per test.

The shared ``database_url`` fixture creates and drops a whole database per test, which
costs more than most API stories themselves. Here each PostgreSQL test still gets an
empty store of its own, but as a new schema (``?schema=``) in one database per session.
"""

import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.conftest import APP_ROLE, OWNER_ROLE, create_database, drop_database, role_url


@pytest.fixture(scope="session")
def api_postgres_database(postgres_server: str) -> Iterator[str]:
    url = create_database(postgres_server)
    try:
        yield url
    finally:
        drop_database(postgres_server, url)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty store on each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'careledger.db'}"
        return
    database = request.getfixturevalue("api_postgres_database")
    schema = f"t_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(database, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}" AUTHORIZATION "{OWNER_ROLE}"')
    try:
        yield f"{role_url(database, APP_ROLE)}?schema={schema}"
    finally:
        with psycopg.connect(database, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
