"""The primary of a Patroni cluster crashes under eight writers (issue 23, high
availability): etcd and three PostgreSQL members on loopback with synchronous
replication, ``careledger serve`` connected with libpq's list of every member and
``target_session_attrs=read-write``. Each cycle SIGKILLs the primary's Patroni and
every one of its PostgreSQL processes (a node crash), then starts the member again,
and it rejoins as a replica.

No acknowledged write is lost (synchronous replication acknowledges nothing the
promoted standby lacks), no log position is given twice, ``audit verify`` passes on
the new primary, the views equal a rebuild, no answer is a 500, and writes resume
within 15 s of the crash with no restart of the service."""

import random
import time
from pathlib import Path
from uuid import UUID

import pytest

from api.bootstrap import build
from tests.conftest import make_settings, new_database
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
from tests.faults.patroni_cluster import patroni_cluster

pytestmark = [pytest.mark.faults, pytest.mark.e2e]

WRITERS = 8
RESUMED_WITHIN = 15.0
CLIENT_OPTIONS = "?target_session_attrs=read-write&connect_timeout=1"


def test_the_primary_crashes_and_a_standby_takes_over_losing_nothing(tmp_path: Path) -> None:
    figures = recorded(Figures("Patroni primary SIGKILLed (node crash)", size(1, 5)))
    with patroni_cluster() as cluster:
        ready = cluster.ready()
        leader = cluster.leader()
        # CareLedger's roles and database, made on the primary, reach the standbys by
        # WAL; the service is given every member (the cluster goes, and the database with it)
        _, url = new_database(leader.admin_url, lambda name: cluster.url(name) + CLIENT_OPTIONS)
        env = service_env(url, tmp_path)
        service = Service(env, tmp_path, "serve", "--with-projections")
        service.start()
        service.healthy_in()
        writers = Writers(service.base, WRITERS).start()
        rng = random.Random()
        rejoins, after_promotion = [], []
        try:
            # Given writers at work; when the primary's node crashes
            for _ in range(figures.cycles):
                time.sleep(rng.uniform(2.0, 4.0))
                crashed = cluster.leader()
                cluster.crash(crashed)
                gone = time.monotonic()
                deadline = gone + 60
                others = [m for m in cluster.members if m is not crashed]
                promoted = None
                # Only a write sent after the crash can show that writes resumed.
                while (resumed := writers.acknowledged_since(gone, sent=True)) is None:
                    assert time.monotonic() < deadline, "no write resumed in 60 s"
                    if promoted is None and cluster.writable(*others):
                        promoted = time.monotonic()
                    time.sleep(0.05)
                figures.recoveries.append(resumed - gone)
                # The service's own share: from a standby taking writes to a write acknowledged
                after_promotion.append(max(0.0, resumed - (promoted or resumed)))
                # And the crashed member, started again, rejoins as a replica
                cluster.start_member(crashed)
                rejoins.append(cluster.ready())
                assert cluster.leader() is not crashed
            time.sleep(1.0)
        finally:
            writers.stop()
        try:
            outcome = counted(figures, service.base, writers)
            figures.duplicated += positions_given_twice(url, tmp_path, writers)
            figures.note = (
                f"after promotion max {max(after_promotion):.2f} s; cluster ready "
                f"{ready:.0f} s; rejoined as replica max {max(rejoins):.0f} s"
            )
            # Then nothing acknowledged is lost or doubled, and no answer was a 500
            assert not writers.faults, writers.faults[:5]
            assert outcome.acknowledged > 0 and outcome.lost == 0 and figures.duplicated == 0
            # And writes resumed within 15 s of each crash, with no restart of the service
            assert max(figures.recoveries) <= RESUMED_WITHIN, figures.recoveries
            assert service.starts == 1
            # And the chain verifies on the new primary, and the views equal a rebuild
            audit_verifies(env, tmp_path)
            views_equal_a_rebuild(url, env, tmp_path, service.stop)
            figures.passed = True
        finally:
            service.stop()


def positions_given_twice(url: str, workdir: Path, writers: Writers) -> int:
    """Acknowledged positions that the new primary's log does not hold for the write
    they were given to (one given again after a failover, say), and positions that
    two acknowledgements share."""
    container = build(make_settings(url, workdir / "positions"))
    try:
        recorder = container.ledger.recorder
        by_position = {}
        start = 1
        while page := recorder.select_notifications(start, 1000):
            by_position.update({n.id: n.originator_id for n in page})
            start = page[-1].id + 1
    finally:
        container.close()
    shared = len(writers.acks) - len({a.position for a in writers.acks})
    wrong = sum(1 for a in writers.acks if by_position.get(a.position) != UUID(a.patient))
    return shared + wrong
