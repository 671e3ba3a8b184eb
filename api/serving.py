"""``careledger serve``: one process, or N uvicorn worker processes on one port.

Every worker builds its own container from the same settings, so each has its own
group commit and its own connection pool; the log's order across them is PostgreSQL's
to keep (the writers' table lock), and the projections run in ``careledger worker``.
The HTTP stack is uvicorn on httptools and uvloop, chosen by measurement
(docs/benchmarks.md).
"""

from typing import TYPE_CHECKING

import uvicorn
from fastapi import FastAPI

from api import heap
from api import logging as structured_logging
from api.settings import ConfigError, Settings, load_settings, resolve_secrets

if TYPE_CHECKING:
    from api.container import Container
    from api.organisations import Organisations

# What `careledger serve` ships with; bench.support.servers runs the plain baseline on
# the same stack, so both sides of W1 meet the same server.
LOOP, HTTP = "uvloop", "httptools"
WORKER_START_SECONDS = 60


class WorkersRefused(ConfigError):
    """``--workers`` asked for something several processes cannot keep."""


def check_workers(settings: Settings, workers: int, *, with_projections: bool) -> None:
    """Refuse what does not hold with several processes (docs/operations.md)."""
    if workers < 1:
        raise WorkersRefused("--workers must be at least 1")
    if workers == 1:
        return
    urls = [d.url for d in (settings.org_databases or {}).values()] or [settings.database_url]
    if any(url.lower().startswith("sqlite") for url in urls):
        raise WorkersRefused(
            "--workers > 1 needs PostgreSQL: on SQLite the projections and the waits for "
            "them (min_position) run inside the one serving process; serve SQLite with "
            "one worker"
        )
    if with_projections:
        raise WorkersRefused(
            "--with-projections runs the projections in one serving process; with "
            "--workers, run them in `careledger worker` beside the workers"
        )


def worker_app() -> FastAPI:
    """One worker's application, built in that process (uvicorn calls this factory),
    its heap settled once built."""
    from api.bootstrap import build

    settings = load_settings()
    structured_logging.configure(settings.log_level)
    if settings.org_databases:
        from api.organisations import build_organisations

        return settled_app(build_organisations(settings))
    return settled_app(build(settings, run_processes=False))


def settled_app(served: "Container | Organisations") -> FastAPI:
    """The application over what this process serves, with its heap then settled
    (api/heap.py): once per serving process, after its one build."""
    from api.app import create_app

    app = create_app(served)
    heap.settle(served)
    return app


def serve_organisations(
    settings: Settings, workers: int, *, with_projections: bool, create: bool
) -> "Organisations | None":
    """``serve`` with organisations in databases of their own: their containers, or
    (``workers`` > 1) None once every store is migrated for the workers to open."""
    from api.bootstrap import StoreLabel, migrate_store, require_store
    from api.organisations import build_organisations, settings_for

    if workers == 1:
        return build_organisations(
            settings, run_processes=with_projections, embed_sqlite=True, create=create
        )
    resolve_secrets(settings)
    for org in settings.org_databases or {}:
        own = settings_for(settings, org)
        require_store(own, create=create, label=StoreLabel.routed(org))
        migrate_store(own, StoreLabel.routed(org))
    return None


def run(app: FastAPI | None, *, host: str, port: int, workers: int) -> None:
    """Serve ``app`` in this process, or (``workers`` > 1) the factory in N processes."""
    options = {"host": host, "port": port, "log_config": None, "access_log": False}
    if workers == 1:
        assert app is not None
        uvicorn.run(app, loop=LOOP, http=HTTP, **options)  # type: ignore[arg-type]
        return
    uvicorn.run(
        "api.serving:worker_app",
        factory=True,
        workers=workers,
        loop=LOOP,
        http=HTTP,
        # A worker opens the store and unlocks its keys before it answers the
        # supervisor's ping; on a busy machine that takes longer than uvicorn's 5 s,
        # and a worker killed for it would be restarted over and over.
        timeout_worker_healthcheck=WORKER_START_SECONDS,
        **options,  # type: ignore[arg-type]
    )
