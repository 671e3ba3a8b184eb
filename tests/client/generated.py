"""A Python client generated from /openapi.json by openapi-python-client, at test time.

The generator lives in a venv of its own (``make install`` builds .venv/generator: its
dependencies clash with the project's). The client is generated into a temporary
directory, never committed, and imported from there. Operations are found by method and
path, not by generated function names, which follow the document's operation ids.
"""

import importlib
import inspect
import json
import os
import pkgutil
import re
import subprocess
import sys
from enum import Enum
from pathlib import Path
from types import ModuleType
from typing import Any, get_args, get_type_hints

from fastapi.testclient import TestClient

PACKAGE = "careledger_client"
GENERATOR = Path(
    os.environ.get(
        "CARELEDGER_CLIENT_GENERATOR",
        Path(__file__).resolve().parents[2] / ".venv/generator/bin/openapi-python-client",
    )
)
# The generator's post-hooks run ruff from PATH; the generated code is not ours to lint.
CONFIG = (
    f"package_name_override: {PACKAGE}\nproject_name_override: careledger-client\npost_hooks: []\n"
)
_REQUEST = re.compile(r'"method": "(\w+)",\s*"url": "([^"]+)"')


def generate(document: dict[str, Any], directory: Path) -> ModuleType:
    """Generate the client for ``document`` under ``directory`` and import it.

    The generator's warnings (an operation or model it had to leave out) fail: a client
    missing a piece is a document a stranger's tools cannot read."""
    spec, config = directory / "openapi.json", directory / "config.yaml"
    spec.write_text(json.dumps(document))
    config.write_text(CONFIG)
    run = subprocess.run(
        [
            str(GENERATOR),
            "generate",
            "--path",
            str(spec),
            "--config",
            str(config),
            "--meta",
            "none",
            "--output-path",
            str(directory / PACKAGE),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = run.stdout + run.stderr
    assert run.returncode == 0 and "warning" not in output.lower(), output
    sys.path.insert(0, str(directory))
    try:
        return importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(directory))


def forget(package: ModuleType) -> None:
    """Unload the generated package, so that another session can generate it afresh."""
    for name in [name for name in sys.modules if name.split(".")[0] == package.__name__]:
        del sys.modules[name]


class Api:
    """The generated operations by (method, path), called as one actor."""

    def __init__(self, package: ModuleType, app: Any, bearer: str) -> None:
        client_class = package.AuthenticatedClient
        self.client = client_class(base_url="http://testserver", token=bearer)
        # The generated client's own httpx.Client, with the app in-process instead of a socket.
        self.client.set_httpx_client(TestClient(app, headers={"Authorization": f"Bearer {bearer}"}))
        self.operations: dict[tuple[str, str], ModuleType] = {}
        api = importlib.import_module(f"{package.__name__}.api")
        for found in pkgutil.walk_packages(api.__path__, f"{api.__name__}."):
            module = importlib.import_module(found.name)
            request = _REQUEST.search(inspect.getsource(module)) if not found.ispkg else None
            if request is not None:
                self.operations[(request[1], request[2])] = module
        self.package = package

    def call(
        self, method: str, path: str, body: dict[str, Any] | None = None, **arguments: Any
    ) -> Any:
        """Call the operation: ``body`` is turned into its generated model first, and the
        answer is the generator's ``Response`` with ``parsed`` a generated model."""
        module = self.operations[(method, path)]
        hints = get_type_hints(module.sync_detailed)
        if body is not None:
            arguments["body"] = hints["body"].from_dict(body)
        for name, value in arguments.items():
            enums = [kind for kind in get_args(hints[name]) if _is_enum(kind)]
            if isinstance(value, str) and (enums or _is_enum(hints[name])):
                arguments[name] = (enums or [hints[name]])[0](value)
        return module.sync_detailed(client=self.client, **arguments)


def _is_enum(kind: Any) -> bool:
    return isinstance(kind, type) and issubclass(kind, Enum)
