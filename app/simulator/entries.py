"""Conversation entries as Salesforce shapes them: payloads, senders and the SSE envelope.

An entry is kept with `entryPayload` as an object (the REST form); the SSE form re-encodes it as a
JSON string. Keeping one dict and converting at the edge mirrors the API.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

Json = dict[str, Any]

SYSTEM_NAME = "Automated Process"
SYSTEM_SUBJECT = "0050000000SYSTEM"

EVENT_NAMES = {
    "Message": "CONVERSATION_MESSAGE",
    "ParticipantChanged": "CONVERSATION_PARTICIPANT_CHANGED",
    "RoutingResult": "CONVERSATION_ROUTING_RESULT",
    "RoutingWorkResult": "CONVERSATION_ROUTING_WORK_RESULT",
    "SessionStatusChanged": "CONVERSATION_SESSION_STATUS_CHANGED",
    "TypingStartedIndicator": "CONVERSATION_TYPING_STARTED_INDICATOR",
    "TypingStoppedIndicator": "CONVERSATION_TYPING_STOPPED_INDICATOR",
    "DeliveryAcknowledgement": "CONVERSATION_DELIVERY_ACKNOWLEDGEMENT",
    "ReadAcknowledgement": "CONVERSATION_READ_ACKNOWLEDGEMENT",
    "CloseConversation": "CONVERSATION_CLOSE_CONVERSATION",
    "QueuePosition": "CONVERSATION_QUEUE_POSITION",
    "ProgressIndicator": "CONVERSATION_PROGRESS_INDICATOR",
    "StreamingToken": "CONVERSATION_STREAMING_TOKEN",
}

# Entries that only travel on the event stream; everything else is also kept in the transcript.
EPHEMERAL_TYPES = frozenset(
    {
        "TypingStartedIndicator",
        "TypingStoppedIndicator",
        "DeliveryAcknowledgement",
        "ReadAcknowledgement",
        "QueuePosition",
        "ProgressIndicator",
        "StreamingToken",
    }
)


def new_id() -> str:
    return str(uuid.uuid4())


def sender(role: str, app_type: str, subject: str, client_identifier: str = "") -> Json:
    return {
        "role": role,
        "appType": app_type,
        "subject": subject,
        "clientIdentifier": client_identifier,
    }


def system_sender() -> Json:
    return sender("System", "conversation", SYSTEM_SUBJECT)


def text_message_payload(entry_id: str, text: str, reason: str | None = None) -> Json:
    return {
        "entryType": "Message",
        "id": entry_id,
        "abstractMessage": {
            "messageType": "StaticContentMessage",
            "id": entry_id,
            "inReplyToMessageId": None,
            "references": [],
            "staticContent": {"formatType": "Text", "text": text},
        },
        "messageReason": reason,
    }


def attachment_message_payload(entry_id: str, caption: str | None, attachment: Json) -> Json:
    return {
        "entryType": "Message",
        "id": entry_id,
        "abstractMessage": {
            "messageType": "StaticContentMessage",
            "id": entry_id,
            "inReplyToMessageId": None,
            "references": [],
            "staticContent": {
                "formatType": "Attachments",
                "text": caption,
                "attachments": [attachment],
            },
        },
        "messageReason": None,
    }


def participant_changed_payload(
    entry_id: str, operation: str, participant: Json, display_name: str
) -> Json:
    return {
        "entryType": "ParticipantChanged",
        "id": entry_id,
        "entries": [
            {
                "operation": operation,
                "menuMetadata": None,
                "participant": participant,
                "displayName": display_name,
            }
        ],
    }


def routing_result_payload(
    entry_id: str, session_id: str, routing_type: str, failure: str | None = None
) -> Json:
    return {
        "entryType": "RoutingResult",
        "id": entry_id,
        "recordId": session_id,
        "routingType": routing_type,
        "failureType": failure or "None",
        "failureReason": None,
        "errorMessages": [],
        "estimatedWaitTime": {"isEWTRequested": False, "estimatedWaitTimeInSeconds": -1},
        "isExternallyRouted": False,
    }


def session_status_payload(
    entry_id: str,
    *,
    session_id: str,
    conversation_id: str,
    channel_address: str,
    status: str,
    previous: str,
    start_time: int,
    end_time: int | None,
    ended_by: str | None,
) -> Json:
    payload: Json = {
        "entryType": "SessionStatusChanged",
        "id": entry_id,
        "sessionId": session_id,
        "channelAddressIdentifier": channel_address,
        "conversationIdentifier": conversation_id,
        "sessionStatus": status,
        "sessionStatusPrev": previous,
        "sessionStartTime": start_time,
    }
    if end_time is not None:
        payload["sessionEndTime"] = end_time
    if ended_by is not None:
        payload["sessionEndedByRole"] = ended_by
    return payload


def to_sse_data(entry: Json, *, conversation_id: str, channel_address: str) -> str:
    """The SSE `data:` line: the envelope with `entryPayload` encoded as a JSON string."""
    wire_entry = dict(entry)
    wire_entry["entryPayload"] = json.dumps(entry["entryPayload"], separators=(",", ":"))
    envelope = {
        "channelPlatformKey": channel_address,
        "channelType": "embedded_messaging",
        "channelAddressIdentifier": channel_address,
        "conversationId": conversation_id,
        "conversationEntry": wire_entry,
    }
    return json.dumps(envelope, separators=(",", ":"))
