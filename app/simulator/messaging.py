"""End-user sends: messages, files, typing indicators and acknowledgements."""

from __future__ import annotations

import json
import uuid
from typing import Any

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from app.simulator import entries as E
from app.simulator.errors import SimError, bad_request
from app.simulator.org import Conversation, SimulatedOrg, StoredFile
from app.simulator.rest import actors_of, authorize, conversation, json_body, org_of, require_str
from app.simulator.tokens import TokenRecord

Json = dict[str, Any]


def end_user_sender(token: TokenRecord) -> Json:
    return E.sender("EndUser", "iamessage", token.subject, token.client_id)


def prepare_session(request: Request, conv: Conversation, body: Json) -> bool:
    """Check the conversation can take a message; return True when a new session starts."""
    org = org_of(request)
    if not conv.open:
        raise bad_request("The conversation is closed.")
    new_session = body.get("isNewMessagingSession") is True
    if conv.session.active:
        return False
    if org.options.prechat_display_context == "Session" and not new_session:
        raise SimError(
            417,
            "No messaging session exists. Send the pre-chat details with isNewMessagingSession.",
            "NO_ACTIVE_SESSION",
        )
    # Pre-chat values belong to a session: a new one has only those sent with it.
    attributes = body.get("routingAttributes")
    conv.routing_attributes = attributes if isinstance(attributes, dict) else {}
    actors_of(request).restart_session(conv)
    return True


def message_text(message: Json) -> tuple[str, Json]:
    """Validate the message object; return (text for the bot, the payload's abstractMessage)."""
    message_type = message.get("messageType")
    if message_type == "StaticContentMessage":
        content = message.get("staticContent")
        if not isinstance(content, dict) or content.get("formatType") != "Text":
            raise bad_request('message.staticContent must be {"formatType": "Text", "text": ...}.')
        text = content.get("text")
        if not isinstance(text, str) or not text.strip():
            raise bad_request("message.staticContent.text must be a non-empty string.")
        return text, {"staticContent": {"formatType": "Text", "text": text}}
    if message_type == "ChoicesResponseMessage":
        response = message.get("choicesResponse")
        options = response.get("selectedOptions") if isinstance(response, dict) else None
        if not isinstance(options, list) or not options:
            raise bad_request("message.choicesResponse.selectedOptions must be a non-empty list.")
        # The bot reads a pick as the ids picked (the menu's "agent" asks for a person).
        picked = [o.get("optionIdentifier") for o in options if isinstance(o, dict)]
        return " ".join(p for p in picked if isinstance(p, str)), {"choicesResponse": response}
    raise bad_request("message.messageType must be StaticContentMessage or ChoicesResponseMessage.")


async def send_message(request: Request) -> Response:
    token = authorize(request)
    org = org_of(request)
    conv = conversation(request, token)
    body = await json_body(request)
    require_str(body, "esDeveloperName")
    message = body.get("message")
    if not isinstance(message, dict):
        raise bad_request("Specify message.")
    message_id = require_str(message, "id").lower()
    text, content = message_text(message)
    if len(text) > org.options.max_message_chars:
        raise bad_request(f"message text exceeds {org.options.max_message_chars} characters.")
    accepted = {"conversationEntries": [{"id": message_id, "clientTimestamp": 0}]}
    if message_id in conv.message_ids:
        # A retried send whose first attempt went through: accepted again, recorded once.
        return JSONResponse(accepted, status_code=202)
    new_session = prepare_session(request, conv, body)
    org.check_message_rate(conv)
    conv.message_ids.add(message_id)
    payload = {
        "entryType": "Message",
        "id": message_id,
        "abstractMessage": {
            "messageType": message["messageType"],
            "id": message_id,
            "inReplyToMessageId": message.get("inReplyToMessageId"),
            "references": [],
            **content,
        },
        "messageReason": None,
    }
    entry = org.emit(conv, payload, end_user_sender(token), "Guest")
    accepted["conversationEntries"][0]["clientTimestamp"] = entry["clientTimestamp"]
    actors = actors_of(request)
    if new_session:
        actors.start_routing(conv, greet_and_answer=text)
    else:
        actors.on_user_message(conv, text)
    return JSONResponse(accepted, status_code=202)


async def send_file(request: Request) -> Response:
    token = authorize(request)
    org = org_of(request)
    conv = conversation(request, token)
    form = await request.form(max_files=1, max_fields=5)
    raw_entry = form.get("messageEntry")
    file = form.get("fileData")
    if isinstance(raw_entry, UploadFile):
        raw_entry = (await raw_entry.read()).decode("utf-8", "replace")
    if not isinstance(raw_entry, str):
        raise bad_request("Specify the messageEntry part.")
    try:
        entry_body = json.loads(raw_entry)
    except json.JSONDecodeError:
        raise bad_request("The messageEntry part is not valid JSON.") from None
    if not isinstance(entry_body, dict) or not isinstance(entry_body.get("message"), dict):
        raise bad_request("messageEntry must carry a message object.")
    if not isinstance(file, UploadFile):
        raise bad_request("Specify the fileData part.")
    content = await file.read()
    if len(content) > org.options.max_file_bytes:
        limit_mb = org.options.max_file_bytes // (1024 * 1024)
        raise SimError(413, f"The file exceeds the {limit_mb} MB limit.", "PAYLOAD_TOO_LARGE")
    mime = (file.content_type or "application/octet-stream").split(";")[0].strip().lower()
    if mime not in org.options.allowed_file_types:
        raise SimError(415, f"Files of type {mime} are not allowed.", "UNSUPPORTED_MEDIA_TYPE")
    message = entry_body["message"]
    message_id = str(message.get("id") or uuid.uuid4()).lower()
    if message_id in conv.message_ids:
        # A retried upload whose first attempt went through: accepted again, recorded once.
        accepted = {"id": message_id, "clientTimestamp": 0}
        return JSONResponse({"conversationEntries": [accepted]}, status_code=202)
    new_session = prepare_session(request, conv, entry_body)
    org.check_message_rate(conv)
    conv.message_ids.add(message_id)
    file_id = str(uuid.uuid4())
    org.files[file_id] = StoredFile(file.filename or "file", mime, content)
    attachment = {
        "id": file_id,
        "name": file.filename or "file",
        "mimeType": mime,
        "url": str(request.base_url).rstrip("/") + f"/files/{file_id}",
        "referenceId": str(message.get("fileId") or file_id),
        "attachmentUploadResult": "Success",
    }
    caption = message.get("text") if isinstance(message.get("text"), str) else None
    payload = E.attachment_message_payload(message_id, caption, attachment)
    entry = org.emit(conv, payload, end_user_sender(token), "Guest")
    if new_session:
        actors_of(request).start_routing(conv)
    return JSONResponse(
        {"conversationEntries": [{"id": message_id, "clientTimestamp": entry["clientTimestamp"]}]},
        status_code=202,
    )


async def download_file(request: Request) -> Response:
    stored = org_of(request).files.get(request.path_params["fileId"])
    if stored is None:
        raise SimError(404, "File not found.", "NOT_FOUND")
    return Response(stored.content, media_type=stored.mime_type)


async def send_entry(request: Request) -> Response:
    token = authorize(request)
    org = org_of(request)
    conv = conversation(request, token)
    body = await json_body(request)
    kind = body.get("entryType")
    if kind not in ("TypingStartedIndicator", "TypingStoppedIndicator"):
        raise bad_request("entryType must be TypingStartedIndicator or TypingStoppedIndicator.")
    entry_id = require_str(body, "id")
    if not conv.open:
        raise bad_request("The conversation is closed.")
    payload = {"entryType": kind, "id": entry_id, "timestamp": conv.next_timestamp()}
    conv.user_typing = kind == "TypingStartedIndicator"
    org.emit(conv, payload, end_user_sender(token), "Guest")
    return Response(status_code=202)


async def acknowledge_entries(request: Request) -> Response:
    token = authorize(request)
    org: SimulatedOrg = org_of(request)
    conv = conversation(request, token)
    body = await json_body(request)
    acks = body.get("acks")
    if not isinstance(acks, list) or not acks:
        raise bad_request("acks must be a non-empty list.")
    for index, ack in enumerate(acks):
        if not isinstance(ack, dict):
            raise bad_request(f"acks[{index}] must be an object.")
        if ack.get("entryType") not in ("Delivery", "Read"):
            raise bad_request(f"acks[{index}].entryType must be Delivery or Read.")
        require_str(ack, "id")
        require_str(ack, "conversationEntryId")
    for ack in acks:
        kind = (
            "DeliveryAcknowledgement" if ack["entryType"] == "Delivery" else "ReadAcknowledgement"
        )
        acked = ack["conversationEntryId"]
        if kind == "ReadAcknowledgement" and acked not in conv.read_entry_ids:
            conv.read_entry_ids.append(acked)
        payload = {
            "entryType": kind,
            "id": ack["id"],
            "acknowledgedConversationEntryIdentifier": acked,
            "acknowledgementTimestamp": conv.next_timestamp(),
        }
        org.emit(conv, payload, end_user_sender(token), "Guest", related=[acked])
    return Response(status_code=202)
