"""Issue 20, defect 7: one backoff for every supervised loop, with full jitter. Each
delay lies between 0 and a ceiling that doubles from the first delay up to the cap;
a success starts it over."""

import random
import threading
import time

from infrastructure.follower import LogFollower
from infrastructure.retry import Backoff


def test_ceilings_double_from_the_first_delay_up_to_the_cap() -> None:
    # With the largest draw, each delay is its ceiling
    backoff = Backoff(first=0.1, cap=1.0, draw=lambda: 1.0)
    delays = [round(backoff.next_delay(), 6) for _ in range(7)]
    assert delays == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0]
    # And with the smallest, no wait at all: full jitter goes down to zero
    assert Backoff(draw=lambda: 0.0).next_delay() == 0.0


def test_every_jittered_delay_lies_within_its_bounds() -> None:
    draws = random.Random(20)
    backoff = Backoff(first=0.1, cap=5.0, draw=draws.random)
    seen = []
    for _ in range(2_000):
        ceiling = backoff.ceiling()
        delay = backoff.next_delay()
        assert 0.0 <= delay < ceiling <= 5.0
        seen.append(delay)
    at_cap = seen[10:]  # past 0.1 * 2**6, every ceiling is the cap
    assert len({round(d, 9) for d in at_cap}) > 1_000, "the delays are jittered"
    assert 2.0 < sum(at_cap) / len(at_cap) < 3.0  # uniform on [0, 5): a mean near 2.5


def test_a_success_starts_the_delays_over() -> None:
    backoff = Backoff(first=0.1, cap=10.0, draw=lambda: 1.0)
    for _ in range(5):
        backoff.next_delay()
    assert backoff.ceiling() == 3.2
    backoff.reset()
    assert backoff.next_delay() == 0.1


def test_a_long_outage_never_overflows() -> None:
    backoff = Backoff(first=0.1, cap=10.0, draw=lambda: 1.0)
    for _ in range(100_000):
        backoff.next_delay()
    assert backoff.next_delay() == 10.0


def test_waiting_returns_at_once_when_stopping() -> None:
    stopping = threading.Event()
    stopping.set()
    started = time.monotonic()
    assert Backoff(first=60.0, cap=60.0, draw=lambda: 1.0).wait(stopping) is True
    assert time.monotonic() - started < 1.0


def test_a_failing_follower_keeps_retrying_within_the_cap() -> None:
    # Given a follower whose every batch fails, with delays capped at 20 ms
    class Failing:
        name = "failing"
        topics: list[str] = []

        def position(self) -> int:
            raise RuntimeError("store down")

    class Ledger:
        def on_recorded(self, listener: object) -> None:
            pass

    follower = LogFollower(Ledger(), Failing(), max_backoff=0.02)  # type: ignore[arg-type]
    follower.start()
    time.sleep(0.3)
    follower.stop()
    # Then it survives each failure (its log line once killed the thread: "process" is
    # a LogRecord attribute) and retries within the cap: about 30 times in 300 ms
    assert follower.errors >= 5
