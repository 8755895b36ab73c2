"""`/playground`: a page that hosts the widget the way ChatGPT does, for developers and tests.

It plays the model (starts a chat through `/mcp`, relays to the bot, calls `show_salesforce_chat`
once a human agent joins) and the host: it reads the `ui://` resource, runs it in a sandboxed
iframe (`allow-scripts` only, so the view has an opaque origin) under the CSP the resource
declares, and answers the view's calls by forwarding `tools/call` to `/mcp` as JSON-RPC.

The host mode is chosen by `?host=`: `openai` injects a `window.openai` (as ChatGPT does) and does
not answer the `ui/*` bridge; `mcp-apps` answers only the MCP Apps `ui/*` JSON-RPC bridge.
Everything goes through the page's own origin, so `/mcp`'s Host/Origin checks pass unchanged.
Served only when `Settings.playground_enabled` is true.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route

from app import __version__
from app.widget import WIDGET_URI, template_environment

HOST_MODES = ("openai", "mcp-apps")
THEMES = ("light", "dark")


def playground_route() -> Route:
    env = template_environment()

    async def playground(request: Request) -> Response:
        mode = request.query_params.get("host", HOST_MODES[0])
        theme = request.query_params.get("theme", THEMES[0])
        if mode not in HOST_MODES or theme not in THEMES:
            return PlainTextResponse(
                f"host must be one of {', '.join(HOST_MODES)}; theme one of {', '.join(THEMES)}",
                status_code=400,
            )
        config = {
            "mode": mode,
            "theme": theme,
            "widgetUri": WIDGET_URI,
            "mcpPath": "/mcp",
            "version": __version__,
            # Deliver the tool result to the view only after it loaded, through
            # `openai:set_globals` (ChatGPT's globals are sometimes null at first).
            "lateGlobals": request.query_params.get("globals") == "late",
        }
        html = env.get_template("playground.html").render(config=config, modes=HOST_MODES)
        return HTMLResponse(html, headers={"Cache-Control": "no-store"})

    return Route("/playground", playground, methods=["GET"])
