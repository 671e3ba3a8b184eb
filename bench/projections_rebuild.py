"""P1: the full rebuild of a view by our engine, against the library's stock
``ProjectionRunner`` over the same log (see ``bench.projections``).
"""

import argparse
import cProfile
import gc
import statistics
import time
from collections.abc import Sequence
from typing import Any

from eventsourcing.persistence import Tracking
from eventsourcing.postgres import PostgresDatastore, PostgresTrackingRecorder
from eventsourcing.projection import Projection, ProjectionRunner
from eventsourcing.utils import EnvType
from psycopg.rows import tuple_row
from psycopg.sql import SQL, Identifier
from rich.progress import (
    Progress,
)

from api.container import Container
from application.ledger.ledger import CareLedger
from bench.support.charts import (
    head,
)
from bench.support.report import profile_lines
from bench.support.stores import (
    projector,
)
from infrastructure.keys import KeyRing
from infrastructure.projections.engine import Decoded, Projector, active_version
from infrastructure.projections.rebuild import RebuildProgress, rebuild
from infrastructure.projections.row_cipher import RowCipher
from infrastructure.projections.store import ViewStore
from infrastructure.projections.timeline import TABLE as TIMELINE_TABLE
from infrastructure.projections.timeline import TimelineProjection
from infrastructure.sealing import SealingMapper
from infrastructure.stores import environment_for

P1_GOAL = 10.0
STOCK_NAME = "StockTimeline"
STOCK_TABLE = "stock_view_timeline"


def event_mix(ledger: CareLedger) -> dict[str, int]:
    recorder: Any = ledger.recorder
    table = SQL("{0}.{1}").format(
        Identifier(recorder.datastore.schema), Identifier(recorder.events_table_name)
    )
    with recorder.datastore.get_connection() as conn:
        rows = conn.execute(
            SQL("SELECT topic, count(*) AS n FROM {0} GROUP BY topic ORDER BY 2 DESC").format(table)
        ).fetchall()
    return {r["topic"].rsplit(":", 1)[-1]: int(r["n"]) for r in rows}


def last_position_of(ledger: CareLedger, topics: Sequence[str]) -> int:
    recorder: Any = ledger.recorder
    table = SQL("{0}.{1}").format(
        Identifier(recorder.datastore.schema), Identifier(recorder.events_table_name)
    )
    with recorder.datastore.get_connection() as conn:
        row = conn.execute(
            SQL("SELECT max(notification_id) AS m FROM {0} WHERE topic = ANY(%s)").format(table),
            (list(topics),),
        ).fetchone()
    return int(row["m"] or 0)


# P1: ours -----------------------------------------------------------------------------


def timed_rebuild(p: Projector, progress: Progress, label: str) -> tuple[float, int]:
    task = progress.add_task(label, total=head_of(p))

    def observe(state: RebuildProgress) -> None:
        progress.update(task, total=state.head, completed=state.position)

    gc.collect()
    started = time.perf_counter()
    rebuild(p, observe)
    seconds = time.perf_counter() - started
    progress.remove_task(task)
    return seconds, p.active().position


def head_of(p: Projector) -> int:
    return p.recorder.max_notification_id() or 0


def timeline_rows(store: ViewStore, table: str, version: int | None) -> list[tuple[Any, ...]]:
    """(patient, entry, effective_at, kind, status, position) of every row, sorted."""
    with store.reading() as cursor:
        if version is None:
            version = active_version(cursor, store, TimelineProjection.name)
        rows = cursor.execute(
            f"SELECT patient_id, entry_id, effective_at, kind, status, position FROM {table} "  # noqa: S608
            "WHERE version = ? ORDER BY patient_id, entry_id",
            (version,),
        ).fetchall()
    return rows


# P1: the stock runner -------------------------------------------------------------------


class TupleCursor:
    """Our projections' ``Cursor`` over a psycopg cursor: ``?`` placeholders, tuple rows."""

    def __init__(self, cursor: Any) -> None:
        self._cursor = cursor

    def execute(self, sql: str, params: Sequence[Any] = ()) -> "TupleCursor":
        self._cursor.execute(sql.replace("?", "%s"), params, prepare=bool(params))
        return self

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            self._cursor.executemany(sql.replace("?", "%s"), rows)

    def fetchone(self) -> tuple[Any, ...] | None:
        row: tuple[Any, ...] | None = self._cursor.fetchone()
        return row

    def fetchall(self) -> list[tuple[Any, ...]]:
        return list(self._cursor.fetchall())

    @property
    def rowcount(self) -> int:
        return int(self._cursor.rowcount)


class StockTimelineView(PostgresTrackingRecorder):
    """The library's pattern: a tracking recorder whose every write commits its tracking.

    The row written is the timeline's own (``TimelineProjection``'s row code, sealed
    the same way), so the two sides differ in how they move through the log only.
    """

    rows: TimelineProjection  # bound by the runner's factory (it needs the key ring)

    def __init__(self, datastore: PostgresDatastore, **kwargs: Any) -> None:
        super().__init__(datastore, **kwargs)
        table = SQL("{0}.{1}").format(Identifier(datastore.schema), Identifier(STOCK_TABLE))
        self.sql_create_statements += [
            SQL(
                "CREATE TABLE IF NOT EXISTS {0} (version INTEGER NOT NULL, "
                "patient_id TEXT NOT NULL, entry_id TEXT NOT NULL, effective_at TEXT NOT NULL, "
                "kind TEXT NOT NULL, status TEXT NOT NULL, position BIGINT NOT NULL, "
                "sealed BYTEA NOT NULL, PRIMARY KEY (version, patient_id, entry_id))"
            ).format(table),
            SQL(
                "CREATE INDEX IF NOT EXISTS {0} ON {1} "
                "(version, patient_id, effective_at, entry_id)"
            ).format(Identifier(f"{STOCK_TABLE}_by_time"), table),
        ]

    def process(self, event: Any, tracking: Tracking) -> None:
        """One event: its row and its tracking record, in one transaction."""
        with self.datastore.transaction(commit=True) as curs:
            rows = TupleCursor(curs.connection.cursor(row_factory=tuple_row))
            self.rows.apply(rows, 1, [Decoded(tracking.notification_id, event)])
            self._insert_tracking(curs, tracking)


class StockTimeline(Projection[StockTimelineView]):
    name = STOCK_NAME
    topics = TimelineProjection.topics

    def process_event(self, domain_event: Any, tracking: Tracking) -> None:
        self.view.process(domain_event, tracking)


def stock_classes(
    keys: KeyRing, store: ViewStore
) -> tuple[type[CareLedger], type[StockTimelineView]]:
    """The runner's application (our CareLedger, its mapper bound to our key ring as
    ``infrastructure.migrations.unlock`` binds it) and its view (rows encrypted likewise)."""
    rows = TimelineProjection(store, RowCipher(keys))
    rows.table = store.table(STOCK_TABLE)

    class SealedCareLedger(CareLedger):
        name = CareLedger.name  # the same tables, and the same tracking name

        def __init__(self, env: EnvType | None = None) -> None:
            super().__init__(env)
            mapper = self.mapper
            assert isinstance(mapper, SealingMapper)
            mapper.bind(keys, self.recorder)

    class View(StockTimelineView):
        pass

    View.rows = rows
    return SealedCareLedger, View


def run_stock(
    container: Container, url: str, target: int, progress: Progress
) -> tuple[float, int, Any]:
    """Time the stock runner from construction until its tracking reaches ``target``."""
    app_class, view_class = stock_classes(container.keys, container.views)
    env = {
        **environment_for(url),
        "CREATE_TABLE": "n",  # the application's tables exist (migrated by the service)
        f"{STOCK_NAME.upper()}_CREATE_TABLE": "y",  # the view's tables
    }
    task = progress.add_task("P1: stock ProjectionRunner", total=target)
    gc.collect()
    started = time.perf_counter()
    reached = 0
    with ProjectionRunner(
        application_class=app_class,
        projection_class=StockTimeline,
        view_class=view_class,
        env=env,
    ) as runner:
        while reached < target:
            if runner.is_interrupted.is_set():
                runner.run_forever(timeout=0)  # raises the processing thread's error
                raise RuntimeError("the stock runner stopped")
            time.sleep(0.02)
            reached = runner.view.max_tracking_id(CareLedger.name) or 0
            progress.update(task, completed=reached)
        seconds = time.perf_counter() - started
    progress.remove_task(task)
    return seconds, reached, view_class


def run_p1(
    container: Container, url: str, args: argparse.Namespace, progress: Progress, fill_info: Any
) -> dict[str, Any]:
    ledger = container.ledger
    timeline = projector(container, "timeline")
    covered = head(ledger)
    ours: list[float] = []
    for i in range(args.rebuild_repeats):
        seconds, position = timed_rebuild(
            timeline, progress, f"P1: rebuild timeline ({i + 1}/{args.rebuild_repeats})"
        )
        assert position == covered, (position, covered)
        ours.append(seconds)
    ours_rate = covered / statistics.median(ours)

    all_four: dict[str, float] = {}
    for p in container.projectors:
        seconds, _ = timed_rebuild(p, progress, f"P1: rebuild {p.name}")
        all_four[p.name] = round(seconds, 4)

    target = last_position_of(ledger, TimelineProjection.topics)
    stock_seconds, reached, _ = run_stock(container, url, target, progress)
    stock_rate = covered / stock_seconds

    # The two views must agree row for row.
    ours_rows = timeline_rows(container.views, container.views.table(TIMELINE_TABLE), None)
    stock_rows = timeline_rows(container.views, container.views.table(STOCK_TABLE), 1)
    same = ours_rows == stock_rows

    ratio = ours_rate / stock_rate
    applied = sum(
        n for topic, n in fill_info["event_mix"].items() if topic.startswith("Patient.Entry")
    )
    result: dict[str, Any] = {
        "log_positions": covered,
        "timeline_events_in_log": applied,
        "timeline_rows": len(ours_rows),
        "views_identical": same,
        "ours": {
            "rebuild_seconds": [round(s, 4) for s in ours],
            "median_positions_per_s": round(ours_rate, 1),
            "timeline_events_per_s": round(applied / statistics.median(ours), 1),
            "batch_size": timeline.batch_size,
            "all_four_rebuild_seconds": all_four,
            "all_four_positions_per_s": round(4 * covered / sum(all_four.values()), 1),
        },
        "stock": {
            "seconds": round(stock_seconds, 4),
            "positions_per_s": round(stock_rate, 1),
            "timeline_events_per_s": round(applied / stock_seconds, 1),
            "tracking_reached": reached,
            "how": (
                "eventsourcing.projection.ProjectionRunner(application_class=CareLedger "
                "(same env: SealingMapper bound to the same key ring), "
                "projection_class=Projection subclass, view_class=PostgresTrackingRecorder "
                "subclass); one transaction per event holding the timeline row (same row "
                "code and sealing as ours) and the tracking record; same topic filter; "
                "timed from the runner's construction to its tracking reaching the last "
                "timeline event (polled every 20 ms)"
            ),
        },
        "ratio_ours_over_stock": round(ratio, 2),
        "goal": f">= {P1_GOAL:g}x",
        "met": ratio >= P1_GOAL and same,
    }
    if not same:
        result["mismatch"] = {"ours_rows": len(ours_rows), "stock_rows": len(stock_rows)}
    if args.profile or not result["met"]:
        profiler = cProfile.Profile()
        profiler.enable()
        rebuild(timeline)
        profiler.disable()
        result["profile_rebuild_timeline"] = profile_lines(profiler)
    return result
