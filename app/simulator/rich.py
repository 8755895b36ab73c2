"""Rich messages the simulated bot and agent send: choices, links, files, forms; an answer streamed
token by token; progress lines.

Shapes follow Salesforce's "Message Types and Format Types" and token-streaming pages where they
say (choices, RichLink, Attachments, StreamingToken, ProgressIndicator); a FormMessage's inside
is not documented: its `title` is a guess (docs/simulator.md, "Fidelity").
"""

from __future__ import annotations

import base64
import binascii
import uuid
from typing import Any

from app.simulator import entries as E
from app.simulator.errors import bad_request
from app.simulator.org import SimulatedOrg, StoredFile

Json = dict[str, Any]

CONTENT_KINDS = ("choices", "link", "file", "form")
CHOICE_FORMATS = ("Buttons", "QuickReplies")
MAX_CONTROL_FILE_BYTES = 5 * 1024 * 1024


def _message(entry_id: str, message_type: str, content_key: str, content: Json) -> Json:
    return {
        "entryType": "Message",
        "id": entry_id,
        "abstractMessage": {
            "messageType": message_type,
            "id": entry_id,
            "inReplyToMessageId": None,
            "references": [],
            content_key: content,
        },
        "messageReason": None,
    }


def _text(body: Json, *, required: bool) -> str | None:
    text = body.get("text")
    if text is None and not required:
        return None
    if not isinstance(text, str) or not text.strip():
        raise bad_request('Field "text" must be a non-empty string.')
    return text


def _options(raw: Any) -> list[Json]:
    if not isinstance(raw, list) or not raw or len(raw) > 20:
        raise bad_request(
            'Field "choices" must be a list of 1 to 20 titles or {"id", "title"} objects.'
        )
    items = []
    for index, choice in enumerate(raw):
        if isinstance(choice, str):
            choice = {"title": choice}
        title = choice.get("title") if isinstance(choice, dict) else None
        identifier = choice.get("id", f"option-{index + 1}") if isinstance(choice, dict) else None
        if not isinstance(title, str) or not title.strip() or not isinstance(identifier, str):
            raise bad_request(f'choices[{index}] must be a title or {{"id", "title"}} strings.')
        items.append(
            {
                "optionIdentifier": identifier,
                "titleItem": {"itemType": "TitleItem", "title": title},
                "optionType": "QuickReply",
            }
        )
    return items


def _stored_file(org: SimulatedOrg, raw: Any, base_url: str) -> Json:
    if not isinstance(raw, dict):
        raise bad_request('Field "file" must be {"name", "mimeType", "content" (base64)}.')
    name, mime, data = raw.get("name"), raw.get("mimeType"), raw.get("content", "")
    if not isinstance(name, str) or not name.strip():
        raise bad_request('Field "file.name" must be a non-empty string.')
    if not isinstance(mime, str) or "/" not in mime:
        raise bad_request('Field "file.mimeType" must be a MIME type such as "image/png".')
    try:
        content = base64.b64decode(data, validate=True) if isinstance(data, str) else None
    except binascii.Error:
        content = None
    if content is None or len(content) > MAX_CONTROL_FILE_BYTES:
        raise bad_request('Field "file.content" must be the file in base64, at most 5 MB.')
    file_id = str(uuid.uuid4())
    org.files[file_id] = StoredFile(name, mime, content)
    return {
        "id": file_id,
        "name": name,
        "mimeType": mime,
        "url": f"{base_url.rstrip('/')}/files/{file_id}",
        "referenceId": file_id,
        "attachmentUploadResult": "Success",
    }


def message_payload(org: SimulatedOrg, body: Json, entry_id: str, base_url: str) -> Json:
    """The Message payload a control call's body describes: a text, or a text with one of
    `choices`, `link`, `file` or `form` (400 naming the first bad field)."""
    kinds = [kind for kind in CONTENT_KINDS if kind in body]
    if len(kinds) > 1:
        raise bad_request(f"Send one of {', '.join(CONTENT_KINDS)} per message, not several.")
    kind = kinds[0] if kinds else None
    if kind == "choices":
        choice_format = body.get("choiceFormat", "Buttons")
        if choice_format not in CHOICE_FORMATS:
            raise bad_request('Field "choiceFormat" must be "Buttons" or "QuickReplies".')
        content = {
            "formatType": choice_format,
            "text": _text(body, required=True),
            "optionItems": _options(body["choices"]),
        }
        return _message(entry_id, "ChoicesMessage", "choices", content)
    if kind == "link":
        link = body["link"]
        url = link.get("url") if isinstance(link, dict) else None
        title = link.get("title", url) if isinstance(link, dict) else None
        if not isinstance(url, str) or not url or not isinstance(title, str):
            raise bad_request('Field "link" must be {"url", "title"} strings.')
        content = {
            "formatType": "RichLink",
            "text": _text(body, required=False),
            "linkItem": {"url": url, "titleItem": {"itemType": "TitleLinkItem", "title": title}},
        }
        return _message(entry_id, "StaticContentMessage", "staticContent", content)
    if kind == "file":
        caption = _text(body, required=False)
        return E.attachment_message_payload(
            entry_id, caption, _stored_file(org, body["file"], base_url)
        )
    if kind == "form":
        form = body["form"]
        title = form.get("title") if isinstance(form, dict) else None
        if not isinstance(title, str) or not title.strip():
            raise bad_request('Field "form" must be {"title"} with a non-empty title.')
        content = {"formatType": "Inputs", "title": {"title": title}}
        return _message(entry_id, "FormMessage", "form", content)
    return E.text_message_payload(entry_id, str(_text(body, required=True)))


def streaming_token_payload(entry_id: str, target: str, sequence: int, text: str) -> Json:
    return {
        "entryType": "StreamingToken",
        "id": entry_id,
        "streamingToken": {
            "tokenType": "MessageStreamingToken",
            "targetMessageIdentifier": target,
            "sequenceNumber": sequence,
            "token": {"formatType": "Text", "text": text},
        },
    }


def progress_payload(entry_id: str, text: str) -> Json:
    return {
        "entryType": "ProgressIndicator",
        "id": entry_id,
        "progressIndicator": {"indicatorType": "Progress", "progressMessage": {"text": text}},
    }
