"""Conversation entries in one shape, whether they came from REST or from SSE.

The entries endpoint sends `entryPayload` as an object; SSE sends it as a JSON string inside an
envelope. Everything above this module sees only `Entry`. Parsing never raises: unknown entry
types and unexpected shapes keep their raw dicts and leave the typed fields None.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

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


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class ChoiceOption(_Frozen):
    option_identifier: str
    title: str | None = None


class Attachment(_Frozen):
    id: str | None = None
    name: str | None = None
    mime_type: str | None = None
    url: str | None = None


class ParticipantChange(_Frozen):
    operation: str | None = None
    """`add` or `remove`."""
    role: str | None = None
    display_name: str | None = None
    subject: str | None = None


class RoutingResult(_Frozen):
    routing_type: str | None = None
    failure_type: str | None = None
    failure_reason: str | None = None


class SessionStatus(_Frozen):
    session_id: str | None = None
    status: str | None = None
    previous_status: str | None = None
    ended_by_role: str | None = None


class StreamingToken(_Frozen):
    target_message_id: str | None = None
    sequence_number: int | None = None
    text: str | None = None


class Entry(_Frozen):
    """One conversation entry. Type-specific fields are None (or empty) for other types."""

    identifier: str | None = None
    entry_type: str
    conversation_id: str | None = None
    role: str | None = None
    sender_name: str | None = None
    sender_subject: str | None = None
    transcripted_timestamp: int | None = None
    client_timestamp: int | None = None
    related_records: list[str] = Field(default_factory=list)
    # Message
    message_type: str | None = None
    format_type: str | None = None
    text: str | None = None
    in_reply_to_message_id: str | None = None
    message_reason: str | None = None
    choices: list[ChoiceOption] = Field(default_factory=list)
    attachments: list[Attachment] = Field(default_factory=list)
    # Other entry types
    participant_changes: list[ParticipantChange] = Field(default_factory=list)
    routing: RoutingResult | None = None
    work_type: str | None = None
    session: SessionStatus | None = None
    queue_position: int | None = None
    acknowledged_entry_id: str | None = None
    streaming_token: StreamingToken | None = None
    progress_text: str | None = None
    # Always kept
    payload: dict[str, Any] = Field(default_factory=dict)
    """`entryPayload` parsed to a dict ({} when absent or unparsable)."""
    raw: dict[str, Any] = Field(default_factory=dict)
    """The entry exactly as received (for SSE, the `conversationEntry` with its string payload)."""

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


def chronological(entries: Iterable[Entry]) -> list[Entry]:
    """Oldest first by `transcriptedTimestamp` (the entries endpoint returns newest first)."""
    return sorted(entries, key=lambda entry: entry.transcripted_timestamp or 0)


def _get(value: Any, key: str) -> Any:
    return value.get(key) if isinstance(value, dict) else None


def _build(entry: Any, conversation_id: str | None) -> Entry:
    raw: dict[str, Any] = entry if isinstance(entry, dict) else {}
    payload = shapes.json_object(raw.get("entryPayload")) or {}
    entry_type = shapes.text(raw.get("entryType")) or shapes.text(payload.get("entryType"))
    sender = shapes.obj(raw, "sender")
    fields: dict[str, Any] = {
        "identifier": shapes.text(raw.get("identifier")) or shapes.text(payload.get("id")),
        "entry_type": entry_type or "Unknown",
        "conversation_id": conversation_id
        or shapes.text(payload.get("conversationIdentifier"))
        or shapes.text(raw.get("conversationId")),
        "role": shapes.text(sender.get("role")),
        "sender_name": shapes.text(raw.get("senderDisplayName")),
        "sender_subject": shapes.text(sender.get("subject")),
        "transcripted_timestamp": shapes.integer(raw.get("transcriptedTimestamp")),
        "client_timestamp": shapes.integer(raw.get("clientTimestamp")),
        "related_records": shapes.texts(raw.get("relatedRecords")),
        "payload": payload,
        "raw": raw,
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
    return {
        "message_type": shapes.text(message.get("messageType")),
        "format_type": shapes.text(content.get("formatType")),
        "text": shapes.text(content.get("text"))
        if content_key in ("staticContent", "choices")
        else None,
        "in_reply_to_message_id": shapes.text(message.get("inReplyToMessageId")),
        "message_reason": shapes.text(payload.get("messageReason")),
        "choices": _choice_options(content) if content_key == "choices" else [],
        "attachments": [
            Attachment(
                id=shapes.text(item.get("id")),
                name=shapes.text(item.get("name")),
                mime_type=shapes.text(item.get("mimeType")),
                url=shapes.text(item.get("url")),
            )
            for item in shapes.objs(content.get("attachments"))
        ],
    }


def _choice_options(choices: dict[str, Any]) -> list[ChoiceOption]:
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
    return options


def _participant_changed(payload: dict[str, Any], _: dict[str, Any]) -> dict[str, Any]:
    changes = []
    for item in shapes.objs(payload.get("entries")):
        participant = shapes.obj(item, "participant")
        changes.append(
            ParticipantChange(
                operation=shapes.text(item.get("operation")),
                role=shapes.text(participant.get("role")),
                display_name=shapes.text(item.get("displayName")),
                subject=shapes.text(participant.get("subject")),
            )
        )
    return {"participant_changes": changes}


def _routing_result(payload: dict[str, Any], _: dict[str, Any]) -> dict[str, Any]:
    reason = payload.get("failureReason") or payload.get("reasonForNotRouting")
    return {
        "routing": RoutingResult(
            routing_type=shapes.text(payload.get("routingType")),
            failure_type=shapes.text(payload.get("failureType")),
            failure_reason=shapes.text(reason),
        )
    }


def _session_status(payload: dict[str, Any], _: dict[str, Any]) -> dict[str, Any]:
    return {
        "session": SessionStatus(
            session_id=shapes.text(payload.get("sessionId")),
            status=shapes.text(payload.get("sessionStatus")),
            previous_status=shapes.text(payload.get("sessionStatusPrev")),
            ended_by_role=shapes.text(payload.get("sessionEndedByRole")),
        )
    }


def _acknowledgement(payload: dict[str, Any], fields: dict[str, Any]) -> dict[str, Any]:
    acked = shapes.text(payload.get("acknowledgedConversationEntryIdentifier"))
    related: list[str] = fields["related_records"]
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
    EntryType.ROUTING_WORK_RESULT: lambda p, _: {"work_type": shapes.text(p.get("workType"))},
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
