"""The delivery engine of processes that share Redis.

Any process can serve any call. The process holding a session's event stream (`ownership`) runs
the same feed as a single process does (`app.delivery.GuestFeed`: live events, catch-ups, gap-safe
ordering), and journals every entry its logs append (`journal`). Readers on every process read the
journal and wait on it through the process's dispatcher, so cursors are stream ids that any process
can continue from.

A call for a session nobody holds claims it and opens its stream here, continuing from the
journaled checkpoint; a session whose holder died is taken over within a heartbeat TTL by a process
that has readers waiting on it (a scan a third of the TTL apart), followed by the usual catch-up
fetch, so nothing the dead holder had not journaled is lost. Idle, closed and shut-down sessions are
released so another process can take them at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import time
from dataclasses import dataclass

import structlog
from redis.exceptions import RedisError

from app.delivery import (
    BadCursor,
    DeliveryEngine,
    DeliveryOptions,
    FeedBroken,
    GuestFeed,
    ReadResult,
)
from app.failures import HandoffError
from app.scrt import ScrtClient
from app.scrt.models import Entry
from app.sends import SharedCalls
from app.state.dispatcher import Dispatcher
from app.state.journal import Journal, valid_cursor
from app.state.ownership import Ownership
from app.store import SessionRecord
from app.store.redis import handle_key
from app.transcript import ConversationLog, TranscriptEntry, visible

log = structlog.get_logger(__name__)

CLOSED_SESSION = "This chat was closed; nothing more can be read or sent in it."
BROKEN_SESSION = (
    "Salesforce no longer accepts this chat session (its access expired or was revoked). "
    "Start a new chat with generate_guest_access_token if the user wants to go on."
)


@dataclass
class _Watched:
    record: SessionRecord
    readers: int = 0


class SharedDelivery:
    def __init__(
        self,
        client: ScrtClient,
        options: DeliveryOptions,
        journal: Journal,
        ownership: Ownership,
        dispatcher: Dispatcher,
    ) -> None:
        self._options = options
        self._journal = journal
        self._ownership = ownership
        self._dispatcher = dispatcher
        self._local = DeliveryEngine(client, options)
        self._local.on_dropped = self._release
        self._journal.on_lost = self._lost
        self._sessions: dict[str, str] = {}
        """Session key → handle, for the sessions whose feeds run here."""
        self._watched: dict[str, _Watched] = {}
        """Sessions with readers waiting here: taken over if their holder dies."""
        self._attaching: SharedCalls[GuestFeed | None] = SharedCalls()
        self._scan: asyncio.Task[None] | None = None
        self._stopping: set[asyncio.Task[None]] = set()

    @property
    def feed_count(self) -> int:
        return self._local.feed_count

    @property
    def process_id(self) -> str:
        return self._ownership.process_id

    async def start(self) -> None:
        await self._ownership.start(on_lapsed=self._let_go_of_everything)
        log.info("state.started", process=self.process_id)
        self._dispatcher.start()
        self._scan = asyncio.get_running_loop().create_task(
            self._scanning(), context=contextvars.Context()
        )

    # -- holding streams ------------------------------------------------------------------------

    async def attach(self, record: SessionRecord) -> None:
        await self._attach(record)

    async def _attach(self, record: SessionRecord) -> GuestFeed | None:
        """The session's feed if this process holds its stream (claiming it when nobody does);
        None when another live process holds it."""
        existing = self._local.get(record.handle)
        if existing is not None:
            existing.last_used = time.monotonic()
            return existing
        session = handle_key(record.handle)
        # Concurrent calls for one session share one claim (and one feed).
        return await self._attaching.run(session, lambda: self._claim(record, session))

    async def _claim(self, record: SessionRecord, session: str) -> GuestFeed | None:
        existing = self._local.get(record.handle)
        if existing is not None:
            return existing
        ttl = record.expires_at - time.time()
        if ttl <= 0:
            return None
        claimed = await self._ownership.claim(session, ttl)
        if claimed == -1:
            raise HandoffError(CLOSED_SESSION)
        if claimed == -2:
            raise FeedBroken(BROKEN_SESSION)
        if claimed == 0:
            return None
        try:
            checkpoint = await self._journal.checkpoint(session)
            generation = self._journal.begin(session)
            self._sessions[session] = record.handle
            feed = await self._local.feed(
                record.handle,
                record.access_token.get_secret_value(),
                checkpoint or record.last_event_id,
                record.expires_at,
                open_log=lambda cid: self._open_log(record, generation, cid),
            )
            log.info("state.stream_held", resumed=checkpoint is not None)
            # Conversations the session already has catch up at once: what a previous holder
            # had not journaled when it stopped is fetched, not waited for.
            for conversation_id in record.conversations:
                await feed.conversation(conversation_id)
        except BaseException:
            # Held on record but not here would leave the session to nobody: let go.
            await self._stop_here(session)
            with contextlib.suppress(RedisError):
                await self._ownership.release([session])
            raise
        return feed

    async def _open_log(
        self, record: SessionRecord, generation: int, conversation_id: str
    ) -> ConversationLog:
        """A log continuing what the journal kept of the conversation; what it appends is
        journaled, with the stream's checkpoint."""
        session = handle_key(record.handle)
        stored = await self._journal.load(session, conversation_id)
        target = ConversationLog(conversation_id, self._options.history_entries)
        target.restore(stored.ids, stored.view, stored.last_timestamp)

        def journal(entries: list[Entry]) -> None:
            feed = self._local.get(record.handle)
            self._journal.commit(
                session,
                generation,
                conversation_id,
                entries,
                target.view,
                target.last_timestamp,
                feed.last_event_id if feed is not None else None,
                record.expires_at,
            )

        target.on_commit = journal
        return target

    def _lost(self, session: str) -> None:
        """A write was refused: the session is not ours any more."""
        task = asyncio.get_running_loop().create_task(
            self._stop_here(session), context=contextvars.Context()
        )
        self._stopping.add(task)
        task.add_done_callback(self._stopping.discard)

    async def _stop_here(self, session: str) -> None:
        """Stop the session's feed here (taken over while this process stalled, its chat
        closed elsewhere, its stream refused): nothing more is journaled from it, and the
        session is let go of if it is still on record as ours."""
        self._journal.stop(session)
        handle = self._sessions.pop(session, None)
        if handle is not None:
            await self._local.drop(handle)
            with contextlib.suppress(RedisError):
                await self._ownership.release([session])

    async def _release(self, handle: str) -> None:
        """A feed closed here (idle, expired): let go of its session for others."""
        session = handle_key(handle)
        self._journal.stop(session)
        if self._sessions.pop(session, None) is not None:
            with contextlib.suppress(RedisError):
                await self._ownership.release([session])

    async def _let_go_of_everything(self) -> None:
        """The heartbeat lapsed: any session may have been taken meanwhile."""
        for session in list(self._sessions):
            await self._stop_here(session)

    async def hand_over(self) -> None:
        """SIGTERM: stop every stream held here and let go of it, so other processes take them
        at once; reads still waiting here go on reading the journal until they answer."""
        await self._let_go_of_everything()

    async def _scanning(self) -> None:
        interval = self._ownership.heartbeat_ttl / 3
        while True:
            await asyncio.sleep(interval)
            try:
                await self.scan()
            except RedisError as exc:
                log.warning("state.scan_failed", error=type(exc).__name__)
            except Exception as exc:  # a takeover that fails is retried at the next scan
                log.warning("state.takeover_failed", error=type(exc).__name__)

    async def scan(self) -> None:
        """Stop streams held here that are not ours any more (a closed chat, or taken over
        while this process stalled), and take over those with readers waiting here whose
        holder died. Runs a third of the heartbeat TTL apart."""
        await self._local.sweep()
        for session, handle in list(self._sessions.items()):
            feed = self._local.get(handle)
            if feed is not None and feed.error is not None:
                # Salesforce refuses this session's stream for good: say so everywhere.
                expires_at = self._local.expires_at(handle) or time.time() + 60
                await self._ownership.mark_broken(session, expires_at - time.time())
                await self._stop_here(session)
        for session in await self._ownership.lost(list(self._sessions)):
            await self._stop_here(session)
        watched = [s for s in self._watched if s not in self._sessions]
        for session in await self._ownership.free(watched):
            entry = self._watched.get(session)
            if entry is not None and await self._attach(entry.record) is not None:
                log.info("state.stream_taken_over")

    # -- reading --------------------------------------------------------------------------------

    async def delivered(self, record: SessionRecord, conversation_id: str, identifier: str) -> bool:
        feed = self._local.get(record.handle)
        if feed is not None and (await feed.conversation(conversation_id)).has(identifier):
            return True
        return await self._journal.has(handle_key(record.handle), conversation_id, identifier)

    async def read(
        self,
        record: SessionRecord,
        conversation_id: str,
        cursor: str,
        wait_seconds: float,
        *,
        include_live: bool = False,
    ) -> ReadResult:
        """Entries after `cursor` (a journal stream id; "0" is the start), waiting up to
        `wait_seconds` for one; a bot's multi-part answer is gathered for `burst_window`."""
        if not valid_cursor(cursor):
            raise BadCursor(cursor)
        session = handle_key(record.handle)
        key = self._journal.stream_key(session, conversation_id)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_seconds
        watched = self._watched.setdefault(session, _Watched(record))
        watched.record = record  # the newest, for a takeover: it knows every conversation
        watched.readers += 1
        try:
            await self._catch_up_here(record, conversation_id, max(wait_seconds, 1.0))
            shown: list[TranscriptEntry] = []
            quiet_until: float | None = None
            while True:
                items, view = await self._journal.read_after(session, conversation_id, cursor)
                if items:
                    cursor = items[-1][0]
                    new = visible(
                        (e for _, e in items), include_live=include_live, titles=view.option_titles
                    )
                    shown += new
                    if quiet_until is not None or (
                        new and new[-1].role == "Chatbot" and new[-1].kind == "message"
                    ):
                        quiet_until = min(deadline, loop.time() + self._options.burst_window)
                now = loop.time()
                if quiet_until is not None and now < quiet_until:
                    await self._dispatcher.wait(key, cursor, quiet_until - now)
                    continue
                if shown or now >= deadline:
                    return ReadResult(entries=shown, cursor=cursor, role_info=view.role_info())
                step = deadline - now
                feed = self._local.get(record.handle)
                if feed is not None and not feed.live(await feed.conversation(conversation_id)):
                    # This process holds a stream that is down: poll, as a single process does.
                    await self._local.poll(feed, conversation_id, step)
                    await self._journal.flushed()
                    step = min(deadline - loop.time(), self._options.poll_interval)
                await self._dispatcher.wait(key, cursor, step)
        finally:
            watched.readers -= 1
            if watched.readers == 0:
                self._watched.pop(session, None)

    async def _catch_up_here(
        self, record: SessionRecord, conversation_id: str, budget: float
    ) -> None:
        """Hold the stream if nobody does; if it is held here but not live, fetch now (a first
        read, or a catch-up owed after a reconnect), as a single process does."""
        feed = await self._attach(record)
        if feed is None:
            return
        if not feed.live(await feed.conversation(conversation_id)):
            await self._local.poll(feed, conversation_id, budget)
        await self._journal.flushed()

    # -- ending ---------------------------------------------------------------------------------

    async def drop(self, handle: str, expires_at: float | None = None) -> None:
        """The chat was closed: let nobody open its stream again before the session expires,
        then stop it, here or (at its next scan) wherever it runs."""
        session = handle_key(handle)
        if expires_at is not None:
            with contextlib.suppress(RedisError):
                await self._ownership.end(session, expires_at - time.time())
        await self._stop_here(session)

    async def aclose(self) -> None:
        """Hand over: stop the streams held here and release them, so other processes take
        them at once."""
        if self._scan is not None:
            self._scan.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._scan
        with contextlib.suppress(TimeoutError, RedisError):
            async with asyncio.timeout(5):
                await self.hand_over()
                await self._journal.aclose()
        self._local.on_dropped = None
        await self._local.aclose()
        self._sessions.clear()
        await self._dispatcher.aclose()
        await self._ownership.stop()
