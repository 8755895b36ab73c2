"""Conversation entries in one shape, whether they came from REST or from SSE.

The entries endpoint sends `entryPayload` as an object; SSE sends it as a JSON string inside an
envelope. Everything above this module sees only `Entry`. Parsing never raises: unknown entry
types pass through with their type, id, sender and timestamps, and unexpected shapes leave the
typed fields None (or empty).

An `Entry` keeps only what readers use, not the decoded JSON it came from: every conversation's
log holds its entries for as long as the conversation lives, thousands of conversations per
process. Slotted frozen dataclasses of tuples and shared strings take about an eighth of what a
pydantic model holding the decoded dicts took (`tests/scrt/test_entry_storage.py` guards it).
`ENTRY_JSON` turns one into JSON and back (the shared-state journal stores them so).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from pydantic import TypeAdapter

from app.scrt import shapes


class EntryType(StrEnum):
    """Entry types known today; `Entry.entry_type` stays a plain str so new ones pass through."""

    MESSAGE = "Message"
    PARTICIPANT_CHANGED = "ParticipantChanged"
    ROUTING_RESULT = "RoutingResult"
    ROUTING_WORK_RESULT = "RoutingWorkResult"
    SESSION_STATUS_CHANGED = "SessionStatusChanged"
    QUEUE_POSITION = "QueuePosition"
    TYPING_STARTED = "TypingStartedIndicator"
    TYPING_STOPPED = "TypingStoppedIndicator"
    DELIVERY_ACKNOWLEDGEMENT = "DeliveryAcknowledgement"
    READ_ACKNOWLEDGEMENT = "ReadAcknowledgement"
    CLOSE_CONVERSATION = "CloseConversation"
    STREAMING_TOKEN = "StreamingToken"
    PROGRESS_INDICATOR = "ProgressIndicator"


TYPING_TYPES = frozenset({EntryType.TYPING_STARTED, EntryType.TYPING_STOPPED})
PREVIEW_TYPES = frozenset({EntryType.STREAMING_TOKEN, EntryType.PROGRESS_INDICATOR})
"""A bot's answer in the making: tokens streamed ahead of the final message, progress lines."""
RECEIPT_TYPES = frozenset({EntryType.DELIVERY_ACKNOWLEDGEMENT, EntryType.READ_ACKNOWLEDGEMENT})
STREAM_ONLY_TYPES = TYPING_TYPES | PREVIEW_TYPES | RECEIPT_TYPES | {EntryType.QUEUE_POSITION}
"""Entries that travel on the event stream only: the entries endpoint never returns them."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ChoiceOption:
    option_identifier: str
    title: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Attachment:
    id: str | None = None
    name: str | None = None
    mime_type: str | None = None
    url: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Link:
    """A RichLink's or WebView's target (a page the user can open) and its title."""

    url: str | None = None
    title: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ParticipantChange:
    operation: str | None = None
    """`add` or `remove`."""
    role: str | None = None
    display_name: str | None = None
    subject: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class RoutingResult:
    routing_type: str | None = None
    failure_type: str | None = None
    failure_reason: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionStatus:
    session_id: str | None = None
    status: str | None = None
    previous_status: str | None = None
    ended_by_role: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamingToken:
    target_message_id: str | None = None
    sequence_number: int | None = None
    text: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Entry:
    """One conversation entry. Type-specific fields are None (or empty) for other types."""

    identifier: str | None = None
    entry_type: str
    conversation_id: str | None = None
    role: str | None = None
    sender_name: str | None = None
    sender_subject: str | None = None
    transcripted_timestamp: int | None = None
    client_timestamp: int | None = None
    related_records: tuple[str, ...] = ()
    # Message
    message_type: str | None = None
    format_type: str | None = None
    text: str | None = None
    in_reply_to_message_id: str | None = None
    message_reason: str | None = None
    choices: tuple[ChoiceOption, ...] = ()
    selected: tuple[str, ...] = ()
    """A ChoicesResponseMessage's picked `optionIdentifier`s."""
    attachments: tuple[Attachment, ...] = ()
    link: Link | None = None
    form_title: str | None = None
    """A FormMessage's title (forms are not filled in here, only shown)."""
    # Other entry types
    participant_changes: tuple[ParticipantChange, ...] = ()
    routing: RoutingResult | None = None
    work_type: str | None = None
    session: SessionStatus | None = None
    queue_position: int | None = None
    acknowledged_entry_id: str | None = None
    streaming_token: StreamingToken | None = None
    progress_text: str | None = None

    @classmethod
    def from_rest(cls, entry: Any, conversation_id: str | None = None) -> Entry:
        """An item of `conversationEntries` from the entries endpoint."""
        return _build(entry, conversation_id)

    @classmethod
    def from_sse_envelope(cls, envelope: Any) -> Entry:
        """The `data` of a `CONVERSATION_*` SSE event (`{…, conversationId, conversationEntry}`)."""
        return _build(
            shapes.obj(envelope, "conversationEntry"), shapes.text(_get(envelope, "conversationId"))
        )


ENTRY_JSON: TypeAdapter[Entry] = TypeAdapter(Entry)
"""`ENTRY_JSON.dump_json(entry)` and `ENTRY_JSON.validate_json(data)`; keys it does not know (an
older process's `payload`) are ignored."""


def chronological(entries: Iterable[Entry]) -> list[Entry]:
    """Oldest first by `transcriptedTimestamp` (the entries endpoint returns newest first)."""
    return sorted(entries, key=lambda entry: entry.transcripted_timestamp or 0)


def _get(value: Any, key: str) -> Any:
    return value.get(key) if isinstance(value, dict) else None


def _word(value: Any) -> str | None:
    """A text field from a small vocabulary (entry types, roles, statuses) or repeated on every
    entry of a conversation (its id): one shared string instead of a copy per entry."""
    text = shapes.text(value)
    return sys.intern(str(text)) if text is not None else None


def _build(entry: Any, conversation_id: str | None) -> Entry:
    raw: dict[str, Any] = entry if isinstance(entry, dict) else {}
    payload = shapes.json_object(raw.get("entryPayload")) or {}
    entry_type = _word(raw.get("entryType")) or _word(payload.get("entryType"))
    sender = shapes.obj(raw, "sender")
    fields: dict[str, Any] = {
        "identifier": shapes.text(raw.get("identifier")) or shapes.text(payload.get("id")),
        "entry_type": entry_type or "Unknown",
        "conversation_id": _word(
            conversation_id
            or shapes.text(payload.get("conversationIdentifier"))
            or shapes.text(raw.get("conversationId"))
        ),
        "role": _word(sender.get("role")),
        "sender_name": shapes.text(raw.get("senderDisplayName")),
        "sender_subject": _word(sender.get("subject")),
        "transcripted_timestamp": shapes.integer(raw.get("transcriptedTimestamp")),
        "client_timestamp": shapes.integer(raw.get("clientTimestamp")),
        "related_records": tuple(shapes.texts(raw.get("relatedRecords"))),
    }
    parse = _PAYLOAD_PARSERS.get(entry_type or "")
    if parse is not None:
        fields.update(parse(payload, fields))
    return Entry(**fields)


def _message(payload: dict[str, Any], _: dict[str, Any]) -> dict[str, Any]:
    message = shapes.obj(payload, "abstractMessage")
    content_key = next(
        (
            key
            for key in ("staticContent", "choices", "choicesResponse", "form", "formResponse")
            if isinstance(message.get(key), dict)
        ),
        None,
    )
    content = shapes.obj(message, content_key) if content_key else {}
    format_type = _word(content.get("formatType"))
    return {
        "message_type": _word(message.get("messageType")),
        "format_type": format_type,
        "text": shapes.text(content.get("text"))
        if content_key in ("staticContent", "choices")
        else None,
        "in_reply_to_message_id": shapes.text(message.get("inReplyToMessageId")),
        "message_reason": _word(payload.get("messageReason")),
        "choices": _choice_options(content) if content_key == "choices" else (),
        "selected": tuple(
            identifier
            for item in shapes.objs(content.get("selectedOptions"))
            if (identifier := shapes.text(item.get("optionIdentifier")))
        )
        if content_key == "choicesResponse"
        else (),
        "attachments": tuple(
            Attachment(
                id=shapes.text(item.get("id")),
                name=shapes.text(item.get("name")),
                mime_type=shapes.text(item.get("mimeType")),
                url=shapes.text(item.get("url")),
            )
            for item in shapes.objs(content.get("attachments"))
        ),
        "link": _link(content, format_type),
        "form_title": _form_title(content) if content_key == "form" else None,
    }


def _link(content: dict[str, Any], format_type: str | None) -> Link | None:
    """RichLink: `linkItem {url, titleItem.title}`; WebView: `url` and `title.title`."""
    if format_type == "RichLink":
        item = shapes.obj(content, "linkItem")
        title = shapes.obj(item, "titleItem").get("title")
        return Link(url=shapes.text(item.get("url")), title=shapes.text(title))
    if format_type == "WebView":
        title = shapes.obj(content, "title").get("title")
        return Link(url=shapes.text(content.get("url")), title=shapes.text(title))
    return None


def _form_title(form: dict[str, Any]) -> str | None:
    """The form's title, as text or as a TitleItem (the nesting is not documented: a guess)."""
    title = form.get("title")
    return shapes.text(title.get("title") if isinstance(title, dict) else title)


def _choice_options(choices: dict[str, Any]) -> tuple[ChoiceOption, ...]:
    """Buttons/QuickReplies have `optionItems`; a Carousel has `items[].interactionItems`."""
    items = shapes.objs(choices.get("optionItems"))
    for card in shapes.objs(choices.get("items")):
        items.extend(shapes.objs(card.get("interactionItems")))
    options = []
    for item in items:
        identifier = shapes.text(item.get("optionIdentifier"))
        if identifier:
            title = shapes.text(shapes.obj(item, "titleItem").get("title"))
            options.append(ChoiceOption(option_identifier=identifier, title=title))
    return tuple(options)


def _participant_changed(payload: dict[str, Any], _: dict[str, Any]) -> dict[str, Any]:
    changes = []
    for item in shapes.objs(payload.get("entries")):
        participant = shapes.obj(item, "participant")
        changes.append(
            ParticipantChange(
                operation=_word(item.get("operation")),
                role=_word(participant.get("role")),
                display_name=shapes.text(item.get("displayName")),
                subject=_word(participant.get("subject")),
            )
        )
    return {"participant_changes": tuple(changes)}


def _routing_result(payload: dict[str, Any], _: dict[str, Any]) -> dict[str, Any]:
    reason = payload.get("failureReason") or payload.get("reasonForNotRouting")
    return {
        "routing": RoutingResult(
            routing_type=_word(payload.get("routingType")),
            failure_type=_word(payload.get("failureType")),
            failure_reason=shapes.text(reason),
        )
    }


def _session_status(payload: dict[str, Any], _: dict[str, Any]) -> dict[str, Any]:
    return {
        "session": SessionStatus(
            session_id=shapes.text(payload.get("sessionId")),
            status=_word(payload.get("sessionStatus")),
            previous_status=_word(payload.get("sessionStatusPrev")),
            ended_by_role=_word(payload.get("sessionEndedByRole")),
        )
    }


def _acknowledgement(payload: dict[str, Any], fields: dict[str, Any]) -> dict[str, Any]:
    acked = shapes.text(payload.get("acknowledgedConversationEntryIdentifier"))
    related: tuple[str, ...] = fields["related_records"]
    return {"acknowledged_entry_id": acked or (related[0] if related else None)}


def _streaming_token(payload: dict[str, Any], _: dict[str, Any]) -> dict[str, Any]:
    token = shapes.obj(payload, "streamingToken")
    return {
        "streaming_token": StreamingToken(
            target_message_id=shapes.text(token.get("targetMessageIdentifier")),
            sequence_number=shapes.integer(token.get("sequenceNumber")),
            text=shapes.text(shapes.obj(token, "token").get("text")),
        )
    }


_PayloadParser = Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]]

_PAYLOAD_PARSERS: dict[str, _PayloadParser] = {
    EntryType.MESSAGE: _message,
    EntryType.PARTICIPANT_CHANGED: _participant_changed,
    EntryType.ROUTING_RESULT: _routing_result,
    EntryType.ROUTING_WORK_RESULT: lambda p, _: {"work_type": _word(p.get("workType"))},
    EntryType.SESSION_STATUS_CHANGED: _session_status,
    EntryType.QUEUE_POSITION: lambda p, _: {"queue_position": shapes.integer(p.get("position"))},
    EntryType.DELIVERY_ACKNOWLEDGEMENT: _acknowledgement,
    EntryType.READ_ACKNOWLEDGEMENT: _acknowledgement,
    EntryType.STREAMING_TOKEN: _streaming_token,
    EntryType.PROGRESS_INDICATOR: lambda p, _: {
        "progress_text": shapes.text(
            shapes.obj(p, "progressIndicator", "progressMessage").get("text")
        )
    },
}
