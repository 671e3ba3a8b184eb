"""Throwaway stores for the benchmarks: a PostgreSQL database or a SQLite file each,
removed afterwards, opened with settings of their own.
"""

import base64
import os
import secrets
import sqlite3
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
from eventsourcing.sqlite import SQLiteApplicationRecorder
from psycopg.sql import SQL, Identifier

from api.container import Container
from api.settings import Settings
from application.ledger.ledger import CareLedger
from bench.support.charts import (
    ORG,
)
from infrastructure.projections.engine import Projector

PG_ADMIN_URL = os.environ.get(
    "CARELEDGER_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres"
)
DB_PREFIX = "careledger_bench_"


@contextmanager
def bench_database() -> Iterator[str]:
    """A new, empty database on the server, dropped afterwards (whatever happens)."""
    name = f"{DB_PREFIX}{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(SQL("CREATE DATABASE {0}").format(Identifier(name)))
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(SQL("DROP DATABASE IF EXISTS {0} WITH (FORCE)").format(Identifier(name)))


@contextmanager
def bench_store(backend: str) -> Iterator[str]:
    """A new, empty store on ``backend``: a throwaway PostgreSQL database, or a SQLite
    file in a temporary directory. Either is removed afterwards."""
    if backend == "postgres":
        with bench_database() as url:
            yield url
        return
    with tempfile.TemporaryDirectory(prefix="cl-bench-sqlite-") as tmp:
        yield f"sqlite:///{Path(tmp) / 'careledger.db'}"


def bench_settings(url: str, var_dir: Path) -> Settings:
    return Settings(
        database_url=url,
        master_key=base64.b64encode(secrets.token_bytes(32)).decode(),
        jwt_secret=secrets.token_urlsafe(40),
        var_dir=var_dir,
        org=ORG,
        log_level="WARNING",
    )


def server_version(ledger: CareLedger) -> str:
    recorder: Any = ledger.recorder
    if isinstance(recorder, SQLiteApplicationRecorder):
        return f"SQLite {sqlite3.sqlite_version}"
    with recorder.datastore.get_connection() as conn:
        row = conn.execute("SHOW server_version").fetchone()
    return f"PostgreSQL {next(iter(row.values()))}"


def projector(container: Container, name: str) -> Projector:
    return next(p for p in container.projectors if p.name == name)


def pg_conninfo(url: str) -> str:
    parts = urlsplit(url)
    return psycopg.conninfo.make_conninfo(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 5432,
        dbname=parts.path.lstrip("/"),
        user=parts.username or "postgres",
    )


@contextmanager
def store_urls(backend: str) -> Iterator[Callable[[str], str]]:
    """A factory of fresh, empty stores' URLs on the backend, all removed afterwards."""
    with ExitStack() as stack:
        yield lambda _label: stack.enter_context(bench_store(backend))
