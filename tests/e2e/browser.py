"""Headless Chromium from Debian's package, driven by Playwright, with axe-core.

Playwright is pointed at /usr/bin/chromium (``apt-get install chromium``; never a
browser that Playwright downloads). Without the browser the console stories are
skipped with a notice, except under CI=true, where that is a failure. axe-core is
vendored under tests/e2e/vendor/axe-core with its licence (MPL-2.0).
"""

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import IN_CI

CHROMIUM = "/usr/bin/chromium"
AXE = Path(__file__).parent / "vendor" / "axe-core" / "axe.min.js"
SCREENSHOTS = Path(__file__).parents[2] / "docs" / "console"


def require_browser() -> None:
    problem = None
    if shutil.which(CHROMIUM) is None:
        problem = f"{CHROMIUM} is missing (apt-get install -y chromium)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            problem = "playwright is not installed (pip install -e '.[dev]')"
    if problem is not None:
        if IN_CI:
            pytest.fail(f"CI=true and {problem}")
        pytest.skip(f"NOTICE: skipping the browser stories - {problem}")


@contextmanager
def chromium(*, bypass_csp: bool) -> Iterator[Any]:
    """A new browser context; ``bypass_csp`` only so that axe can be injected."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            context = browser.new_context(
                bypass_csp=bypass_csp,
                viewport={"width": 1280, "height": 800},
                accept_downloads=True,
            )
            yield context
        finally:
            browser.close()


def serious_violations(page: Any) -> list[str]:
    """axe-core's serious and critical violations on the page, one line each."""
    page.add_script_tag(path=str(AXE))
    violations = page.evaluate("async () => (await axe.run()).violations")
    return [
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}"
        for v in violations
        if v["impact"] in ("serious", "critical")
    ]


class Pages:
    """Each page a story shows: its screenshot saved and its axe-core findings kept."""

    def __init__(self, page: Any, shots: Path) -> None:
        self.page = page
        self.shots = shots
        self.found: dict[str, list[str]] = {}

    def shown(self, name: str) -> None:
        self.found[name] = serious_violations(self.page)
        self.page.screenshot(path=str(self.shots / f"{name}.png"), full_page=True)

    def assert_accessible(self, pages: int) -> None:
        """Every page was checked, and none had a serious or critical violation."""
        assert {name: v for name, v in self.found.items() if v} == {}, self.found
        assert len(self.found) == pages


def screenshots_for(database_url: str, tmp_path: Path) -> Path:
    """docs/console/ on the SQLite run of ``make screenshots``; otherwise a scratch
    folder, so that ``make test`` leaves the checkout as it found it."""
    wanted = os.environ.get("CARELEDGER_SCREENSHOTS") == "docs"
    shots = SCREENSHOTS if wanted and database_url.startswith("sqlite") else tmp_path / "shots"
    shots.mkdir(parents=True, exist_ok=True)
    return shots


def login_link(base: str, env: dict[str, str], role: str, sub: str, *extra: str) -> str:
    """A one-time console login URL from ``careledger token --login``."""
    from tests.e2e.server import BIN

    login = subprocess.run(
        [
            *(str(BIN / "careledger"), "token", "--login", "--role", role, "--sub", sub),
            *("--base-url", base, *extra),
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert login.startswith(f"{base}/console/login?code=")
    return login
