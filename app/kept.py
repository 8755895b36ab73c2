"""A deployment fact asked of Salesforce and kept a while per process (business hours, the
pre-chat form): fetched when stale within a time limit; a failure is logged, keeps what was known
before and is asked again sooner."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

import structlog

from app.scrt import ScrtError

log = structlog.get_logger(__name__)

T = TypeVar("T")


class Kept(Generic[T]):
    def __init__(
        self,
        fetch: Callable[[], Awaitable[T | None]],
        *,
        ttl: float,
        failed_ttl: float,
        wait: float,
        event: str,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        """`fetch` within `wait` seconds; an answer kept `ttl` s, a failure `failed_ttl` s
        (logged as `event`)."""
        self._fetch = fetch
        self._ttl = ttl
        self._failed_ttl = failed_ttl
        self._wait = wait
        self._event = event
        self._monotonic = monotonic
        self._kept: tuple[float, T | None] | None = None

    def put(self, value: T) -> None:
        """A value learnt another way (kept `ttl` s)."""
        self._kept = (self._monotonic() + self._ttl, value)

    async def get(self) -> T | None:
        kept = self._kept
        if kept is not None and self._monotonic() < kept[0]:
            return kept[1]
        try:
            async with asyncio.timeout(self._wait):
                value = await self._fetch()
        except (ScrtError, TimeoutError) as exc:
            log.warning(self._event, error=type(exc).__name__)
            stale = kept[1] if kept is not None else None
            self._kept = (self._monotonic() + self._failed_ttl, stale)
            return stale
        self._kept = (self._monotonic() + self._ttl, value)
        return value
