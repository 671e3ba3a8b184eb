"""The README and docs/ say what the code does: their links resolve, every code block is
run or checked, and their tables of settings, endpoints, roles, purposes, events and
tests match the code. The README's walk-through itself runs in tests/e2e/test_readme.py.
"""

import importlib.util
import json
import re
from pathlib import Path
from typing import Any

import pytest
import typer
from eventsourcing.domain import Aggregate

import domain
from api.cli import cli
from api.settings import Settings
from application.access.purposes import DEFAULT_PURPOSE, ROLE_DEFAULTS
from tests.api import test_authorisation_matrix as matrix

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
PAGES = [README, *DOCS]
FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", flags=re.DOTALL | re.MULTILINE)
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def prose(text: str) -> str:
    """The text without code blocks and inline code, where a link is not a link."""
    return re.sub(r"`[^`\n]*`", "", FENCE.sub("", text))


def section(text: str, heading: str) -> str:
    return text.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]


def table_rows(text: str) -> list[list[str]]:
    rows = [
        [cell.strip() for cell in line.strip().strip("|").split("|")]
        for line in text.splitlines()
        if line.strip().startswith("|")
    ]
    return [row for row in rows[2:] if not set("".join(row)) <= set("-: ")]


def slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    if page.suffix != ".md":
        return set()
    text = FENCE.sub("", page.read_text())
    return {slug(h) for h in re.findall(r"^#+ (.+)$", text, flags=re.MULTILINE)}


# Links and anchors


def broken_links(page: Path) -> list[str]:
    broken = []
    for target in LINK.findall(prose(page.read_text())):
        if re.match(r"^[a-z]+:", target):  # an external address: never fetched here
            continue
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        if not resolved.exists() or (anchor and anchor not in anchors(resolved)):
            broken.append(target)
    return broken


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_relative_link_and_anchor_resolves(page: Path) -> None:
    assert broken_links(page) == []


def test_the_link_checker_catches_a_missing_page_and_a_missing_anchor(tmp_path: Path) -> None:
    (tmp_path / "b.md").write_text("# Title\n\n## Security model, and its limits\n")
    (tmp_path / "a.md").write_text(
        "[ok](b.md#security-model-and-its-limits) [self](#top) [gone](c.md) "
        "[no anchor](b.md#limits) [gone too](c.md#x) [web](https://example.org/x#y) `[code](d.md)`\n# Top\n"
    )
    assert broken_links(tmp_path / "a.md") == ["c.md", "b.md#limits", "c.md#x"]


def links_of(page: Path) -> set[str]:
    return {Path(t.partition("#")[0]).name for t in LINK.findall(page.read_text())}


def test_the_readme_links_every_page_of_docs() -> None:
    assert {page.name for page in DOCS} <= links_of(README)


# Code blocks: every one is run (the walk-through) or checked here


def blocks(page: Path) -> list[tuple[str, str]]:
    return FENCE.findall(page.read_text())


def test_every_readme_block_outside_the_walkthrough_is_a_make_command_that_exists() -> None:
    text = README.read_text()
    outside = text.replace(section(text, "Walk-through"), "")
    targets = set(re.findall(r"^([\w-]+):", (ROOT / "Makefile").read_text(), re.MULTILINE))
    for language, body in FENCE.findall(outside):
        assert language == "", f"a README block outside the walk-through: {body!r}"
        for line in body.strip().splitlines():
            command = line.split("#", 1)[0].split()
            assert command[0] == "make" and command[1] in targets, line


def careledger_command(words: list[str]) -> tuple[Any, list[str]]:
    """The (click) command a ``careledger`` line names, and the words after it."""
    command: Any = typer.main.get_command(cli)
    while hasattr(command, "commands") and words and words[0] in command.commands:
        command, words = command.commands[words[0]], words[1:]
    return command, words


def check_careledger(words: list[str]) -> None:
    command, rest = careledger_command(words)
    assert not hasattr(command, "commands"), f"no such command: careledger {words}"
    options = [p for p in command.params if p.param_type_name == "option"]
    known = {opt for param in options for opt in param.opts}
    given = {word.split("=", 1)[0] for word in rest if word.startswith("--")}
    assert given <= known, f"careledger {words}: unknown options {given - known}"
    for param in options:
        if param.required:
            assert set(param.opts) & given, f"careledger {words}: {param.opts} is required"


def check_python_module(words: list[str]) -> None:
    module = words[words.index("-m") + 1]
    spec = importlib.util.find_spec(module)
    assert spec is not None and spec.origin is not None, module
    source = Path(spec.origin).read_text()
    for option in (w.split("=", 1)[0] for w in words if w.startswith("--")):
        assert f'"{option}"' in source, f"{module} takes no {option}"


# Other projects' commands that the operations pages show (PostgreSQL's, Patroni's, etcd's,
# NATS's): named here so that a typo in our own commands is still caught.
OTHER_TOOLS = {"pg_basebackup", "pg_ctl", "psql", "patroni", "patronictl", "etcd", "nats-server"}


def check_shell(body: str) -> None:
    for line in body.replace("\\\n", " ").splitlines():
        words = [w.strip("\"'") for w in line.split(">", 1)[0].split("#", 1)[0].split()]
        while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=\S*", words[0]):
            words = words[1:]  # an environment assignment before the command
        if not words or words[0] in OTHER_TOOLS:
            continue
        if words[0].endswith("careledger"):
            check_careledger(words[1:])
        elif words[0].endswith("python") and "-m" in words:
            check_python_module(words)
        else:
            raise AssertionError(f"a docs shell line this test cannot check: {line}")


@pytest.mark.parametrize("page", DOCS, ids=lambda p: p.name)
def test_every_docs_block_is_checked(page: Path) -> None:
    for language, body in blocks(page):
        if language == "sh":
            check_shell(body)
        elif language == "mermaid":
            assert body.split()[0] in {"flowchart", "sequenceDiagram"}, body
            assert body.count("[") == body.count("]") and body.count("(") == body.count(")")
        elif language == "json":
            json.loads(body)
        else:
            raise AssertionError(f"{page.name}: a {language or 'plain'} block is not checked")


def test_a_misspelt_command_or_option_is_caught() -> None:
    check_careledger(["audit", "verify", "--head-file", "head.json"])
    for wrong in (["audit", "verfy"], ["audit", "verify", "--head"], ["keys", "rotate"]):
        with pytest.raises(AssertionError):
            check_careledger(wrong)
    with pytest.raises(AssertionError):
        check_python_module([".venv/bin/python", "-m", "bench.writes", "--no-such-flag"])


# Tables that must match the code


def test_the_readme_fits_in_twenty_kilobytes() -> None:
    assert len(README.read_bytes()) <= 20_000


def test_the_configuration_table_names_every_setting_with_its_default() -> None:
    # README's table, and the tables its rows for OpenID Connect and SMART, tuning and
    # scale-out link to (README's size is bounded).
    rows = [
        *table_rows(section(README.read_text(), "Configuration")),
        *table_rows(
            section(
                (ROOT / "docs" / "console.md").read_text(),
                "Signing in (production): OpenID Connect",
            )
        ),
        *table_rows(section((ROOT / "docs" / "security.md").read_text(), "SMART scopes")),
        *table_rows(section((ROOT / "docs" / "scale-out.md").read_text(), "Settings")),
        *table_rows(section((ROOT / "docs" / "operations.md").read_text(), "Tuning")),
    ]
    documented: dict[str, str] = {}
    for row in rows:
        for name in re.findall(r"`(CARELEDGER_\w+)`", row[0]):
            documented[name] = row[-1]
    fields = Settings.model_fields
    assert set(documented) == {f"CARELEDGER_{name.upper()}" for name in fields}
    for name, field in fields.items():
        default = field.default
        if default is None or not isinstance(default, (int, float, str)):
            continue
        text = str(int(default)) if isinstance(default, float) and default.is_integer() else default
        assert f"`{text}`" in documented[f"CARELEDGER_{name.upper()}"], name


def routes() -> set[tuple[str, str]]:
    import api.routers

    found = set()
    for module in Path(api.routers.__file__).parent.glob("*.py"):
        router = getattr(importlib.import_module(f"api.routers.{module.stem}"), "router", None)
        for route in getattr(router, "routes", []):
            for method in route.methods - {"HEAD"}:
                found.add((method, re.sub(r"\{[^}]*\}", "{}", route.path)))
    return found


def endpoint_table() -> dict[tuple[str, str], set[str]]:
    table = {}
    # README's table, and docs/fhir.md's for the /fhir routes (README's size is bounded).
    rows = [
        *table_rows(section(README.read_text(), "Endpoints and roles")),
        *table_rows(section((ROOT / "docs" / "fhir.md").read_text(), "Endpoints and roles")),
    ]
    for row in rows:
        method = row[0].strip("`").split()[0]
        for path in re.findall(r"(/[^\s`?]*)", row[0]):
            roles = set(re.findall(r"clinician|patient|admin|auditor|service", row[1]))
            table[(method, re.sub(r"\{[^}]*\}", "{}", path))] = roles
    return table


def test_the_endpoint_table_lists_every_route_and_no_other() -> None:
    assert set(endpoint_table()) == routes()


# The authorisation matrix's names for the endpoints the README tables.
MATRIX_ROUTES = {
    "GET patient": ("GET", "/v1/patients/{}"),
    "GET timeline": ("GET", "/v1/patients/{}/timeline"),
    "GET consents": ("GET", "/v1/patients/{}/consents"),
    "GET search": ("GET", "/v1/patients"),
    "POST entry": ("POST", "/v1/patients/{}/entries"),
    "GET memberships": ("GET", "/v1/memberships"),
    "GET disclosures": ("GET", "/v1/patients/{}/disclosures"),
    "GET access log": ("GET", "/v1/audit/accesses"),
    "GET verify": ("GET", "/v1/audit/verify"),
    "POST patient": ("POST", "/v1/patients"),
    "PATCH patient": ("PATCH", "/v1/patients/{}"),
    "POST amendment": ("POST", "/v1/patients/{}/entries/{}/amendments"),
    "POST entered-in-error": ("POST", "/v1/patients/{}/entries/{}/entered-in-error"),
    "POST death": ("POST", "/v1/patients/{}/death"),
    "POST consent": ("POST", "/v1/patients/{}/consents"),
    "POST revoke": ("POST", "/v1/patients/{}/consents/{}/revoke"),
    "POST restriction": ("POST", "/v1/patients/{}/restrictions"),
    "POST erase": ("POST", "/v1/patients/{}/erase"),
    "POST membership": ("POST", "/v1/memberships"),
    "POST renew": ("POST", "/v1/memberships/{}/renew"),
    "POST cancel": ("POST", "/v1/memberships/{}/cancel"),
    "POST discontinue": ("POST", "/v1/sponsors/{}/discontinue"),
    "GET head": ("GET", "/v1/audit/head"),
    "GET access record": ("GET", "/v1/audit/accesses/{}"),
    "POST replay": ("POST", "/v1/audit/accesses/{}/replay"),
    "GET break-glass": ("GET", "/v1/audit/break-glass"),
    "POST review": ("POST", "/v1/audit/accesses/{}/review"),
    "GET my access log": ("GET", "/v1/me/access-log"),
    "POST subscriber": ("POST", "/v1/subscribers"),
    "GET subscribers": ("GET", "/v1/subscribers"),
    "GET feed": ("GET", "/v1/subscribers/{}/feed"),
}


def test_the_roles_column_is_what_the_authorisation_matrix_permits() -> None:
    table = endpoint_table()
    rows: dict[str, dict[str, tuple[int, ...]]] = {**matrix.MATRIX, **matrix.MATRIX_REST}
    assert set(rows) == set(MATRIX_ROUTES), "map every endpoint the matrix tests"
    for endpoint, by_actor in rows.items():
        permitted = {
            actor.split(",")[0] for actor, (default, *_) in by_actor.items() if default < 300
        }
        if permitted:  # the feed's own service token is tested in test_subscriptions
            assert table[MATRIX_ROUTES[endpoint]] == permitted, endpoint


def test_the_purposes_table_is_the_roles_defaults() -> None:
    rows = table_rows(section(README.read_text(), "Security model"))
    purposes = {row[0]: row for row in rows if len(row) == 3}
    for role, allowed in ROLE_DEFAULTS.items():
        row = purposes[role.value]
        assert set(re.findall(r"`([A-Z]+)`", row[1])) == {p.value for p in allowed}, role
        assert row[2] == f"`{DEFAULT_PURPOSE[role].value}`", role


def aggregates() -> list[Any]:
    """Every aggregate class the domain defines."""
    found = []
    for module in sorted(Path(domain.__file__).parent.glob("*.py")):
        loaded = importlib.import_module(f"domain.{module.stem}")
        for value in vars(loaded).values():
            defined_here = getattr(value, "__module__", None) == loaded.__name__
            if defined_here and isinstance(value, type) and issubclass(value, Aggregate):
                found.append(value)
    return found


def domain_events() -> dict[tuple[str, str], int]:
    events = {}
    for aggregate in aggregates():
        for name, value in vars(aggregate).items():
            # Event is each aggregate's base, Created the library's default, never raised.
            raised = name not in ("Event", "Created")
            if raised and isinstance(value, type) and issubclass(value, aggregate.Event):
                events[(aggregate.__name__, name)] = getattr(value, "class_version", 1)
    return events


def test_the_event_catalogue_is_every_event_at_its_version() -> None:
    rows = table_rows(section((ROOT / "docs" / "events.md").read_text(), "The catalogue"))
    catalogue = {}
    for stream, event, _ in rows:
        name = re.match(r"`(\w+)`", event)
        if name:  # "(no event)" rows say what is not recorded
            version = re.search(r"\(v(\d+)\)", event)
            catalogue[(stream, name.group(1))] = int(version.group(1)) if version else 1
    assert {"Patient", "Membership", "AccessRecord"} <= {a.__name__ for a in aggregates()}
    assert catalogue == domain_events()


def test_every_test_the_docs_name_exists() -> None:
    missing = []
    for page in PAGES:
        for path, name in re.findall(r"(tests/[\w/]+\.py)(?:::(\w+))?", page.read_text()):
            source = ROOT / path
            if not source.exists() or (name and f"def {name}(" not in source.read_text()):
                missing.append(f"{path}::{name}" if name else path)
    assert missing == []


def test_the_snapshot_versions_are_the_aggregates_versions() -> None:
    text = section((ROOT / "docs" / "events.md").read_text(), "Versioning and upcasting")
    rows = {row[0].strip("`"): row[1] for row in table_rows(text)}
    upcast = {
        a.__name__: a.class_version for a in aggregates() if getattr(a, "class_version", 1) > 1
    }
    assert {name: int(version) for name, version in rows.items()} == upcast
