"""A conversation's append-only log and the state derived from it.

Every entry from Salesforce (event stream or entries endpoint) is appended once, deduplicated by
its `identifier`. A reader holds a cursor (a log position) and gets everything after it, in order.
Only the newest entries stay in memory (`app.history`: older ones are fetched again on demand).
Who is on the other side and whether the chat ended come from structured signals only
(ParticipantChanged, RoutingResult, SessionStatusChanged, CloseConversation), never from text.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import structlog
from pydantic import BaseModel

from app.history import HISTORY_ENTRIES, Retired
from app.scrt.models import (
    PREVIEW_TYPES,
    RECEIPT_TYPES,
    STREAM_ONLY_TYPES,
    TYPING_TYPES,
    Entry,
    EntryType,
)

log = structlog.get_logger(__name__)

LIVE_TYPES = TYPING_TYPES | PREVIEW_TYPES
"""Shown only to live displays (the widget), on request: typing, and a bot's answer in the
making (streamed tokens, progress). The model reads the final messages."""
# Entries no reader is shown: receipts.
HIDDEN_TYPES = RECEIPT_TYPES
OPTION_TITLES_KEPT = 100
"""Titles of the newest choices offered, so a pick reads as its title, not its id."""


class Choice(BaseModel):
    id: str
    """The option's id: pass it to send_choice to pick it."""
    title: str | None = None


class LinkOut(BaseModel):
    url: str | None = None
    """An http(s) address, or None when the link pointed elsewhere (not shown)."""
    title: str | None = None


class FileOut(BaseModel):
    name: str | None = None
    mimeType: str | None = None
    url: str | None = None
    """A time-limited download address (http(s) only)."""


def web_url(url: str | None) -> str | None:
    """The address if it is an http(s) URL with a host, else None: nothing else is offered to
    open (no javascript:, data: or file: links)."""
    if not url:
        return None
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return None
    return url.strip() if parts.scheme.lower() in ("http", "https") and parts.hostname else None


class TranscriptEntry(BaseModel):
    """One entry as tools return it: small, explicit, the same for the model and the widget."""

    id: str
    kind: str
    """message | form | joined | left | transfer | routed | routing_failed | queue_position |
    session_started | session_ended | conversation_closed | unsupported; with includeTyping
    also typing_started | typing_stopped | streaming | progress"""
    role: str | None = None
    """EndUser | Chatbot | Agent | System (for a join/leave: the role of who joined or left)"""
    name: str | None = None
    text: str | None = None
    timestamp: int | None = None
    position: int | None = None
    endedBy: str | None = None
    choices: list[Choice] | None = None
    """Options offered with a message (buttons, quick replies): pick one with send_choice."""
    link: LinkOut | None = None
    files: list[FileOut] | None = None
    targetId: str | None = None
    """streaming: the id of the message these tokens preview (it replaces them when it comes)."""
    sequence: int | None = None
    """streaming: the token's place in its message (tokens may arrive out of order)."""


class RoleInfo(BaseModel):
    """Who is on the other side and whether the chat is over, from structured signals only."""

    mostRecentSenderRole: str | None = None
    mostRecentSenderName: str | None = None
    isLiveAgent: bool = False
    """A human agent is in the conversation now."""
    agentName: str | None = None
    agentTyping: bool = False
    transferring: bool = False
    """A transfer to a human is under way (waiting in the queue)."""
    queuePosition: int | None = None
    conversationEnded: bool = False
    """The messaging session is over (ended by the agent, the bot, or the user)."""
    endedByAgent: bool = False
    conversationClosed: bool = False


@dataclass
class ConversationView:
    """State folded from the log, entry by entry."""

    participants: dict[str, tuple[str, str]] = field(default_factory=dict)  # subject → role, name
    last_sender_role: str | None = None
    last_sender_name: str | None = None
    agent_typing: bool = False
    transferring: bool = False
    queue_position: int | None = None
    session_ended: bool = False
    ended_by: str | None = None
    closed: bool = False
    option_titles: dict[str, str] = field(default_factory=dict)
    """"<offer id>/<optionIdentifier>" → title, of the newest options offered (at most
    OPTION_TITLES_KEPT)."""

    def apply(self, entry: Entry) -> None:
        kind = entry.entry_type
        if kind == "Message" and entry.role in ("Chatbot", "Agent"):
            self.last_sender_role, self.last_sender_name = entry.role, entry.sender_name
            if entry.role == "Agent":
                self.agent_typing = False
            remember_titles(self.option_titles, entry)
        elif kind == "ParticipantChanged":
            for change in entry.participant_changes:
                key = change.subject or f"{change.role}:{change.display_name}"
                if change.operation == "add":
                    self.participants[key] = (change.role or "", change.display_name or "")
                    if change.role == "Agent":
                        self.transferring = False
                        self.queue_position = None
                elif change.operation == "remove":
                    self.participants.pop(key, None)
                    if change.role == "Agent":
                        self.agent_typing = False
        elif kind == "RoutingResult" and entry.routing is not None:
            failed = (entry.routing.failure_type or "None") != "None"
            self.transferring = entry.routing.routing_type == "Transfer" and not failed
        elif kind == "QueuePosition":
            self.queue_position = entry.queue_position
        elif kind == "SessionStatusChanged" and entry.session is not None:
            if entry.session.status == "Ended":
                # Whoever was on is gone with the session, even if no removal was sent.
                self.participants.clear()
                self.session_ended = True
                self.ended_by = entry.session.ended_by_role
                self.transferring = False
                self.queue_position = None
                self.agent_typing = False
            elif entry.session.status in ("Active", "Waiting", "New"):
                self.session_ended = False
                self.ended_by = None
        elif kind == "CloseConversation":
            self.closed = True
            self.session_ended = True
            self.ended_by = self.ended_by or "EndUser"
        elif kind in TYPING_TYPES and entry.role == "Agent":
            self.agent_typing = kind == "TypingStartedIndicator"

    def role_info(self) -> RoleInfo:
        agent = next((name for role, name in self.participants.values() if role == "Agent"), None)
        return RoleInfo(
            mostRecentSenderRole=self.last_sender_role,
            mostRecentSenderName=self.last_sender_name,
            isLiveAgent=agent is not None and not self.session_ended,
            agentName=agent,
            agentTyping=self.agent_typing,
            transferring=self.transferring,
            queuePosition=self.queue_position,
            conversationEnded=self.session_ended,
            endedByAgent=self.session_ended and self.ended_by == "Agent",
            conversationClosed=self.closed,
        )


def _title_key(offer_id: str | None, option_id: str) -> str:
    # Options are named within their offer: two offers may both have an option "1".
    return f"{(offer_id or '').lower()}/{option_id}"


def remember_titles(titles: dict[str, str], entry: Entry) -> None:
    """Note the titles of the options a message offers, keeping the newest few."""
    for option in entry.choices:
        if option.title:
            key = _title_key(entry.identifier, option.option_identifier)
            titles.pop(key, None)
            titles[key] = option.title
    while len(titles) > OPTION_TITLES_KEPT:
        del titles[next(iter(titles))]


def present(entry: Entry, titles: Mapping[str, str] | None = None) -> list[TranscriptEntry]:
    """The reader-facing form of an entry: usually one item, none for entries readers never
    see, several for a ParticipantChanged with several changes. `titles` names the options a
    pick (ChoicesResponseMessage) refers to."""
    shown = _present_one(entry, titles or {})
    if shown is None:
        return []
    return shown if isinstance(shown, list) else [shown]


def _message(entry: Entry, base: dict[str, Any], titles: Mapping[str, str]) -> TranscriptEntry:
    text = entry.text
    if entry.selected:
        offer = entry.in_reply_to_message_id
        text = ", ".join(titles.get(_title_key(offer, option), option) for option in entry.selected)
    if entry.message_type == "FormMessage":
        return TranscriptEntry(
            **base,
            kind="form",
            role=entry.role,
            name=entry.sender_name,
            text=entry.form_title,
        )
    files = [
        FileOut(name=a.name, mimeType=a.mime_type, url=web_url(a.url)) for a in entry.attachments
    ]
    link = (
        LinkOut(url=web_url(entry.link.url), title=entry.link.title)
        if entry.link is not None
        else None
    )
    if text is None and link is None and not files and not any(c.title for c in entry.choices):
        # A content type this server does not know yet: a neutral line, not a blank bubble.
        return TranscriptEntry(
            **base,
            kind="unsupported",
            role=entry.role,
            name=entry.sender_name,
            text=f"{entry.message_type or 'Message'} ({entry.format_type or 'no format'})",
        )
    return TranscriptEntry(
        **base,
        kind="message",
        role=entry.role,
        name=entry.sender_name,
        text=text,
        choices=[Choice(id=c.option_identifier, title=c.title) for c in entry.choices if c.title]
        or None,
        link=link,
        files=files or None,
    )


def _present_one(
    entry: Entry, titles: Mapping[str, str]
) -> TranscriptEntry | list[TranscriptEntry] | None:
    base: dict[str, Any] = {
        "id": entry.identifier or "",
        "timestamp": entry.transcripted_timestamp,
    }
    kind = entry.entry_type
    if kind == "Message":
        return _message(entry, base, titles)
    if kind == "ParticipantChanged" and entry.participant_changes:
        # One entry can carry several changes (one agent leaves, another joins): show each.
        return [
            TranscriptEntry(
                **{**base, "id": base["id"] if n == 0 else f"{base['id']}#{n}"},
                kind="joined" if change.operation == "add" else "left",
                role=change.role,
                name=change.display_name,
            )
            for n, change in enumerate(entry.participant_changes)
        ]
    if kind == "RoutingResult" and entry.routing is not None:
        if (entry.routing.failure_type or "None") != "None":
            return TranscriptEntry(
                **base, kind="routing_failed", role="System", text=entry.routing.failure_reason
            )
        routed = "transfer" if entry.routing.routing_type == "Transfer" else "routed"
        return TranscriptEntry(**base, kind=routed, role="System")
    if kind == "QueuePosition":
        return TranscriptEntry(
            **base, kind="queue_position", role="System", position=entry.queue_position
        )
    if kind == "SessionStatusChanged" and entry.session is not None:
        if entry.session.status == "Ended":
            return TranscriptEntry(
                **base, kind="session_ended", role="System", endedBy=entry.session.ended_by_role
            )
        if entry.session.status == "Active":
            return TranscriptEntry(**base, kind="session_started", role="System")
        return None
    if kind == "CloseConversation":
        return TranscriptEntry(**base, kind="conversation_closed", role="System")
    if kind in TYPING_TYPES:
        typing_kind = "typing_started" if kind == "TypingStartedIndicator" else "typing_stopped"
        return TranscriptEntry(**base, kind=typing_kind, role=entry.role, name=entry.sender_name)
    if kind == "StreamingToken" and entry.streaming_token is not None:
        token = entry.streaming_token
        return TranscriptEntry(
            **base,
            kind="streaming",
            role=entry.role,
            name=entry.sender_name,
            text=token.text,
            targetId=token.target_message_id,
            sequence=token.sequence_number,
        )
    if kind == "ProgressIndicator":
        return TranscriptEntry(
            **base,
            kind="progress",
            role=entry.role,
            name=entry.sender_name,
            text=entry.progress_text,
        )
    if kind not in _KNOWN_TYPES:
        # Newer than this server: a neutral line naming the type, never a crash or a silence.
        return TranscriptEntry(**base, kind="unsupported", role=entry.role, text=kind)
    return None


_KNOWN_TYPES = frozenset(EntryType)


def visible(
    entries: Iterable[Entry], *, include_live: bool, titles: Mapping[str, str] | None = None
) -> list[TranscriptEntry]:
    """What a reader is shown of these entries, in order. `include_live`: also typing and a
    bot's answer in the making (LIVE_TYPES). `titles`: option titles offered before these
    entries (those offered among them are picked up on the way)."""
    known: Mapping[str, str] = titles or {}
    added: dict[str, str] | None = None  # copied only when these entries offer choices
    out = []
    for entry in entries:
        if entry.entry_type in HIDDEN_TYPES:
            continue
        if entry.entry_type in LIVE_TYPES and not include_live:
            continue
        if entry.choices:
            if added is None:
                known = added = dict(known)
            remember_titles(added, entry)
        out.extend(present(entry, known))
    return out


def _order(entry: Entry) -> int:
    # Salesforce's order; entries without a timestamp keep their place among equals (stable sort).
    return entry.transcripted_timestamp or 0


class CursorRetired(LookupError):
    """A read from a position whose entries the log no longer keeps in memory."""


class ConversationLog:
    """Append-only, deduplicated entries of one conversation, with waiters woken on append.

    Entries come from two places: the event stream (live) and the entries endpoint (fetched, oldest
    first, from the last timestamp seen). While the log is not `synced` (it is new, or the stream
    dropped and may have hidden entries) live entries are held back, and released only when a fetch
    has filled the gap before them, merged in Salesforce's order: a reader never sees a later entry
    before an earlier one.

    At most `keep` entries stay in `entries` (the newest); older ones are `retired`, their
    positions kept, so cursors keep their meaning and duplicates are still recognised.
    """

    def __init__(self, conversation_id: str, keep: int = HISTORY_ENTRIES) -> None:
        self.conversation_id = conversation_id
        self.keep = keep
        self.entries: list[Entry] = []
        """The newest entries; the first is at position `len(retired)`."""
        self.retired = Retired()
        self.view = ConversationView()
        self._ids: set[str] = set()
        self._changed = asyncio.Event()
        self.last_timestamp = 0
        self.synced = False
        """Whether the entries endpoint was read since the stream last (re)opened, so nothing
        before the live entries is missing. Until then live entries are held."""
        self._held: list[Entry] = []
        self._fetching = 0
        self.gaps = 0
        """How often the stream (re)opened over this log: a fetch is complete only for the last."""
        self.on_commit: Callable[[list[Entry]], None] | None = None
        """Told every batch of entries appended (in order), e.g. to journal them for other
        processes."""
        self.on_change: Callable[[ConversationLog], None] | None = None
        """Told after every batch appended, to read the folded state (the operator page)."""

    def restore(self, ids: Iterable[str], view: ConversationView, last_timestamp: int) -> None:
        """Continue a log another process kept: what it delivered is known (so not delivered
        again), its folded state holds, and fetches resume from its last timestamp."""
        self._ids.update(ids)
        self.view = view
        self.last_timestamp = last_timestamp

    def live(self, entry: Entry) -> None:
        """An entry from the event stream: appended now, or held until the gap before it is
        filled."""
        if self.synced and not self._fetching:
            self.append([entry])
        else:
            self._held.append(entry)

    def has(self, identifier: str) -> bool:
        """Whether an entry with this id arrived (appended, or held until a gap is filled)."""
        return identifier in self._ids or any(e.identifier == identifier for e in self._held)

    def gap(self) -> None:
        """The stream (re)opened: entries may be missing, so hold live ones until a fetch."""
        self.synced = False
        self.gaps += 1

    @contextlib.contextmanager
    def fetching(self) -> Iterator[None]:
        """Around a fetch from the entries endpoint: live entries are held meanwhile, since the
        fetch appends older ones; when the last fetch ends, held entries follow in order."""
        self._fetching += 1
        try:
            yield
        finally:
            self._fetching -= 1
            self._release()

    def fetched_all(self, gaps: int) -> None:
        """A fetch reached the newest entry: the log is complete up to the held entries, unless
        the stream (re)opened after the fetch's last page was asked for (`gaps` then differs):
        what happened between that page and the reopen is still missing."""
        if gaps == self.gaps:
            self.synced = True

    def append(self, entries: Iterable[Entry]) -> int:
        added = 0
        for entry in entries:
            if entry.identifier is not None:
                if entry.identifier in self._ids:
                    continue
                self._ids.add(entry.identifier)
            self.entries.append(entry)
            self.view.apply(entry)
            if entry.transcripted_timestamp and entry.entry_type not in STREAM_ONLY_TYPES:
                self.last_timestamp = max(self.last_timestamp, entry.transcripted_timestamp)
            added += 1
        if added:
            if self.on_commit is not None:
                self.on_commit(self.entries[-added:])
            if self.on_change is not None:
                try:
                    self.on_change(self)
                except Exception as exc:  # an observer (the operator page) must not stop a chat
                    log.warning("transcript.watcher_failed", error=type(exc).__name__)
            excess = len(self.entries) - self.keep
            if excess > 0:
                self.retired.add(self.entries[:excess])
                del self.entries[:excess]
            # Wake every current waiter; later waiters wait on a fresh event.
            self._changed.set()
            self._changed = asyncio.Event()
        return added

    def _release(self) -> None:
        if self._fetching or not self.synced or not self._held:
            return
        held, self._held = self._held, []
        self.append(sorted(held, key=_order))

    @property
    def position(self) -> int:
        return len(self.retired) + len(self.entries)

    def after(self, cursor: int, *, include_live: bool) -> list[TranscriptEntry]:
        """What a reader at `cursor` is shown; CursorRetired if entries after it are no longer
        in memory (the reader fetches them, `app.history.fetch_retired`)."""
        if cursor < len(self.retired):
            raise CursorRetired(cursor)
        return visible(
            self.entries[cursor - len(self.retired) :],
            include_live=include_live,
            titles=self.view.option_titles,
        )

    async def wait_for_append(self, seconds: float) -> bool:
        """Wait until something is appended, at most `seconds`; True if it was."""
        if seconds <= 0:
            return False
        changed = self._changed
        try:
            async with asyncio.timeout(seconds):
                await changed.wait()
        except TimeoutError:
            return False
        return True
