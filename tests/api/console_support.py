"""Signing in to the web console from a TestClient, as `careledger token --login` does."""

import time
import uuid
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.console.sessions import login_code
from application.context import Role
from tests.conftest import JWT_SECRET, ORG


def code_for(role: str, sub: str = "actor-1", org: str = ORG, patient: Any = None) -> str:
    return login_code(
        JWT_SECRET.encode(),
        role=Role(role),
        sub=sub,
        org=org,
        patient=uuid.UUID(str(patient)) if patient else None,
        now=int(time.time()),
    )


def browser(app: FastAPI) -> TestClient:
    """A client over HTTPS (the session cookie is Secure), following no redirect."""
    return TestClient(
        app, base_url="https://testserver", follow_redirects=False, raise_server_exceptions=False
    )


def signed_in(app: FastAPI, role: str, **claims: Any) -> TestClient:
    """A browser with a console session for the actor (claims: sub, org, patient)."""
    client = browser(app)
    answer = client.get("/console/login", params={"code": code_for(role, **claims)})
    assert answer.status_code == 303, answer.text
    return client


def csrf_of(html: str) -> str:
    marker = 'name="csrf" value="'
    start = html.index(marker) + len(marker)
    return html[start : html.index('"', start)]
