"""The benchmarks' server processes: ``careledger serve`` as shipped, the benchmark's own
variants of it, and the plain baseline, each on a free port, on the HTTP stack that
``careledger serve`` ships with; and the CPU time of processes, from /proc."""

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from api.settings import Settings
from bench.support.charts import ORG

ROOT = Path(__file__).resolve().parent.parent.parent
BIN = Path(sys.executable).parent
PAGE = 50


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def python_path() -> str:
    return os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))


def server_env(settings: Settings, extra: dict[str, str] | None = None) -> dict[str, str]:
    assert settings.master_key is not None and settings.jwt_secret is not None
    return {
        **os.environ,
        "CARELEDGER_DATABASE_URL": settings.database_url,
        "CARELEDGER_MASTER_KEY": settings.master_key.get_secret_value(),
        "CARELEDGER_JWT_SECRET": settings.jwt_secret.get_secret_value(),
        "CARELEDGER_VAR_DIR": str(settings.var_dir),
        "CARELEDGER_ORG": ORG,
        "CARELEDGER_LOG_LEVEL": "WARNING",
        "PYTHONPATH": python_path(),
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        **(extra or {}),
    }


def careledger_serve(*flags: str, workers: int = 1) -> list[str]:
    """``careledger serve`` as shipped, on ``workers`` processes (port added later)."""
    return [str(BIN / "careledger"), "serve", "--workers", str(workers), *flags]


def plain_serve(workers: int = 1) -> list[str]:
    """The plain baseline (``bench.plain_app``) on the same stack and process count."""
    return [sys.executable, "-m", "bench.plain_app", "--workers", str(workers)]


@contextmanager
def running_server(
    label: str, command: list[str], env: dict[str, str], workdir: Path, health: str = "/healthz"
) -> Iterator[tuple[str, int]]:
    """Start ``command --port P`` and wait for ``health``: yields (base URL, pid)."""
    port = free_port()
    log_path = workdir / f"server-{label}-{port}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(  # noqa: S603
            [*command, "--port", str(port)],
            cwd=workdir,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{label} server exited: {log_path.read_text()[-3000:]}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{base}{health}", timeout=1).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{label} server not healthy in 120 s")
            time.sleep(0.1)
        yield base, process.pid
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def settle(base: str, path: str, token: str, head: int, projecting: bool = True) -> None:
    """A first read at ``min_position`` (the views reached the seeded head), then
    ``/readyz`` until no projection lags (none catching up during the measurement)."""
    headers = {"Authorization": f"Bearer {token}"}
    response = httpx.get(
        base + path, params={"limit": PAGE, "min_position": head}, headers=headers, timeout=60
    )
    assert response.status_code == 200, response.text
    assert len(response.json()["entries"]) == PAGE
    if not projecting:
        return
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        ready = httpx.get(f"{base}/readyz", timeout=10).json()
        if all(p["lag_events"] == 0 for p in ready["projections"].values()):
            return
        time.sleep(0.2)
    raise RuntimeError(f"projections did not catch up: {ready}")


# CPU accounting ----------------------------------------------------------------------

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(stat_path: str) -> tuple[str, float]:
    """(comm, utime + stime in seconds) from a /proc stat file."""
    text = Path(stat_path).read_text()
    comm = text[text.index("(") + 1 : text.rindex(")")]
    fields = text[text.rindex(")") + 2 :].split()
    return comm, (int(fields[11]) + int(fields[12])) / TICK


def postgres_cpu() -> float:
    """CPU seconds of every PostgreSQL process on the machine (backends, WAL writer...)."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            comm, seconds = cpu_seconds(str(stat))
            if comm == "postgres":
                total += seconds
    return total


def thread_cpu() -> dict[str, float]:
    """CPU seconds of this process's threads, by Python thread name (numbers dropped)."""
    by_name: dict[str, float] = {}
    names = {t.native_id: t.name for t in threading.enumerate()}
    for stat in Path("/proc/self/task").glob("*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            tid = int(stat.parent.name)
            _, seconds = cpu_seconds(str(stat))
            name = names.get(tid, "(non-Python thread)")
            name = name.split(" (")[0].rstrip("_-0123456789") or name
            by_name[name] = by_name.get(name, 0.0) + seconds
    return by_name


# The servers ------------------------------------------------------------------------------
