"""The live-chat widget as an MCP Apps resource (`text/html;profile=mcp-app`), for ChatGPT too.

ChatGPT caches a template by its URI, so the URI carries a version: bump WIDGET_VERSION whenever the
HTML changes. The HTML is rendered from `widget/` with autoescaping; per-call data never goes into
it (it arrives as the tool result), only static configuration.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from mcp.server.mcpserver import MCPServer

WIDGET_VERSION = "1"
WIDGET_URI = f"ui://widget/salesforce-chat-v{WIDGET_VERSION}.html"
MIME = "text/html;profile=mcp-app"
TEMPLATE_DIR = Path(__file__).resolve().parent.parent / "widget"
DESCRIPTION = (
    "Live chat with a human support agent from Salesforce: the user reads and answers the agent "
    "here; the model does not need to relay messages while it is open."
)


class WidgetResource:
    def __init__(self, *, domain: str | None = None, template_dir: Path = TEMPLATE_DIR) -> None:
        self.domain = domain
        self._env = Environment(
            loader=FileSystemLoader(str(template_dir)),
            autoescape=select_autoescape(["html", "j2"], default=True),
        )

    def resource_meta(self) -> dict[str, Any]:
        # The widget talks to the server only through the host (tools/call), so it needs no
        # network access of its own: empty CSP domain lists.
        ui: dict[str, Any] = {
            "csp": {"connectDomains": [], "resourceDomains": []},
            "prefersBorder": True,
        }
        meta: dict[str, Any] = {
            "ui": ui,
            "openai/widgetCSP": {"connect_domains": [], "resource_domains": []},
            "openai/widgetPrefersBorder": True,
            "openai/widgetDescription": DESCRIPTION,
        }
        if self.domain:
            ui["domain"] = self.domain
            meta["openai/widgetDomain"] = self.domain
        return meta

    def tool_meta(self, *, app_callable: bool, output_template: bool = False) -> dict[str, Any]:
        meta: dict[str, Any] = {}
        if output_template:
            meta["ui"] = {"resourceUri": WIDGET_URI}
            meta["openai/outputTemplate"] = WIDGET_URI
            meta["openai/toolInvocation/invoking"] = "Opening the live chat"
            meta["openai/toolInvocation/invoked"] = "Live chat open"
        if app_callable:
            meta["ui"] = {**meta.get("ui", {}), "visibility": ["model", "app"]}
            meta["openai/widgetAccessible"] = True
        return meta

    def render(self) -> str:
        return self._env.get_template("live_chat.html").render(version=WIDGET_VERSION)

    def register(self, mcp: MCPServer) -> None:
        @mcp.resource(
            WIDGET_URI,
            name="salesforce-live-chat",
            title="Salesforce live chat",
            description=DESCRIPTION,
            mime_type=MIME,
            meta=self.resource_meta(),
        )
        def salesforce_live_chat() -> str:
            return self.render()
