"""The widget as MCP serves it (no browser): the versioned `ui://` resource, its `_meta` for both
hosts, the tool `_meta` that lets the view call tools, and the playground switch."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from app.config import Settings
from app.main import build_app
from tests.mcp.conftest import settings_for

WIDGET_DIR = Path(__file__).resolve().parents[2] / "widget"
BASE_URL = "http://127.0.0.1:8000"
WIDGET_TOOLS = ("send_message", "list_conversation_entries", "close_conversation")
MCP_APP_MIME = "text/html;profile=mcp-app"  # MCP Apps: the MIME type of an HTML view resource


def client_for(**settings: Any) -> TestClient:
    # Nothing here reaches Salesforce: the SCRT URL only has to be well formed.
    return TestClient(build_app(settings_for("https://sim.invalid", **settings)), base_url=BASE_URL)


@pytest.fixture
def mcp() -> Iterator[TestClient]:
    with client_for(widget_domain="chat-widget.example.com", wait_default_seconds=12) as client:
        yield client


def rpc(client: TestClient, method: str, params: dict[str, Any] | None = None) -> Any:
    response = client.post(
        "/mcp", json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params or {}}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert "error" not in body, body
    return body["result"]


def listed_widget(client: TestClient) -> dict[str, Any]:
    """The widget as `resources/list` announces it (the one `ui://widget/` resource)."""
    resources = rpc(client, "resources/list")["resources"]
    (listed,) = [r for r in resources if r["uri"].startswith("ui://widget/")]
    return dict(listed)


def read_widget(client: TestClient) -> dict[str, Any]:
    uri = listed_widget(client)["uri"]
    (content,) = rpc(client, "resources/read", {"uri": uri})["contents"]
    return dict(content)


def test_widget_uri_carries_the_version_and_is_served_as_an_mcp_app(mcp: TestClient) -> None:
    listed = listed_widget(mcp)
    versioned = re.fullmatch(r"ui://widget/salesforce-chat-v(\d+)\.html", listed["uri"])
    assert versioned is not None, listed["uri"]
    assert listed["mimeType"] == MCP_APP_MIME
    content = read_widget(mcp)
    assert content["uri"] == listed["uri"]
    assert content["mimeType"] == MCP_APP_MIME
    # The HTML served under the URI is the version the URI names (ChatGPT caches by URI).
    assert f'data-version="{versioned.group(1)}"' in content["text"]


def test_resource_meta_has_mcp_apps_and_chatgpt_keys_from_settings(mcp: TestClient) -> None:
    meta = read_widget(mcp)["_meta"]
    assert meta["ui"] == {
        "csp": {"connectDomains": [], "resourceDomains": []},
        "prefersBorder": True,
        "domain": "chat-widget.example.com",
    }
    assert meta["openai/widgetCSP"] == {"connect_domains": [], "resource_domains": []}
    assert meta["openai/widgetPrefersBorder"] is True
    assert meta["openai/widgetDomain"] == "chat-widget.example.com"
    assert "human support agent" in meta["openai/widgetDescription"]


def test_without_a_widget_domain_setting_no_domain_is_declared() -> None:
    with client_for() as client:
        meta = read_widget(client)["_meta"]
    assert "domain" not in meta["ui"] and "openai/widgetDomain" not in meta


def test_html_is_self_contained_and_carries_only_static_config(mcp: TestClient) -> None:
    html = read_widget(mcp)["text"]
    # Inline CSS and JS, verbatim; nothing loaded from anywhere.
    for part in sorted((WIDGET_DIR / "live_chat").iterdir()):
        assert part.read_text() in html, part.name
    assert not re.search(r"<(script|img|link|iframe)[^>]+(src|href)=", html)
    assert "http://" not in html and "https://" not in html
    config = re.search(r'<script type="application/json" id="widget-config">(.*?)</script>', html)
    assert config is not None
    assert '"waitSeconds": 12.0' in config.group(1)


INLINED = sorted(p for p in WIDGET_DIR.rglob("*") if p.suffix in (".js", ".css"))


@pytest.mark.parametrize("path", INLINED, ids=[p.name for p in INLINED])
def test_inlined_sources_cannot_end_their_element_early(path: Path) -> None:
    source = path.read_text().lower()
    assert "</script" not in source and "</style" not in source and "<!--" not in source
    # Jinja includes them: no template syntax may hide inside.
    assert not re.search(r"\{[{%#]", source)


def test_tools_the_widget_calls_are_visible_to_the_app(mcp: TestClient) -> None:
    tools = {tool["name"]: tool for tool in rpc(mcp, "tools/list")["tools"]}
    show = tools["show_salesforce_chat"]["_meta"]
    uri = listed_widget(mcp)["uri"]
    assert show["ui"]["resourceUri"] == uri
    assert show["openai/outputTemplate"] == uri
    for name in WIDGET_TOOLS:
        meta = tools[name]["_meta"]
        assert "app" in meta["ui"]["visibility"], name
        assert meta["openai/widgetAccessible"] is True, name


def test_playground_is_off_unless_enabled() -> None:
    with client_for() as client:
        assert client.get("/playground").status_code == 404
    with client_for(playground_enabled=True) as client:
        page = client.get("/playground?host=mcp-apps&theme=dark")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert '"mode": "mcp-apps"' in page.text and 'data-theme="dark"' in page.text
        assert client.get("/playground?host=somewhere").status_code == 400


def test_playground_setting_reads_playground_enabled_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PLAYGROUND_ENABLED", "true")
    assert Settings(_env_file=None).playground_enabled is True  # type: ignore[call-arg]
    monkeypatch.delenv("PLAYGROUND_ENABLED")
    assert Settings(_env_file=None).playground_enabled is False  # type: ignore[call-arg]
