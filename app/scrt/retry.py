"""Bounded retries with exponential back-off and jitter.

Only calls that cannot do harm twice are retried: reads, deletes, typing, acks, and writes that
carry a client-generated id (message id, conversation id) generated once before the first attempt.
A write whose outcome is unknown (no answer, a reset connection, a gateway error) is reconciled
before it is repeated: the caller's `reconcile` looks for it at Salesforce, and a write found there
is done. The whole call, attempts, reconciliation and pauses included, stays inside `total_timeout`
and inside the tool call's deadline (`app.scrt.deadline`), whichever comes first; when the next
pause would cross it, the last error is raised.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import Enum
from typing import TypeVar

import structlog

from app.scrt.deadline import call_deadline
from app.scrt.errors import (
    ScrtConnectionError,
    ScrtError,
    ScrtRateLimitError,
    ScrtServerError,
    ScrtTimeoutError,
    is_permanent,
    outcome_unknown,
)

log = structlog.get_logger(__name__)

T = TypeVar("T")


class RetryOn(Enum):
    """Which failures a call may be repeated after."""

    TRANSIENT = "transient"
    """429, 5xx, connection errors, timeouts: for idempotent calls and id-carrying writes."""
    SERVER = "server"
    """5xx, connection errors, timeouts, but not 429: for guest token minting (200/min per org is
    shared by every user, so hammering it after a 429 only makes things worse)."""
    NEVER = "never"
    """A single attempt, e.g. verified-token minting (the identity token may be single-use)."""


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry; the defaults keep a call under about 10 s."""

    max_attempts: int = 4
    base_delay: float = 0.25
    max_delay: float = 2.0
    total_timeout: float = 10.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.base_delay < 0 or self.max_delay < 0 or self.total_timeout <= 0:
            raise ValueError("delays must be >= 0 and total_timeout > 0")

    def delay(self, attempt: int) -> float:
        """Pause after failed attempt `attempt` (1-based): half fixed, half random."""
        ceiling = min(self.max_delay, self.base_delay * 2.0 ** (attempt - 1))
        return ceiling / 2 + random.uniform(0, ceiling / 2)


def is_retryable(error: ScrtError, retry_on: RetryOn) -> bool:
    if retry_on is RetryOn.NEVER or is_permanent(error):
        return False
    if isinstance(error, ScrtServerError | ScrtConnectionError | ScrtTimeoutError):
        return True
    return retry_on is RetryOn.TRANSIENT and isinstance(error, ScrtRateLimitError)


async def call_with_retry(
    attempt: Callable[[int], Awaitable[T]],
    *,
    policy: RetryPolicy,
    retry_on: RetryOn,
    method: str,
    route: str,
    reconcile: Callable[[], Awaitable[T | None]] | None = None,
) -> T:
    """Run `attempt(n)` (n = 1, 2, …) until it succeeds, fails for good, or the budget is spent.

    Every attempt runs under the remaining budget, so a hung request cannot outlive the bound.
    After a failure that leaves the outcome unknown, `reconcile()` (when given) is asked first: a
    result other than None means the write did happen, and is returned instead of retrying.
    """
    loop = asyncio.get_running_loop()
    with call_deadline(policy.total_timeout) as deadline:
        number = 1
        while True:
            try:
                async with asyncio.timeout_at(deadline):
                    return await attempt(number)
            except TimeoutError as exc:
                raise ScrtTimeoutError(
                    f"{method} {route}: no answer within the time allowed"
                ) from exc
            except ScrtError as error:
                if reconcile is not None and outcome_unknown(error):
                    found = await _reconciled(reconcile, deadline, method, route)
                    if found is not None:
                        return found
                if number >= policy.max_attempts or not is_retryable(error, retry_on):
                    raise
                pause = policy.delay(number)
                retry_after = getattr(error, "retry_after", None)
                if isinstance(retry_after, float):
                    pause = max(pause, min(retry_after, policy.max_delay))
                if loop.time() + pause >= deadline:
                    raise
                log.info(
                    "scrt.retry",
                    method=method,
                    route=route,
                    attempt=number,
                    status=getattr(error, "status", None),
                    error=type(error).__name__,
                    delay=round(pause, 3),
                )
                await asyncio.sleep(pause)
                number += 1


async def _reconciled(
    reconcile: Callable[[], Awaitable[T | None]], deadline: float, method: str, route: str
) -> T | None:
    """The reconciled result, or None when it is not found or cannot be checked in time."""
    try:
        async with asyncio.timeout_at(deadline):
            found = await reconcile()
    except (ScrtError, TimeoutError) as exc:
        log.info("scrt.reconcile_failed", method=method, route=route, error=type(exc).__name__)
        return None
    log.info("scrt.reconciled", method=method, route=route, found=found is not None)
    return found
