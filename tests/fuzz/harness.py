"""Schemathesis, run in-process against the ASGI app, as one role at a time.

The engine is the one the ``schemathesis run`` command drives: the examples, coverage,
fuzzing and stateful phases (the last one follows the document's OpenAPI links). The
report keeps every failed check with a curl line that reproduces it, and the statuses
each operation answered, so that a test can say which operations reached a 2xx.
"""

import os
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import schemathesis
from schemathesis.engine import events, from_schema
from schemathesis.python import asgi

from tests.conftest import token

CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "response_headers_conformance",
)
# CI runs 100 examples per operation; `make fuzz` runs 1,000 (see the Makefile).
EXAMPLES = int(os.environ.get("CARELEDGER_FUZZ_EXAMPLES", "100"))
# A fixed seed keeps CI's run repeatable; `make fuzz` draws a new one each time.
SEED = int(os.environ.get("CARELEDGER_FUZZ_SEED", "20"))
# Operations that close what they address (a death, an erasure, an entry withdrawn, a
# membership cancelled) run after the rest: the fuzzer reuses ids from earlier answers,
# and a seeded chart closed first would leave every later write a 409.
CLOSING = r"/(death|erase|entered-in-error|cancel)$"
STATEFUL = "Stateful tests"


@dataclass(frozen=True)
class Failure:
    operation: str
    check: str
    title: str
    message: str
    reproduce: str

    def __str__(self) -> str:
        return f"{self.operation}: {self.check}: {self.title}\n{self.message}\n{self.reproduce}"


@dataclass
class Report:
    """What one role's run saw: failed checks, engine errors, statuses per operation."""

    role: str
    failures: dict[tuple[str, str, str], Failure] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    statuses: dict[str, Counter[int]] = field(default_factory=lambda: defaultdict(Counter))
    # The same, for the stateful phase's steps alone (those that followed a link or began one).
    stateful: dict[str, Counter[int]] = field(default_factory=lambda: defaultdict(Counter))

    def succeeded(self, operation: str) -> bool:
        return any(200 <= status < 300 for status in self.statuses.get(operation, {}))

    def summary(self) -> str:
        lines = [
            f"{self.role}: {len(self.failures)} failures, {len(self.errors)} errors "
            f"(CARELEDGER_FUZZ_SEED={SEED}, CARELEDGER_FUZZ_EXAMPLES={EXAMPLES})"
        ]
        lines += [str(failure) for failure in self.failures.values()]
        lines += self.errors
        return "\n\n".join(lines)

    def record(self, recorder: Any) -> None:
        for case_id, interaction in recorder.interactions.items():
            node = recorder.cases.get(case_id)
            if interaction.response is None or node is None:
                continue
            label, status = node.value.operation.label, interaction.response.status_code
            self.statuses[label][status] += 1
            if recorder.label == STATEFUL:
                self.stateful[label][status] += 1
        for case_id, checks in recorder.checks.items():
            node = recorder.cases.get(case_id)
            for check in checks:
                if check.failure_info is None:
                    continue
                problem = check.failure_info.failure
                operation = node.value.operation.label if node is not None else recorder.label
                key = (operation, check.name, problem.title)
                self.failures.setdefault(
                    key,
                    Failure(
                        operation=operation,
                        check=check.name,
                        title=problem.title,
                        message=(problem.message or "")[:1500],
                        reproduce=check.failure_info.code_sample,
                    ),
                )


def config(*, stateful: bool) -> schemathesis.Config:
    """The five checks and nothing else, EXAMPLES per operation; nothing kept between
    runs (no example database, no cache), so that a seed repeats a run."""
    return schemathesis.Config.from_dict(
        {
            "seed": SEED,
            # Answers are judged, not latency (benchmarks measure speed): the default 10 s
            # timed out a 422 on a CI machine loaded by other runs.
            "request-timeout": 120,
            "cache": {"enabled": False},
            "checks": {"enabled": False, **{name: {"enabled": True} for name in CHECKS}},
            "generation": {"max-examples": EXAMPLES, "database": "none"},
            "phases": {
                "examples": {"fill-missing": True},
                "stateful": {"enabled": stateful, "generation": {"mode": "positive"}},
            },
        }
    )


def schema_for(
    app: Any, document: dict[str, Any], role: str, claims: dict[str, Any], *, stateful: bool
) -> Any:
    """``document`` as Schemathesis tests it against ``app``, with ``role``'s token."""
    schema = schemathesis.openapi.from_dict(document, config=config(stateful=stateful))
    schema.app = app
    schema.location = "/openapi.json"

    # Minted per request (as tests/conftest.py mints them), so a long run never expires.
    @schema.auth(refresh_interval=None, retry_on=[])
    class Bearer:
        def get(self, case: Any, ctx: Any) -> str:
            return token(role, **claims)

        def set(self, case: Any, data: str, ctx: Any) -> None:
            case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}

    return schema


def run(app: Any, document: dict[str, Any], role: str, claims: dict[str, Any]) -> Report:
    """Fuzz every operation of ``document`` against ``app`` as ``role``: first those that
    leave their resource usable (with the stateful phase, which follows the links), then
    those that close it (CLOSING)."""
    opening = schema_for(app, document, role, claims, stateful=True).exclude(path_regex=CLOSING)
    closing = schema_for(app, document, role, claims, stateful=False).include(path_regex=CLOSING)
    report = Report(role)
    for part in (opening, closing):
        for event in from_schema(part).execute():
            if isinstance(event, events.ScenarioFinished):
                report.record(event.recorder)
            elif isinstance(event, events.NonFatalError):
                report.errors.append(f"{event.label}: {event.info.format()}")
            elif isinstance(event, events.FatalError):
                report.errors.append(f"fatal: {event.exception!r}")
    return report


def start_app(app: Any) -> None:
    """Start the app's lifespan (its log processes) the way Schemathesis keeps it: once."""
    with asgi.get_client(app):
        pass


def stop_app() -> None:
    """End the lifespan Schemathesis started for the app (it keeps one per process)."""
    asgi.shutdown_lifespans()
