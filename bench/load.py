"""A closed-loop HTTP load generator, run in a process of its own.

Exactly ``connections`` keep-alive connections, each issuing its next request as soon as
the last one answered, for ``seconds`` after ``warmup`` seconds. Requests come from a
list of ``(method, path, json body)`` per connection, taken in turn. Reports
throughput and p50, p99 and max latency of the measured window, and the statuses.
"""

import asyncio
import json
import statistics
import sys
import time
from typing import Any

import httpx


async def _run(spec: dict[str, Any]) -> dict[str, Any]:
    connections: int = spec["connections"]
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    measuring = False
    async with httpx.AsyncClient(
        base_url=spec["base"], limits=limits, headers=spec.get("headers", {}), timeout=60.0
    ) as client:

        async def worker(index: int, stop: asyncio.Event) -> None:
            requests = spec["requests"][index % len(spec["requests"])]
            n = 0
            while not stop.is_set():
                method, path, body = requests[n % len(requests)]
                n += 1
                started = time.perf_counter()
                response = await client.request(method, path, json=body)
                if measuring:
                    latencies.append((time.perf_counter() - started) * 1000)
                    key = str(response.status_code)
                    statuses[key] = statuses.get(key, 0) + 1

        stop = asyncio.Event()
        tasks = [asyncio.create_task(worker(i, stop)) for i in range(connections)]
        await asyncio.sleep(spec["warmup"])
        measuring = True
        began = time.perf_counter()
        await asyncio.sleep(spec["seconds"])
        measuring = False
        elapsed = time.perf_counter() - began
        stop.set()
        await asyncio.gather(*tasks)
    ordered = sorted(latencies)
    return {
        "requests": len(ordered),
        "per_second": round(len(ordered) / elapsed, 1),
        "p50_ms": round(statistics.median(ordered), 2) if ordered else None,
        "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))], 2)
        if ordered
        else None,
        "max_ms": round(ordered[-1], 2) if ordered else None,
        "statuses": statuses,
    }


def main() -> None:
    spec = json.loads(sys.stdin.read())
    print(json.dumps(asyncio.run(_run(spec))))


if __name__ == "__main__":
    main()
