"""A routed organisation's store that cannot be opened is named by its entry in
CARELEDGER_ORG_DATABASES from the first (``api.bootstrap.StoreLabel``), on every path
that opens one: never by the one-store settings a routed process does not read, and
never with a password."""

from pathlib import Path

import pytest

from api.organisations import build_organisations
from api.serving import serve_organisations
from api.settings import ConfigError
from tests.e2e.server import free_port
from tests.security.test_org_databases import routed_settings
from tests.security.two_orgs import ORG_MAIN, ORG_OTHER


def test_an_organisation_owner_store_that_cannot_be_opened_is_named_by_its_entry(
    tmp_path: Path,
) -> None:
    # Given org-other's database, and its owner URL, on a port where nothing listens
    dead = f"127.0.0.1:{free_port()}/care"
    stores = {
        ORG_MAIN: {"url": f"sqlite:///{tmp_path / 'main.db'}"},
        ORG_OTHER: {
            "url": f"postgresql://u@{dead}",
            "owner_url": f"postgresql://own:s3cret-pw@{dead}",
        },
    }
    with pytest.raises(ConfigError) as refused:
        build_organisations(routed_settings(stores, tmp_path / "var"), create=True)
    told = str(refused.value)
    # Then the migration's failure names that entry's owner URL, once
    assert told.startswith(f"CARELEDGER_ORG_DATABASES[{ORG_OTHER}].owner_url: cannot open"), told
    assert told.count("CARELEDGER_ORG_DATABASES") == 1, told
    assert "CARELEDGER_OWNER_DATABASE_URL" not in told and "s3cret-pw" not in told


def test_serve_with_workers_names_a_missing_organisation_store_by_its_entry(
    tmp_path: Path,
) -> None:
    # Given an organisation whose SQLite store is not there, served by several workers
    stores = {org: {"url": f"sqlite:///{tmp_path / f'{org}.db'}"} for org in (ORG_MAIN, ORG_OTHER)}
    with pytest.raises(ConfigError) as refused:
        serve_organisations(
            routed_settings(stores, tmp_path / "var"), 2, with_projections=False, create=False
        )
    # Then the start-up check names its entry, not CARELEDGER_DATABASE_URL
    told = str(refused.value)
    assert told.startswith(f"CARELEDGER_ORG_DATABASES[{ORG_MAIN}]: no store at"), told
    assert "CARELEDGER_DATABASE_URL" not in told
