"""Issue 23, high availability: the database URL may list several hosts, as libpq does,
with ``target_session_attrs``; every connection the service makes (the pool, the
LISTEN connection, the owner's migrations) then tries them in turn and keeps the first
that is the primary. A password never appears in a message, whatever the URL."""

from urllib.parse import urlsplit

import psycopg
import pytest
from eventsourcing.persistence import InfrastructureFactory

from infrastructure.postgres_factory import LedgerPostgresFactory
from infrastructure.stores import StoreConfigError, conninfo, environment_for, redact
from tests.e2e.server import free_port

CLUSTER = (
    "postgresql://careledger@127.0.0.1:5501,127.0.0.1:5502,127.0.0.1:5503/careledger"
    "?target_session_attrs=read-write&connect_timeout=1"
)


def test_a_url_with_three_hosts_lists_each_host_and_port_for_libpq() -> None:
    env = environment_for(CLUSTER)
    assert env["POSTGRES_HOST"] == "127.0.0.1,127.0.0.1,127.0.0.1"
    assert env["POSTGRES_PORT"] == "5501,5502,5503"
    assert env["POSTGRES_DBNAME"] == "careledger"
    assert env["POSTGRES_USER"] == "careledger"
    assert env["POSTGRES_CONNECT_TIMEOUT"] == "1"
    # And the connection string made outside the pool carries all of it
    params = psycopg.conninfo.conninfo_to_dict(conninfo(env))
    assert params["host"] == "127.0.0.1,127.0.0.1,127.0.0.1"
    assert params["port"] == "5501,5502,5503"
    assert params["target_session_attrs"] == "read-write"
    assert params["connect_timeout"] == "1"


def test_the_pool_connects_with_the_session_attributes_and_a_connect_timeout() -> None:
    factory = InfrastructureFactory.construct(environment_for(CLUSTER))
    assert isinstance(factory, LedgerPostgresFactory)
    try:
        kwargs = factory.datastore.pool.kwargs
        assert kwargs["target_session_attrs"] == "read-write"
        assert kwargs["connect_timeout"] == "1"
        assert kwargs["host"] == "127.0.0.1,127.0.0.1,127.0.0.1"
    finally:
        factory.close()


def test_one_host_reads_as_before() -> None:
    env = environment_for("postgresql://app:s3cret@db.internal/careledger")
    assert (env["POSTGRES_HOST"], env["POSTGRES_PORT"]) == ("db.internal", "5432")
    assert (env["POSTGRES_USER"], env["POSTGRES_PASSWORD"]) == ("app", "s3cret")
    assert "target_session_attrs" not in conninfo(env)
    env = environment_for("postgresql://[::1]:6432,db.internal/careledger")
    assert (env["POSTGRES_HOST"], env["POSTGRES_PORT"]) == ("::1,db.internal", "6432,5432")
    assert env["POSTGRES_USER"] == "postgres"


def test_a_password_in_a_url_with_several_hosts_is_never_shown() -> None:
    url = "postgresql://app:s3cret@10.0.0.1:5432,10.0.0.2:5432/careledger"
    assert redact(url) == "postgresql://app:***@10.0.0.1:5432,10.0.0.2:5432/careledger"
    for bad in (
        url.replace(":5432,", ":port,"),
        url + "?target_session_attrs=primary-please",
    ):
        with pytest.raises(StoreConfigError) as refused:
            environment_for(bad)
        assert "s3cret" not in str(refused.value) and "10.0.0.1" not in str(refused.value)


@pytest.mark.parametrize("character", ["/", "?", "#", "@"])
def test_a_password_with_a_character_that_urls_reserve_is_never_shown(character: str) -> None:
    # Unencoded, such a character hides the password from urlsplit, which once let the
    # error messages print the URL whole
    password = f"pa{character}ss-s3cret"
    url = f"postgresql://app:{password}@10.0.0.1:5432,10.0.0.2:5433/careledger"
    assert redact(url) == "postgresql://app:***@10.0.0.1:5432,10.0.0.2:5433/careledger"
    for bad in (url, url.replace(":5433", ":port"), url.removesuffix("/careledger")):
        try:
            environment_for(bad)
        except StoreConfigError as refused:
            assert "s3cret" not in str(refused), refused
        else:
            assert character == "@", "only an @ leaves the URL readable"


@pytest.mark.postgres
def test_a_host_that_is_down_is_passed_over_for_the_next(postgres_server: str) -> None:
    # Given a URL whose first host refuses connections (nothing listens there)
    up = urlsplit(postgres_server)
    url = (
        f"postgresql://{up.username}@127.0.0.1:{free_port()},{up.hostname}:{up.port or 5432}"
        f"{up.path}?target_session_attrs=read-write&connect_timeout=1"
    )
    env = environment_for(url)
    # When the library's pool and a plain connection connect
    factory = InfrastructureFactory.construct(env)
    try:
        with factory.datastore.get_connection() as conn:
            pooled = conn.execute("SELECT inet_server_port() AS port").fetchone()
    finally:
        factory.close()
    with psycopg.connect(conninfo(env)) as conn:
        plain = conn.execute("SELECT inet_server_port()").fetchone()
    # Then both reach the server that is up, and it is a primary
    assert pooled is not None and pooled["port"] == (up.port or 5432)
    assert plain == (up.port or 5432,)
