"""The delivery engine: one event stream per guest session feeding per-conversation logs.

Salesforce's event stream carries every conversation of the guest's subject; each event is appended
to its conversation's log (deduplicated), which wakes waiting readers at once. While the stream is
down (reconnecting), a waiting reader polls the entries endpoint with `startTimestamp` instead, so a
drop costs latency, never messages. An idle conversation with a healthy stream costs no REST calls.

A feed replays from the session's first `lastEventId`, so a rebuilt feed (after a restart) rebuilds
the same log in the same order and cursors stay valid.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import heapq
import time
from dataclasses import dataclass, field

import structlog

from app.scrt import (
    ReconnectPolicy,
    ScrtAuthError,
    ScrtBadRequestError,
    ScrtClient,
    ScrtError,
    ScrtEventStream,
    ScrtNotFoundError,
    chronological,
)
from app.transcript import ConversationLog, RoleInfo, TranscriptEntry

log = structlog.get_logger(__name__)

POLL_PAGE = 50
POLL_MAX_PAGES = 10
IDLE_SWEEP_INTERVAL = 60.0


@dataclass(frozen=True)
class DeliveryOptions:
    poll_interval: float = 2.0
    """Seconds between entries-endpoint polls while the stream is down."""
    reconnect: ReconnectPolicy = field(default_factory=lambda: ReconnectPolicy(max_failures=None))
    read_timeout: float = 35.0
    """No byte (not even a ping, sent every ~15 s) for this long means the stream is dead."""
    burst_window: float = 0.3
    """After a bot message arrives, wait this long for the rest of a multi-part answer, so the
    model relays it whole. Agent messages return at once (the widget keeps reading)."""
    idle_feed_seconds: float = 900.0
    """A session nobody has read for this long has its event stream closed (reopened on demand,
    replaying from the start, so its log and cursors are rebuilt identically)."""


@dataclass(frozen=True)
class ReadResult:
    entries: list[TranscriptEntry]
    cursor: int
    role_info: RoleInfo
    stream_connected: bool


class FeedBroken(Exception):
    """The session's Salesforce access no longer works (expired or revoked token)."""


class GuestFeed:
    """The event stream of one guest session and the logs of its conversations."""

    def __init__(
        self,
        client: ScrtClient,
        token: str,
        last_event_id: str | None,
        options: DeliveryOptions,
    ) -> None:
        self._client = client
        self._token = token
        self._options = options
        self.logs: dict[str, ConversationLog] = {}
        self.error: ScrtError | None = None
        self.last_used = time.monotonic()
        self._polling: dict[str, asyncio.Lock] = {}
        self._stream: ScrtEventStream = client.event_stream(
            token,
            last_event_id=last_event_id,
            reconnect=options.reconnect,
            read_timeout=options.read_timeout,
            on_open=self._opened,
        )
        self._catch_ups: set[asyncio.Task[None]] = set()
        # A fresh context: the feed outlives the tool call that started it, and must not log
        # under that call's bound fields.
        self._task = asyncio.get_running_loop().create_task(
            self._consume(), context=contextvars.Context()
        )

    def log(self, conversation_id: str) -> ConversationLog:
        existing = self.logs.get(conversation_id)
        if existing is None:
            existing = self.logs[conversation_id] = ConversationLog(conversation_id)
        return existing

    @property
    def stream_connected(self) -> bool:
        return self.error is None and not self._task.done() and self._stream.connected

    def _opened(self, count: int) -> None:
        if self.logs:
            # (Re)connected: Last-Event-Id replay should bring what a drop hid, but its window is
            # undocumented, so fetch each conversation's entries since its last one as well.
            task = asyncio.get_running_loop().create_task(
                self._catch_up(), context=contextvars.Context()
            )
            self._catch_ups.add(task)
            task.add_done_callback(self._catch_ups.discard)

    async def _catch_up(self) -> None:
        for conversation_id in list(self.logs):
            try:
                await self.poll(conversation_id, budget=10.0)
            except (ScrtError, TimeoutError) as exc:
                log.info("delivery.catch_up_failed", error=type(exc).__name__)

    async def _consume(self) -> None:
        try:
            async for event in self._stream:
                if event.entry is not None and event.conversation_id:
                    self.log(event.conversation_id.lower()).append([event.entry])
        except ScrtError as exc:
            # 400/401 repeat forever; polling takes over and surfaces them to the reader.
            self.error = exc
            log.warning("delivery.stream_stopped", error=type(exc).__name__)

    async def poll(self, conversation_id: str, budget: float) -> None:
        """Fetch what the stream may have missed, oldest first, from the last seen timestamp,
        within `budget` seconds. Concurrent readers of one conversation share one poll."""
        lock = self._polling.setdefault(conversation_id, asyncio.Lock())
        if lock.locked():
            return  # another reader is polling; its entries wake us
        async with lock, asyncio.timeout(budget):
            await self._poll_pages(conversation_id)

    async def _poll_pages(self, conversation_id: str) -> None:
        target = self.log(conversation_id)
        for _ in range(POLL_MAX_PAGES):
            start = target.last_timestamp or None
            page = await self._client.list_entries(
                self._token,
                conversation_id,
                limit=POLL_PAGE,
                start_timestamp=start,
                direction="FromStart",
            )
            added = target.append(chronological(page))
            target.fetched = True
            if len(page) < POLL_PAGE or not added:
                return

    async def aclose(self) -> None:
        for task in list(self._catch_ups):
            task.cancel()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        try:
            await self._stream.aclose()
        except Exception as exc:  # closing must never stop a shutdown half-way
            log.warning("delivery.close_failed", error=type(exc).__name__)


class DeliveryEngine:
    def __init__(self, client: ScrtClient, options: DeliveryOptions | None = None) -> None:
        self._client = client
        self._options = options or DeliveryOptions()
        self._feeds: dict[str, GuestFeed] = {}
        self._expiry: dict[str, float] = {}
        self._expiry_heap: list[tuple[float, str]] = []
        self._next_idle_sweep = 0.0

    async def feed(
        self, handle: str, token: str, last_event_id: str | None, expires_at: float
    ) -> GuestFeed:
        """The session's feed, started (stream opened) on first use. Feeds of expired sessions
        are closed on the way, so their Salesforce streams do not outlive them."""
        await self._sweep()
        existing = self._feeds.get(handle)
        if existing is None:
            existing = GuestFeed(self._client, token, last_event_id, self._options)
            self._expiry[handle] = expires_at
            heapq.heappush(self._expiry_heap, (expires_at, handle))
            self._feeds[handle] = existing
        existing.last_used = time.monotonic()
        return existing

    async def _sweep(self) -> None:
        # Called on every feed request, so it must not scan every session each time: expiries
        # come off a heap as they fall due; idle feeds (15 min) are looked for once a minute.
        now = time.time()
        while self._expiry_heap and self._expiry_heap[0][0] <= now:
            at, handle = heapq.heappop(self._expiry_heap)
            if self._expiry.get(handle) == at:
                await self.drop(handle)
        monotonic = time.monotonic()
        if monotonic < self._next_idle_sweep:
            return
        self._next_idle_sweep = monotonic + IDLE_SWEEP_INTERVAL
        idle_since = monotonic - self._options.idle_feed_seconds
        for handle in [h for h, feed in self._feeds.items() if feed.last_used < idle_since]:
            await self.drop(handle)

    @property
    def feed_count(self) -> int:
        return len(self._feeds)

    async def read(
        self,
        feed: GuestFeed,
        conversation_id: str,
        cursor: int,
        wait_seconds: float,
        *,
        include_typing: bool = False,
    ) -> ReadResult:
        """Entries after `cursor`; waits up to `wait_seconds` for one, returning the moment it
        arrives (a bot's multi-part answer is gathered for `burst_window` first). The deadline
        holds even while polling."""
        target = feed.log(conversation_id)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_seconds
        if not feed.stream_connected or not target.fetched:
            # Even a zero-wait read sees what the stream missed; and a conversation's first read
            # fetches once, in case the stream opened after its first events.
            await self._poll(feed, conversation_id, max(wait_seconds, 1.0))
        entries = await self._wait_for_entries(feed, target, cursor, deadline, include_typing)
        if entries and entries[-1].role == "Chatbot" and entries[-1].kind == "message":
            quiet_until = min(deadline, loop.time() + self._options.burst_window)
            while await target.wait_for_append(quiet_until - loop.time()):
                quiet_until = min(deadline, loop.time() + self._options.burst_window)
            entries = target.after(cursor, include_typing=include_typing)
        feed.last_used = time.monotonic()
        return ReadResult(
            entries=entries,
            cursor=max(cursor, target.position),
            role_info=target.view.role_info(),
            stream_connected=feed.stream_connected,
        )

    async def _wait_for_entries(
        self,
        feed: GuestFeed,
        target: ConversationLog,
        cursor: int,
        deadline: float,
        include_typing: bool,
    ) -> list[TranscriptEntry]:
        loop = asyncio.get_running_loop()
        while True:
            entries = target.after(cursor, include_typing=include_typing)
            remaining = deadline - loop.time()
            if entries or remaining <= 0:
                return entries
            if feed.stream_connected:
                # Re-check now and then: the stream may drop while we wait.
                await target.wait_for_append(min(remaining, self._options.poll_interval * 5))
                continue
            await self._poll(feed, target.conversation_id, remaining)
            if not target.after(cursor, include_typing=include_typing):
                await target.wait_for_append(
                    min(deadline - loop.time(), self._options.poll_interval)
                )

    async def _poll(self, feed: GuestFeed, conversation_id: str, remaining: float) -> None:
        # Leave time to answer inside the deadline (Heroku cuts requests at 30 s).
        budget = max(0.5, remaining - 0.5)
        try:
            await feed.poll(conversation_id, budget)
        except (ScrtAuthError, ScrtBadRequestError, ScrtNotFoundError) as exc:
            raise FeedBroken(type(exc).__name__) from exc
        except (ScrtError, TimeoutError) as exc:
            log.info("delivery.poll_failed", error=type(exc).__name__)

    async def drop(self, handle: str) -> None:
        self._expiry.pop(handle, None)
        feed = self._feeds.pop(handle, None)
        if feed is not None:
            await feed.aclose()

    async def aclose(self) -> None:
        feeds = list(self._feeds.values())
        self._feeds.clear()
        self._expiry.clear()
        self._expiry_heap.clear()
        for feed in feeds:
            await feed.aclose()
