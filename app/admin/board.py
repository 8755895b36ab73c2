"""The operations board: what this process sees of its chats, Salesforce and its callers.

A read-only observation interface. The delivery engine's feeds (`app.delivery.FeedWatcher`), the
abuse limits (`Limits(on_refused=…)`) and the MCP middleware (`app.admin.watch.ToolWatch`) report
into it; the operator page (`app.admin.routes`) reads `snapshot()` and waits on `changed()`.

It keeps only what the page shows, and never message text, tokens or session handles: for a
conversation its id, state, the agent's display name and times; for a tool error the tool's name
and the text the model saw, less any value (a refused call's arguments, the record values
Salesforce's messages quote: see `watch.py`); for a refusal the limit's name. Everything is
bounded (the newest conversations, errors and refusals). It is this process's view: with
REDIS_URL each process has its own board.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from app.delivery import GuestFeed
    from app.scrt import ScrtError
    from app.transcript import ConversationLog

CONVERSATIONS_KEPT = 500
"""Rows kept; past it the oldest ended ones go first, then the oldest seen."""
ERRORS_KEPT = 50
REFUSALS_KEPT = 50

ENDED_BY = {"Agent": "agent", "EndUser": "customer", "Chatbot": "bot"}
"""Salesforce's `sessionEndedByRole` as the page says it; anything else is the system."""


@dataclass
class ChatRow:
    """One conversation as the page shows it (times: seconds since the epoch)."""

    conversation_id: str
    opened_at: float
    seen_at: float
    state: str = "routing"
    """routing | bot | waiting (for a human agent) | agent | ended"""
    queue_position: int | None = None
    agent: str | None = None
    waiting_since: float | None = None
    waited: float | None = None
    """Seconds from when the wait for a human began (a transfer, else the opening) until one
    joined; None while nobody has."""
    ended_at: float | None = None
    ended_by: str | None = None
    """agent | customer | bot | system"""
    followed: bool = True
    """Whether this process holds the conversation's event stream now."""
    closed: bool = False
    """Closed with close_conversation: over for good, whatever arrives after."""

    def shown(self) -> dict[str, Any]:
        return {
            "id": self.conversation_id,
            "state": self.state,
            "queuePosition": self.queue_position,
            "agent": self.agent,
            "openedAt": self.opened_at,
            "waitingSince": self.waiting_since,
            "waited": self.waited,
            "endedAt": self.ended_at,
            "endedBy": self.ended_by,
            "followed": self.followed,
        }


@dataclass(frozen=True)
class ToolFailure:
    at: float
    tool: str
    text: str


@dataclass(frozen=True)
class Refusal:
    at: float
    limit: str
    tool: str | None


@dataclass
class StreamHealth:
    """Salesforce's event streams of this process, counted since it started."""

    opens: int = 0
    reconnects: int = 0
    last_opened_at: float | None = None
    last_reconnect_at: float | None = None
    last_stop: tuple[float, str] | None = None
    """When a stream last stopped for good, and Salesforce's failure (its class name)."""


@dataclass
class OperationsBoard:
    forget_after: float = 4 * 3600.0
    """Rows not updated for this long are dropped (their sessions have expired)."""
    clock: Callable[[], float] = time.time
    process: str | None = None
    """The process id with shared state (REDIS_URL), shown so the operator knows whose view."""
    conversations: dict[str, ChatRow] = field(default_factory=dict)
    errors: deque[ToolFailure] = field(default_factory=lambda: deque(maxlen=ERRORS_KEPT))
    refusals: deque[Refusal] = field(default_factory=lambda: deque(maxlen=REFUSALS_KEPT))
    refusal_counts: Counter[str] = field(default_factory=Counter)
    calls: int = 0
    failed_calls: int = 0
    streams: StreamHealth = field(default_factory=StreamHealth)
    version: int = 0
    tag: str = field(default_factory=lambda: secrets.token_hex(4))
    """Names this board in its versions: a version is only this board's to compare (processes
    count their own, and a restart starts again)."""
    _feeds: set[GuestFeed] = field(default_factory=set)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    # -- reports ---------------------------------------------------------------------------------

    def _touch(self) -> None:
        self.version += 1
        # Wake every current waiter; later waiters wait on a fresh event.
        self._changed.set()
        self._changed = asyncio.Event()

    def _row(self, conversation_id: str) -> ChatRow:
        key = conversation_id.lower()
        row = self.conversations.get(key)
        now = self.clock()
        if row is None:
            self._prune(now)
            row = self.conversations[key] = ChatRow(key, opened_at=now, seen_at=now)
        row.seen_at = now
        return row

    def opened(self, conversation_id: str) -> None:
        """create_conversation succeeded."""
        self._row(conversation_id)
        self._touch()

    def closed_by_customer(self, conversation_id: str) -> None:
        """close_conversation succeeded: the user (through the model or the widget) ended it."""
        row = self._row(conversation_id)
        if row.state != "ended":
            row.state, row.ended_by, row.ended_at = "ended", "customer", self.clock()
        row.followed, row.closed = False, True
        row.queue_position = None
        self._touch()

    def appended(self, log: ConversationLog) -> None:
        """Entries were appended to a conversation's log: its folded state may have moved on."""
        view = log.view
        row = self._row(log.conversation_id)
        if row.closed:
            return
        now = self.clock()
        row.followed = True
        agent = next((name for role, name in view.participants.values() if role == "Agent"), None)
        if view.session_ended or view.closed:
            if row.state != "ended":
                row.state, row.ended_at = "ended", now
                row.ended_by = ENDED_BY.get(view.ended_by or "", "system")
            row.queue_position = None
        elif agent is not None:
            if row.waited is None:
                row.waited = now - (row.waiting_since or row.opened_at)
            row.state, row.agent, row.queue_position = "agent", agent, None
        elif view.transferring or view.queue_position is not None:
            if row.state != "waiting":
                # A new wait for a human (the first, or after a transfer from an agent): the
                # last agent and how long the last wait took belong to the one before.
                row.waiting_since, row.waited, row.agent = now, None, None
            row.state, row.queue_position = "waiting", view.queue_position
        else:
            bot = any(role == "Chatbot" for role, _ in view.participants.values())
            row.state = "bot" if bot else "routing"
        if row.state != "ended":
            row.ended_at = row.ended_by = None
        self._touch()

    def feed_opened(self, feed: GuestFeed) -> None:
        self._feeds.add(feed)
        self._touch()

    def feed_closed(self, feed: GuestFeed) -> None:
        self._feeds.discard(feed)
        for conversation_id in feed.logs:
            row = self.conversations.get(conversation_id.lower())
            if row is not None:
                row.followed = False
        self._touch()

    def stream_opened(self, feed: GuestFeed, opens: int) -> None:
        now = self.clock()
        self.streams.opens += 1
        self.streams.last_opened_at = now
        if opens > 1:
            self.streams.reconnects += 1
            self.streams.last_reconnect_at = now
        self._touch()

    def stream_stopped(self, feed: GuestFeed, error: ScrtError) -> None:
        self.streams.last_stop = (self.clock(), type(error).__name__)
        self._touch()

    def refused(self, limit: str, tool: str | None) -> None:
        self.refusals.appendleft(Refusal(self.clock(), limit, tool))
        self.refusal_counts[limit] += 1
        self._touch()

    def tool_called(self, tool: str, error: str | None) -> None:
        """A tools/call answered; `error`: the text the model saw, when it was an error."""
        self.calls += 1
        if error is not None:
            self.failed_calls += 1
            self.errors.appendleft(ToolFailure(self.clock(), tool, error))
        self._touch()

    def _prune(self, now: float) -> None:
        if len(self.conversations) < CONVERSATIONS_KEPT:
            return
        stale = now - self.forget_after
        for key in [k for k, row in self.conversations.items() if row.seen_at < stale]:
            del self.conversations[key]
        # Still full: the oldest ended conversations, then the oldest seen, make room.
        by_age = sorted(self.conversations.values(), key=lambda r: (r.state != "ended", r.seen_at))
        for row in by_age[: max(0, len(self.conversations) - CONVERSATIONS_KEPT + 1)]:
            del self.conversations[row.conversation_id]

    # -- reading ---------------------------------------------------------------------------------

    @property
    def version_token(self) -> str:
        """The version as the page holds it: `<tag>.<n>`."""
        return f"{self.tag}.{self.version}"

    async def changed(self, tag: str, since: int, seconds: float) -> bool:
        """Wait until the board moves past version `since` of board `tag`, at most `seconds`;
        True if it has. A version of another board (another process answered the page's last
        poll, or this one restarted) says nothing of this one: wait for this one to move, so a
        page served by several processes in turn still waits between updates."""
        if tag == self.tag and self.version != since:
            return True
        changed = self._changed
        try:
            async with asyncio.timeout(seconds):
                await changed.wait()
        except TimeoutError:
            return False
        return True

    def snapshot(self) -> dict[str, Any]:
        """Everything the page shows, as JSON-ready values (newest first)."""
        feeds = list(self._feeds)
        connected = sum(1 for feed in feeds if feed.stream_connected)
        stopped = sum(1 for feed in feeds if feed.error is not None)
        rows = sorted(self.conversations.values(), key=lambda r: r.opened_at, reverse=True)
        last_stop = self.streams.last_stop
        return {
            "version": self.version_token,
            "now": self.clock(),
            "process": self.process,
            "conversations": [row.shown() for row in rows],
            "salesforce": {
                "streams": len(feeds),
                "connected": connected,
                "stopped": stopped,
                "reconnecting": len(feeds) - connected - stopped,
                "opens": self.streams.opens,
                "reconnects": self.streams.reconnects,
                "lastOpenedAt": self.streams.last_opened_at,
                "lastReconnectAt": self.streams.last_reconnect_at,
                "lastStop": None
                if last_stop is None
                else {"at": last_stop[0], "error": last_stop[1]},
            },
            "calls": {"total": self.calls, "errors": self.failed_calls},
            "errors": [{"at": e.at, "tool": e.tool, "text": e.text} for e in self.errors],
            "refusals": [{"at": r.at, "limit": r.limit, "tool": r.tool} for r in self.refusals],
            "refusalCounts": dict(self.refusal_counts),
        }
