"""In-process session store with expiry. How many sessions may be open is the abuse limits' concern
(`MAX_SESSIONS`, app/limits.py): the store never evicts a record to make room."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

from app.store.base import SessionRecord

SWEEP_INTERVAL = 60.0


class MemorySessionStore:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._records: OrderedDict[str, SessionRecord] = OrderedDict()
        self._clock = clock
        self._next_sweep = 0.0

    async def put(self, record: SessionRecord) -> None:
        self._records[record.handle] = record.model_copy(deep=True)
        self._records.move_to_end(record.handle)
        self._evict()

    async def get(self, handle: str) -> SessionRecord | None:
        record = self._records.get(handle)
        if record is None:
            return None
        if record.expires_at <= self._clock():
            del self._records[handle]
            return None
        return record.model_copy(deep=True)

    async def update(
        self, handle: str, change: Callable[[SessionRecord], bool]
    ) -> SessionRecord | None:
        record = await self.get(handle)
        if record is None:
            return None
        if change(record):  # no await between reading and writing: nothing comes between
            await self.put(record)
        return record

    async def delete(self, handle: str) -> None:
        self._records.pop(handle, None)

    async def close(self) -> None:
        self._records.clear()

    def live(self) -> list[SessionRecord]:
        """Copies of the records not expired yet."""
        now = self._clock()
        return [r.model_copy(deep=True) for r in self._records.values() if r.expires_at > now]

    def __len__(self) -> int:
        return len(self._records)

    def _evict(self) -> None:
        now = self._clock()
        # Expired records are unreachable anyway (get checks); sweeping them is only about memory,
        # so a full scan runs at most once a minute instead of on every put.
        if now >= self._next_sweep:
            self._sweep(now)

    def _sweep(self, now: float) -> None:
        self._next_sweep = now + SWEEP_INTERVAL
        for handle in [h for h, r in self._records.items() if r.expires_at <= now]:
            del self._records[handle]
