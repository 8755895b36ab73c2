"""Support hours: whether the deployment's business hours are open now, and when they next open.

Salesforce answers `/embeddedservice/v1/businesshours` with the deployment's windows (epoch
milliseconds). Outside every window nobody serves the queue, so the model is told before it opens a
conversation (`generate_guest_access_token`'s result) and `create_conversation` refuses unless
asked to open one anyway. A deployment that answers no window at all has no business hours set
(assumed always open), and a failed lookup never stops a chat: both read as "unknown". The answer
is kept for `ttl` seconds per process, so chats do not cost a request each.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from app.failures import HandoffError
from app.kept import Kept
from app.scrt import ScrtClient
from app.scrt.results import BusinessHours

HOURS_TTL = 60.0
FAILED_TTL = 10.0
HOURS_WAIT = 2.0
"""Longest a tool call waits for the answer: past it, the hours are unknown."""


@dataclass(frozen=True)
class HoursNow:
    open: bool
    opens_at: int | None
    """Epoch ms of the next window's start when closed (None: no later window known)."""


def iso(ms: int | None) -> str | None:
    """ISO 8601 in UTC to the second; None for none or a time no calendar holds."""
    if ms is None:
        return None
    try:
        moment = datetime.fromtimestamp(ms / 1000, UTC)
    except (ValueError, OverflowError, OSError):
        return None
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


class SupportClosed(HandoffError):
    """Outside business hours; the model may tell the user, or open the conversation anyway."""

    def __init__(self, hours: HoursNow) -> None:
        when = (
            f" It opens next at {iso(hours.opens_at)}."
            if hours.opens_at is not None
            else " No next opening time is known."
        )
        super().__init__(
            "Support is closed now (outside the company's business hours), so nobody would "
            f"answer yet.{when} Tell the user. Only if they want to leave a message anyway, call "
            "create_conversation again with outsideBusinessHours=true."
        )


class SupportHours:
    """The deployment's business hours, asked at most once a `ttl` per process."""

    def __init__(
        self,
        client: ScrtClient,
        *,
        ttl: float = HOURS_TTL,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._clock = clock
        # Past windows are absolute times: those known before a failure still hold.
        self._windows: Kept[BusinessHours] = Kept(
            client.business_hours,
            ttl=ttl,
            failed_ttl=FAILED_TTL,
            wait=HOURS_WAIT,
            event="hours.unavailable",
            monotonic=monotonic,
        )

    async def now(self) -> HoursNow | None:
        """Open or closed now; None when unknown (no hours set, or Salesforce did not say)."""
        hours = await self._windows.get()
        if hours is None or not hours.windows:
            return None
        at = int(self._clock() * 1000)
        current = [w for w in hours.windows if w.start <= at < w.end]
        if current:
            return HoursNow(open=True, opens_at=None)
        later = [w.start for w in hours.windows if w.start > at]
        return HoursNow(open=False, opens_at=min(later) if later else None)
