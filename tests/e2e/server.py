"""Start ``careledger serve`` as a real process on a free port."""

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.conftest import JWT_SECRET, owner_url_for

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def running_server(
    database_url: str,
    workdir: Path,
    *extra_args: str,
    environment: dict[str, str] | None = None,
    port: int | None = None,
) -> Iterator[tuple[str, dict[str, str], Path]]:
    """Yields (base URL, environment, log file). The log is kept for inspection. ``port``
    when another process must know the address first (an OpenID provider's redirect)."""
    port = port or free_port()
    env = {
        **os.environ,
        "CARELEDGER_DATABASE_URL": database_url,
        **(
            {"CARELEDGER_OWNER_DATABASE_URL": owner}
            if (owner := owner_url_for(database_url))
            else {}
        ),
        "CARELEDGER_JWT_SECRET": JWT_SECRET,
        "CARELEDGER_VAR_DIR": str(workdir / "var"),
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        **(environment or {}),
    }
    log_path = workdir / "server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [str(BIN / "careledger"), "serve", "--port", str(port), "--create", *extra_args],
            cwd=workdir,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            _wait_healthy(base, process, log_path)
            yield base, env, log_path
        finally:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()


def _wait_healthy(base: str, process: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited: {log_path.read_text()[-2000:]}")
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError("server did not become healthy in 30 s")
