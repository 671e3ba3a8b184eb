"""A real OpenID provider on loopback: panva/oidc-provider (npm), pinned by
tests/e2e/oidc/package-lock.json and installed with ``npm ci`` into a cache directory
(``$CARELEDGER_TEST_CACHE`` or ~/.cache/careledger), keyed by the lock's hash. Without
node and npm the sign-in test is skipped with a notice, except under CI=true."""

import hashlib
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.conftest import IN_CI
from tests.e2e.server import free_port

HERE = Path(__file__).parent / "oidc"
FILES = ("package.json", "package-lock.json", "provider.mjs")
CLIENT_ID = "careledger-console"


def provider_dir() -> Path:
    """The provider's files with their node_modules, installed once per lock file."""
    for tool in ("node", "npm"):
        if shutil.which(tool) is None:
            message = f"{tool} is missing (node 20+ and npm run the test's OpenID provider)"
            if IN_CI:
                pytest.fail(f"CI=true and {message}")
            pytest.skip(f"NOTICE: skipping the OpenID sign-in story - {message}")
    lock = (HERE / "package-lock.json").read_bytes() + (HERE / "provider.mjs").read_bytes()
    cache = Path(os.environ.get("CARELEDGER_TEST_CACHE", Path.home() / ".cache" / "careledger"))
    target = cache / f"oidc-provider-{hashlib.sha256(lock).hexdigest()[:16]}"
    if not (target / "node_modules" / "oidc-provider").is_dir():
        target.mkdir(parents=True, exist_ok=True)
        for name in FILES:
            shutil.copy(HERE / name, target / name)
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--cache", str(cache / "npm")],
            cwd=target,
            check=True,
            capture_output=True,
            timeout=300,
        )
    return target


@contextmanager
def running_provider(
    redirect_uri: str, client_secret: str, accounts: dict[str, dict[str, str]], log: Path
) -> Iterator[str]:
    """Yields the issuer URL of a provider that knows these accounts (login: claims)."""
    where, port = provider_dir(), free_port()
    env = {
        **os.environ,
        "OIDC_PORT": str(port),
        "OIDC_REDIRECT_URI": redirect_uri,
        "OIDC_CLIENT_SECRET": client_secret,
        "OIDC_ACCOUNTS": json.dumps(accounts),
    }
    issuer = f"http://127.0.0.1:{port}"
    with log.open("wb") as out:
        process = subprocess.Popen(
            ["node", "provider.mjs"], cwd=where, env=env, stdout=out, stderr=subprocess.STDOUT
        )
        try:
            deadline = time.monotonic() + 30
            while True:
                if process.poll() is not None:
                    raise RuntimeError(f"the OpenID provider exited: {log.read_text()[-2000:]}")
                try:
                    found = httpx.get(f"{issuer}/.well-known/openid-configuration", timeout=1)
                    if found.status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError("the OpenID provider did not start in 30 s")
                time.sleep(0.1)
            yield issuer
        finally:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
