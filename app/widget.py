"""The live-chat widget as an MCP Apps resource (`text/html;profile=mcp-app`), for ChatGPT too.

ChatGPT caches a template by its URI, so the URI carries a version: bump WIDGET_VERSION whenever the
HTML, CSS or JS under `widget/` changes. The HTML is rendered from `widget/` with autoescaping;
per-call data never goes into it (it arrives as the tool result), only static configuration.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from mcp.server.mcpserver import MCPServer

from app.config import Settings

WIDGET_VERSION = "4"
WIDGET_URI = f"ui://widget/salesforce-chat-v{WIDGET_VERSION}.html"
MIME = "text/html;profile=mcp-app"
TEMPLATE_DIR = Path(__file__).resolve().parent.parent / "widget"
DESCRIPTION = (
    "Live chat with a human support agent from Salesforce: the user reads and answers the agent "
    "here; the model does not need to relay messages while it is open."
)
# What the widget tells the model when the user ends the chat: neutral, no transcript content.
FOLLOW_UP_TEXT = "I ended the live chat with the agent."


def template_environment(template_dir: Path = TEMPLATE_DIR) -> Environment:
    """Jinja for everything under `widget/`: autoescaped, whatever the file extension."""
    return Environment(
        loader=FileSystemLoader(str(template_dir)),
        autoescape=select_autoescape(default=True, default_for_string=True),
        keep_trailing_newline=True,
    )


class WidgetResource:
    """The `ui://` resource and the tool `_meta` that points hosts at it."""

    def __init__(
        self,
        *,
        domain: str | None = None,
        wait_seconds: float = 25.0,
        template_dir: Path = TEMPLATE_DIR,
    ) -> None:
        self.domain = domain
        self.wait_seconds = wait_seconds
        self._env = template_environment(template_dir)

    @classmethod
    def from_settings(cls, settings: Settings) -> WidgetResource:
        # The widget's long poll waits as long as the model's would, so it stays under the router
        # limit the settings already respect.
        return cls(domain=settings.widget_domain, wait_seconds=settings.wait_default_seconds)

    def resource_meta(self) -> dict[str, Any]:
        # The widget talks to the server only through the host (tools/call) and loads nothing
        # from the network, so its CSP allows no domain at all; a host then blocks any fetch.
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

    def tool_meta(
        self, *, app_callable: bool, output_template: bool = False, app_only: bool = False
    ) -> dict[str, Any]:
        """`app_only`: the view calls the tool, the model never sees it."""
        meta: dict[str, Any] = {}
        if output_template:
            meta["ui"] = {"resourceUri": WIDGET_URI}
            meta["openai/outputTemplate"] = WIDGET_URI
            meta["openai/toolInvocation/invoking"] = "Opening the live chat"
            meta["openai/toolInvocation/invoked"] = "Live chat open"
        if app_callable or app_only:
            visibility = ["app"] if app_only else ["model", "app"]
            meta["ui"] = {**meta.get("ui", {}), "visibility": visibility}
            meta["openai/widgetAccessible"] = True
        if app_only:
            meta["openai/visibility"] = "private"
        return meta

    def config(self) -> dict[str, Any]:
        """The static configuration the page receives (never per-call data)."""
        return {
            "version": WIDGET_VERSION,
            "waitSeconds": self.wait_seconds,
            "followUpText": FOLLOW_UP_TEXT,
        }

    def render(self) -> str:
        return self._env.get_template("live_chat.html").render(
            version=WIDGET_VERSION, config=self.config()
        )

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
