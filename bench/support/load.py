"""HTTP load from wrk, a compiled client, with a Lua script of ``bench/lua/``.

wrk runs one connection per thread, so each connection has a Lua state of its own (one
patient per connection for writes); each phase is an unmeasured warm-up run followed by
the measured run. p50 and p99 come from wrk's latency distribution (the scripts'
``done()`` prints them as JSON); the client's CPU share is wrk's CPU time over the
measured wall time times the machine's cores, read from ``getrusage`` of the child.
"""

import json
import os
import resource
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

LUA = Path(__file__).resolve().parent.parent / "lua"
INSTALL = "apt-get install -y wrk"


def require_wrk() -> str:
    """wrk's path, or a clear exit that says how to install it."""
    found = shutil.which("wrk")
    if found is None:
        raise SystemExit(f"bench: wrk is not installed (Debian/Ubuntu: `{INSTALL}`)")
    return found


def wrk(
    base: str,
    script: str,
    env: dict[str, str],
    *,
    connections: int,
    seconds: float,
    warmup: float,
) -> dict[str, Any]:
    """A warm-up run, then the measured one: its figures and the client's CPU share."""
    if warmup > 0:
        _run(base, script, {**env, "BENCH_RUN": "0"}, connections, warmup)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.perf_counter()
    figures = _run(base, script, {**env, "BENCH_RUN": "1"}, connections, seconds)
    wall = time.perf_counter() - began
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    seconds_measured = figures["duration_us"] / 1e6
    errors = figures["errors"]
    failed = errors["status"] + errors["connect"] + errors["read"] + errors["write"]
    ok = figures["requests"] - errors["status"]
    latency = figures["latency_us"]
    return {
        "requests": figures["requests"],
        "ok": ok,
        "seconds": round(seconds_measured, 3),
        "per_second": round(ok / seconds_measured, 1),
        "p50_ms": round(latency["p50"] / 1000, 2),
        "p90_ms": round(latency["p90"] / 1000, 2),
        "p99_ms": round(latency["p99"] / 1000, 2),
        "max_ms": round(latency["max"] / 1000, 2),
        "errors": errors,
        "failed": failed,
        "client_cpu_share": round(cpu / (wall * (os.cpu_count() or 1)), 3),
    }


def _run(base: str, script: str, env: dict[str, str], connections: int, seconds: float) -> Any:
    command = [
        require_wrk(),
        f"--threads={connections}",
        f"--connections={connections}",
        f"--duration={max(1, round(seconds))}s",
        "--timeout=30s",
        f"--script={LUA / script}",
        base,
    ]
    done = subprocess.run(  # noqa: S603
        command,
        env={**os.environ, **env, "BENCH_LUA": str(LUA)},
        capture_output=True,
        text=True,
        check=False,
        timeout=seconds + 120,
    )
    marked = [line for line in done.stdout.splitlines() if line.startswith("BENCH-JSON ")]
    if done.returncode != 0 or not marked:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr[-2000:]}")
    return json.loads(marked[-1].removeprefix("BENCH-JSON "))
