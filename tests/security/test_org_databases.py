"""Two organisations, two databases, one process (``CARELEDGER_ORG_DATABASES``).

org-main and org-other are served by one application, each from a database of its own:
its own log, hash chain, keys and views. The same two-organisation world as the
single-store matrix is populated through the router, then every actor of org-other
walks the whole cross-organisation matrix against org-main's ids. Each answer is what
the single-store matrix demands (403 or 404, as for an unknown id, nothing of ours in
it). What differs is where an attempt is recorded: an outsider's token routes it to
the outsider's own database, where org-main's ids are unknown ids, so org-main's log
holds no record of it at all (docs/scale-out.md). Opened directly afterwards, each
database holds its own organisation's events and none of the other's.
"""

import base64
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import psycopg
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.bootstrap import build, open_ledger
from api.organisations import build_organisations, settings_for
from api.settings import ConfigError, Settings, load_settings
from tests.api.console_support import signed_in
from tests.conftest import (
    APP_ROLE,
    JWT_SECRET,
    OWNER_ROLE,
    auth,
    create_database,
    drop_database,
    make_settings,
    role_url,
)
from tests.e2e.server import free_port
from tests.security.test_cross_organisation import (
    ACTORS,
    MATRIX,
    NEIGHBOUR,
    Ids,
    Row,
    actor_of,
    attempt,
    judge,
    same_answer,
    token,
)
from tests.security.test_cross_organisation_console import (
    test_foreign_and_non_auditor_sessions_get_nothing_of_ours as test_routed_auditor_console,
)
from tests.security.test_cross_organisation_console_clinician import (
    test_foreign_clinicians_and_other_roles_get_nothing_of_our_charts as test_routed_clinician_console,
)
from tests.security.test_cross_organisation_console_patient import (
    test_no_one_but_the_patient_gets_anything_of_their_pages as test_routed_patient_console,
)
from tests.security.test_cross_organisation_fhir import FHIR_MATRIX
from tests.security.test_cross_organisation_fhir import judge as fhir_judge
from tests.security.test_cross_organisation_fhir import same_answer as fhir_same_answer
from tests.security.two_orgs import (
    CLINICIAN_SUB,
    ORG_MAIN,
    ORG_OTHER,
    World,
    build_world,
    directive_body,
    settled,
)

# The console's matrices, each run here again on the routed world: a console session is
# routed by its signed-in actor's organisation, as a bearer token is.
__all__ = [
    "test_routed_auditor_console",
    "test_routed_clinician_console",
    "test_routed_patient_console",
]

MASTER_KEY = "A" * 43 + "="


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def databases(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """Two empty stores: {org: {"url", "owner_url"?, "raw"}} (``raw``: a superuser's
    connection, or the SQLite file, to read the tables behind the service's back)."""
    if request.param == "sqlite":
        yield {
            org: {"url": f"sqlite:///{tmp_path / f'{org}.db'}", "raw": tmp_path / f"{org}.db"}
            for org in (ORG_MAIN, ORG_OTHER)
        }
        return
    admin = request.getfixturevalue("postgres_server")
    made = {org: create_database(admin) for org in (ORG_MAIN, ORG_OTHER)}
    try:
        yield {
            org: {"url": role_url(u, APP_ROLE), "owner_url": role_url(u, OWNER_ROLE), "raw": u}
            for org, u in made.items()
        }
    finally:
        for url in made.values():
            drop_database(admin, url)


def routed_settings(databases: dict[str, Any], var_dir: Path) -> Settings:
    return Settings(
        org_databases={
            org: {k: v for k, v in found.items() if k != "raw"} for org, found in databases.items()
        },
        jwt_secret=JWT_SECRET,
        master_key=MASTER_KEY,
        var_dir=var_dir,
    )


@pytest.fixture
def world(databases: dict[str, Any], tmp_path: Path) -> Iterator[World]:
    organisations = build_organisations(
        routed_settings(databases, tmp_path / "var"), run_processes=True, create=True
    )
    with TestClient(create_app(organisations), raise_server_exceptions=False) as client:
        yield build_world(client)


Judge = Callable[[World, str, Row, httpx.Response], list[str]]
Same = Callable[[httpx.Response, httpx.Response], list[str]]
MATRICES: dict[str, tuple[dict[str, Row], Judge, Same]] = {
    "v1": (MATRIX, judge, same_answer),
    "fhir": (FHIR_MATRIX, fhir_judge, fhir_same_answer),
}


# On SQLite: the routing is the same code whatever the store; PostgreSQL's two
# databases are walked by the tests below and by tests/e2e/test_org_databases_e2e.py.
@pytest.mark.parametrize("databases", ["sqlite"], indirect=True)
@pytest.mark.parametrize("matrix", MATRICES)
@pytest.mark.parametrize("actor", ACTORS)
def test_another_organisation_gets_nothing_of_ours_from_its_own_database(
    world: World, actor: str, matrix: str
) -> None:
    client, auth_header = world.client, token(world, actor)
    rows, judged, compared = MATRICES[matrix]
    deviations: list[str] = []
    n = 0
    for key, row in rows.items():
        for call, stranger in zip(
            row.probes(world, Ids.ours(world)), row.probes(world, Ids.unknown()), strict=True
        ):
            n += 1
            request_id = f"routed-{matrix}-{ACTORS.index(actor)}-{n}"
            response = attempt(client, call, auth_header, request_id)
            problems = judged(world, actor, row, response)
            if row.compare_unknown:
                unknown = attempt(client, stranger, auth_header, f"{request_id}-unknown")
                problems += compared(response, unknown)
            deviations += [f"{key}: {call.method} {call.path}: {p}" for p in problems]
    assert not deviations, "\n" + "\n".join(deviations)
    # Our log: an outsider's attempts never reached it; our own patient's did, as in
    # one shared store (a denial our auditor sees)
    who = actor_of(auth_header)
    ours = [r for r in world.records() if r["actor"]["org"] == who["org"]]
    if actor == NEIGHBOUR:
        assert any(r["decision"] == "deny" and r["actor"]["id"] == who["id"] for r in ours), (
            "the attempt of another patient of ours left no denial in our log"
        )
    else:
        assert ours == [], f"records of {who} in org-main's log: {ours[:2]}"
    # And our chart stands as it was
    timeline = client.get(
        f"/v1/patients/{world.main.patient_id}/timeline",
        params=settled(client, world.main.clinician),
        headers=world.main.clinician,
    )
    assert timeline.status_code == 200, timeline.text
    assert world.main.displays["plain"] in timeline.text
    assert "Planted by outsider" not in timeline.text and "tampered" not in timeline.text


def originator_ids(raw: Path | str) -> set[str]:
    """The stream ids in a store's events table, read with the database's own client."""
    if isinstance(raw, Path):
        with sqlite3.connect(raw) as conn:
            rows = conn.execute("SELECT originator_id FROM stored_events").fetchall()
    else:
        with psycopg.connect(raw) as conn:
            rows = conn.execute("SELECT originator_id FROM careledger_events").fetchall()
    return {str(UUID(str(row[0]))) for row in rows}  # SQLite keeps them as bare hex


def strings_in(value: Any, depth: int = 0) -> Iterator[str]:
    """Every string in a decoded event, its nested values included."""
    if depth > 6:
        return
    if isinstance(value, str):
        yield value
    elif isinstance(value, UUID):
        yield str(value)
    elif isinstance(value, dict):
        for item in value.values():
            yield from strings_in(item, depth + 1)
    elif isinstance(value, list | tuple | set | frozenset):
        for item in value:
            yield from strings_in(item, depth + 1)
    elif hasattr(value, "__dict__"):
        yield from strings_in(vars(value), depth + 1)


def decoded_strings(settings: Settings, org: str) -> set[str]:
    """Every string of every event in an organisation's store, decrypted with a ledger
    opened afresh on that store alone."""
    ledger, _ = open_ledger(settings_for(settings, org), base64.b64decode(MASTER_KEY))
    try:
        found: set[str] = set()
        for notification in ledger.recorder.select_notifications(start=1, limit=1_000_000):
            found |= set(strings_in(ledger.mapper.to_domain_event(notification)))
        return found
    finally:
        ledger.close()


def test_each_database_holds_only_its_own_organisation(
    world: World, databases: dict[str, Any], tmp_path: Path
) -> None:
    client, main, other = world.client, world.main, world.other
    # org-other's staff read, write and audit around org-main's chart, through the router
    for staff in (other.clinician, other.admin, other.auditor):
        for path in ("", "/timeline", "/consents"):
            answer = client.get(f"/v1/patients/{main.patient_id}{path}", headers=staff)
            assert answer.status_code in (403, 404), answer.text
    theirs = world.records(other.auditor)
    assert main.patient_id not in {r.get("patient_id") for r in theirs if r["decision"] == "allow"}
    assert all(r["actor"]["org"] == ORG_OTHER for r in theirs), theirs[:2]
    # Each store's events name its own organisation's streams, and never the other's
    ids = {org: originator_ids(found["raw"]) for org, found in databases.items()}
    assert {main.patient_id, main.membership_id, main.subscriber_id} <= ids[ORG_MAIN]
    assert {other.patient_id, other.membership_id, other.subscriber_id} <= ids[ORG_OTHER]
    own = {ORG_MAIN: main, ORG_OTHER: other}
    for org, stranger in ((ORG_MAIN, other), (ORG_OTHER, main)):
        assert not ids[org] & {stranger.patient_id, stranger.subscriber_id, *stranger.secret_ids()}
        # Decrypted, nothing of the other organisation: no PHI, no identity, no id
        strings = decoded_strings(routed_settings(databases, tmp_path / "var"), org)
        assert own[org].family in strings and own[org].mrn in strings
        leaked = [s for s in strings if any(p in s for p in stranger.phi())]
        assert leaked == [], (org, leaked[:3])
        assert stranger.id not in strings, f"{org}'s store names {stranger.id}"
        # The two logs are numbered and chained apart: each verifies on its own
        verified = client.get("/v1/audit/verify", headers=own[org].auditor)
        assert verified.status_code == 200 and verified.json()["ok"] is True, verified.text


def test_a_token_of_an_organisation_without_a_database_is_refused(world: World) -> None:
    """A valid token of an organisation served nowhere here: 403, naming nothing."""
    stranger = auth("clinician", sub="dr-grey", org="org-elsewhere")
    for method, path in (
        ("GET", f"/v1/patients/{world.main.patient_id}/timeline"),
        ("GET", "/v1/patients"),
        ("POST", "/v1/patients"),
        ("GET", "/readyz"),
        ("GET", "/fhir/Patient"),
    ):
        answer = world.client.request(method, path, headers=stranger, json={})
        assert answer.status_code == 403, (path, answer.text)
        # A refusal before the route is reached (a purpose their role may not assert)
        # would be recorded in their database: there is none, so it is this same 403
        marketing = world.client.request(
            method, path, headers={**stranger, "X-Purpose-Of-Use": "HMARKT"}, json={}
        )
        assert marketing.status_code == 403, (path, marketing.text)
        assert marketing.text == answer.text, marketing.text
        assert ORG_MAIN not in answer.text and ORG_OTHER not in answer.text
        assert "sqlite" not in answer.text and "postgres" not in answer.text
    # Unauthenticated operations still answer, for every store at once
    assert world.client.get("/readyz").json() == {"status": "ok"}
    assert world.client.get("/healthz").status_code == 200
    metrics = world.client.get("/metrics")
    assert metrics.status_code == 200 and "careledger_projection_lag_events" in metrics.text


def test_a_console_session_of_an_organisation_without_a_database_gets_a_page(
    world: World,
) -> None:
    # A clinician of an organisation served nowhere opens the auditor's pages: refused
    # as a console page (HTML), never a JSON error or a 500, naming no organisation
    browser = signed_in(world.client.app, "clinician", sub="dr-grey", org="org-elsewhere")
    for path in ("/console/audit/accesses", "/console/audit/integrity", "/console/me/consents"):
        answer = browser.get(path)
        assert answer.status_code == 403, (path, answer.status_code)
        assert answer.headers["content-type"].startswith("text/html"), (path, answer.text)
        assert ORG_MAIN not in answer.text and ORG_OTHER not in answer.text


def test_readiness_without_a_token_fails_when_any_one_store_does(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given one organisation's store unreachable (its recorder raises)
    store = world.client.app.state.organisations.containers[ORG_OTHER].ledger.recorder

    def unreachable() -> int:
        raise OSError("connection refused")

    monkeypatch.setattr(store, "max_notification_id", unreachable)
    # Then /readyz without a token is 503 for the whole service, naming no organisation
    answer = world.client.get("/readyz")
    assert answer.status_code == 503 and answer.json() == {"status": "unavailable"}
    # While the other organisation's own readiness, with its token, is fine
    assert world.client.get("/readyz", headers=world.main.clinician).status_code == 200


@pytest.mark.parametrize("databases", ["sqlite"], indirect=True)
def test_a_directive_naming_staff_of_another_database_admits_nobody(
    world: World, tmp_path: Path
) -> None:
    """A consent directive cannot cross databases. Our patient grants org-other's
    dr-grey treatment access: in one shared store that admits them; routed, their
    token reaches their own database, where our patient is an unknown id (404)."""
    grant = directive_body(f"practitioner:{ORG_OTHER}/{CLINICIAN_SUB}", ["TREAT"])

    def their_read(world: World) -> httpx.Response:
        client, main = world.client, world.main
        granted = client.post(
            f"/v1/patients/{main.patient_id}/consents", json=grant, headers=main.patient
        )
        assert granted.status_code == 201, granted.text
        seen = settled(client, world.other.clinician)
        return client.get(
            f"/v1/patients/{main.patient_id}/timeline", params=seen, headers=world.other.clinician
        )

    # The control: one store holding both organisations
    store = f"sqlite:///{tmp_path / 'shared.db'}"
    shared = build(make_settings(store, tmp_path / "shared"), run_processes=True)
    with TestClient(create_app(shared), raise_server_exceptions=False) as client:
        admitted = their_read(build_world(client))
    assert admitted.status_code == 200, admitted.text
    # Routed: the same directive, recorded in our database, admits nobody from theirs
    refused = their_read(world)
    assert refused.status_code == 404, refused.text
    assert world.main.displays["plain"] not in refused.text
    directives = world.client.get(
        f"/v1/patients/{world.main.patient_id}/consents",
        params=settled(world.client, world.main.patient),
        headers=world.main.patient,
    ).json()["directives"]
    assert [d["grantee"] for d in directives if d["status"] == "active"][-1].endswith(
        f"{ORG_OTHER}/{CLINICIAN_SUB}"
    )


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ("{not json", "must be a JSON object"),
        ("{}", "at least one organisation"),
        ('{"org-a": "mysql://u:s3cret-pw@db/x"}', "org-a: must be sqlite:///"),
        ('{"org a": "sqlite:///a.db"}', "is not an organisation id"),
        ('{"org-a": {"url": "sqlite:///a.db", "extra": 1}}', "org-a: must be a store URL"),
        ('{"a": "sqlite:///x.db", "b": "sqlite:///x.db"}', "name the same database"),
        # The same database spelt twice, and an owner URL that would migrate (and grant
        # on) another organisation's database
        ('{"a": "sqlite:///x.db", "b": "sqlite:///./x.db"}', "name the same database"),
        (
            '{"a": "postgresql://u@db/care", "b": "postgresql://v:s3cret-pw@db:5432/care"}',
            "name the same database",
        ),
        (
            '{"a": "postgresql://u@db/care", "b": {"url": "postgresql://u2@db/care2", '
            '"owner_url": "postgresql://own:s3cret-pw@db/care"}}',
            "b: owner_url must name the same database as url",
        ),
        ('{"a": "postgresql://u:s3cret-pw@db:port/care"}', "a: the URL has a port"),
    ],
)
def test_a_wrong_routing_table_is_a_clear_error_that_quotes_no_url(
    monkeypatch: pytest.MonkeyPatch, given: str, message: str
) -> None:
    monkeypatch.setenv("CARELEDGER_ORG_DATABASES", given)
    with pytest.raises(ConfigError) as error:
        load_settings()
    assert "CARELEDGER_ORG_DATABASES" in str(error.value) and message in str(error.value)
    assert "s3cret-pw" not in str(error.value)


def test_an_organisation_store_that_cannot_be_opened_is_named_by_its_organisation(
    tmp_path: Path,
) -> None:
    # Given org-other's database on a port where nothing listens
    stores = {
        ORG_MAIN: {"url": f"sqlite:///{tmp_path / 'main.db'}"},
        ORG_OTHER: {"url": f"postgresql://u:s3cret-pw@127.0.0.1:{free_port()}/care"},
    }
    # Then start-up names that organisation's entry, not a setting it never reads, and
    # no password
    with pytest.raises(ConfigError) as refused:
        build_organisations(routed_settings(stores, tmp_path / "var"), create=True)
    told = str(refused.value)
    assert told.startswith(f"CARELEDGER_ORG_DATABASES[{ORG_OTHER}]: cannot open"), told
    assert "CARELEDGER_DATABASE_URL" not in told and "s3cret-pw" not in told


def test_single_database_commands_refuse_a_routing_table(tmp_path: Path) -> None:
    """``careledger audit verify`` and the other store commands act on one database:
    with the routing table set they say how to name it, rather than guess. A worker
    (``--org``) opens only the organisations it is given."""
    from api.bootstrap import require_store

    stores = {org: {"url": f"sqlite:///{tmp_path / f'{org}.db'}"} for org in (ORG_MAIN, ORG_OTHER)}
    settings = routed_settings(stores, tmp_path / "var")
    with pytest.raises(ConfigError, match="CARELEDGER_DATABASE_URL set to that organisation"):
        require_store(settings)
    with pytest.raises(ConfigError, match=r"CARELEDGER_ORG_DATABASES\[org-main\]: .*no store"):
        build_organisations(settings)
    with pytest.raises(ConfigError, match="--org org-nowhere: not in CARELEDGER_ORG_DATABASES"):
        build_organisations(settings, only=["org-nowhere"])
    one = build_organisations(settings, run_processes=True, only=[ORG_OTHER], create=True)
    try:
        assert list(one.containers) == [ORG_OTHER]
        assert not (tmp_path / f"{ORG_MAIN}.db").exists(), "a store outside --org was opened"
    finally:
        one.close()
