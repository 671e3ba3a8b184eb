"""NATS JetStream for the relay: the broker adapter, its tracking, and its supervisor.

The broker runs nats-py's asyncio client on a thread of its own and offers a blocking
``publish`` to the relay. It publishes a batch in order, each message with a reply
subject under one inbox that collects JetStream's acknowledgements, and returns once
every message is acknowledged, so tracking moves only past messages the stream has
stored. nats-py reconnects by itself with backoff (to any server of a cluster); a batch
caught by a disconnect or a stream-leader election times out or is refused, and the
supervisor retries it.

Order survives a lost message: each message names the one published before it
(``Nats-Expected-Last-Msg-Id``), so once one is lost (in a dead server's socket, or
refused during an election) JetStream refuses every later one instead of storing it
ahead of the retry. After such a failure the chain restarts, and each subject's batch
is first trimmed of what the stream already holds (its last message's
``Careledger-Position``): a retry then republishes no copies, whose ids would break the
chain. JetStream still drops a copy by ``Nats-Msg-Id`` should one slip through.
"""

import asyncio
import contextlib
import dataclasses
import logging
import threading
from collections.abc import Awaitable, Iterable, Sequence
from concurrent.futures import Future
from typing import Any, TypeVar

import nats
import orjson
from eventsourcing.persistence import ProcessRecorder, Tracking
from nats.js.api import StorageType, StreamConfig
from nats.js.errors import NotFoundError

from application.charts.read_models import ViewsBehind
from application.subscriptions.relay import SUBJECT_PREFIX, Message, Relay
from application.subscriptions.subscriptions import DELIVERY_VIEW
from infrastructure.projections.live import Positions
from infrastructure.retry import Backoff

log = logging.getLogger("careledger.relay")
_CONNECTION_LOST = (OSError, nats.errors.UnexpectedEOF, nats.errors.StaleConnectionError)

STREAM = "CARELEDGER"
# How long JetStream remembers a Nats-Msg-Id: a relay restarted within it never
# publishes a duplicate. Generous, because a restart may wait for the database.
DUPLICATE_WINDOW_SECONDS = 600.0

T = TypeVar("T")


class NatsBroker:
    def __init__(
        self,
        servers: Sequence[str],
        *,
        timeout: float = 10.0,
        stall: float = 3.0,
        replicas: int | None = None,
    ) -> None:
        # One server, or a cluster's (api.settings normalises them); nats-py fails over.
        if isinstance(servers, str):  # a URL is a sequence too: of one-letter "servers"
            raise TypeError("NatsBroker takes a list of server URLs, not one string")
        self.servers = list(servers)
        self.timeout = timeout
        # An answer from JetStream (an acknowledgement, a stream lookup) not come within
        # this long was lost, to a dead server or stream leader: retry, not wait it out.
        self.stall = min(stall, timeout)
        self.replicas = replicas
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="nats", daemon=True)
        self._thread.start()
        self._nc: Any = None
        self._js: Any = None
        self._stream_ready = False
        # Batches take turns, whoever sends them (several databases' relays may share a
        # broker): the chain of expected ids then follows the order on the wire.
        self._turn = asyncio.Lock()
        self.reconnects = 0
        # Set once the connection is seen lost. nats-py reconnects by itself, but its
        # callbacks were seen to come late or never (nats-py 2.15: disconnected only
        # after publishing had resumed, reconnected not at all), so a loss is also
        # known from a connection error, and the reconnect from the first publish
        # acknowledged after it.
        self._disconnected = False
        # The id of the last message published in an unbroken chain (None: restart it),
        # and the subjects trimmed against the stream since the chain last broke.
        self._previous: str | None = None
        self._synced: set[str] = set()
        self._held: set[str] = set()  # ids answered as duplicates by a failed batch
        self.trimmed = 0  # messages found already stored when a chain restarted

    def connect(self) -> None:
        self._run(self._connected(), self.timeout + 5)

    def publish(self, messages: Sequence[Message]) -> "Future[int]":
        return asyncio.run_coroutine_threadsafe(self._publish_in_turn(messages), self._loop)

    async def _publish_in_turn(self, messages: Sequence[Message]) -> int:
        async with self._turn:
            return await self._publish(messages)

    def close(self) -> None:
        if self._nc is not None:
            # Closing a broken connection: nothing is left to save.
            with contextlib.suppress(Exception):
                self._run(self._nc.close(), 5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def _run(self, coroutine: Awaitable[T], timeout: float) -> T:
        future = asyncio.run_coroutine_threadsafe(coroutine, self._loop)  # type: ignore[arg-type]
        return future.result(timeout)

    async def _connected(self) -> Any:
        if self._nc is None or self._nc.is_closed:
            self._nc = await nats.connect(
                servers=self.servers,
                name="careledger-relay",
                allow_reconnect=True,
                max_reconnect_attempts=-1,
                reconnect_time_wait=0.5,
                connect_timeout=2,
                error_cb=self._error,
                reconnected_cb=self._reconnected,
                disconnected_cb=self._lost,
            )
            self._js = self._nc.jetstream(timeout=self.stall)
            self._stream_ready = False
        if not self._stream_ready:
            await ensure_stream(self._js, self.replicas)
            self._stream_ready = True
        return self._js

    async def _publish(self, messages: Sequence[Message]) -> int:
        """Publish in order, each with a reply subject of its own under one inbox, and
        return once JetStream has acknowledged all of them.

        The acknowledgements are collected by one subscription per batch, not by
        ``publish_async``'s future, semaphore and ``wait_for`` task per message: those
        cost the relay as much of its one process's CPU as deciding the messages did.
        """
        if not messages:
            return 0
        await self._connected()
        try:
            messages = await self._not_stored(messages)
        except BaseException:
            self._broken()
            raise
        if not messages:
            return 0
        nc = self._nc
        batch = _Acks(len(messages), self._loop.create_future())
        inbox = nc.new_inbox()
        sub = await nc.subscribe(inbox + ".*", cb=batch.received)
        try:
            for i, m in enumerate(messages):
                headers = {
                    "Nats-Msg-Id": m.msg_id,
                    "Careledger-Access-Id": str(m.access_id),
                    "Careledger-Position": str(m.position),
                }
                if self._previous is not None:
                    headers["Nats-Expected-Last-Msg-Id"] = self._previous
                self._previous = m.msg_id
                await nc.publish(m.subject, m.body, reply=f"{inbox}.{i}", headers=headers)
            stored = await self._acknowledged(batch)
        except BaseException as error:
            # What JetStream answered as a duplicate it holds, or held within the window
            # (since purged, say): the retry leaves it out rather than chain onto it.
            self._broken(messages[i].msg_id for i in batch.duplicates)
            if isinstance(error, PublishRefused):
                self._stream_ready = False  # deleted, say: made again before the retry
            raise
        finally:
            with contextlib.suppress(Exception):  # a lost connection drops it anyway
                await sub.unsubscribe()
        self._held.clear()
        await self._reconnected()
        return stored

    async def _acknowledged(self, batch: "_Acks") -> int:
        """The batch's count of messages stored, once all are acknowledged; TimeoutError
        after ``timeout``, or sooner when no acknowledgement came for ``stall``."""
        deadline = self._loop.time() + self.timeout
        while True:
            waiting = len(batch.waiting)
            wait = min(self.stall, deadline - self._loop.time())
            try:
                return await asyncio.wait_for(asyncio.shield(batch.done), max(wait, 0))
            except TimeoutError:
                if len(batch.waiting) == waiting or self._loop.time() >= deadline:
                    raise

    async def _not_stored(self, messages: Sequence[Message]) -> Sequence[Message]:
        """The messages past the last one the stream holds on each subject, looked up
        once per subject after the chain broke (a subject's messages are stored in
        order, so everything up to its last stored position is there)."""
        kept: list[Message] = []
        stored_to: dict[str, int] = {}
        for m in messages:
            if m.msg_id in self._held:
                self.trimmed += 1
                continue
            if m.subject not in self._synced:
                if m.subject not in stored_to:
                    stored_to[m.subject] = await self._last_position(m.subject)
                if m.position <= stored_to[m.subject]:
                    self.trimmed += 1
                    continue
            kept.append(m)
        self._synced.update(stored_to)
        return kept

    async def _last_position(self, subject: str) -> int:
        try:
            last = await self._js.get_last_msg(STREAM, subject)
        except NotFoundError:
            return 0
        return int((last.headers or {}).get("Careledger-Position", 0))

    def _broken(self, held: Iterable[str] = ()) -> None:
        """A message of the chain may be lost: restart it, trimming each subject first."""
        self._previous = None
        self._synced.clear()
        self._held.update(held)

    async def _error(self, error: Exception) -> None:
        if isinstance(error, _CONNECTION_LOST):
            self._disconnected = True
        log.warning("nats error", extra={"error": type(error).__name__})

    async def _lost(self) -> None:
        self._disconnected = True

    async def _reconnected(self) -> None:
        """Once per loss of the connection, whichever tells first."""
        if self._disconnected:
            self._disconnected = False
            self.reconnects += 1
            log.info("nats reconnected")


class _Acks:
    """A batch's JetStream acknowledgements, by the index in each reply subject."""

    def __init__(self, n: int, done: "asyncio.Future[int]") -> None:
        self.waiting = set(range(n))
        self.stored = 0
        self.duplicates: list[int] = []
        self.done = done

    async def received(self, msg: Any) -> None:
        if self.done.done():
            return
        index = int(msg.subject.rpartition(".")[2])
        if index not in self.waiting:
            return  # a repeated answer
        # An empty answer with a status header is the server's "no responders" (no
        # stream takes the subject); JetStream's refusals carry an "error" object.
        ack = orjson.loads(msg.data) if msg.data else {"error": {"description": msg.header}}
        if "error" in ack:
            self.done.set_exception(PublishRefused(str(ack["error"].get("description"))))
            return
        self.waiting.discard(index)
        if ack.get("duplicate"):
            self.duplicates.append(index)
        else:
            self.stored += 1
        if not self.waiting:
            self.done.set_result(self.stored)


class PublishRefused(Exception):
    """JetStream did not store a message (no stream, or it refused it)."""


async def ensure_stream(js: Any, replicas: int | None = None) -> None:
    """The CARELEDGER stream, file-backed, with the duplicate window we rely on, kept on
    ``replicas`` servers of a cluster (JetStream moves it when the setting changes).

    An existing stream is changed only where it falls short: its other settings (an
    operator's retention limits, say) are kept, and its replica count changes only
    when ``replicas`` is given, never to a default.
    """
    try:
        info = await js.stream_info(STREAM)
    except NotFoundError:
        await js.add_stream(
            StreamConfig(
                name=STREAM,
                subjects=[f"{SUBJECT_PREFIX}.>"],
                storage=StorageType.FILE,
                duplicate_window=DUPLICATE_WINDOW_SECONDS,
                num_replicas=replicas or 1,
            )
        )
        return
    current = info.config
    wanted = replicas or current.num_replicas
    if current.duplicate_window < DUPLICATE_WINDOW_SECONDS or current.num_replicas != wanted:
        window = max(current.duplicate_window or 0, DUPLICATE_WINDOW_SECONDS)
        await js.update_stream(
            dataclasses.replace(current, duplicate_window=window, num_replicas=wanted)
        )


class LibraryTracking:
    """The relay's position per subscriber, in the library's tracking table."""

    def __init__(self, recorder: ProcessRecorder) -> None:
        self.recorder = recorder

    def position(self, name: str) -> int:
        return self.recorder.max_tracking_id(name) or 0

    def advance(self, name: str, position: int) -> None:
        # Refused (IntegrityError) unless it moves forward: two relays cannot both win.
        self.recorder.insert_tracking(Tracking(name, position))


class RelayHost:
    """Runs the relay in a supervised thread, woken by the delivery projection."""

    def __init__(self, relay: Relay, positions: Positions, *, max_backoff: float = 5.0) -> None:
        self.relay = relay
        self.positions = positions
        self.max_backoff = max_backoff
        self.errors = 0
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="nats-relay", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _loop(self) -> None:
        backoff = Backoff(cap=self.max_backoff)
        while not self._stopping.is_set():
            seen = self.positions.known(DELIVERY_VIEW)
            try:
                sent = self.relay.step()
            except ViewsBehind:
                self._stopping.wait(0.05)
                continue
            except Exception as error:  # supervised: back off, resume from tracking
                self.errors += 1
                log.warning("relay error; retrying", extra={"error": type(error).__name__})
                backoff.wait(self._stopping)
                continue
            backoff.reset()
            if sent < self.relay.batch_size * self.relay.batches_per_step:
                self.positions.wait_past(DELIVERY_VIEW, seen, 0.5)
