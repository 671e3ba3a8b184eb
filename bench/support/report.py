"""What every benchmark reports beside its figures: the machine and the exact command."""

import argparse
import contextlib
import cProfile
import io
import json
import os
import platform
import pstats
import shlex
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from api.auth import mint_token
from application.context import Role


def machine(*packages: str) -> dict[str, Any]:
    """Platform, CPU model and count, Python, and the versions of ``packages``."""
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "platform": platform.platform(),
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        **{name: version(name) for name in packages},
    }


def command_line(module: str, arguments: Sequence[str] | None = None) -> str:
    """The command that reproduces this run (with these arguments, or this process's
    own), relative to the project root."""
    python = Path(sys.executable)
    with contextlib.suppress(ValueError):
        python = python.relative_to(Path.cwd())
    given = sys.argv[1:] if arguments is None else arguments
    return shlex.join([str(python), "-m", module, *given])


def yes(flag: bool) -> str:
    return "yes" if flag else "**no**"


RESULTS_DIR = Path(__file__).resolve().parent.parent / "results"


def progress(console: Console) -> Progress:
    """The benchmarks' progress bars: on stderr, so stdout carries only the table."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )


def save(
    name: str,
    started: datetime,
    args: argparse.Namespace,
    machine_info: dict[str, Any],
    results: Any,
) -> tuple[dict[str, Any], Path]:
    """Write the run as JSON (``--json-out``, or ``results/<name>-<UTC time>.json``)."""
    report = {
        "benchmark": f"bench.{name}",
        "command": command_line(f"bench.{name}"),
        "started_at": started.isoformat(),
        "elapsed_seconds": round((datetime.now(UTC) - started).total_seconds(), 1),
        "machine": machine_info,
        "arguments": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "results": results,
    }
    out = args.json_out or RESULTS_DIR / f"{name}-{started:%Y%m%dT%H%M%SZ}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    return report, out


BACKENDS = ("postgres", "sqlite")


def add_backend_option(parser: argparse.ArgumentParser, note: str | None = None) -> None:
    parser.add_argument("--backend", choices=(*BACKENDS, "both"), default="both", help=note)


def backends(args: argparse.Namespace) -> list[str]:
    """The backends ``--backend`` names, PostgreSQL first."""
    return list(BACKENDS) if args.backend == "both" else [args.backend]


def profile_lines(profiler: cProfile.Profile, top: int = 25) -> list[str]:
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("cumulative").print_stats(top)
    stats.sort_stats("tottime").print_stats(top)
    return [line.rstrip() for line in out.getvalue().splitlines() if line.strip()]


def print_head(report: dict[str, Any], info: dict[str, Any], results: list[Any]) -> None:
    """The command, the machine and the servers, and the table's head, on stdout."""
    print(f"Command: `{report['command']}`  ")
    servers = ", ".join(r["server"] for r in results)
    print(f"Machine: {info['cpu']} ({info['cpu_count']} CPUs), {servers}\n")
    print("| id | scenario | figure | goal | met |")
    print("|---|---|---|---|---|")


def clinician_token(secret: bytes, org: str) -> str:
    """A clinician's bearer token for an in-process client, valid for an hour."""
    return mint_token(
        secret,
        role=Role.CLINICIAN,
        sub="dr-bench",
        org=org,
        patient=None,
        ttl_seconds=3600,
        now=int(time.time()),
    )
