"""Entries from REST (payload object) and SSE (payload string) normalise to the same `Entry`."""

from __future__ import annotations

import json
from typing import Any

import pytest

from app.scrt import Entry, EntryType, chronological

CID = "0f8e2c1a-8d3b-4c55-b0a9-3c2f1e0d9a77"


def rest_entry(entry_type: str, payload: dict[str, Any], **extra: Any) -> dict[str, Any]:
    entry = {
        "entryType": entry_type,
        "identifier": payload.get("id", "e1"),
        "entryPayload": {"entryType": entry_type, **payload},
        "sender": {"role": "System", "appType": "conversation", "subject": "sys"},
        "senderDisplayName": "Automated Process",
        "transcriptedTimestamp": 1741300000000,
        "clientTimestamp": 1741299999000,
        "relatedRecords": ["0Mw000000000001"],
    }
    entry.update(extra)
    return entry


def as_sse(entry: dict[str, Any]) -> dict[str, Any]:
    conversation_entry = dict(entry, entryPayload=json.dumps(entry["entryPayload"]))
    return {
        "channelPlatformKey": "cpk",
        "channelType": "embedded_messaging",
        "channelAddressIdentifier": "cai",
        "conversationId": CID,
        "conversationEntry": conversation_entry,
    }


def both(entry_type: str, payload: dict[str, Any], **extra: Any) -> Entry:
    """Parse the same entry both ways, check they agree, return one."""
    entry = rest_entry(entry_type, payload, **extra)
    from_rest = Entry.from_rest(entry, CID)
    from_sse = Entry.from_sse_envelope(as_sse(entry))
    assert from_rest == from_sse
    return from_sse


def test_text_message_common_fields() -> None:
    entry = both(
        "Message",
        {
            "id": "m1",
            "abstractMessage": {
                "messageType": "StaticContentMessage",
                "id": "m1",
                "inReplyToMessageId": "m0",
                "staticContent": {"formatType": "Text", "text": "Hi, I'm Jane."},
            },
            "messageReason": "AutomatedResponse",
        },
        sender={"role": "Agent", "subject": "005000000000001"},
        senderDisplayName="Jane Agent",
    )

    assert entry.entry_type == EntryType.MESSAGE
    assert (entry.identifier, entry.conversation_id) == ("m1", CID)
    assert (entry.role, entry.sender_name, entry.sender_subject) == (
        "Agent",
        "Jane Agent",
        "005000000000001",
    )
    assert (entry.message_type, entry.format_type, entry.text) == (
        "StaticContentMessage",
        "Text",
        "Hi, I'm Jane.",
    )
    assert (entry.transcripted_timestamp, entry.client_timestamp) == (1741300000000, 1741299999000)
    assert entry.related_records == ("0Mw000000000001",)
    assert entry.in_reply_to_message_id == "m0"
    assert entry.message_reason == "AutomatedResponse"


def test_choices_message_has_text_and_options() -> None:
    entry = both(
        "Message",
        {
            "abstractMessage": {
                "messageType": "ChoicesMessage",
                "choices": {
                    "formatType": "Buttons",
                    "text": "What can I help you with?",
                    "optionItems": [
                        {"optionIdentifier": "o1", "titleItem": {"title": "Order status"}},
                        {"optionIdentifier": "o2", "titleItem": {"title": "Returns"}},
                        {"titleItem": {"title": "no identifier: dropped"}},
                    ],
                },
            }
        },
    )

    assert (entry.format_type, entry.text) == ("Buttons", "What can I help you with?")
    assert [(o.option_identifier, o.title) for o in entry.choices] == [
        ("o1", "Order status"),
        ("o2", "Returns"),
    ]


def test_attachments_message_has_caption_and_files() -> None:
    entry = both(
        "Message",
        {
            "abstractMessage": {
                "messageType": "StaticContentMessage",
                "staticContent": {
                    "formatType": "Attachments",
                    "text": "receipt",
                    "attachments": [
                        {
                            "id": "f1",
                            "name": "r.pdf",
                            "mimeType": "application/pdf",
                            "url": "https://x/r",
                        }
                    ],
                },
            }
        },
    )

    assert (entry.format_type, entry.text) == ("Attachments", "receipt")
    [attachment] = entry.attachments
    assert (attachment.id, attachment.name, attachment.mime_type, attachment.url) == (
        "f1",
        "r.pdf",
        "application/pdf",
        "https://x/r",
    )


def test_choices_response_echo_has_no_text() -> None:
    entry = both(
        "Message",
        {
            "abstractMessage": {
                "messageType": "ChoicesResponseMessage",
                "choicesResponse": {"formatType": "Selections", "selectedOptions": []},
            }
        },
    )

    assert (entry.message_type, entry.format_type, entry.text) == (
        "ChoicesResponseMessage",
        "Selections",
        None,
    )


def test_participant_changed_lists_adds_and_removes() -> None:
    entry = both(
        "ParticipantChanged",
        {
            "entries": [
                {
                    "operation": "remove",
                    "participant": {"role": "Chatbot", "subject": "0Xx1"},
                    "displayName": "Bot",
                },
                {
                    "operation": "add",
                    "participant": {"role": "Agent", "subject": "005A"},
                    "displayName": "Jane Agent",
                    "menuMetadata": None,
                },
            ]
        },
    )

    assert [
        (c.operation, c.role, c.display_name, c.subject) for c in entry.participant_changes
    ] == [
        ("remove", "Chatbot", "Bot", "0Xx1"),
        ("add", "Agent", "Jane Agent", "005A"),
    ]
    assert entry.text is None


def test_routing_result_and_work_result() -> None:
    routing = both(
        "RoutingResult",
        {"routingType": "Transfer", "failureType": "RoutingError", "failureReason": "No agents"},
    )
    work = both("RoutingWorkResult", {"workType": "Accepted"})

    assert routing.routing is not None
    assert (routing.routing.routing_type, routing.routing.failure_type) == (
        "Transfer",
        "RoutingError",
    )
    assert routing.routing.failure_reason == "No agents"
    assert work.work_type == "Accepted"


def test_session_status_changed() -> None:
    entry = both(
        "SessionStatusChanged",
        {
            "sessionId": "0Mw1",
            "conversationIdentifier": CID,
            "sessionStatus": "Ended",
            "sessionStatusPrev": "Active",
            "sessionEndedByRole": "Agent",
        },
    )

    assert entry.session is not None
    assert (
        entry.session.session_id,
        entry.session.status,
        entry.session.previous_status,
        entry.session.ended_by_role,
    ) == ("0Mw1", "Ended", "Active", "Agent")


def test_queue_position_typing_progress_and_streaming() -> None:
    queue = both("QueuePosition", {"position": 3})
    typing = both("TypingStartedIndicator", {"timestamp": 1})
    progress = both(
        "ProgressIndicator",
        {"progressIndicator": {"progressMessage": {"text": "Looking up your order…"}}},
    )
    token = both(
        "StreamingToken",
        {
            "streamingToken": {
                "sequenceNumber": 2,
                "targetMessageIdentifier": "1741299974320-REQ-1",
                "token": {"formatType": "Text", "text": "Sure, "},
            }
        },
    )

    assert queue.queue_position == 3
    assert typing.entry_type == EntryType.TYPING_STARTED and typing.text is None
    assert progress.progress_text == "Looking up your order…"
    assert token.streaming_token is not None
    assert (
        token.streaming_token.target_message_id,
        token.streaming_token.sequence_number,
        token.streaming_token.text,
    ) == ("1741299974320-REQ-1", 2, "Sure, ")


def test_acknowledgements_read_the_payload_or_fall_back_to_related_records() -> None:
    delivered = both(
        "DeliveryAcknowledgement",
        {"acknowledgedConversationEntryIdentifier": "m7"},
        relatedRecords=["other"],
    )
    read = both("ReadAcknowledgement", {}, relatedRecords=["m8"])

    assert delivered.acknowledged_entry_id == "m7"
    assert read.acknowledged_entry_id == "m8"


def test_close_conversation_takes_the_conversation_from_the_payload() -> None:
    entry = Entry.from_rest(rest_entry("CloseConversation", {"conversationIdentifier": CID}))

    assert (entry.entry_type, entry.conversation_id) == (EntryType.CLOSE_CONVERSATION, CID)


def test_unknown_entry_types_pass_through_with_their_common_fields() -> None:
    entry = both("SomethingNew", {"id": "n1", "shiny": {"deep": [1, 2]}})

    assert (entry.entry_type, entry.identifier, entry.role) == ("SomethingNew", "n1", "System")
    assert (entry.transcripted_timestamp, entry.conversation_id) == (1741300000000, CID)
    assert entry.text is None and entry.choices == ()


@pytest.mark.parametrize(
    "entry",
    [
        None,
        [],
        "text",
        {},
        {"entryPayload": "not json"},
        {
            "entryPayload": "[1, 2]",
            "sender": "x",
            "relatedRecords": "x",
            "transcriptedTimestamp": "x",
        },
        {"entryType": "Message", "entryPayload": {"abstractMessage": []}},
        {
            "entryType": "Message",
            "entryPayload": {"abstractMessage": {"staticContent": {"attachments": [1, None]}}},
        },
        {
            "entryType": "Message",
            "entryPayload": {
                "abstractMessage": {
                    "choices": {"optionItems": "x", "items": [{"interactionItems": 3}]}
                }
            },
        },
        {
            "entryType": "ParticipantChanged",
            "entryPayload": {"entries": [None, {"participant": 5}]},
        },
        {
            "entryType": "StreamingToken",
            "entryPayload": {"streamingToken": {"sequenceNumber": True}},
        },
        {"entryType": "QueuePosition", "entryPayload": {"position": "3"}},
        {"entryType": 7, "identifier": 12, "entryPayload": {"entryType": "RoutingResult"}},
    ],
)
def test_unexpected_shapes_never_crash(entry: Any) -> None:
    parsed = Entry.from_rest(entry)
    from_sse = Entry.from_sse_envelope({"conversationEntry": entry} if entry else entry)

    assert isinstance(parsed.entry_type, str)
    assert isinstance(from_sse.entry_type, str)


def test_numeric_strings_and_ids_are_normalised() -> None:
    entry = Entry.from_rest(
        {"entryType": "QueuePosition", "identifier": 12, "entryPayload": {"position": "3"}}
    )

    assert (entry.identifier, entry.queue_position) == ("12", 3)


def test_chronological_orders_oldest_first() -> None:
    newest_first = [
        Entry.from_rest({"entryType": "Message", "identifier": i, "transcriptedTimestamp": ts})
        for i, ts in (("c", 3), ("b", 2), ("a", 1))
    ]

    assert [e.identifier for e in chronological(newest_first)] == ["a", "b", "c"]
