"""The agent starts informed: a chat opened through the MCP server with a summary and customer
details shows them in the agent console (Chromium) before the agent accepts it."""

from __future__ import annotations

from mcp.client import Client
from playwright.async_api import expect

from app.main import build_app
from app.prechat import CONTEXT_MARK
from tests.console.conftest import DEADLINE, Console, Guest, running_site
from tests.mcp.conftest import call, settings_for
from tests.servers import serve

expect.set_options(timeout=DEADLINE * 1000)

SUMMARY = "Ana's parcel (order 1234) is a week late; tracking shows no scan since Monday."


async def test_the_console_shows_the_summary_and_details_before_the_agent_accepts(
    console: Console,
) -> None:
    async with running_site(mounted=False, prechat_hidden_fields=("ChatGPT_Summary__c",)) as site:
        settings = settings_for(site.root, prechat_field_map="summary:ChatGPT_Summary__c")
        async with (
            serve(build_app(settings), lifespan="on") as base,
            Client(base + "/mcp") as client,
        ):
            session = await call(client, "generate_guest_access_token", {})
            created = await call(
                client,
                "create_conversation",
                {
                    "sessionId": session["sessionId"],
                    "summary": SUMMARY,
                    "customerName": "Ana",
                },
            )
            assert created["contextMessage"] == "sent"
            ids = {"sessionId": session["sessionId"], "conversationId": created["conversationId"]}
            await call(client, "send_message", {**ids, "text": "a human, please"})
            ana = Guest(token="", last_event_id="", conversation_id=created["conversationId"])

            await console.open(site)
            await expect(console.item(ana)).to_contain_text("Waiting for agent")
            await expect(console.item(ana)).to_contain_text(f"ChatGPT_Summary__c: {SUMMARY}")
            await console.item(ana).click()
            context = console.transcript.locator(".msg.user").first
            await expect(context).to_contain_text(CONTEXT_MARK)
            await expect(context).to_contain_text("Name: Ana")
            await expect(console.accept).to_be_enabled()
            assert console.problems == []
