"""Rich content through the tools: choices the model (or the widget) picks with send_choice, links
and files as entries, an answer streamed ahead of the final message, and what the widget reports
of the user (typing, read receipts), each checked against what the simulated org recorded."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable
from typing import Any

import pytest
from mcp.client import Client

from app.simulator import SimulatorOptions
from tests.mcp.conftest import Stack, StackFactory, ToolFailed, call, read_until
from tests.mcp.test_handoff_flow import messages, start_chat

ENTRIES_PATH = "/iamessage/api/v2/conversation/{conversationId}/entries"
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n fake image bytes").decode()


async def with_agent(stack: Stack, client: Client) -> tuple[dict[str, str], list[dict[str, Any]]]:
    ids = await start_chat(client)
    seen, _ = await read_until(client, ids, lambda e, _: bool(messages(e, "Chatbot")))
    await stack.agent(ids["conversationId"], "join", {"name": "Jane Agent"})
    await read_until(client, ids, lambda _, i: i["isLiveAgent"], seen=seen)
    return ids, seen


def newest(entries: list[dict[str, Any]], **match: Any) -> dict[str, Any]:
    return [e for e in entries if all(e.get(k) == v for k, v in match.items())][-1]


async def test_the_model_picks_an_offered_choice_and_salesforce_gets_its_id(stack: Stack) -> None:
    async with Client(stack.mcp_url) as client:
        ids, seen = await with_agent(stack, client)
        cid = ids["conversationId"]
        offer = await stack.agent(
            cid,
            "message",
            {"text": "What is it about?", "choices": [{"id": "ord", "title": "Orders"}, "Billing"]},
        )
        await read_until(
            client, ids, lambda e, _: "What is it about?" in messages(e, "Agent"), seen=seen
        )
        shown = newest(seen, kind="message", role="Agent")
        assert shown["id"] == offer["entryId"]
        assert shown["choices"] == [
            {"id": "ord", "title": "Orders"},
            {"id": "option-2", "title": "Billing"},
        ]

        sent = await call(
            client,
            "send_choice",
            {**ids, "messageId": shown["id"], "choiceId": "option-2", "clientMessageId": "pick-1"},
        )
        # The same pick again (a retry) is not a second answer.
        again = await call(
            client,
            "send_choice",
            {**ids, "messageId": shown["id"], "choiceId": "option-2", "clientMessageId": "pick-1"},
        )
        await read_until(client, ids, lambda e, _: "Billing" in messages(e, "EndUser"), seen=seen)

    assert again["messageId"] == sent["messageId"]
    conv = await stack.conversation(cid)
    picks = [
        e["entryPayload"]["abstractMessage"]
        for e in conv["entries"]
        if e["entryType"] == "Message"
        and e["sender"]["role"] == "EndUser"
        and "choicesResponse" in e["entryPayload"]["abstractMessage"]
    ]
    assert len(picks) == 1
    assert picks[0]["inReplyToMessageId"] == offer["entryId"]
    assert picks[0]["choicesResponse"]["selectedOptions"] == [{"optionIdentifier": "option-2"}]
    # The user's side reads as the title picked, not as an id.
    assert messages(seen, "EndUser")[-1] == "Billing"


@pytest.mark.parametrize(
    ("which", "error"),
    [
        ("message", "messageId must be the id of a message with choices"),
        ("plain", "messageId names a message that offers no choices"),
        ("choice", "choiceId must be the id of one of that message's choices: yes, no"),
    ],
)
async def test_a_wrong_pick_is_refused_naming_what_is_wrong_and_nothing_is_sent(
    stack: Stack, which: str, error: str
) -> None:
    async with Client(stack.mcp_url) as client:
        ids, _ = await with_agent(stack, client)
        cid = ids["conversationId"]
        plain = await stack.agent(cid, "message", {"text": "Just text"})
        offer = await stack.agent(
            cid,
            "message",
            {
                "text": "Sure?",
                "choices": [{"id": "yes", "title": "Yes"}, {"id": "no", "title": "No"}],
            },
        )
        before = len((await stack.conversation(cid))["entries"])
        args = {
            "message": {"messageId": "0d5c8f4e-0000-4000-8000-000000000000", "choiceId": "yes"},
            "plain": {"messageId": plain["entryId"], "choiceId": "yes"},
            "choice": {"messageId": offer["entryId"], "choiceId": "maybe"},
        }[which]

        with pytest.raises(ToolFailed, match=error):
            await call(client, "send_choice", {**ids, **args})

    assert len((await stack.conversation(cid))["entries"]) == before


async def test_links_and_files_arrive_as_entries_with_only_web_addresses(stack: Stack) -> None:
    async with Client(stack.mcp_url) as client:
        ids, seen = await with_agent(stack, client)
        cid = ids["conversationId"]
        await stack.agent(
            cid,
            "message",
            {"text": "Track it", "link": {"url": "https://t.example/1", "title": "Parcel"}},
        )
        await stack.agent(
            cid, "message", {"link": {"url": "javascript:alert(1)", "title": "Click me"}}
        )
        await stack.agent(
            cid,
            "message",
            {
                "text": "Your label",
                "file": {"name": "label.png", "mimeType": "image/png", "content": PNG},
            },
        )
        await read_until(client, ids, lambda e, _: "Your label" in messages(e, "Agent"), seen=seen)

    [track, bad, label] = [e for e in seen if e["role"] == "Agent" and e["kind"] == "message"][-3:]
    assert track["link"] == {"url": "https://t.example/1", "title": "Parcel"}
    assert bad["link"] == {"url": None, "title": "Click me"}
    [file] = label["files"]
    assert (file["name"], file["mimeType"]) == ("label.png", "image/png")
    assert file["url"].startswith(stack.sim_url)
    # The address serves the file the agent sent.
    downloaded = await stack.control.get(file["url"][len(stack.sim_url) :])
    assert downloaded.content == base64.b64decode(PNG)


async def read_live(
    client: Client,
    ids: dict[str, str],
    cursor: str,
    seen: list[dict[str, Any]],
    done: Callable[[list[dict[str, Any]]], bool],
) -> str:
    """Read as the widget does (includeTyping, its own cursor) until `done(seen)`; the cursor."""
    async with asyncio.timeout(60):  # a safety deadline: it only bounds a failing wait
        while not done(seen):
            args = {**ids, "cursor": cursor, "waitSeconds": 5, "includeTyping": True}
            page = await call(client, "list_conversation_entries", args)
            seen += page["entries"]
            cursor = page["cursor"]
    return cursor


async def test_a_streamed_answer_reaches_the_model_once_whole_and_the_widget_as_it_streams(
    stack: Stack,
) -> None:
    async with Client(stack.mcp_url) as client:
        ids = await start_chat(client)
        seen, _ = await read_until(client, ids, lambda e, _: bool(messages(e, "Chatbot")))
        widget: list[dict[str, Any]] = []
        cursor = await read_live(client, ids, "0", widget, lambda e: bool(messages(e, "Chatbot")))
        bot = f"/control/conversations/{ids['conversationId']}/bot"
        await stack.control.post(f"{bot}/progress", json={"text": "Looking it up"})
        first = (await stack.control.post(f"{bot}/token", json={"text": "Your order "})).json()
        target = first["targetId"]
        cursor = await read_live(
            client, ids, cursor, widget, lambda e: any(x["kind"] == "streaming" for x in e)
        )
        await stack.control.post(f"{bot}/token", json={"targetId": target, "text": "ships today."})
        await stack.control.post(
            f"{bot}/message", json={"id": target, "text": "Your order ships today."}
        )
        await read_live(client, ids, cursor, widget, lambda e: any(x["id"] == target for x in e))
        final = "Your order ships today."
        await read_until(client, ids, lambda e, _: final in messages(e, "Chatbot"), seen=seen)

    # The model: the final answer once, no tokens, no progress.
    assert messages(seen, "Chatbot")[-1] == final
    assert messages(seen, "Chatbot").count(final) == 1
    assert not [e for e in seen if e["kind"] in ("streaming", "progress")]
    # The widget: the progress line, each token in order with its target, then the answer.
    previews = [
        (e["kind"], e["text"], e.get("targetId"), e.get("sequence"))
        for e in widget
        if e["kind"] in ("progress", "streaming")
    ]
    assert previews == [
        ("progress", "Looking it up", None, None),
        ("streaming", "Your order ", target, 1),
        ("streaming", "ships today.", target, 2),
    ]
    assert messages(widget, "Chatbot").count(final) == 1


async def test_the_agent_sees_the_user_typing_and_what_they_read(stack: Stack) -> None:
    async with Client(stack.mcp_url) as client:
        ids, _ = await with_agent(stack, client)
        cid = ids["conversationId"]
        said = await stack.agent(cid, "message", {"text": "Can you see this?"})

        await call(client, "report_chat_activity", {**ids, "typing": True})
        typing = (await stack.conversation(cid))["userTyping"]
        reported = await call(
            client,
            "report_chat_activity",
            {**ids, "typing": False, "readEntryIds": [said["entryId"]]},
        )
        conv = await stack.conversation(cid)

    assert typing is True
    assert reported == {"typing": False, "read": 1}
    assert conv["userTyping"] is False
    assert conv["readEntryIds"] == [said["entryId"]]


async def test_report_chat_activity_is_hidden_from_the_model_and_send_choice_is_not(
    stack: Stack,
) -> None:
    async with Client(stack.mcp_url) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}

    activity = tools["report_chat_activity"].meta or {}
    assert activity["ui"]["visibility"] == ["app"]
    assert activity["openai/visibility"] == "private"
    assert (tools["send_choice"].meta or {})["ui"]["visibility"] == ["model", "app"]


async def test_a_read_receipt_for_a_malformed_id_is_refused_naming_the_field(stack: Stack) -> None:
    async with Client(stack.mcp_url) as client:
        ids = await start_chat(client)
        with pytest.raises(ToolFailed, match="readEntryIds"):
            await call(client, "report_chat_activity", {**ids, "readEntryIds": ["<script>"]})


def user_files(conv: dict[str, Any]) -> list[tuple[str, str]]:
    """(name, MIME type) of each file the org recorded from the end user."""
    return [
        (a["name"], a["mimeType"])
        for e in conv["entries"]
        if e["entryType"] == "Message" and e["sender"]["role"] == "EndUser"
        for a in e["entryPayload"]["abstractMessage"]["staticContent"].get("attachments", [])
    ]


async def test_a_file_from_the_widget_reaches_the_agent_once(stack: Stack) -> None:
    content = b"order 1234\nparcel late\n"
    args = {
        "fileName": "notes.txt",
        "mimeType": "text/plain",
        "content": base64.b64encode(content).decode(),
        "caption": "my notes",
        "clientMessageId": "file-1",
    }
    async with Client(stack.mcp_url) as client:
        ids, seen = await with_agent(stack, client)
        sent = await call(client, "send_file", {**ids, **args})
        again = await call(client, "send_file", {**ids, **args})
        await read_until(
            client,
            ids,
            lambda e, _: any(e_.get("files") for e_ in e if e_["role"] == "EndUser"),
            seen=seen,
        )

    assert again["messageId"] == sent["messageId"]
    conv = await stack.conversation(ids["conversationId"])
    assert user_files(conv) == [("notes.txt", "text/plain")]
    [echo] = [e for e in seen if e["role"] == "EndUser" and e.get("files")]
    assert echo["id"] == sent["messageId"] and echo["text"] == "my notes"
    [file] = echo["files"]
    downloaded = await stack.control.get(file["url"][len(stack.sim_url) :])
    assert downloaded.content == content


@pytest.mark.parametrize(
    ("change", "error"),
    [
        (
            {"content": base64.b64encode(b"x" * (5 * 1024 * 1024 + 1)).decode()},
            "content is over 5 MB",
        ),
        ({"content": "not base64!"}, "content must be the file's bytes in base64"),
        ({"fileName": "../etc/passwd"}, "fileName"),
        ({"mimeType": "text"}, "mimeType"),
        ({"mimeType": "application/zip"}, "Files of type application/zip are not allowed"),
    ],
)
async def test_a_file_salesforce_would_not_take_is_refused_saying_why(
    stack: Stack, change: dict[str, str], error: str
) -> None:
    args = {"fileName": "a.txt", "mimeType": "text/plain", "content": "aGk=", **change}
    async with Client(stack.mcp_url) as client:
        ids, _ = await with_agent(stack, client)
        with pytest.raises(ToolFailed, match=error):
            await call(client, "send_file", {**ids, **args})

    assert user_files(await stack.conversation(ids["conversationId"])) == []


async def test_a_file_at_salesforces_limit_gets_through(stack: Stack) -> None:
    # 5 MB in base64 is about 7 MB of request: over the MCP SDK's default body limit (4 MB).
    content = base64.b64encode(bytes(5 * 1024 * 1024)).decode()
    args = {"fileName": "scan.pdf", "mimeType": "application/pdf", "content": content}
    async with Client(stack.mcp_url) as client:
        ids, _ = await with_agent(stack, client)
        await call(client, "send_file", {**ids, **args})

    assert user_files(await stack.conversation(ids["conversationId"])) == [
        ("scan.pdf", "application/pdf")
    ]


async def test_the_bot_menu_offers_choices_and_picking_an_agent_transfers(
    stack_factory: StackFactory,
) -> None:
    stack = await stack_factory(SimulatorOptions(rate_limits=False, bot_menu=True))
    async with Client(stack.mcp_url) as client:
        ids = await start_chat(client)
        seen, _ = await read_until(client, ids, lambda e, _: bool(messages(e, "Chatbot")))
        menu = newest(seen, kind="message", role="Chatbot")
        assert [c["title"] for c in menu["choices"]] == ["Orders", "Billing", "Talk to an agent"]

        await call(client, "send_choice", {**ids, "messageId": menu["id"], "choiceId": "agent"})
        _, info = await read_until(client, ids, lambda _, i: i["transferring"], seen=seen)

    assert messages(seen, "EndUser") == ["Talk to an agent"]
    assert info["transferring"] is True


async def test_a_retried_pick_salesforce_already_has_is_sent_without_looking_up_the_offer(
    stack: Stack,
) -> None:
    async with Client(stack.mcp_url) as client:
        ids, seen = await with_agent(stack, client)
        offer = await stack.agent(
            ids["conversationId"], "message", {"text": "Sure?", "choices": ["Yes", "No"]}
        )
        args = {
            **ids,
            "messageId": offer["entryId"],
            "choiceId": "option-1",
            "clientMessageId": "k",
        }
        sent = await call(client, "send_choice", args)
        await read_until(client, ids, lambda e, _: "Yes" in messages(e, "EndUser"), seen=seen)
        # Salesforce's entries endpoint is down: the retry needs nothing from it.
        await stack.fault(path=ENTRIES_PATH, method="GET", status=503, count=None)
        again = await call(client, "send_choice", args)

    assert again["messageId"] == sent["messageId"]
