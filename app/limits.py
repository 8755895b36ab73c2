"""Abuse limits: how often a user or an address may start chats, and how many may be open at once.

Anyone who learns the `/mcp` URL can call it, and each guest token counts against the org's
limits and each conversation asks an agent's attention. So, on by default:

- rates per ChatGPT user (`openai/subject`) for `generate_guest_access_token` and
  `create_conversation`, each its own budget (`RATE_LIMIT_PER_USER`); calls that carry no user
  are limited per client address instead (`RATE_LIMIT_PER_IP`). ChatGPT's calls all come from
  its own egress addresses, so they are never limited per address;
- open conversations per user (`MAX_OPEN_CONVERSATIONS_PER_USER`; without a user, per session);
- concurrent guest sessions across all processes (`MAX_SESSIONS`).

A rate is a budget that refills evenly (the generic cell rate algorithm): "10/10m" allows 10 calls
at once, then one a minute. Counters live in memory, or in Redis (`app.state.counters`) so the
limits hold across processes. Keys hold a hash of the user, address or session, never the value.
A refusal is a `LimitReached` naming the limit and when to retry, and one log line naming the
limit (no user, no address).
"""

from __future__ import annotations

import hashlib
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NoReturn, Protocol

import structlog
from starlette.requests import Request

from app.failures import HandoffError

log = structlog.get_logger(__name__)

_RATE = re.compile(r"^\s*(\d{1,6})\s*/\s*(\d{0,6})\s*(s|m|h|d)\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_UNIT_NAMES = {"s": "second", "m": "minute", "h": "hour", "d": "day"}
OFF = "off"
PRUNE_AT = 10_000
"""In memory, keys past this many are swept of the expired ones."""


@dataclass(frozen=True)
class Rate:
    """At most `count` calls, refilling evenly over `seconds`."""

    count: int
    seconds: float
    text: str

    @classmethod
    def parse(cls, value: str) -> Rate | None:
        """ "10/10m", "30/h", "5/30s"; "off" for no limit."""
        if value.strip().lower() == OFF:
            return None
        match = _RATE.match(value)
        if not match or int(match[1]) < 1 or match[2] == "0":
            raise ValueError(
                'must be a rate such as "10/10m" (calls per period: s, m, h or d) or "off"'
            )
        amount = int(match[2] or 1)
        unit = match[3]
        name = _UNIT_NAMES[unit] + ("s" if amount > 1 else "")
        period = f"{amount} {name}" if amount > 1 else name
        return cls(int(match[1]), amount * _UNIT_SECONDS[unit], f"{match[1]} per {period}")

    @property
    def interval(self) -> float:
        return self.seconds / self.count


class LimitReached(HandoffError):
    """A call refused by an abuse limit; the message names the limit and when to retry."""

    def __init__(self, message: str, limit: str) -> None:
        super().__init__(message)
        self.limit = limit


class Counters(Protocol):
    async def take(self, key: str, rate: Rate, now: float) -> float:
        """Spend one call of `key`'s budget: 0 when allowed, else the seconds until one is."""
        ...

    async def hold(self, scope: str, member: str, until: float, cap: int, now: float) -> bool:
        """Add `member` to `scope` until `until` (or extend it) unless `scope` already holds
        `cap` members that have not expired: False then, and nothing changes."""
        ...

    async def let_go(self, scope: str, members: list[str]) -> None:
        """Remove members from `scope` (those it does not hold are ignored)."""
        ...


@dataclass
class MemoryCounters:
    """Counters of one process."""

    _due: dict[str, float] = field(default_factory=dict)
    _held: dict[str, dict[str, float]] = field(default_factory=dict)

    async def take(self, key: str, rate: Rate, now: float) -> float:
        if len(self._due) > PRUNE_AT:
            self._due = {k: due for k, due in self._due.items() if due > now}
        # The budget is full again when `due` is in the past; each call moves it one interval on.
        due = max(self._due.get(key, now), now) + rate.interval
        if due - now > rate.seconds:
            return due - now - rate.seconds
        self._due[key] = due
        return 0.0

    async def hold(self, scope: str, member: str, until: float, cap: int, now: float) -> bool:
        if len(self._held) > PRUNE_AT:
            # Scopes whose every member expired (users who never came back) are forgotten.
            self._held = {
                name: members
                for name, members in self._held.items()
                if any(end > now for end in members.values())
            }
        held = self._held.setdefault(scope, {})
        for expired in [m for m, end in held.items() if end <= now]:
            del held[expired]
        if member not in held and len(held) >= cap:
            return False
        held[member] = until
        return True

    async def let_go(self, scope: str, members: list[str]) -> None:
        held = self._held.get(scope)
        if held is None:
            return
        for member in members:
            held.pop(member, None)
        if not held:
            del self._held[scope]


def digest(*parts: str) -> str:
    """A stable name for a user, an address or a session that does not reveal it."""
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:24]


def client_address(request: Request | None, proxy_hops: int) -> str | None:
    """The caller's address: the connection's peer, or with `proxy_hops` trusted proxies in front
    (Heroku's router: 1) the X-Forwarded-For entry the outermost of them added. Entries to its
    left are the client's own say and are ignored."""
    if request is None:
        return None
    peer = request.client.host if request.client else None
    if proxy_hops <= 0:
        return peer
    forwarded = [
        hop.strip()
        for header in request.headers.getlist("x-forwarded-for")
        for hop in header.split(",")
        if hop.strip()
    ]
    return forwarded[-proxy_hops] if len(forwarded) >= proxy_hops else peer


def _wait_text(seconds: float) -> str:
    seconds = max(1, math.ceil(seconds))
    if seconds < 120:
        return f"{seconds} s"
    return f"{math.ceil(seconds / 60)} minutes"


@dataclass(frozen=True)
class LimitSettings:
    per_user: Rate | None
    per_ip: Rate | None
    open_per_user: int
    max_sessions: int
    proxy_hops: int = 0


class Limits:
    def __init__(
        self,
        counters: Counters,
        settings: LimitSettings,
        clock: Callable[[], float] = time.time,
        on_refused: Callable[[str, str | None], None] | None = None,
    ) -> None:
        self._counters = counters
        self._settings = settings
        self._clock = clock
        self._on_refused = on_refused
        """Told each refusal: the limit's name and the tool, when known (the operator page)."""

    def _refuse(self, limit: str, message: str, tool: str | None = None) -> NoReturn:
        if self._on_refused is not None:
            try:
                self._on_refused(limit, tool)
            except Exception as exc:  # an observer (the operator page): the refusal stands
                log.warning("limit.watcher_failed", error=type(exc).__name__)
        refuse(limit, message)

    async def admit(self, tool: str, user: str | None, request: Request | None) -> None:
        """A call that starts something (`tool`) by this user, or without one from the request's
        address: refused when their budget for `tool` is spent."""
        address = client_address(request, self._settings.proxy_hops)
        if user is not None:
            rate, limit, key, who = self._settings.per_user, "RATE_LIMIT_PER_USER", user, "user"
        elif address is not None:
            rate, limit, key, who = self._settings.per_ip, "RATE_LIMIT_PER_IP", address, "address"
        else:
            return  # stdio: the one local user
        if rate is None:
            return
        wait = await self._counters.take(f"rate:{tool}:{digest(who, key)}", rate, self._clock())
        if wait > 0:
            self._refuse(
                limit,
                f"{tool} is limited to {rate.text} for each {who} ({limit}); "
                f"try again in {_wait_text(wait)}.",
                tool,
            )

    async def open_session(self, handle: str, until: float) -> None:
        if not await self._counters.hold(
            "sessions", digest(handle), until, self._settings.max_sessions, self._clock()
        ):
            self._refuse(
                "MAX_SESSIONS",
                f"The server is at its limit of {self._settings.max_sessions} concurrent chats "
                "(MAX_SESSIONS); try again in a few minutes, when other chats have ended.",
            )

    async def session_over(self, handle: str) -> None:
        await self._counters.let_go("sessions", [digest(handle)])

    async def open_conversation(
        self, user: str | None, handle: str, conversation_id: str, until: float
    ) -> None:
        cap = self._settings.open_per_user
        scope, member = self._conversation_slot(user, handle, conversation_id)
        if not await self._counters.hold(scope, member, until, cap, self._clock()):
            who = "user" if user is not None else "session"
            self._refuse(
                "MAX_OPEN_CONVERSATIONS_PER_USER",
                f"This {who} already has {cap} open conversations "
                "(MAX_OPEN_CONVERSATIONS_PER_USER); close one with close_conversation, or "
                "wait until one ends, before opening another.",
            )

    async def conversations_over(
        self, user: str | None, handle: str, conversation_ids: list[str]
    ) -> None:
        if not conversation_ids:
            return
        slots = [self._conversation_slot(user, handle, cid) for cid in conversation_ids]
        await self._counters.let_go(slots[0][0], [member for _, member in slots])

    @staticmethod
    def _conversation_slot(user: str | None, handle: str, conversation_id: str) -> tuple[str, str]:
        owner = digest("user", user) if user is not None else digest("session", handle)
        return f"open:{owner}", digest(handle, conversation_id.lower())


def refuse(limit: str, message: str) -> NoReturn:
    log.warning("limit.refused", limit=limit)
    raise LimitReached(message, limit)
