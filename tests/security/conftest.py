"""Fixtures of the security suite: the schema-per-test PostgreSQL store of the API
stories (fast), and a store holding two organisations (``two_orgs``)."""

import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import api_postgres_database, database_url
from tests.security.two_orgs import World, build_world

__all__ = ["api_postgres_database", "database_url", "world"]


@pytest.fixture
def world(client: TestClient) -> World:
    """org-main and org-other, each fully populated, in one fresh store."""
    return build_world(client)
