"""The audit trail in Redis (`app.audit.AuditStore`), shared by every process.

One Redis Stream, `audit` (after REDIS_KEY_PREFIX), each entry one record, sealed (the caller
identifies someone). Entry ids come from the records' times (the caller's clock, as the limit
counters' do, so a controllable clock keeps tests exact), growing even when one process's clock
is behind another's. One Lua script appends a batch and trims in the same step: to `max_records`
(exact `MAXLEN`: one or two entries per append, cheap at tool-call rates) and to the retention
(`MINID` at the newest record's time less the retention); the key expires a retention after the
last append, so an idle trail empties itself.

A tool call never waits for Redis: `add` queues the record and one background task per process
writes the queue in batches, each bounded by `write_timeout`. A batch Redis refuses or does not
answer in time is given up with an `audit.unwritten` log line (every record is in the log as its
`audit` line anyway); past `MAX_PENDING` queued records new ones are dropped, counted in
`audit.dropped`; after `aclose`, a record is not queued but logged `audit.unwritten` (`closed`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import deque

import structlog
from redis.asyncio import Redis

from app.audit import AuditQuery, AuditRecord
from app.audit_records import AuditPage, id_order
from app.state.sealing import Sealer, SealingError

log = structlog.get_logger(__name__)

MAX_PENDING = 10_000
BATCH = 200
READ_PAGE = 200
"""Records read (and opened) between two waits on Redis: the loop never opens more at once."""
WRITE_SECONDS = 5.0
CLOSE_SECONDS = 2.0
"""At shutdown, how long queued records may take to reach Redis."""

# KEYS[1] the stream; ARGV max records, retention (ms), then pairs: a record's time (ms), the
# sealed record. Returns how many were added.
_ADD = """
local last_ms, last_seq = -1, 0
if redis.call('EXISTS', KEYS[1]) == 1 then
  -- The last id the stream gave, not its newest entry's: after a trim or a delete of the
  -- newest, XADD still refuses any id up to it.
  local info = redis.call('XINFO', 'STREAM', KEYS[1])
  local id
  for i = 1, #info, 2 do
    if info[i] == 'last-generated-id' then id = info[i + 1] end
  end
  local dash = string.find(id, '-', 1, true)
  last_ms = tonumber(string.sub(id, 1, dash - 1))
  last_seq = tonumber(string.sub(id, dash + 1))
end
for i = 3, #ARGV, 2 do
  local ms, seq = tonumber(ARGV[i]), 0
  if ms <= last_ms then
    ms, seq = last_ms, last_seq + 1
  end
  redis.call('XADD', KEYS[1], 'MAXLEN', ARGV[1], string.format('%d-%d', ms, seq), 'r', ARGV[i + 1])
  last_ms, last_seq = ms, seq
end
local oldest = math.max(0, last_ms - tonumber(ARGV[2]))
redis.call('XTRIM', KEYS[1], 'MINID', string.format('%d-0', oldest))
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return (#ARGV - 2) / 2
"""


def _ms(seconds: float) -> int:
    return int(seconds * 1000)


class RedisAuditStore:
    def __init__(
        self,
        redis: Redis,
        sealer: Sealer,
        prefix: str,
        *,
        max_records: int,
        retention: float,
        write_timeout: float = WRITE_SECONDS,
    ) -> None:
        self.retention = retention
        self._redis = redis
        self._sealer = sealer
        self._key = f"{prefix}audit"
        self._max_records = max_records
        self._write_timeout = write_timeout
        self._add = redis.register_script(_ADD)
        self._pending: deque[AuditRecord] = deque()
        self._dropped = 0
        self._writer: asyncio.Task[None] | None = None
        self._closed = False

    def add(self, record: AuditRecord) -> None:
        if self._closed:  # its writer is gone and Redis about to be: say so
            log.warning("audit.unwritten", records=1, error="closed")
            return
        if len(self._pending) >= MAX_PENDING:
            self._dropped += 1
            return
        self._pending.append(record)
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(self._write())

    async def _write(self) -> None:
        while self._pending:
            batch = [self._pending.popleft() for _ in range(min(BATCH, len(self._pending)))]
            try:
                args: list[str | int | bytes] = [self._max_records, _ms(self.retention)]
                for record in batch:
                    sealed = self._sealer.seal(json.dumps(record.as_json()).encode())
                    args += [_ms(record.at), sealed]
                async with asyncio.timeout(self._write_timeout):
                    await self._add(keys=[self._key], args=args)
            except Exception as exc:  # RedisError, TimeoutError: the calls have their answers
                log.warning("audit.unwritten", records=len(batch), error=type(exc).__name__)
            except asyncio.CancelledError:
                log.warning("audit.unwritten", records=len(batch), error="shutdown")
                raise
            if self._dropped:
                log.warning("audit.dropped", records=self._dropped)
                self._dropped = 0

    async def flush(self) -> None:
        while self._writer is not None and not self._writer.done():
            await asyncio.shield(self._writer)

    async def aclose(self) -> None:
        self._closed = True
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(CLOSE_SECONDS):
                await self.flush()
        if self._writer is not None and not self._writer.done():
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
        if self._pending:
            log.warning("audit.unwritten", records=len(self._pending), error="shutdown")
            self._pending.clear()

    async def recent(self, query: AuditQuery, now: float) -> AuditPage:
        """Reads pages of at most READ_PAGE records, newest first, opening each only until
        `query.limit` match, and at most `query.scan` records in all."""
        floor = query.floor(now, self.retention)
        low, high = f"{_ms(floor)}-0", "+"
        if query.after is not None and id_order(query.after) >= (_ms(floor), 0):
            low = f"({query.after}"
        found: list[AuditRecord] = []
        unreadable = scanned = 0
        stopped_early = False
        while len(found) < query.limit:
            if scanned >= query.scan:
                # Whether any record is left to read: only then did the bound stop the scan.
                rest = await self._redis.xrevrange(self._key, high, low, count=1)
                stopped_early = bool(rest)
                break
            count = min(READ_PAGE, query.scan - scanned)
            page: list[tuple[bytes, dict[bytes, bytes]]] = await self._redis.xrevrange(
                self._key, high, low, count=count
            )  # type: ignore[assignment]
            scanned += len(page)
            for entry_id, fields in page:
                try:
                    data = json.loads(self._sealer.open(fields[b"r"]))
                except (SealingError, KeyError, ValueError):
                    unreadable += 1  # sealed with a key no longer configured
                    continue
                record = AuditRecord.from_json(data, entry_id.decode())
                if query.matches(record, floor):
                    found.append(record)
                    if len(found) >= query.limit:
                        break
            if len(page) < count:
                break
            high = f"({page[-1][0].decode()}"
        if unreadable:
            log.warning("audit.unreadable", records=unreadable)
        return AuditPage(found, stopped_early)
