"""Each conversation's delivered entries in a Redis Stream, readable from any process.

The process holding a session's event stream (`ownership`) is the only writer: its conversation
logs (`app.transcript.ConversationLog`) put entries in Salesforce's order, and every batch they
commit is appended here by one Lua script that checks the writer still holds the session (fencing),
skips entries already journaled (by Salesforce entry id), stores the folded conversation state
(who is on, whether it ended) and the `Last-Event-Id` checkpoint, and renews the expiry: all keys of
a conversation expire with its session. Streams are capped (`MAXLEN ~`).

A reader's cursor is the id of the last stream entry it was given; waiting readers are woken by
the process's `app.state.dispatcher`.

Everything stored that a person wrote or that identifies someone is sealed (`sealing`).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import dataclasses
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from app.scrt import ReconnectPolicy
from app.scrt.models import ENTRY_JSON, PREVIEW_TYPES, RECEIPT_TYPES, Entry
from app.state.ownership import Ownership
from app.state.sealing import Sealer
from app.transcript import ConversationView

log = structlog.get_logger(__name__)

READ_PAGE = 500
REDIS_RETRY = ReconnectPolicy(base_delay=0.2, max_delay=2.0, multiplier=2.0, max_failures=None)
"""Back-off while Redis is away (writes here, blocking reads in the dispatcher): at most 2 s."""
FLUSH_WAIT = 2.0

_STREAM_ID = re.compile(r"(0|[0-9]{1,20}-[0-9]{1,20})")

_APPEND = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] or redis.call('EXISTS', ARGV[2] .. ARGV[1]) == 0 then
  return -1
end
local added = 0
for i = 8, #ARGV, 2 do
  if ARGV[i] == '' or redis.call('SADD', KEYS[3], ARGV[i]) == 1 then
    redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], '*', 'e', ARGV[i + 1])
    added = added + 1
  end
end
redis.call('HSET', KEYS[4], 'v', ARGV[5], 't', ARGV[6])
if ARGV[7] ~= '' then
  redis.call('SET', KEYS[5], ARGV[7])
end
for k = 2, 5 do
  redis.call('PEXPIREAT', KEYS[k], ARGV[3])
end
return added
"""


def valid_cursor(cursor: str) -> bool:
    return _STREAM_ID.fullmatch(cursor) is not None


def position(stream_id: str) -> tuple[int, int]:
    if stream_id in ("", "0"):
        return (0, 0)
    ms, _, seq = stream_id.partition("-")
    return (int(ms), int(seq or 0))


def text_of(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def dump_view(view: ConversationView) -> bytes:
    return json.dumps(dataclasses.asdict(view), separators=(",", ":")).encode()


_VIEW_FIELDS = frozenset(f.name for f in dataclasses.fields(ConversationView))


def load_view(raw: bytes) -> ConversationView:
    """A stored view; fields this version does not know (a newer process wrote it) are left
    out, fields it lacks (an older process) keep their defaults."""
    data = {k: v for k, v in json.loads(raw).items() if k in _VIEW_FIELDS}
    data["participants"] = {k: tuple(v) for k, v in data["participants"].items()}
    return ConversationView(**data)


@dataclass(frozen=True)
class StoredConversation:
    """What a new writer needs to continue a conversation another process wrote."""

    ids: set[str]
    view: ConversationView
    last_timestamp: int


@dataclass
class _Batch:
    session: str
    generation: int
    conversation_id: str
    expires_at_ms: int
    view: bytes
    last_timestamp: int
    checkpoint: str
    pairs: list[str | bytes]
    done: asyncio.Future[None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class Journal:
    def __init__(
        self,
        redis: Redis,
        sealer: Sealer,
        prefix: str,
        ownership: Ownership,
        *,
        max_entries: int = 5000,
        on_lost: Callable[[str], None] = lambda session: None,
    ) -> None:
        self._redis = redis
        self._sealer = sealer
        self._prefix = prefix
        self._ownership = ownership
        self._max_entries = max_entries
        self.on_lost = on_lost
        """Called with a session this process wrote for but no longer holds."""
        self._append = redis.register_script(_APPEND)
        self._queue: asyncio.Queue[_Batch] = asyncio.Queue()
        self._generations: dict[str, int] = {}
        self._next_generation = 0
        self._last: _Batch | None = None
        self._writer: asyncio.Task[None] | None = None

    # -- keys ---------------------------------------------------------------------------------

    def stream_key(self, session: str, conversation_id: str) -> str:
        return f"{self._prefix}log:{session}:{conversation_id}"

    def _ids_key(self, session: str, conversation_id: str) -> str:
        return f"{self._prefix}ids:{session}:{conversation_id}"

    def _state_key(self, session: str, conversation_id: str) -> str:
        return f"{self._prefix}conv:{session}:{conversation_id}"

    def _checkpoint_key(self, session: str) -> str:
        return f"{self._prefix}lei:{session}"

    # -- writing (the session's owner only) ---------------------------------------------------

    def begin(self, session: str) -> int:
        """This process now holds the session: batches committed under the returned generation
        are written; those of an earlier holding (stopped, maybe still queued) never are."""
        self._next_generation += 1
        self._generations[session] = self._next_generation
        return self._next_generation

    def stop(self, session: str) -> None:
        """This process no longer holds the session: whatever it still has queued for it is
        dropped (the next holder's catch-up fetches it from Salesforce)."""
        self._generations.pop(session, None)

    def commit(
        self,
        session: str,
        generation: int,
        conversation_id: str,
        entries: list[Entry],
        view: ConversationView,
        last_timestamp: int,
        checkpoint: str | None,
        expires_at: float,
    ) -> None:
        """Queue entries a log just appended, with the state folded so far; written in order.
        Receipts (no reader is shown them) and a bot's answer in the making (streamed tokens,
        progress: the final message follows) are not kept."""
        pairs: list[str | bytes] = []
        for entry in entries:
            if entry.entry_type in RECEIPT_TYPES or entry.entry_type in PREVIEW_TYPES:
                continue
            pairs.append(entry.identifier or "")
            pairs.append(self._sealer.seal(ENTRY_JSON.dump_json(entry)))
        batch = _Batch(
            session,
            generation,
            conversation_id,
            int(expires_at * 1000),
            self._sealer.seal(dump_view(view)),
            last_timestamp,
            checkpoint or "",
            pairs,
        )
        self._last = batch
        self._queue.put_nowait(batch)
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(
                self._write(), context=contextvars.Context()
            )

    async def flushed(self, seconds: float = FLUSH_WAIT) -> None:
        """Wait until everything committed so far is written (or refused), at most `seconds`:
        while Redis is down the writer keeps retrying, and the reader goes on (and reads)."""
        last = self._last
        if last is not None and not last.done.done():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(seconds):
                    await asyncio.shield(last.done)

    async def _write(self) -> None:
        while not self._queue.empty():
            batch = self._queue.get_nowait()
            try:
                if self._generations.get(batch.session) == batch.generation:
                    await self._write_batch(batch)
            except Exception as exc:  # a batch that cannot be written is dropped, the session
                # let go of: its next holder's catch-up fetches the entries from Salesforce
                log.error("state.journal_write_dropped", error=type(exc).__name__)
                self._refused(batch.session)
            finally:
                if not batch.done.done():
                    batch.done.set_result(None)

    def _refused(self, session: str) -> None:
        self._generations.pop(session, None)
        self.on_lost(session)

    async def _write_batch(self, batch: _Batch) -> None:
        failures = 0
        while True:
            try:
                added = await self._append(
                    keys=[
                        self._ownership.owner_key(batch.session),
                        self.stream_key(batch.session, batch.conversation_id),
                        self._ids_key(batch.session, batch.conversation_id),
                        self._state_key(batch.session, batch.conversation_id),
                        self._checkpoint_key(batch.session),
                    ],
                    args=[
                        self._ownership.process_id,
                        self._ownership.process_prefix,
                        batch.expires_at_ms,
                        self._max_entries,
                        batch.view,
                        batch.last_timestamp,
                        batch.checkpoint,
                        *batch.pairs,
                    ],
                )
                break
            except (RedisConnectionError, RedisTimeoutError) as exc:
                # Redis is away: keep the order, retry this batch before any later one.
                delay = REDIS_RETRY.delay(failures)
                failures += 1
                log.warning("state.journal_write_failed", error=type(exc).__name__)
                await asyncio.sleep(delay)
                if self._generations.get(batch.session) != batch.generation:
                    return  # let go of meanwhile
        if int(added) < 0:
            log.info("state.session_lost")
            self._refused(batch.session)

    async def aclose(self) -> None:
        """Write what is queued (bounded by the caller), then stop."""
        if self._writer is not None:
            with contextlib.suppress(asyncio.CancelledError, RedisError):
                await self._writer

    # -- reading (any process) ----------------------------------------------------------------

    async def load(self, session: str, conversation_id: str) -> StoredConversation:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.smembers(self._ids_key(session, conversation_id))
            pipe.hgetall(self._state_key(session, conversation_id))
            ids, state = await pipe.execute()
        view = load_view(self._sealer.open(state[b"v"])) if b"v" in state else ConversationView()
        return StoredConversation({text_of(i) for i in ids}, view, int(state.get(b"t", 0)))

    async def checkpoint(self, session: str) -> str | None:
        value = await self._redis.get(self._checkpoint_key(session))
        return text_of(value) if value else None

    async def has(self, session: str, conversation_id: str, identifier: str) -> bool:
        return bool(
            await self._redis.sismember(self._ids_key(session, conversation_id), identifier)
        )

    async def read_after(
        self, session: str, conversation_id: str, cursor: str
    ) -> tuple[list[tuple[str, Entry]], ConversationView]:
        """Entries after `cursor` (a page at most), and the conversation's state now."""
        start = "-" if position(cursor) == (0, 0) else f"({cursor}"
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.xrange(
                self.stream_key(session, conversation_id), min=start, max="+", count=READ_PAGE
            )
            pipe.hget(self._state_key(session, conversation_id), "v")
            items, view = await pipe.execute()
        entries = [
            (text_of(stream_id), ENTRY_JSON.validate_json(self._sealer.open(fields[b"e"])))
            for stream_id, fields in items
        ]
        return entries, load_view(self._sealer.open(view)) if view else ConversationView()
