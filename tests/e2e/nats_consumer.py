"""A real JetStream consumer, as a downstream service would run one (nats-py)."""

import asyncio
from dataclasses import dataclass
from typing import Any

import nats
import orjson

STREAM = "CARELEDGER"


@dataclass(frozen=True)
class Received:
    msg_id: str
    access_id: str
    body: dict[str, Any]
    raw: bytes
    stored_at: float  # when JetStream stored it (the stream leader's clock), in seconds


def collect(
    url: str, subject: str, expect: int, *, timeout: float = 60, quiet: float = 1.5
) -> list[Received]:
    """Every message on ``subject`` from the stream's start: at least ``expect`` of them
    (or all there are at ``timeout``), then whatever else arrives within ``quiet``."""
    return asyncio.run(_collect(url, subject, expect, timeout, quiet))


async def _collect(
    url: str, subject: str, expect: int, timeout: float, quiet: float
) -> list[Received]:
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        # The relay creates the stream when it first connects; and a cluster that has
        # just lost a node creates no consumer until it has elected new leaders.
        while True:
            try:
                sub = await js.subscribe(subject, stream=STREAM, ordered_consumer=True)
                break
            except (nats.js.errors.NotFoundError, nats.errors.TimeoutError):
                if loop.time() > deadline:
                    raise
                await asyncio.sleep(0.2)
        got: list[Received] = []
        while True:
            remaining = deadline - loop.time()
            if len(got) >= expect:
                wait = quiet
            elif remaining > 0:
                wait = min(remaining, 1.0)
            else:
                break
            try:
                msg = await sub.next_msg(timeout=wait)
            except nats.errors.TimeoutError:
                if len(got) >= expect:
                    break
                continue
            headers = msg.headers or {}
            got.append(
                Received(
                    msg_id=headers.get("Nats-Msg-Id", ""),
                    access_id=headers.get("Careledger-Access-Id", ""),
                    body=orjson.loads(msg.data),
                    raw=msg.data,
                    stored_at=msg.metadata.timestamp.timestamp(),
                )
            )
        await sub.unsubscribe()
        return got
    finally:
        await nc.close()


def purge(url: str, subject: str) -> None:
    """Remove a test's messages from the shared stream."""

    async def _purge() -> None:
        nc = await nats.connect(url)
        try:
            await nc.jetstream().purge_stream(STREAM, subject=subject)
        finally:
            await nc.close()

    asyncio.run(_purge())
