"""The backoff of every supervised loop (projections, their listener, log followers,
the NATS relay): exponential and capped, with full jitter (docs/operations.md).

Full jitter draws each delay uniformly between 0 and the capped exponential, so that
processes that failed together (say, on a database restart) do not all retry in step.
"""

import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Backoff:
    first: float = 0.1  # the ceiling of the first delay, in seconds
    cap: float = 10.0  # no delay is longer
    draw: Callable[[], float] = field(default=random.random, repr=False)  # in [0, 1)
    failures: int = 0

    def ceiling(self) -> float:
        """The longest the next delay can be."""
        return min(self.cap, self.first * 2 ** min(self.failures, 62))

    def next_delay(self) -> float:
        """A delay for this failure, uniform in [0, ceiling), and the next ceiling up."""
        delay = self.ceiling() * self.draw()
        if self.ceiling() < self.cap:  # once at the cap, counting on buys nothing
            self.failures += 1
        return delay

    def wait(self, stopping: threading.Event) -> bool:
        """Sleep for the next delay unless stopped; True if stopping was set."""
        return stopping.wait(self.next_delay())

    def reset(self) -> None:
        """After a success: the next failure starts from the first delay again."""
        self.failures = 0
