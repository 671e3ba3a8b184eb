"""Turn a database URL into the ``eventsourcing`` environment that selects a store.

A PostgreSQL URL may list several hosts, as libpq does
(``postgresql://user@h1:5501,h2:5502/db?target_session_attrs=read-write``): every
connection then tries them in turn and keeps the first that suits, which is how the
service finds the primary of a Patroni cluster after a failover (docs/operations.md).
"""

from collections.abc import Mapping
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import psycopg
from eventsourcing.utils import get_topic

from infrastructure.postgres_factory import TARGET_SESSION_ATTRS, LedgerPostgresFactory
from infrastructure.postgres_recorder import PostgresLedgerRecorder
from infrastructure.sealing import SealingMapper
from infrastructure.sqlite_recorder import SQLiteLedgerRecorder

_SEALED = {"MAPPER_TOPIC": get_topic(SealingMapper)}


class StoreConfigError(ValueError):
    """The database URL cannot be used. The message never includes a password."""


def redact(url: str) -> str:
    """The URL with any password replaced, for messages and logs. Read by position, not
    by ``urlsplit``: an unencoded ``/``, ``#`` or ``?`` in a password hides it from
    ``urlsplit``, which would then hand the URL back whole. Everything from the first
    ``:`` after the scheme to the last ``@`` is taken as the password."""
    scheme, separator, rest = url.partition("://")
    if not separator or "@" not in rest:
        return url
    userinfo, _, after = rest.rpartition("@")
    user, colon, _password = userinfo.partition(":")
    return f"{scheme}://{user}{':***' if colon else ''}@{after}"


def environment_for(url: str) -> dict[str, str]:
    """The library environment for ``sqlite:///path`` or ``postgresql://...``."""
    scheme = url.split(":", 1)[0].lower()
    if scheme == "sqlite":
        return _sqlite(url)
    if scheme in ("postgresql", "postgres"):
        return _postgres(url)
    raise StoreConfigError(
        f"unsupported scheme {scheme!r}: use sqlite:///path/to.db or postgresql://user@host/db"
    )


def database_identity(url: str) -> tuple[str, ...]:
    """Which database a URL names, whatever its spelling (a relative SQLite path, a
    default port written out, another user): for telling two URLs of one database
    apart from two databases. Opens and creates nothing."""
    if url.lower().startswith("sqlite:"):
        path = url[len("sqlite:///") :]
        return ("sqlite", path if path == ":memory:" else str(Path(path).resolve()))
    env = _postgres(url)
    return ("postgresql", env["POSTGRES_HOST"], env["POSTGRES_PORT"], env["POSTGRES_DBNAME"])


def _sqlite(url: str) -> dict[str, str]:
    path = url[len("sqlite:///") :] if url.startswith("sqlite:///") else ""
    if not path:
        raise StoreConfigError("a sqlite URL needs a file path, e.g. sqlite:///./var/careledger.db")
    if path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    return {
        "PERSISTENCE_MODULE": "eventsourcing.sqlite",
        "SQLITE_DBNAME": path,
        "SQLITE_LOCK_TIMEOUT": "10",
        "PROCESS_RECORDER_TOPIC": get_topic(SQLiteLedgerRecorder),
        **_SEALED,
    }


# libpq's values for target_session_attrs (PostgreSQL 14 and later).
SESSION_ATTRS = ("any", "read-write", "read-only", "primary", "standby", "prefer-standby")


def _hosts(hostlist: str) -> tuple[str, str]:
    """libpq's comma-separated ``host`` and ``port`` lists from the URL's host part."""
    hosts, ports = [], []
    for item in hostlist.split(","):
        if item.startswith("["):  # an IPv6 address
            host, _, rest = item[1:].partition("]")
            port = rest.removeprefix(":")
        else:
            host, _, port = item.partition(":")
        if port and not port.isdigit():
            raise StoreConfigError("the URL has a port that is not a number")
        hosts.append(unquote(host) or "127.0.0.1")
        ports.append(port or "5432")
    return ",".join(hosts), ",".join(ports)


def _postgres(url: str) -> dict[str, str]:
    userinfo = url.partition("://")[2].rpartition("@")[0]
    if any(c in userinfo for c in "/?#"):
        # urlsplit would cut the URL inside the password, and read the rest as a path.
        raise StoreConfigError(
            "a / ? # or @ in the user name or password must be percent-encoded (%2F %3F %23 %40)"
        )
    parts = urlsplit(url)
    dbname = unquote(parts.path.lstrip("/"))
    if not dbname:
        raise StoreConfigError("the URL names no database")
    options = {key: values[-1] for key, values in parse_qs(parts.query).items()}
    # Not parts.hostname or parts.port: they cannot read a list of hosts.
    userinfo, _, hostlist = parts.netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    host, port = _hosts(hostlist)
    extra = {}
    attrs = options.get("target_session_attrs")
    if attrs is not None:
        if attrs not in SESSION_ATTRS:
            raise StoreConfigError(
                f"target_session_attrs must be one of {', '.join(SESSION_ATTRS)}"
            )
        extra[TARGET_SESSION_ATTRS] = attrs
    return {
        "PERSISTENCE_MODULE": get_topic(LedgerPostgresFactory),
        "POSTGRES_DBNAME": dbname,
        "POSTGRES_HOST": host,
        "POSTGRES_PORT": port,
        "POSTGRES_USER": unquote(user or "postgres"),
        "POSTGRES_PASSWORD": unquote(password),
        **extra,
        "POSTGRES_SCHEMA": options.get("schema", ""),
        "POSTGRES_POOL_SIZE": options.get("pool_size", "10"),
        "POSTGRES_MAX_OVERFLOW": options.get("max_overflow", "10"),
        "POSTGRES_CONNECT_TIMEOUT": options.get("connect_timeout", "5"),
        "POSTGRES_LOCK_TIMEOUT": "5",
        "POSTGRES_PRE_PING": "y",
        # Never POSTGRES_ENABLE_DB_FUNCTIONS: it lets readers skip events when several
        # writers are active.
        "PROCESS_RECORDER_TOPIC": get_topic(PostgresLedgerRecorder),
        **_SEALED,
    }


def conninfo(env: Mapping[str, str]) -> str:
    """The libpq connection string of a PostgreSQL environment (every host, and the
    session attributes), for connections made outside the library's pool."""
    return psycopg.conninfo.make_conninfo(
        host=env["POSTGRES_HOST"],
        port=env["POSTGRES_PORT"],
        dbname=env["POSTGRES_DBNAME"],
        user=env["POSTGRES_USER"],
        password=env["POSTGRES_PASSWORD"] or None,
        connect_timeout=env["POSTGRES_CONNECT_TIMEOUT"],
        target_session_attrs=env.get(TARGET_SESSION_ATTRS),
    )
