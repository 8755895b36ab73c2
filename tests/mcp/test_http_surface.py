"""The HTTP surface a deployment sees: /health, the exact /mcp path, Host and Origin checks."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from app.main import build_app
from tests.mcp.conftest import settings_for
from tests.servers import serve

LIST = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}


@pytest.fixture
async def base() -> AsyncIterator[str]:
    # Salesforce is never called by these requests; the URL only has to be well-formed.
    settings = settings_for(
        "https://acme.my.salesforce-scrt.com",
        heroku_app_name="miaw-demo",
        public_url="https://chat.example.com",
        mcp_allowed_hosts=["mcp.internal.example"],
    )
    async with serve(build_app(settings), lifespan="on") as url:
        yield url


async def test_health_reports_ok_and_version(base: str) -> None:
    async with httpx.AsyncClient() as http:
        r = await http.get(base + "/health")
    assert r.status_code == 200
    assert r.json()["status"] == "ok" and r.json()["version"]


@pytest.mark.parametrize(
    "host",
    ["miaw-demo.herokuapp.com", "chat.example.com", "mcp.internal.example", "localhost:8000"],
)
async def test_configured_hosts_reach_mcp(base: str, host: str) -> None:
    async with httpx.AsyncClient() as http:
        r = await http.post(base + "/mcp", json=LIST, headers={"Host": host})
    assert r.status_code == 200, r.text
    assert len(r.json()["result"]["tools"]) == 11


async def test_foreign_host_is_misdirected(base: str) -> None:
    async with httpx.AsyncClient() as http:
        r = await http.post(base + "/mcp", json=LIST, headers={"Host": "evil.example"})
    assert r.status_code == 421


async def test_foreign_origin_is_forbidden_and_chatgpt_is_allowed(base: str) -> None:
    async with httpx.AsyncClient() as http:
        evil = await http.post(base + "/mcp", json=LIST, headers={"Origin": "https://evil.example"})
        chatgpt = await http.post(
            base + "/mcp", json=LIST, headers={"Origin": "https://chatgpt.com"}
        )
    assert evil.status_code == 403
    assert chatgpt.status_code == 200


async def test_mcp_is_served_at_exactly_slash_mcp(base: str) -> None:
    async with httpx.AsyncClient() as http:
        r = await http.post(base + "/mcp/", json=LIST)
    assert r.status_code == 307  # the router redirects /mcp/ to /mcp; /mcp itself answers directly


async def test_tools_declare_schemas_annotations_and_widget_metadata(base: str) -> None:
    async with httpx.AsyncClient() as http:
        r = await http.post(base + "/mcp", json=LIST)
        resources = await http.post(
            base + "/mcp", json={"jsonrpc": "2.0", "id": 2, "method": "resources/list"}
        )
    tools = {t["name"]: t for t in r.json()["result"]["tools"]}
    for tool in tools.values():
        assert tool["description"], tool["name"]
        assert tool["outputSchema"]["type"] == "object", tool["name"]
        assert "annotations" in tool, tool["name"]
    assert tools["list_conversation_entries"]["annotations"]["readOnlyHint"] is True
    assert tools["close_conversation"]["annotations"]["destructiveHint"] is True
    show = tools["show_salesforce_chat"]["_meta"]
    (resource,) = resources.json()["result"]["resources"]
    assert show["ui"]["resourceUri"] == show["openai/outputTemplate"] == resource["uri"]
    assert resource["uri"].startswith("ui://") and "-v" in resource["uri"]
    assert resource["mimeType"] == "text/html;profile=mcp-app"
    for name in ("send_message", "list_conversation_entries", "close_conversation"):
        meta = tools[name]["_meta"]
        assert "app" in meta["ui"]["visibility"] and meta["openai/widgetAccessible"] is True


async def test_get_mcp_opens_no_stream(base: str) -> None:
    async with httpx.AsyncClient(timeout=5) as http:
        r = await http.get(base + "/mcp", headers={"Accept": "text/event-stream"})
        listed = await http.post(base + "/mcp", json=LIST)
    assert r.status_code == 405
    assert r.headers["allow"] == "POST"
    assert listed.status_code == 200


async def test_a_localhost_origin_is_refused_in_production(base: str) -> None:
    async with httpx.AsyncClient() as http:
        r = await http.post(base + "/mcp", json=LIST, headers={"Origin": "http://localhost:3000"})
    assert r.status_code == 403


@pytest.mark.parametrize(
    ("values", "allowed"),
    [
        ({}, False),  # 0.0.0.0, as on Heroku
        ({"host": "127.0.0.1"}, True),
        ({"playground_enabled": True}, True),  # demo mode
    ],
)
def test_localhost_origins_only_for_a_local_server_or_the_demo(
    values: dict[str, object], allowed: bool
) -> None:
    origins = settings_for("https://acme.my.salesforce-scrt.com", **values).allowed_origins()
    assert ("http://localhost:*" in origins) is allowed
    assert ("http://127.0.0.1:*" in origins) is allowed
    assert "https://chatgpt.com" in origins
