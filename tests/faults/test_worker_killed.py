"""``careledger worker`` SIGKILLed during live projection, and ``careledger projections
rebuild`` SIGKILLed mid-rebuild, over and over, while writers write: every view ends
identical to a fresh rebuild (issue 23). PostgreSQL, where the worker is a process of
its own."""

import random
import time
from pathlib import Path

import pytest

from api.bootstrap import build
from tests.conftest import make_settings
from tests.faults.figures import Figures, recorded
from tests.faults.harness import (
    Service,
    Writers,
    audit_verifies,
    service_env,
    size,
    views_equal_a_rebuild,
    written_once,
)

pytestmark = [pytest.mark.faults, pytest.mark.e2e, pytest.mark.postgres]

WRITERS = 4
BANNER = "careledger worker: running"


def test_worker_and_rebuild_sigkilled_converge_to_a_rebuild(pg_url: str, tmp_path: Path) -> None:
    figures = recorded(Figures("worker / rebuild SIGKILLed", size(3, 10)))
    env = service_env(pg_url, tmp_path, CARELEDGER_PROJECTION_BATCH_SIZE="20")
    service = Service(env, tmp_path, "serve")  # projections in the worker only
    worker = Service(env, tmp_path, "worker")
    rebuild = Service(env, tmp_path, "projections", "rebuild")
    service.start()
    service.healthy_in()
    worker.start()
    worker.logged(BANNER)
    container = build(make_settings(pg_url, tmp_path / "check"))
    writers = Writers(service.base, WRITERS).start()
    rng = random.Random()
    mid_rebuild = 0
    try:
        time.sleep(2.0)  # a backlog for the first rebuild to work through
        for _ in range(figures.cycles):
            # When the worker is SIGKILLed while it projects the writes
            time.sleep(rng.uniform(0.3, 1.0))
            worker.kill()
            worker.start()
            # And a rebuild is SIGKILLed once it has built part of a new version
            rebuild.start()
            deadline = time.monotonic() + 60
            while not any(
                v.state == "building" and v.position > 0
                for p in container.projectors
                for v in p.versions()
            ):
                if rebuild.process is not None and rebuild.process.poll() is not None:
                    break  # it finished first: nothing to interrupt this time
                assert time.monotonic() < deadline, "the rebuild never started"
                time.sleep(0.01)
            else:
                time.sleep(rng.uniform(0.0, 0.3))
                if rebuild.process is not None and rebuild.process.poll() is None:
                    rebuild.kill()
                    mid_rebuild += 1
            worker.logged(BANNER)
    finally:
        writers.stop()
    try:
        outcome = written_once(service.base, writers)
        figures.acknowledged, figures.lost = outcome.acknowledged, outcome.lost
        figures.duplicated = outcome.duplicated
        figures.unavailable = writers.statuses[503]
        figures.server_errors = sum(n for s, n in writers.statuses.items() if s >= 500) - (
            figures.unavailable
        )
        assert not writers.faults, writers.faults[:5]
        assert outcome.lost == 0 and outcome.duplicated == 0
        # Then some kills interrupted a rebuild, which the next rebuild resumes
        assert mid_rebuild >= 1, "no kill landed mid-rebuild"
        figures.note = f"{mid_rebuild} rebuilds killed mid-way"
        audit_verifies(env, tmp_path)

        def stop() -> None:
            service.stop()
            worker.stop()

        # And every view, caught up, equals a fresh rebuild
        views_equal_a_rebuild(pg_url, env, tmp_path, stop)
        figures.passed = True
    finally:
        container.close()
        service.stop()
        worker.stop()
        if rebuild.process is not None and rebuild.process.poll() is None:
            rebuild.kill()
