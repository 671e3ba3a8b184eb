"""Reads through a PostgreSQL streaming replica, against a real server process.

The test builds its own primary and hot standby on loopback (initdb, pg_basebackup),
serves with CARELEDGER_READ_DATABASE_URL on the standby, and proves the reads go there
by pausing the standby's WAL replay: a min_position read then waits and answers 503,
a plain read shows the replica's older state, and writes (and the gate's policy facts)
carry on against the primary. Resuming replay lets the same read succeed.
"""

import statistics
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import psycopg
import pytest

from tests.api.support import under_care
from tests.conftest import ENTRY_BODY, REGISTER_BODY, auth
from tests.e2e.server import running_server
from tests.faults.private_postgres import primary_and_standby

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

CLINICIAN = auth("clinician", sub="dr-replica")
AUDITOR = auth("auditor", sub="auditor-replica")
READ_WAIT = 1.5  # CARELEDGER_READ_WAIT_SECONDS: how long a min_position read waits
ROUND_TRIPS = 20


def on_port(url: str, port: int) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"{parts.username}@127.0.0.1:{port}"))


def as_postgres(url: str) -> str:
    """The same server and database as the superuser (trust auth)."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"postgres@127.0.0.1:{parts.port}"))


def wait_until(check: object, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if check():  # type: ignore[operator]
                return
        except psycopg.OperationalError:
            pass
        time.sleep(0.02)
    raise AssertionError("timed out")


def view_position(url: str, name: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT position FROM projection_versions WHERE state = 'active' AND name = %s",
            (name,),
        ).fetchone()
    return int(row[0]) if row else 0


def replica_lag(primary_url: str, replica_url: str, position: int) -> float:
    """Milliseconds from the timeline's commit of ``position`` showing on the primary
    to its showing on the replica (both polled every millisecond)."""
    with psycopg.connect(primary_url) as primary, psycopg.connect(replica_url) as replica:
        sql = "SELECT position FROM projection_versions WHERE state = 'active' AND name = %s"
        reached = {}
        deadline = time.monotonic() + 10
        while len(reached) < 2 and time.monotonic() < deadline:
            for side, conn in (("primary", primary), ("replica", replica)):
                row = conn.execute(sql, ("timeline",)).fetchone()
                conn.rollback()  # a fresh snapshot each time
                if side not in reached and row and int(row[0]) >= position:
                    reached[side] = time.perf_counter()
            time.sleep(0.001)
    assert len(reached) == 2, reached
    return (reached["replica"] - reached["primary"]) * 1000


def entry(http: httpx.Client, patient_id: str) -> tuple[int, str]:
    """A new entry's position and id."""
    written = http.post(f"/v1/patients/{patient_id}/entries", json=ENTRY_BODY, headers=CLINICIAN)
    assert written.status_code == 201, written.text
    return int(written.json()["position"]), str(written.json()["entry_id"])


def timeline(http: httpx.Client, patient_id: str, position: int | None = None) -> httpx.Response:
    params = {"min_position": position} if position is not None else {}
    return http.get(f"/v1/patients/{patient_id}/timeline", params=params, headers=CLINICIAN)


def entry_ids(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [e["entry_id"] for e in response.json()["entries"]]


def test_reads_through_a_replica_show_the_writes_they_follow(tmp_path: Path) -> None:
    with primary_and_standby(tmp_path) as (primary, replica):
        # Given a store migrated on the primary and streamed to its hot standby
        url = primary.database()
        # A second's connect timeout, so that a read while the replica is down fails fast.
        replica_url = on_port(url, replica.port) + "?connect_timeout=1"
        wait_until(lambda: psycopg.connect(replica_url, connect_timeout=1).close() is None)
        environment = {
            "CARELEDGER_READ_DATABASE_URL": replica_url,
            "CARELEDGER_READ_WAIT_SECONDS": str(READ_WAIT),
        }
        with (
            running_server(url, tmp_path, "--with-projections", environment=environment) as (
                base,
                _env,
                _log,
            ),
            httpx.Client(base_url=base, timeout=15) as http,
            psycopg.connect(as_postgres(replica.admin_url), autocommit=True) as standby,
            psycopg.connect(as_postgres(primary.admin_url), autocommit=True) as source,
        ):
            assert standby.execute("SELECT pg_is_in_recovery()").fetchone() == (True,)
            registered = http.post("/v1/patients", json=REGISTER_BODY, headers=CLINICIAN)
            assert registered.status_code == 201, registered.text
            patient_id = registered.json()["id"]
            under_care(http, patient_id)

            # When a clinician writes on the primary and reads at each write's position
            waits, lags, written = [], [], []
            for n in range(ROUND_TRIPS):
                position, entry_id = entry(http, patient_id)
                written.append(entry_id)
                if n % 2:  # how long after the primary's view the replica's has the write
                    lags.append(replica_lag(as_postgres(url), as_postgres(replica_url), position))
                started = time.perf_counter()
                shown = entry_ids(timeline(http, patient_id, position))
                waits.append((time.perf_counter() - started) * 1000)
                # Then the replica's timeline shows every write, the last one included
                assert sorted(shown) == sorted(written)
            replay_lag = source.execute(
                "SELECT coalesce(extract(epoch FROM replay_lag) * 1000, 0) FROM pg_stat_replication"
            ).fetchone()
            print(
                f"\nmin_position read through the replica after a write: median "
                f"{statistics.median(waits[::2]):.1f} ms, max {max(waits[::2]):.1f} ms; "
                f"replica behind the primary's view: median {statistics.median(lags):.2f} ms, "
                f"max {max(lags):.2f} ms; pg_stat_replication replay_lag "
                f"{float(replay_lag[0]):.2f} ms"
            )

            # When the standby stops applying WAL, writes still succeed on the primary
            standby.execute("SELECT pg_wal_replay_pause()")
            wait_until(lambda: standby.execute("SELECT pg_get_wal_replay_pause_state()").fetchone()
                       == ("paused",))  # fmt: skip
            held, paused_entry = entry(http, patient_id)
            wait_until(lambda: view_position(as_postgres(url), "timeline") >= held)
            # Then a read at that position waits for the replica, and answers 503
            started = time.monotonic()
            behind = timeline(http, patient_id, held)
            waited = time.monotonic() - started
            assert behind.status_code == 503, behind.text
            assert behind.headers["Retry-After"] == "1"
            assert waited >= READ_WAIT * 0.9
            # And a plain read shows the replica's state, without the write the primary's
            # view already holds: the read went to the replica
            assert sorted(entry_ids(timeline(http, patient_id))) == sorted(written)
            # And the gate's facts come from the primary: a new patient put under care
            # while the replica is paused can be read at once (the replica's roster
            # does not have the membership yet)
            other = http.post(
                "/v1/patients", json={**REGISTER_BODY, "mrn": "MRN-0002"}, headers=CLINICIAN
            )
            assert other.status_code == 201, other.text
            membership = int(under_care(http, other.json()["id"]))
            wait_until(lambda: view_position(as_postgres(url), "roster") >= membership)
            assert view_position(as_postgres(replica_url), "roster") < membership
            assert entry_ids(timeline(http, other.json()["id"])) == []

            # When replay resumes, Then the same read succeeds with the write
            standby.execute("SELECT pg_wal_replay_resume()")
            started = time.perf_counter()
            shown = entry_ids(timeline(http, patient_id, held))
            resumed = (time.perf_counter() - started) * 1000
            assert sorted(shown) == sorted([*written, paused_entry])
            print(f"after resuming replay, the held read answered in {resumed:.1f} ms")
            # And the search and the access log read through the replica at a position
            found = http.get(
                "/v1/patients",
                params={"mrn": "MRN-0002", "min_position": membership},
                headers=CLINICIAN,
            )
            assert found.status_code == 200, found.text
            assert [i["id"] for i in found.json()["items"]] == [other.json()["id"]]
            log = http.get(
                "/v1/audit/accesses",
                params={"patient_id": patient_id, "min_position": membership, "limit": 100},
                headers=AUDITOR,
            )
            assert log.status_code == 200, log.text
            reads = [i for i in log.json()["items"] if i["action"] == "read"]
            # the round trips, the stale read and the held one (the 503 disclosed nothing)
            assert len(reads) >= ROUND_TRIPS + 1
            # And every page the replica served replays byte for byte from the primary's
            # log, at the stream versions its access record holds
            for record in reads:
                replay = http.post(
                    f"/v1/audit/accesses/{record['access_id']}/replay", headers=AUDITOR
                )
                assert replay.status_code == 200, replay.text
                assert replay.json()["matches"] is True, replay.text

            # When the replica goes down, Then its reads answer 503 (never 500), writes
            # carry on, and its reads come back with it, with no restart of the service
            standby.close()
            replica.stop("immediate")
            started = time.monotonic()
            down = timeline(http, patient_id)
            refused = time.monotonic() - started
            assert down.status_code == 503, down.text
            assert down.headers["Retry-After"] == "1"
            later, later_entry = entry(http, patient_id)
            replica.start()
            started = time.monotonic()
            wait_until(lambda: timeline(http, patient_id, later).status_code == 200, 30)
            print(
                f"replica down: 503 in {refused:.2f} s; reads back {time.monotonic() - started:.2f}"
                " s after the replica's pg_ctl start returned"
            )
            assert later_entry in entry_ids(timeline(http, patient_id, later))
