"""The delivery engine: one event stream per guest session feeding per-conversation logs.

Salesforce's event stream carries every conversation of the guest's subject; each event is appended
to its conversation's log (deduplicated), which wakes waiting readers at once. While the stream is
down (reconnecting), a waiting reader polls the entries endpoint with `startTimestamp` instead, so a
drop costs latency, never messages. After every (re)open each conversation holds its live events
until a catch-up from its last timestamp before the gap has completed (retried with back-off;
readers poll meanwhile), so entries hidden by a drop are never lost nor shown after newer ones. An
idle conversation with a healthy stream costs no REST calls.

A feed replays from the session's first `lastEventId`, so a rebuilt feed (after a restart) rebuilds
the same log in the same order and cursors stay valid.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import heapq
import re
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Protocol

import structlog

from app.failures import HandoffError
from app.history import HISTORY_ENTRIES, HistoryUnavailable, fetch_retired
from app.scrt import (
    Entry,
    ReconnectPolicy,
    ScrtAuthError,
    ScrtBadRequestError,
    ScrtClient,
    ScrtError,
    ScrtEvent,
    ScrtEventStream,
    ScrtNotFoundError,
    chronological,
)
from app.store import SessionRecord
from app.transcript import ConversationLog, CursorRetired, RoleInfo, TranscriptEntry, visible

log = structlog.get_logger(__name__)

FETCH_PAGE = 50
FETCH_MAX_PAGES = 10
CATCH_UP_BUDGET = 10.0
PERMANENT_ERRORS = (ScrtAuthError, ScrtBadRequestError, ScrtNotFoundError)
"""Fetch failures that repeat forever: catch-ups stop on them and readers report them."""
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
    catch_up_retry: ReconnectPolicy = field(
        default_factory=lambda: ReconnectPolicy(base_delay=0.5, max_delay=10.0, multiplier=2.0)
    )
    """Back-off between failed catch-ups after a reconnect (readers poll meanwhile)."""
    idle_feed_seconds: float = 900.0
    """A session nobody has read for this long has its event stream closed (reopened on demand,
    replaying from the start, so its log and cursors are rebuilt identically)."""
    history_entries: int = HISTORY_ENTRIES
    """Entries each conversation's log keeps in memory; older ones are fetched again from
    Salesforce for a reader that asks for them (`app.history`)."""
    watcher: FeedWatcher | None = None
    """Told what the feeds see (the operator page's board, `app.admin`)."""


class FeedWatcher(Protocol):
    """Observes feeds without a say in them: called in their tasks, so it must not block, and
    it reads only structured state (no message text, no token)."""

    def feed_opened(self, feed: GuestFeed) -> None: ...

    def feed_closed(self, feed: GuestFeed) -> None: ...

    def stream_opened(self, feed: GuestFeed, opens: int) -> None:
        """The event stream (re)connected; `opens` counts this feed's connections."""

    def stream_stopped(self, feed: GuestFeed, error: ScrtError) -> None:
        """The event stream stopped for good (readers poll and report the failure)."""

    def appended(self, log: ConversationLog) -> None:
        """A conversation's log appended entries (its `view` may have changed)."""


@dataclass(frozen=True)
class ReadResult:
    entries: list[TranscriptEntry]
    cursor: str
    """Opaque: pass it back to continue after these entries."""
    role_info: RoleInfo


class Delivery(Protocol):
    """What the handoff service needs of a delivery engine: this module's (one process) or
    `app.state.delivery`'s (processes sharing Redis)."""

    async def attach(self, record: SessionRecord) -> None:
        """Make sure the session's event stream is held (here or by another process)."""

    async def delivered(self, record: SessionRecord, conversation_id: str, identifier: str) -> bool:
        """Whether the conversation's log holds an entry with this id (a sent message's echo)."""

    async def read(
        self,
        record: SessionRecord,
        conversation_id: str,
        cursor: str,
        wait_seconds: float,
        *,
        include_live: bool = False,
    ) -> ReadResult: ...

    async def drop(self, handle: str, expires_at: float | None = None) -> None:
        """Stop the session's event stream (its chat was closed, or it expired)."""

    @property
    def feed_count(self) -> int: ...

    async def start(self) -> None: ...

    async def aclose(self) -> None: ...


class BadCursor(ValueError):
    """A cursor this engine did not hand out."""


LogOpener = Callable[[str], Coroutine[Any, Any, ConversationLog]]
"""Makes the log of a conversation new to a feed (a shared store restores what it kept)."""


async def fetch_pages(
    client: ScrtClient, token: str, target: ConversationLog, max_pages: int = FETCH_MAX_PAGES
) -> int | None:
    """Append entries-endpoint pages to `target`, oldest first from its last timestamp, until
    the newest entry; return the log's gap count when its last page was asked for, or None when
    the page limit stopped it first."""
    for _ in range(max_pages):
        gaps = target.gaps
        page = await client.list_entries(
            token,
            target.conversation_id,
            limit=FETCH_PAGE,
            start_timestamp=target.last_timestamp or None,
            direction="FromStart",
        )
        added = target.append(chronological(page))
        # A full page of entries already seen cannot be paged past: treat it as the end.
        if len(page) < FETCH_PAGE or not added:
            return gaps
    return None


class FeedBroken(HandoffError):
    """The session's Salesforce access no longer works (expired or revoked token)."""


class GuestFeed:
    """The event stream of one guest session and the logs of its conversations."""

    def __init__(
        self,
        client: ScrtClient,
        token: str,
        last_event_id: str | None,
        options: DeliveryOptions,
        open_log: LogOpener | None = None,
    ) -> None:
        self._client = client
        self._token = token
        self._options = options
        self._open_log = open_log
        self._opening: dict[str, asyncio.Task[ConversationLog]] = {}
        self.logs: dict[str, ConversationLog] = {}
        self.error: ScrtError | None = None
        self.last_used = time.monotonic()
        self._fetching: dict[str, asyncio.Lock] = {}
        self._given_up: set[str] = set()
        self._backoff: dict[str, tuple[int, float]] = {}
        """Conversations whose last fetch failed: (failures in a row, loop time before which
        readers do not fetch again). The catch-up retries them meanwhile."""
        self._catch_up_task: asyncio.Task[None] | None = None
        self._stream: ScrtEventStream = client.event_stream(
            token,
            last_event_id=last_event_id,
            reconnect=options.reconnect,
            read_timeout=options.read_timeout,
            on_open=self._opened,
        )
        # A fresh context: the feed outlives the tool call that started it, and must not log
        # under that call's bound fields.
        self._task = asyncio.get_running_loop().create_task(
            self._consume(), context=contextvars.Context()
        )
        self._watcher = options.watcher
        self._tell(lambda watcher: watcher.feed_opened(self))

    def _tell(self, report: Callable[[FeedWatcher], None]) -> None:
        """Report to the watcher, if any: one that raises is logged, never the feed's failure
        (its `appended`, which the logs call, is guarded there)."""
        if self._watcher is None:
            return
        try:
            report(self._watcher)
        except Exception as exc:
            log.warning("delivery.watcher_failed", error=type(exc).__name__)

    def log(self, conversation_id: str) -> ConversationLog:
        existing = self.logs.get(conversation_id)
        if existing is None:
            existing = self.logs[conversation_id] = self._watched(
                ConversationLog(conversation_id, self._options.history_entries)
            )
        return existing

    def _watched(self, target: ConversationLog) -> ConversationLog:
        if self._watcher is not None:
            target.on_change = self._watcher.appended
        return target

    async def conversation(self, conversation_id: str) -> ConversationLog:
        """The conversation's log; with an `open_log`, a new one continues what was kept of it
        elsewhere, and its first catch-up starts at once (a reader may be in another process)."""
        existing = self.logs.get(conversation_id)
        if existing is not None:
            return existing
        if self._open_log is None:
            return self.log(conversation_id)
        opening = self._opening.get(conversation_id)
        if opening is None:
            opening = self._opening[conversation_id] = asyncio.get_running_loop().create_task(
                self._open_log(conversation_id)
            )
        try:
            opened = await asyncio.shield(opening)
        finally:
            if opening.done():
                self._opening.pop(conversation_id, None)
        existing = self.logs.setdefault(conversation_id, opened)
        self._watched(existing)
        if self._stream.connected:
            self._start_catch_up()
        return existing

    @property
    def last_event_id(self) -> str | None:
        """Of the newest event received: a stream reopened from it replays what followed."""
        return self._stream.last_event_id

    @property
    def stream_connected(self) -> bool:
        return self.error is None and not self._task.done() and self._stream.connected

    def live(self, target: ConversationLog) -> bool:
        """Whether the stream alone keeps this conversation's log complete; else readers poll."""
        return target.synced and self.stream_connected

    def _opened(self, count: int) -> None:
        # (Re)connected: Last-Event-Id replay should bring what a drop hid, but its window is
        # undocumented. So every known conversation holds its live entries until a fetch from its
        # last timestamp before the gap has filled it, then releases them in Salesforce's order.
        self._given_up.clear()
        self._tell(lambda watcher: watcher.stream_opened(self, count))
        for target in self.logs.values():
            target.gap()
        if self.logs:
            self._start_catch_up()

    def _start_catch_up(self) -> None:
        if self._catch_up_task is None or self._catch_up_task.done():
            self._catch_up_task = asyncio.get_running_loop().create_task(
                self._catch_up(), context=contextvars.Context()
            )

    async def _take(self, event: ScrtEvent) -> None:
        if event.entry is not None and event.conversation_id:
            try:
                target = await self.conversation(event.conversation_id.lower())
            except Exception as exc:  # a shared store that is down: the catch-up after the log
                # opens fetches what this event carried
                log.warning("delivery.log_unavailable", error=type(exc).__name__)
                return
            target.live(event.entry)

    async def _catch_up(self) -> None:
        """Fetch every conversation with a gap until none is left, retrying with back-off; stops
        while the stream is down (its next open starts over) and for failures that would repeat
        forever (readers poll and surface those)."""
        failures = 0
        while self._stream.connected:
            pending = [
                cid for cid, t in self.logs.items() if not t.synced and cid not in self._given_up
            ]
            if not pending:
                return
            failed = False
            for conversation_id in pending:
                try:
                    await self.fetch(conversation_id, CATCH_UP_BUDGET, share=False)
                except PERMANENT_ERRORS as exc:
                    self._given_up.add(conversation_id)
                    log.info("delivery.catch_up_stopped", error=type(exc).__name__)
                except (ScrtError, TimeoutError) as exc:
                    failed = True
                    log.info("delivery.catch_up_failed", error=type(exc).__name__)
            if failed:
                failures += 1
                await asyncio.sleep(self._options.catch_up_retry.delay(failures))
            else:
                failures = 0

    async def _consume(self) -> None:
        try:
            async for event in self._stream:
                await self._take(event)
                del event  # not kept while the stream waits for the next one
        except ScrtError as exc:
            # 400/401 repeat forever; polling takes over and surfaces them to the reader.
            self.error = exc
            log.warning("delivery.stream_stopped", error=type(exc).__name__)
            error = exc  # (`exc` is unbound once the handler ends)
            self._tell(lambda watcher: watcher.stream_stopped(self, error))

    async def retired(self, target: ConversationLog, cursor: int) -> tuple[list[Entry], int]:
        """Entries the log let go, from `cursor` on, fetched again (`app.history`)."""
        return await fetch_retired(
            self._client, self._token, target.conversation_id, target.retired, cursor
        )

    async def fetch(self, conversation_id: str, budget: float, *, share: bool = True) -> None:
        """Fetch what the stream may have missed, oldest first, from the last timestamp seen,
        within `budget` seconds. With `share`, a fetch already under way for the conversation
        counts for this one too (readers: its entries wake them); without, wait for it and fetch
        if a gap is still left."""
        lock = self._fetching.setdefault(conversation_id, asyncio.Lock())
        if share and lock.locked():
            return
        loop = asyncio.get_running_loop()
        failed = self._backoff.get(conversation_id)
        if share and failed is not None and loop.time() < failed[1]:
            # It failed moments ago: a reader waits for the catch-up's retry (or the stream)
            # instead of paying for another attempt before every read.
            return
        async with lock:
            target = await self.conversation(conversation_id)
            if not share and target.synced:
                return
            try:
                with target.fetching():
                    async with asyncio.timeout(budget):
                        gaps = await fetch_pages(self._client, self._token, target)
                        if gaps is not None:
                            target.fetched_all(gaps)
            except PERMANENT_ERRORS:
                raise  # readers report these at once, every time
            except (ScrtError, TimeoutError):
                count = (failed[0] if failed is not None else 0) + 1
                pause = self._options.catch_up_retry.delay(count)
                self._backoff[conversation_id] = (count, loop.time() + pause)
                if self._stream.connected:
                    self._start_catch_up()
                raise
            self._backoff.pop(conversation_id, None)

    async def aclose(self) -> None:
        self._tell(lambda watcher: watcher.feed_closed(self))
        if self._catch_up_task is not None:
            self._catch_up_task.cancel()
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
        self.on_dropped: Callable[[str], Awaitable[None]] | None = None
        """Told the handle of every feed closed (idle, expired, dropped)."""

    def get(self, handle: str) -> GuestFeed | None:
        """The session's feed if it is open in this process."""
        return self._feeds.get(handle)

    async def feed(
        self,
        handle: str,
        token: str,
        last_event_id: str | None,
        expires_at: float,
        open_log: LogOpener | None = None,
    ) -> GuestFeed:
        """The session's feed, started (stream opened) on first use. Feeds of expired sessions
        are closed on the way, so their Salesforce streams do not outlive them."""
        await self._sweep()
        existing = self._feeds.get(handle)
        if existing is None:
            existing = GuestFeed(self._client, token, last_event_id, self._options, open_log)
            self._expiry[handle] = expires_at
            heapq.heappush(self._expiry_heap, (expires_at, handle))
            self._feeds[handle] = existing
        existing.last_used = time.monotonic()
        return existing

    def expires_at(self, handle: str) -> float | None:
        return self._expiry.get(handle)

    async def sweep(self) -> None:
        """Close the feeds of expired sessions and of sessions nobody read for a while."""
        await self._sweep()

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

    async def start(self) -> None:
        """Nothing to start: feeds open on demand."""

    async def attach(self, record: SessionRecord) -> None:
        await self._feed_of(record)

    async def _feed_of(self, record: SessionRecord) -> GuestFeed:
        return await self.feed(
            record.handle,
            record.access_token.get_secret_value(),
            record.last_event_id,
            record.expires_at,
        )

    async def delivered(self, record: SessionRecord, conversation_id: str, identifier: str) -> bool:
        feed = await self._feed_of(record)
        return (await feed.conversation(conversation_id)).has(identifier)

    async def read(
        self,
        record: SessionRecord,
        conversation_id: str,
        cursor: str,
        wait_seconds: float,
        *,
        include_live: bool = False,
    ) -> ReadResult:
        """A cursor here is a position in the process's log, as a decimal string."""
        if not re.fullmatch(r"[0-9]{1,12}", cursor):
            raise BadCursor(cursor)
        return await self.read_feed(
            await self._feed_of(record),
            conversation_id,
            int(cursor),
            wait_seconds,
            include_live=include_live,
        )

    async def read_feed(
        self,
        feed: GuestFeed,
        conversation_id: str,
        cursor: int,
        wait_seconds: float,
        *,
        include_live: bool = False,
    ) -> ReadResult:
        """Entries after `cursor`; waits up to `wait_seconds` for one, returning the moment it
        arrives (a bot's multi-part answer is gathered for `burst_window` first). The deadline
        holds even while polling."""
        target = await feed.conversation(conversation_id)
        try:
            return await self._read_live(feed, target, cursor, wait_seconds, include_live)
        except CursorRetired:
            # The cursor is older than the entries in memory, or became so while this read
            # waited (a fetch or a release appended more than the log keeps): nothing was
            # returned yet, so the read starts over from Salesforce's copy.
            return await self._read_retired(feed, target, cursor, include_live)

    async def _read_live(
        self,
        feed: GuestFeed,
        target: ConversationLog,
        cursor: int,
        wait_seconds: float,
        include_live: bool,
    ) -> ReadResult:
        if cursor < len(target.retired):
            raise CursorRetired(cursor)
        conversation_id = target.conversation_id
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_seconds
        if not feed.live(target):
            # Even a zero-wait read sees what the stream missed; and a conversation with a gap
            # (its first read, or a catch-up still owed after a reconnect) fetches it now.
            await self.poll(feed, conversation_id, max(wait_seconds, 1.0))
        entries = await self._wait_for_entries(feed, target, cursor, deadline, include_live)
        if entries and entries[-1].role == "Chatbot" and entries[-1].kind == "message":
            quiet_until = min(deadline, loop.time() + self._options.burst_window)
            while await target.wait_for_append(quiet_until - loop.time()):
                quiet_until = min(deadline, loop.time() + self._options.burst_window)
            entries = target.after(cursor, include_live=include_live)
        feed.last_used = time.monotonic()
        return ReadResult(
            entries=entries,
            cursor=str(max(cursor, target.position)),
            role_info=target.view.role_info(),
        )

    async def _read_retired(
        self, feed: GuestFeed, target: ConversationLog, cursor: int, include_live: bool
    ) -> ReadResult:
        """A read from a position the log no longer holds: what Salesforce gives back of it, and
        the entries in memory after it once the fetch reached them. Returns without waiting."""
        try:
            older, reached = await feed.retired(target, cursor)
        except PERMANENT_ERRORS as exc:
            raise FeedBroken(type(exc).__name__) from exc
        except (ScrtError, TimeoutError) as exc:
            raise HistoryUnavailable(exc) from exc
        entries = visible(older, include_live=include_live, titles=target.view.option_titles)
        # More may have been retired meanwhile: go on in memory only from where the log is now.
        if reached >= len(target.retired):
            entries += target.after(reached, include_live=include_live)
            reached = target.position
        feed.last_used = time.monotonic()
        return ReadResult(entries=entries, cursor=str(reached), role_info=target.view.role_info())

    async def _wait_for_entries(
        self,
        feed: GuestFeed,
        target: ConversationLog,
        cursor: int,
        deadline: float,
        include_live: bool,
    ) -> list[TranscriptEntry]:
        loop = asyncio.get_running_loop()
        while True:
            entries = target.after(cursor, include_live=include_live)
            remaining = deadline - loop.time()
            if entries or remaining <= 0:
                return entries
            if feed.live(target):
                # Re-check now and then: the stream may drop while we wait.
                await target.wait_for_append(min(remaining, self._options.poll_interval * 5))
                continue
            await self.poll(feed, target.conversation_id, remaining)
            if not target.after(cursor, include_live=include_live):
                await target.wait_for_append(
                    min(deadline - loop.time(), self._options.poll_interval)
                )

    async def poll(self, feed: GuestFeed, conversation_id: str, remaining: float) -> None:
        # Leave time to answer inside the deadline (Heroku cuts requests at 30 s).
        budget = max(0.5, remaining - 0.5)
        try:
            await feed.fetch(conversation_id, budget)
        except PERMANENT_ERRORS as exc:
            raise FeedBroken(type(exc).__name__) from exc
        except (ScrtError, TimeoutError) as exc:
            log.info("delivery.poll_failed", error=type(exc).__name__)

    async def drop(self, handle: str, expires_at: float | None = None) -> None:
        self._expiry.pop(handle, None)
        feed = self._feeds.pop(handle, None)
        if feed is not None:
            await feed.aclose()
            if self.on_dropped is not None:
                await self.on_dropped(handle)

    async def aclose(self) -> None:
        feeds = list(self._feeds.values())
        self._feeds.clear()
        self._expiry.clear()
        self._expiry_heap.clear()
        for feed in feeds:
            await feed.aclose()
