"""`build_app(settings)`: the only place that wires things together.

Starlette with `GET /health` and the MCP endpoint at exactly `/mcp` (stateless, JSON responses:
ChatGPT does not echo `Mcp-Session-Id`). The lifespan opens the shared httpx client, the store, the
delivery engine and the MCP session manager, and closes them in reverse.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Mount, Route

from app import __version__
from app.config import Settings
from app.conversations import HandoffService
from app.delivery import DeliveryEngine, DeliveryOptions
from app.playground import playground_route
from app.scrt import RetryPolicy, ScrtClient, ScrtConfig
from app.store import MemorySessionStore, SessionStore
from app.tools import INSTRUCTIONS, ToolLimits, register_tools
from app.widget import WidgetResource


def scrt_config(settings: Settings) -> ScrtConfig:
    settings.require_salesforce()
    assert settings.miaw_scrt_url and settings.miaw_org_id and settings.miaw_es_developer_name
    return ScrtConfig(
        scrt_url=settings.miaw_scrt_url,
        org_id=settings.miaw_org_id,
        es_developer_name=settings.miaw_es_developer_name,
        capabilities_version=settings.miaw_capabilities_version,
        platform=settings.miaw_platform,
    )


@dataclass
class Runtime:
    """The wired service: the MCP server and what it stands on."""

    mcp: MCPServer
    service: HandoffService
    delivery: DeliveryEngine
    store: SessionStore
    http: httpx.AsyncClient
    owns_http: bool

    async def aclose(self) -> None:
        await self.delivery.aclose()
        await self.store.close()
        if self.owns_http:
            await self.http.aclose()


def build_runtime(
    settings: Settings,
    *,
    http: httpx.AsyncClient | None = None,
    store: SessionStore | None = None,
) -> Runtime:
    """Everything but the web app. `http` lets tests or demo mode inject a transport."""
    config = scrt_config(settings)
    http_client = http or httpx.AsyncClient(
        timeout=httpx.Timeout(settings.scrt_timeout_seconds),
        limits=httpx.Limits(max_connections=1000, max_keepalive_connections=200),
    )
    client = ScrtClient(
        http_client, config, retry=RetryPolicy(total_timeout=settings.scrt_retry_total_seconds)
    )
    session_store: SessionStore = store or MemorySessionStore(settings.max_sessions)
    delivery = DeliveryEngine(
        client,
        DeliveryOptions(
            poll_interval=settings.poll_interval_seconds,
            burst_window=settings.burst_window_seconds,
        ),
    )
    service = HandoffService(
        client, session_store, delivery, session_ttl=settings.session_ttl_seconds
    )
    mcp = MCPServer(
        "miaw-mcp",
        title="Salesforce live chat handoff",
        instructions=INSTRUCTIONS,
        version=__version__,
        log_level="WARNING",
    )
    widget = WidgetResource.from_settings(settings)
    widget.register(mcp)
    limits = ToolLimits(
        wait_default=settings.wait_default_seconds,
        wait_cap=settings.wait_cap,
        deadline=settings.tool_deadline_seconds,
    )
    register_tools(mcp, service, widget, limits)
    return Runtime(mcp, service, delivery, session_store, http_client, owns_http=http is None)


def build_app(
    settings: Settings,
    *,
    http: httpx.AsyncClient | None = None,
    store: SessionStore | None = None,
    extra_routes: list[BaseRoute] | None = None,
) -> Starlette:
    """The web app: `/health`, `/mcp`, `/playground` when enabled, and any `extra_routes`
    (demo mode mounts more)."""
    runtime = build_runtime(settings, http=http, store=store)
    mcp_app = runtime.mcp.streamable_http_app(
        streamable_http_path="/mcp",
        stateless_http=True,
        json_response=True,
        transport_security=TransportSecuritySettings(
            enable_dns_rebinding_protection=True,
            allowed_hosts=settings.allowed_hosts(),
            allowed_origins=settings.allowed_origins(),
        ),
    )

    async def health(_: Request) -> JSONResponse:
        return JSONResponse(
            {"status": "ok", "version": __version__, "eventStreams": runtime.delivery.feed_count}
        )

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        async with runtime.mcp.session_manager.run():
            try:
                yield
            finally:
                await runtime.aclose()

    routes: list[BaseRoute] = [Route("/health", health, methods=["GET"])]
    routes += extra_routes or []
    if settings.playground_enabled:
        routes.append(playground_route())
    routes.append(Mount("/", app=mcp_app))
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.runtime = runtime
    return app
