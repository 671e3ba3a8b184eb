"""Benchmark the cost of sealing (E1) and the speed of ``audit verify`` (A1).

Run from the project root::

    .venv/bin/python -m bench.encryption [--events N] [--backend sqlite|postgres|both]
                                         [--verify-records N] [--json-out PATH]

E1  Encrypted vs plaintext saves at the application layer. Two ``CareLedger``s on the
    same backend, each on a store of its own: "sealed" is opened exactly as the service
    opens it (``api.bootstrap.open_ledger``: SealingMapper, key ring, chain key);
    "plain" is the same class and recorders with the library's default Mapper (no
    cipher). Each round registers patients and records clinical entries through the
    domain, one ``ledger.save(patient)`` per new event, as the API does. Within a
    round the two apps take turns chart by chart (a registration and its entries on
    one, then the same on the other, the order swapped every chart), so both meet the
    same seconds of a shared machine's noise; one unmeasured warm-up round comes first.
    The figure is the ratio of the median throughputs, sealed / plain, counted over the
    time spent inside ``save()`` and, for a registration, in taking the new patient's id
    as the service does (sealed: ``KeyRing.new_patient_id``, which stores new keys a
    batch at a time, that batch's cost included; plain: ``uuid4``). The domain work
    around them is identical for both.
    Goal: >= 0.95.
    The floor: each round is followed (or, every other round, preceded) by one of the
    same shape between the plain store and a third, "cipher only" (``CipherOnlyMapper``:
    the library's mapping and one AES-256-GCM call per event, one key for every stream,
    no key lookup, no per-row binding). No design that seals each event with the
    mandated cipher through this binding can do better than that ratio; sealed over
    floor is what our key handling and binding cost beyond it. ``--no-floor`` skips it.

A1  ``audit verify`` speed. The sealed store is filled (1,000 events per save) up to
    ``--verify-records`` records, then ``infrastructure.chain.verify(chain key,
    recorder.chain_rows())`` is timed, as ``ChainVerifier.verify`` runs it. Goal:
    >= 200,000 records/s. The time is also split into fetching rows (with ChainRow
    construction), ChainRow construction alone, ``link()`` and bare HMAC-SHA256.

Results are printed as a markdown table and written as JSON to
``bench/results/encryption-<timestamp>.json`` (or ``--json-out``).
"""

import argparse
import gc
import statistics
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

from rich.console import Console
from rich.progress import (
    Progress,
)

from application.ledger.ledger import CareLedger
from bench.encryption_stores import CipherOnlyMapper, check_floor, open_plain, open_sealed
from bench.encryption_verify import A1_GOAL, run_a1
from bench.support import report as bench_report
from bench.support.charts import Serial, record_heart_rate, registration
from bench.support.statistics import ms, p95_ms
from bench.support.stores import server_version, store_urls
from infrastructure.keys import KeyRing

E1_GOAL = 0.95


stderr = Console(stderr=True)


# E1 ---------------------------------------------------------------------------------


@dataclass
class Round:
    events: int
    save_seconds: float
    wall_seconds: float
    register_latencies: list[float] = field(repr=False)
    entry_latencies: list[float] = field(repr=False)

    @property
    def throughput(self) -> float:
        return self.events / self.save_seconds

    @property
    def wall_throughput(self) -> float:
        return self.events / self.wall_seconds


@dataclass(frozen=True)
class App:
    """A ledger, and where its new patients' ids come from, as the service takes them."""

    ledger: CareLedger
    new_patient_id: Callable[[], UUID]


def e1_round(
    apps: dict[str, App],
    events: int,
    entries_per_patient: int,
    serial: Serial,
    advance: Callable[[], None],
) -> dict[str, Round]:
    """``events`` saves on each app, interleaved chart by chart: the same patient's
    registration and entries on one app, then on the other, the order swapped for every
    chart. Both apps meet the same moments of machine noise, so a round of one is
    compared with the round of the other that ran in the same seconds."""
    names = list(apps)
    registers: dict[str, list[float]] = {name: [] for name in names}
    entries: dict[str, list[float]] = {name: [] for name in names}
    walls = dict.fromkeys(names, 0.0)
    clock = time.perf_counter
    written = 0
    gc.collect()
    while written < events:
        n_entries = min(entries_per_patient, events - written - 1)
        first = serial()
        for name in names if first % 2 else reversed(names):
            ledger = apps[name].ledger
            started = clock()
            patient_id = apps[name].new_patient_id()  # sealed: its key may be stored here
            allocating = clock() - started
            patient = registration(first, patient_id)
            t = clock()
            ledger.save(patient)
            registers[name].append(allocating + clock() - t)
            advance()
            for n in range(n_entries):
                record_heart_rate(patient, first + n)
                t = clock()
                ledger.save(patient)
                entries[name].append(clock() - t)
                advance()
            walls[name] += clock() - started
        written += 1 + n_entries
    return {
        name: Round(
            written,
            sum(registers[name]) + sum(entries[name]),
            walls[name],
            registers[name],
            entries[name],
        )
        for name in names
    }


def run_e1(
    sealed: CareLedger,
    keys: KeyRing,
    plain: CareLedger,
    floor: CareLedger | None,
    args: argparse.Namespace,
    progress: Progress,
    backend: str,
) -> dict[str, Any]:
    # Each contest is two apps in one round, as the ratio is meant; the floor's rounds
    # alternate with the sealed store's, against the same plain store.
    contests = {"sealed": App(sealed, keys.new_patient_id)}
    if floor is not None:
        contests["floor"] = App(floor, uuid4)
    plain_app = App(plain, uuid4)
    warmup = max(args.events // 5, 1 + args.entries_per_patient)
    total = 2 * len(contests) * (warmup + args.rounds * args.events)
    task = progress.add_task(f"E1 {backend}", total=total)

    def advance() -> None:
        progress.advance(task)

    serial = Serial()
    for name, app in contests.items():  # unmeasured
        e1_round({name: app, "plain": plain_app}, warmup, args.entries_per_patient, serial, advance)
    rounds: dict[str, list[Round]] = {"sealed": [], "plain": [], "floor": [], "floor_plain": []}
    for i in range(args.rounds):
        for name in list(contests) if i % 2 == 0 else reversed(contests):
            both = e1_round(
                {name: contests[name], "plain": plain_app},
                args.events,
                args.entries_per_patient,
                serial,
                advance,
            )
            rounds[name].append(both[name])
            rounds["plain" if name == "sealed" else "floor_plain"].append(both["plain"])
    progress.remove_task(task)

    def summary(name: str) -> dict[str, Any]:
        rs = rounds[name]
        return {
            "median_events_per_s": round(statistics.median(r.throughput for r in rs), 1),
            "rounds_events_per_s": [round(r.throughput, 1) for r in rs],
            "median_wall_events_per_s": round(statistics.median(r.wall_throughput for r in rs), 1),
            "median_register_save_ms": ms([x for r in rs for x in r.register_latencies]),
            "median_entry_save_ms": ms([x for r in rs for x in r.entry_latencies]),
            "p95_save_ms": p95_ms(
                [x for r in rs for x in (*r.register_latencies, *r.entry_latencies)]
            ),
        }

    result = {"sealed": summary("sealed"), "plain": summary("plain")}
    ratio = result["sealed"]["median_events_per_s"] / result["plain"]["median_events_per_s"]
    result["ratio_sealed_over_plain"] = round(ratio, 4)
    result["wall_ratio_sealed_over_plain"] = round(
        result["sealed"]["median_wall_events_per_s"] / result["plain"]["median_wall_events_per_s"],
        4,
    )
    # Each round against the other app's round, run in the same seconds.
    paired = [
        s.throughput / p.throughput for s, p in zip(rounds["sealed"], rounds["plain"], strict=True)
    ]
    result["paired_round_ratios"] = [round(x, 4) for x in paired]
    result["median_paired_ratio"] = round(statistics.median(paired), 4)
    # Per kind of save: registration also creates the patient's data key.
    for kind in ("register", "entry"):
        plain_ms = result["plain"][f"median_{kind}_save_ms"]
        sealed_ms = result["sealed"][f"median_{kind}_save_ms"]
        result[f"{kind}_save_latency_ratio_plain_over_sealed"] = (
            round(plain_ms / sealed_ms, 4) if plain_ms and sealed_ms else None
        )
    result["goal"] = f">= {E1_GOAL}"
    result["met"] = ratio >= E1_GOAL
    if rounds["floor"]:
        floor_paired = [
            f.throughput / p.throughput
            for f, p in zip(rounds["floor"], rounds["floor_plain"], strict=True)
        ]
        floor_median = statistics.median(floor_paired)
        result["floor"] = {
            "what": "the library's mapping and one AES-256-GCM call per event (CipherOnlyMapper)",
            "median_events_per_s": summary("floor")["median_events_per_s"],
            "plain_median_events_per_s": summary("floor_plain")["median_events_per_s"],
            "paired_round_ratios": [round(x, 4) for x in floor_paired],
            "median_paired_ratio": round(floor_median, 4),
            "sealed_over_floor": round(result["median_paired_ratio"] / floor_median, 4),
        }
    result["workload"] = {
        "events_per_round": args.events,
        "rounds_per_app": args.rounds,
        "warmup_events_per_app": warmup,
        "events_per_patient": 1 + args.entries_per_patient,
        "events_per_save": 1,
        "order": "one warm-up round, then rounds; within a round the apps alternate "
        "chart by chart (a registration and its entries), swapping which goes first; "
        "the floor's rounds (if any) alternate with the sealed store's, against the "
        "same plain store",
    }
    return result


# Running --------------------------------------------------------------------------


def bench_backend(args: argparse.Namespace, backend: str, progress: Progress) -> dict[str, Any]:
    with ExitStack() as stack:
        new_url = stack.enter_context(store_urls(backend))
        var_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="cl-bench-var-")))
        sealed, keys = open_sealed(new_url("sealed"), var_dir)
        stack.callback(sealed.close)
        plain = open_plain(new_url("plain"))
        stack.callback(plain.close)
        floor = None
        if not args.skip_e1 and args.floor:
            floor = open_plain(new_url("floor"), CipherOnlyMapper)
            stack.callback(floor.close)
        result: dict[str, Any] = {"server": server_version(sealed)}
        if not args.skip_e1:
            result["E1"] = run_e1(sealed, keys, plain, floor, args, progress, backend)
        if floor is not None:
            result["E1"]["floor_records_checked"] = check_floor(sealed, floor.mapper)
        plain.close()
        if floor is not None:
            floor.close()
        if not args.skip_a1:
            result["A1"] = run_a1(sealed, keys, args, progress, backend)
        return result


def machine() -> dict[str, Any]:
    return bench_report.machine("eventsourcing", "psycopg", "cryptography")


def command_line() -> str:
    return bench_report.command_line("bench.encryption")


def table(results: dict[str, Any]) -> str:
    lines = [
        "| scenario | backend | figure | goal | met? |",
        "|---|---|---|---|---|",
    ]
    for backend, r in results.items():
        if "E1" in r:
            e1 = r["E1"]
            figure = (
                f"sealed/plain = {e1['ratio_sealed_over_plain']:.3f} "
                f"(sealed {e1['sealed']['median_events_per_s']:,.0f} ev/s, "
                f"plain {e1['plain']['median_events_per_s']:,.0f} ev/s; median of paired "
                f"rounds {e1['median_paired_ratio']:.3f})"
            )
            if "floor" in e1:
                figure += (
                    f"; cipher-only floor {e1['floor']['median_paired_ratio']:.3f}, "
                    f"sealed/floor {e1['floor']['sealed_over_floor']:.3f}"
                )
            lines.append(
                f"| E1 encrypted vs plaintext saves | {backend} | {figure} | "
                f"ratio >= {E1_GOAL} | {'yes' if e1['met'] else 'no'} |"
            )
        if "A1" in r:
            a1 = r["A1"]
            figure = (
                f"{a1['median_records_per_s']:,.0f} records/s ({a1['records_checked']:,} records)"
            )
            lines.append(
                f"| A1 audit verify | {backend} | {figure} | >= {A1_GOAL:,.0f} records/s | "
                f"{'yes' if a1['met'] else 'no'} |"
            )
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.encryption",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--events", type=int, default=800, help="E1: events per round per app")
    parser.add_argument("--rounds", type=int, default=7, help="E1: measured rounds per app")
    parser.add_argument(
        "--entries-per-patient", type=int, default=4, help="E1: entries after each registration"
    )
    bench_report.add_backend_option(parser)
    parser.add_argument(
        "--verify-records", type=int, default=200_000, help="A1: records in the log to verify"
    )
    parser.add_argument("--verify-repeats", type=int, default=3, help="A1: timed verify passes")
    parser.add_argument("--profile", action="store_true", help="A1: cProfile one verify pass")
    parser.add_argument(
        "--no-floor",
        dest="floor",
        action="store_false",
        help="E1: skip the cipher-only floor's rounds",
    )
    parser.add_argument("--skip-e1", action="store_true")
    parser.add_argument("--skip-a1", action="store_true")
    parser.add_argument("--json-out", type=Path, help="default: bench/results/encryption-<ts>.json")
    args = parser.parse_args(argv)
    if args.events < 1 or args.rounds < 1 or args.entries_per_patient < 0:
        parser.error("--events and --rounds must be positive, --entries-per-patient >= 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    backends = bench_report.backends(args)
    started = datetime.now(UTC)
    results: dict[str, Any] = {}
    with bench_report.progress(stderr) as progress:
        for backend in backends:
            results[backend] = bench_backend(args, backend, progress)
    report, out = bench_report.save("encryption", started, args, machine(), results)
    elapsed = report["elapsed_seconds"]

    info = report["machine"]
    print(table(results))
    print()
    print(f"Command: `{report['command']}`")
    print(
        f"Machine: {info['platform']}, {info['cpu']}, {info['cpu_count']} CPUs, "
        f"Python {info['python']} ({info['implementation']}), eventsourcing "
        f"{info['eventsourcing']}"
    )
    servers = ", ".join(f"{b}: {r['server']}" for b, r in results.items())
    print(f"Stores: {servers}. Elapsed {elapsed:.0f} s. JSON: {out}")
    for backend, r in results.items():
        if "E1" in r:
            e1 = r["E1"]
            print(
                f"E1 {backend} median save ms, sealed vs plain: register "
                f"{e1['sealed']['median_register_save_ms']} vs "
                f"{e1['plain']['median_register_save_ms']}, entry "
                f"{e1['sealed']['median_entry_save_ms']} vs {e1['plain']['median_entry_save_ms']}"
            )
        if "A1" in r:
            parts = ", ".join(f"{k} {v:.2f}" for k, v in r["A1"]["breakdown_us_per_record"].items())
            print(f"A1 {backend} µs/record: {parts}")
            if r["A1"]["profile_top_tottime"]:
                print("\n".join(r["A1"]["profile_top_tottime"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
