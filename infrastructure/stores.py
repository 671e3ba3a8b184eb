"""Turn a database URL into the ``eventsourcing`` environment that selects a store."""

from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from eventsourcing.utils import get_topic

from infrastructure.postgres_recorder import PostgresLedgerRecorder
from infrastructure.sealing import SealingMapper
from infrastructure.sqlite_recorder import SQLiteLedgerRecorder

_SEALED = {"MAPPER_TOPIC": get_topic(SealingMapper)}


class StoreConfigError(ValueError):
    """The database URL cannot be used. The message never includes a password."""


def redact(url: str) -> str:
    """The URL with any password replaced, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return parts._replace(netloc=netloc).geturl()


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


def _postgres(url: str) -> dict[str, str]:
    parts = urlsplit(url)
    dbname = unquote(parts.path.lstrip("/"))
    if not dbname:
        raise StoreConfigError(f"{redact(url)} names no database")
    options = {key: values[-1] for key, values in parse_qs(parts.query).items()}
    return {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": dbname,
        "POSTGRES_HOST": parts.hostname or "127.0.0.1",
        "POSTGRES_PORT": str(parts.port or 5432),
        "POSTGRES_USER": unquote(parts.username or "postgres"),
        "POSTGRES_PASSWORD": unquote(parts.password or ""),
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
