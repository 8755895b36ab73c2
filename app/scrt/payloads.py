"""Request bodies for SCRT writes, as pure functions of their inputs.

Kept apart from the HTTP calls so every body shape (tokens, conversations, sends) reads in one
place, and so each body is built once, before the first attempt: a retry re-sends the very same
ids.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from app.scrt.config import ScrtConfig


def new_id() -> str:
    """A lowercase UUID v4, the only id format SCRT accepts for client-generated ids."""
    return str(uuid.uuid4())


def token_request(config: ScrtConfig, *, device_id: str | None = None) -> dict[str, Any]:
    """Guest token body; `context` is always sent (the reference marks it required)."""
    body: dict[str, Any] = {
        "orgId": config.org_id,
        "esDeveloperName": config.es_developer_name,
        "capabilitiesVersion": config.capabilities_version,
        "platform": config.platform,
        "context": {"appName": config.app_name, "clientVersion": config.client_version},
    }
    if device_id:
        body["deviceId"] = device_id
    return body


def verified_token_request(config: ScrtConfig, customer_identity_token: str) -> dict[str, Any]:
    body = token_request(config)
    body["authorizationType"] = "JWT"
    body["customerIdentityToken"] = customer_identity_token
    return body


def conversation_request(
    config: ScrtConfig,
    conversation_id: str,
    routing_attributes: Mapping[str, str] | None,
    language: str | None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "conversationId": conversation_id,
        "esDeveloperName": config.es_developer_name,
    }
    if routing_attributes:
        body["routingAttributes"] = dict(routing_attributes)
    if language:
        body["language"] = language
    return body


def text_message(text: str, message_id: str, in_reply_to: str | None) -> dict[str, Any]:
    if not text.strip():
        raise ValueError("text must not be empty")
    message: dict[str, Any] = {
        "id": message_id,
        "messageType": "StaticContentMessage",
        "staticContent": {"formatType": "Text", "text": text},
    }
    if in_reply_to:
        message["inReplyToMessageId"] = in_reply_to
    return message


def choices_response(
    option_identifiers: Sequence[str], message_id: str, in_reply_to: str
) -> dict[str, Any]:
    """The answer to a ChoicesMessage: its options' `optionIdentifier`s, replying to its id."""
    if isinstance(option_identifiers, str):
        option_identifiers = [option_identifiers]
    if not option_identifiers:
        raise ValueError("option_identifiers must not be empty")
    return {
        "id": message_id,
        "messageType": "ChoicesResponseMessage",
        "choicesResponse": {
            "formatType": "Selections",
            "selectedOptions": [{"optionIdentifier": o} for o in option_identifiers],
        },
        "inReplyToMessageId": in_reply_to,
    }


def file_message(message_id: str, caption: str | None, in_reply_to: str | None) -> dict[str, Any]:
    message: dict[str, Any] = {"id": message_id, "fileId": new_id()}
    if caption:
        message["text"] = caption
    if in_reply_to:
        message["inReplyToMessageId"] = in_reply_to
    return message


def message_envelope(
    config: ScrtConfig,
    message: dict[str, Any],
    new_session: bool,
    routing_attributes: Mapping[str, str] | None,
    language: str | None,
) -> dict[str, Any]:
    """`isNewMessagingSession` only when true, as the official sample does."""
    body: dict[str, Any] = {"message": message, "esDeveloperName": config.es_developer_name}
    if new_session:
        body["isNewMessagingSession"] = True
    if routing_attributes:
        body["routingAttributes"] = dict(routing_attributes)
    if language:
        body["language"] = language
    return body


def typing_entry(typing: bool) -> dict[str, Any]:
    entry_type = "TypingStartedIndicator" if typing else "TypingStoppedIndicator"
    return {"entryType": entry_type, "id": new_id()}


def acknowledgements(delivered: Sequence[str], read: Sequence[str]) -> dict[str, Any]:
    kinds: tuple[tuple[Literal["Delivery", "Read"], Sequence[str]], ...] = (
        ("Delivery", delivered),
        ("Read", read),
    )
    acks = [
        {"id": new_id(), "entryType": kind, "conversationEntryId": entry_id}
        for kind, entry_ids in kinds
        for entry_id in ([entry_ids] if isinstance(entry_ids, str) else entry_ids)
    ]
    if not acks:
        raise ValueError("nothing to acknowledge")
    return {"acks": acks}
