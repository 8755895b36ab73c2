"""The simulated org's state: tokens, conversations, per-subject event logs and open streams.

Everything runs on one event loop and no mutation awaits half-way, so no locks are needed. Events
get a global, strictly increasing id; a subject's log is append-only, so replay after
`Last-Event-Id` is a bisect, and a new event wakes only the streams of its subject.

The org also keeps a `version` for observers of the whole org (the control API's long-poll, the
agent console): it grows on every event, new conversation and reset, and each change sets the
current `asyncio.Event` and swaps in a fresh one, so a waiter never misses a change.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import time
from collections import deque
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

from app.simulator import entries as E
from app.simulator.errors import SimError, not_found
from app.simulator.options import SimulatorOptions
from app.simulator.tokens import TokenRecord, TokenRegistry
from app.simulator.verification import UserVerification

Json = dict[str, Any]


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class Participant:
    role: str  # Chatbot | Agent
    app_type: str
    subject: str
    display_name: str

    def as_sender(self) -> Json:
        return E.sender(self.role, self.app_type, self.subject)

    def as_json(self) -> Json:
        return {"role": self.role, "displayName": self.display_name, "subject": self.subject}


@dataclass
class MessagingSession:
    session_id: str
    start_ms: int
    status: str = "Active"
    end_ms: int | None = None
    ended_by: str | None = None

    @property
    def active(self) -> bool:
        return self.status != "Ended"


@dataclass
class Conversation:
    conversation_id: str
    subject: str
    es_developer_name: str
    routing_attributes: dict[str, Any]
    start_ms: int
    channel_address: str
    session: MessagingSession
    end_ms: int = 0
    open: bool = True
    routing_status: str = "INITIAL"
    participants: list[Participant] = field(default_factory=list)
    queue_position: int | None = None
    entries: list[Json] = field(default_factory=list)
    message_ids: set[str] = field(default_factory=set)
    message_times: deque[float] = field(default_factory=deque)
    last_ts: int = 0
    actor_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    user_typing: bool = False
    """The end user's last typing indicator said started (what the agent console shows)."""
    read_entry_ids: list[str] = field(default_factory=list)
    """Entries the end user acknowledged as read, oldest first."""
    stream_sequences: dict[str, int] = field(default_factory=dict)
    """The last sequence number streamed per target message (the bot's streamed answers)."""

    def participant(self, role: str) -> Participant | None:
        return next((p for p in self.participants if p.role == role), None)

    def next_timestamp(self) -> int:
        # Strictly increasing per conversation, so ordering by transcriptedTimestamp is total.
        self.last_ts = max(now_ms(), self.last_ts + 1)
        return self.last_ts

    def summary(self) -> Json:
        return {
            "conversationId": self.conversation_id,
            "subject": self.subject,
            "esDeveloperName": self.es_developer_name,
            "open": self.open,
            "routingStatus": self.routing_status,
            "routingAttributes": self.routing_attributes,
            "participants": [p.as_json() for p in self.participants],
            "session": {
                "sessionId": self.session.session_id,
                "status": self.session.status,
                "endedByRole": self.session.ended_by,
            },
            "queuePosition": self.queue_position,
            "startTimestamp": self.start_ms,
            "endTimestamp": self.end_ms,
            "entries": self.entries,
            "userTyping": self.user_typing,
            "readEntryIds": self.read_entry_ids,
        }


@dataclass
class StoredEvent:
    id: int
    event_type: str
    data: str  # serialised once, shared by every stream that sends it


@dataclass(eq=False)
class Stream:
    subject: str
    token: TokenRecord
    last_id: int
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    cut: bool = False


class RateWindow:
    """At most `limit` hits in any 60-second window."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.hits: deque[float] = deque()

    def hit(self, now: float) -> bool:
        while self.hits and now - self.hits[0] >= 60.0:
            self.hits.popleft()
        if len(self.hits) >= self.limit:
            return False
        self.hits.append(now)
        return True


@dataclass
class StoredFile:
    name: str
    mime_type: str
    content: bytes


class SimulatedOrg:
    def __init__(self, options: SimulatorOptions) -> None:
        self.options = options
        self.tokens = TokenRegistry(options.jwt_secret, options.org_id)
        self.version = 0
        self._changed = asyncio.Event()
        self.open_long_polls = 0
        self.conversations: dict[str, Conversation] = {}
        self.files: dict[str, StoredFile] = {}
        self._logs: dict[str, list[StoredEvent]] = {}
        self._streams: dict[str, set[Stream]] = {}
        self._event_seq = 2147867000
        self._session_seq = 0
        self._token_window = RateWindow(options.token_requests_per_minute)
        self._renew_window = RateWindow(options.token_requests_per_minute)
        self._tasks: set[asyncio.Task[None]] = set()
        self.channel_address = "5f0e7c8a-1b2c-4d5e-9f00-112233445566"
        self.user_verification = UserVerification(
            options.identity_jwks_url, options.identity_fallback_to_guest
        )

    # -- tokens -------------------------------------------------------------------------------

    def check_token_rate(self, renew: bool = False) -> None:
        if not self.options.rate_limits:
            return
        window = self._renew_window if renew else self._token_window
        if not window.hit(time.monotonic()):
            raise SimError(429, "Too many token requests for this org.", "TOO_MANY_REQUESTS")

    @property
    def last_event_id(self) -> str:
        return str(self._event_seq)

    # -- change notification (whole org) ------------------------------------------------------

    def bump(self) -> None:
        """Record a change: a new version, and wake everyone waiting for one."""
        self.version += 1
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_for_change(self, since: int) -> int:
        """Return the version once it differs from `since` (callers bound the wait).

        A `since` ahead of the version (a client that saw an earlier run of the simulator) counts
        as a difference, so such a client resynchronises at once instead of waiting.
        """
        while self.version == since:
            await self._changed.wait()
        return self.version

    # -- conversations ------------------------------------------------------------------------

    def add_conversation(self, conv: Conversation) -> None:
        self.conversations[conv.conversation_id] = conv
        self.bump()

    def new_session(self) -> MessagingSession:
        self._session_seq += 1
        return MessagingSession(session_id=f"0Mw{self._session_seq:012d}", start_ms=now_ms())

    def conversation_for(self, token: TokenRecord, conversation_id: str) -> Conversation:
        conv = self.conversations.get(conversation_id.lower())
        # Another subject's conversation is indistinguishable from a missing one.
        if conv is None or conv.subject != token.subject:
            raise not_found("Conversation not found.")
        return conv

    def check_message_rate(self, conv: Conversation) -> None:
        if not self.options.rate_limits:
            return
        now = time.monotonic()
        while conv.message_times and now - conv.message_times[0] >= 60.0:
            conv.message_times.popleft()
        if len(conv.message_times) >= self.options.messages_per_minute:
            raise SimError(
                429,
                "Too many messages for this conversation. Try again later.",
                "TOO_MANY_REQUESTS",
            )
        conv.message_times.append(now)

    # -- events -------------------------------------------------------------------------------

    def emit(
        self,
        conv: Conversation,
        payload: Json,
        sender: Json,
        display_name: str,
        *,
        identifier: str | None = None,
        related: list[str] | None = None,
        client_ts: int | None = None,
    ) -> Json:
        """Record an entry (unless ephemeral) and publish it to the subject's event stream."""
        ts = conv.next_timestamp()
        entry_type = payload["entryType"]
        entry: Json = {
            "entryType": entry_type,
            "identifier": identifier or payload["id"],
            "entryPayload": payload,
            "sender": sender,
            "senderDisplayName": display_name,
            "transcriptedTimestamp": ts,
            "clientTimestamp": client_ts if client_ts is not None else ts,
            "clientDuration": 0,
            "relatedRecords": related if related is not None else [conv.session.session_id],
        }
        if entry_type not in E.EPHEMERAL_TYPES:
            conv.entries.append(entry)
        self._event_seq += 1
        event = StoredEvent(
            id=self._event_seq,
            event_type=E.EVENT_NAMES.get(entry_type, "CONVERSATION_" + entry_type.upper()),
            data=E.to_sse_data(
                entry,
                conversation_id=conv.conversation_id,
                channel_address=conv.channel_address,
            ),
        )
        self._logs.setdefault(conv.subject, []).append(event)
        for stream in self._streams.get(conv.subject, ()):
            stream.wake.set()
        self.bump()
        return entry

    def events_after(self, subject: str, last_id: int) -> list[StoredEvent]:
        log = self._logs.get(subject, [])
        start = bisect.bisect_right(log, last_id, key=lambda e: e.id)
        return log[start:]

    # -- streams ------------------------------------------------------------------------------

    def open_stream(self, token: TokenRecord, last_event_id: str | None) -> Stream:
        try:
            last_id = int(last_event_id) if last_event_id else self._event_seq
        except ValueError:
            last_id = self._event_seq
        if not self.options.replay:
            last_id = self._event_seq
        stream = Stream(subject=token.subject, token=token, last_id=last_id)
        self._streams.setdefault(token.subject, set()).add(stream)
        self.bump()  # observers (the control API's long-poll) see streams come and go
        return stream

    def close_stream(self, stream: Stream) -> None:
        streams = self._streams.get(stream.subject)
        if streams is not None:
            streams.discard(stream)
            if not streams:
                del self._streams[stream.subject]
            self.bump()

    @property
    def open_stream_count(self) -> int:
        return sum(len(s) for s in self._streams.values())

    def cut_streams(self) -> int:
        count = 0
        for streams in self._streams.values():
            for stream in streams:
                stream.cut = True
                stream.wake.set()
                count += 1
        return count

    def revoke_token(self, token: TokenRecord) -> None:
        """Revoke, and end the token's open streams now rather than at their next ping."""
        self.tokens.revoke(token.jti)
        for stream in self._streams.get(token.subject, ()):
            if stream.token is token:
                stream.cut = True
                stream.wake.set()

    def expire_tokens(self) -> int:
        expired = self.tokens.expire_all()
        self.cut_streams()
        return expired

    # -- background actors --------------------------------------------------------------------

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def aclose(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.cut_streams()

    def reset(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        self.cut_streams()
        self.tokens.clear()
        self.conversations.clear()
        self.files.clear()
        self._logs.clear()
        self._token_window = RateWindow(self.options.token_requests_per_minute)
        self._renew_window = RateWindow(self.options.token_requests_per_minute)
        # The version keeps growing across resets: observers holding an old one must see a change.
        self.bump()
