"""One row of figures per fault experiment."""

import statistics
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Figures:
    fault: str
    cycles: int
    acknowledged: int = 0
    lost: int = 0
    duplicated: int = 0
    unavailable: int = 0  # answers of 503 or 507, each with Retry-After
    server_errors: int = 0  # 500 and any other 5xx: always a failure
    recoveries: list[float] = field(default_factory=list)
    note: str = ""  # what else the experiment saw, in a few words
    passed: bool = False  # set by the experiment once every check has held

    def recovery_text(self) -> str:
        if not self.recoveries:
            return "-"
        return f"{max(self.recoveries):.2f} / {statistics.median(self.recoveries):.2f}"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


FIGURES: list[Figures] = []


def recorded(row: Figures) -> Figures:
    FIGURES.append(row)
    return row
