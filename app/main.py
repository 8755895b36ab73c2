"""`build_app(settings)`: the only place that wires things together.

Starlette with `GET /health` and the MCP endpoint at exactly `/mcp` (stateless, JSON responses:
ChatGPT does not echo `Mcp-Session-Id`). The lifespan opens the shared httpx client, the store, the
delivery engine and the MCP session manager, and closes them in reverse.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx
import structlog
from mcp.server.mcpserver import MCPServer
from mcp.server.streamable_http_manager import StreamableHTTPASGIApp
from mcp.server.transport_security import TransportSecuritySettings
from pydantic import SecretStr
from redis.asyncio import Redis
from redis.exceptions import RedisError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp

from app import __version__
from app.admin import OperationsBoard, ToolWatch, admin_routes
from app.audit import Audit, MemoryAuditStore
from app.audit_watch import AuditWatch
from app.collector import tune_collector
from app.config import ConfigError, Settings, load_settings
from app.conversations import HandoffService
from app.crm_tools import register_crm_tools
from app.delivery import Delivery, DeliveryEngine, DeliveryOptions
from app.hours import SupportHours
from app.identity import CustomerIdentity
from app.limits import Counters, Limits, MemoryCounters
from app.logs import configure_logging
from app.playground import playground_route
from app.prechat import PrechatForms
from app.salesforce.client import SalesforceClient
from app.salesforce.export import ExportBounds
from app.salesforce.login import CredentialStore, default_file
from app.salesforce.oauth import OAuthSettings, TokenSource
from app.salesforce.schema import SchemaCache
from app.scrt import RetryPolicy, ScrtClient, ScrtConfig
from app.signin import (
    IssuerKeys,
    SignInGate,
    TokenChecker,
    metadata_routes,
    security_schemes,
)
from app.state.audit import RedisAuditStore
from app.state.connection import blocking_client, pooled_client
from app.state.counters import RedisCounters
from app.state.delivery import SharedDelivery
from app.state.dispatcher import Dispatcher
from app.state.journal import Journal
from app.state.ownership import Ownership
from app.state.sealing import Sealer
from app.store import MemorySessionStore, SessionStore
from app.store.redis import RedisSessionStore
from app.tools import INSTRUCTIONS, MAX_REQUEST_BYTES, ToolLimits, register_tools
from app.widget import WidgetResource

HEALTH_PING_SECONDS = 2.0
SHUTDOWN_END_SESSIONS_SECONDS = 10.0
"""Heroku kills a process 30 s after SIGTERM."""

log = structlog.get_logger(__name__)


SIGNIN_FETCH_SECONDS = 5.0
"""Fetching the identity provider's metadata or keys gives up after this long."""


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
    delivery: Delivery
    store: SessionStore
    http: httpx.AsyncClient
    owns_http: bool
    audit: Audit
    """The audit trail: a record of every tool call (`Audit.recent` reads it)."""
    streams: httpx.AsyncClient | None = None
    """The event streams' own HTTP client, when this runtime made one."""
    redis: SharedRedis | None = None
    identity: CustomerIdentity | None = None
    """Signs verified customers' identity tokens; its public key is served by the web app."""
    crm_http: httpx.AsyncClient | None = None
    """The CRM toolset's HTTP client (Salesforce REST), when the toolset is on."""
    board: OperationsBoard | None = None
    """What the operator page shows (ADMIN_PASSWORD set)."""
    counters: Counters | None = None
    """The limits' counters (memory or Redis); the operator page's sign-in spends from them."""
    _stopping: asyncio.Future[None] | None = field(default=None, init=False)

    async def start(self) -> None:
        await self.delivery.start()

    async def stopping(self) -> None:
        """The server is told to stop (SIGTERM: Heroku's daily restart, a deploy). Chats kept
        in memory cannot survive it, so their Salesforce sessions end now, while the process
        can still say so; with Redis the streams are handed over to other processes now. Runs
        once, bounded, whoever calls first (the signal, or the lifespan's end)."""
        if self._stopping is None:
            self._stopping = asyncio.ensure_future(self._stop())
        await asyncio.shield(self._stopping)

    async def _stop(self) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(SHUTDOWN_END_SESSIONS_SECONDS):
                if isinstance(self.delivery, SharedDelivery):
                    # Other processes take the streams over at once; reads still waiting here
                    # answer from the journal.
                    await self.delivery.hand_over()
                elif isinstance(self.store, MemorySessionStore):
                    await self.service.end_every_session(self.store.live())

    async def aclose(self) -> None:
        await self.stopping()
        # The audit first, while Redis is open and before the slower closes: a record that
        # comes later is logged as unwritten, not lost in silence.
        await self.audit.aclose()
        await self.delivery.aclose()
        await self.store.close()
        if self.redis is not None:
            await self.redis.aclose()
        if self.owns_http:
            await self.http.aclose()
        if self.streams is not None:
            await self.streams.aclose()
        if self.crm_http is not None:
            await self.crm_http.aclose()

    async def health(self) -> tuple[int, dict[str, object]]:
        """HTTP status and body of `/health`: 503 naming Redis when it does not answer."""
        body: dict[str, object] = {
            "status": "ok",
            "version": __version__,
            "eventStreams": self.delivery.feed_count,
        }
        if isinstance(self.delivery, SharedDelivery):
            body["state"] = "redis"
            body["process"] = self.delivery.process_id
            if self.redis is not None and not await self.redis.ping():
                body["status"] = "unavailable"
                body["problem"] = "the state store (Redis) does not answer"
                return 503, body
        else:
            body["state"] = "memory"
        return 200, body


@dataclass
class SharedRedis:
    """The Redis clients of a process: a bounded pool, and one connection for blocking reads."""

    pooled: Redis
    blocking: Redis

    @classmethod
    def from_settings(cls, settings: Settings) -> SharedRedis:
        assert settings.redis_url
        return cls(
            pooled_client(
                settings.redis_url,
                tls_verify=settings.redis_tls_verify,
                max_connections=settings.redis_max_connections,
            ),
            blocking_client(settings.redis_url, tls_verify=settings.redis_tls_verify),
        )

    async def ping(self) -> bool:
        try:
            async with asyncio.timeout(HEALTH_PING_SECONDS):
                return bool(await self.pooled.ping())
        except (RedisError, TimeoutError):
            return False

    async def aclose(self) -> None:
        await self.blocking.aclose()
        await self.pooled.aclose()


def shared_state(
    settings: Settings, client: ScrtClient, options: DeliveryOptions
) -> tuple[SharedRedis, SessionStore, Delivery]:
    """The store and delivery engine of processes sharing Redis (`REDIS_URL`)."""
    assert settings.state_encryption_key
    redis = SharedRedis.from_settings(settings)
    sealer = Sealer(settings.state_encryption_key.get_secret_value())
    prefix = settings.redis_key_prefix
    ownership = Ownership(redis.pooled, prefix)
    journal = Journal(redis.pooled, sealer, prefix, ownership)
    dispatcher = Dispatcher(redis.blocking, redis.pooled, f"{prefix}wake:{ownership.process_id}")
    delivery = SharedDelivery(client, options, journal, ownership, dispatcher)
    return redis, RedisSessionStore(redis.pooled, sealer, prefix), delivery


def audit_trail(settings: Settings, redis: SharedRedis | None) -> Audit:
    """The audit trail: in Redis, shared by every process, when there is one; else in memory."""
    retention = settings.audit_retention_hours * 3600
    if redis is None:
        return Audit(MemoryAuditStore(settings.audit_max_records, retention))
    assert settings.state_encryption_key
    sealer = Sealer(settings.state_encryption_key.get_secret_value())
    return Audit(
        RedisAuditStore(
            redis.pooled,
            sealer,
            settings.redis_key_prefix,
            max_records=settings.audit_max_records,
            retention=retention,
        )
    )


def build_runtime(
    settings: Settings,
    *,
    http: httpx.AsyncClient | None = None,
    store: SessionStore | None = None,
) -> Runtime:
    """Everything but the web app. `http` lets tests or demo mode inject a transport."""
    config = scrt_config(settings)
    # REST calls share a bounded pool; each guest session's event stream keeps a connection for
    # its whole life, so streams get a client of their own sized by MAX_SESSIONS (one shared
    # pool of 1,000 starved REST calls near 1,000 sessions).
    http_client = http or httpx.AsyncClient(
        timeout=httpx.Timeout(settings.scrt_timeout_seconds, pool=settings.scrt_pool_wait_seconds),
        limits=httpx.Limits(
            max_connections=settings.scrt_max_connections,
            max_keepalive_connections=settings.scrt_max_connections,
        ),
    )
    stream_client = None
    if http is None:
        stream_client = httpx.AsyncClient(
            timeout=httpx.Timeout(settings.scrt_timeout_seconds),
            limits=httpx.Limits(max_connections=settings.max_sessions, max_keepalive_connections=0),
        )
    client = ScrtClient(
        http_client,
        config,
        retry=RetryPolicy(total_timeout=settings.scrt_retry_total_seconds),
        streams=stream_client,
    )
    board = OperationsBoard(settings.session_ttl_seconds) if settings.admin_enabled else None
    options = DeliveryOptions(
        poll_interval=settings.poll_interval_seconds,
        burst_window=settings.burst_window_seconds,
        history_entries=settings.history_entries,
        watcher=board,
    )
    redis: SharedRedis | None = None
    delivery: Delivery
    counters: Counters
    if settings.redis_url:
        redis, session_store, delivery = shared_state(settings, client, options)
        counters = RedisCounters(redis.pooled, settings.redis_key_prefix)
    else:
        session_store = MemorySessionStore()
        delivery = DeliveryEngine(client, options)
        counters = MemoryCounters()
    if store is not None:
        session_store = store
    audit = audit_trail(settings, redis)
    if board is not None and isinstance(delivery, SharedDelivery):
        board.process = delivery.process_id
    abuse_limits = Limits(
        counters,
        settings.limit_settings(),
        on_refused=board.refused if board is not None else None,
    )
    service = HandoffService(
        client,
        session_store,
        delivery,
        abuse_limits,
        session_ttl=settings.session_ttl_seconds,
        shared_state=redis is not None,
        hours=SupportHours(client),
        prechat=PrechatForms(client),
        field_map=settings.field_map,
        refuse_outside_hours=settings.refuse_outside_business_hours,
    )
    mcp = MCPServer(
        "miaw-mcp",
        title="Salesforce live chat handoff",
        instructions=INSTRUCTIONS,
        version=__version__,
        log_level="WARNING",
    )
    # Every tools/call: the tool's declared parameters for its record, and a record of its own
    # for a call the SDK refuses before any tool runs.
    mcp.middleware.append(AuditWatch(audit, mcp))
    if board is not None:
        mcp.middleware.append(ToolWatch(board))
    widget = WidgetResource.from_settings(settings)
    widget.register(mcp)
    limits = ToolLimits(
        wait_default=settings.wait_default_seconds,
        wait_cap=settings.wait_cap,
        deadline=settings.tool_deadline_seconds,
    )
    identity = settings.customer_identity()
    register_tools(
        mcp,
        service,
        widget,
        limits,
        abuse_limits,
        security_schemes(settings.signin_settings()),
        identity,
        audit,
    )
    crm_http = None
    if settings.crm_enabled:
        crm_http = httpx.AsyncClient(timeout=httpx.Timeout(settings.scrt_timeout_seconds))
        crm_client = salesforce_client(settings, crm_http)
        register_crm_tools(
            mcp,
            crm_client,
            SchemaCache(crm_client),
            deadline=settings.tool_deadline_seconds,
            # Over stdio nobody signs in: the local user configured it.
            required_scope=settings.crm_required_scope
            if settings.mcp_transport == "http"
            else None,
            security=security_schemes(settings.signin_settings()),
            audit=audit,
            access=settings.crm_access,
            redact=settings.redact_fields,
            export_bounds=ExportBounds(settings.crm_export_max_rows, settings.crm_export_max_bytes),
            count_threshold=settings.crm_query_count_threshold,
        )
    return Runtime(
        mcp,
        service,
        delivery,
        session_store,
        http_client,
        owns_http=http is None,
        audit=audit,
        streams=stream_client,
        redis=redis,
        identity=identity,
        crm_http=crm_http,
        board=board,
        counters=counters,
    )


def salesforce_client(settings: Settings, http: httpx.AsyncClient) -> SalesforceClient:
    """The CRM toolset's Salesforce REST client, from the SALESFORCE_* settings. Over stdio, with
    no SALESFORCE_REFRESH_TOKEN, the token `miaw-mcp crm login` kept on this machine (and kept
    again when Salesforce rotates it); neither: the client-credentials flow."""
    instance, client_id = settings.salesforce_instance_url, settings.salesforce_client_id
    assert instance and client_id and settings.salesforce_client_secret is not None
    refresh, source = settings.salesforce_refresh_token, "SALESFORCE_REFRESH_TOKEN"
    store = CredentialStore(default_file())
    if refresh is None and settings.mcp_transport == "stdio":
        refresh, source = store.load(instance, client_id), "crm login"
    oauth = OAuthSettings(
        login_url=instance,
        client_id=client_id,
        client_secret=settings.salesforce_client_secret,
        refresh_token=refresh,
    )
    log.info(
        "crm.oauth",
        flow="refresh_token" if refresh is not None else "client_credentials",
        source=source if refresh is not None else "SALESFORCE_CLIENT_ID/SECRET",
    )
    keep = None
    if source == "crm login":

        def keep(token: SecretStr) -> None:
            store.save(instance, client_id, token)

    return SalesforceClient(
        http,
        TokenSource(http, oauth, on_rotated=keep),
        api_version=settings.salesforce_api_version,
    )


def build_app(
    settings: Settings,
    *,
    http: httpx.AsyncClient | None = None,
    store: SessionStore | None = None,
    extra_routes: list[BaseRoute] | None = None,
    crm_on_loopback: bool = False,
) -> Starlette:
    """The web app: `/health`, `/mcp`, `/playground` when enabled, and any `extra_routes`
    (demo mode mounts more). ConfigError when the CRM toolset may not be served over HTTP
    (`Settings.crm_refusal`; `crm_on_loopback`: demo mode's exception)."""
    refusal = settings.crm_refusal("http", loopback_demo=crm_on_loopback)
    if refusal is not None:
        raise ConfigError(refusal)
    runtime = build_runtime(settings, http=http, store=store)
    # The SDK's Starlette app is built for its session manager (stateless, JSON responses, the
    # DNS-rebinding check), but not mounted: /mcp goes straight to the manager's ASGI app, so a
    # call passes through one router and one middleware stack (ours), not two.
    runtime.mcp.streamable_http_app(
        streamable_http_path="/mcp",
        stateless_http=True,
        json_response=True,
        max_request_body_size=MAX_REQUEST_BYTES,
        transport_security=TransportSecuritySettings(
            enable_dns_rebinding_protection=True,
            allowed_hosts=settings.allowed_hosts(),
            allowed_origins=settings.allowed_origins(),
        ),
    )
    mcp_app: ASGIApp = StreamableHTTPASGIApp(runtime.mcp.session_manager)

    signin = settings.signin_settings()
    signin_http: httpx.AsyncClient | None = None
    mcp_endpoint: ASGIApp = mcp_app
    if signin is not None:
        signin_http = httpx.AsyncClient(timeout=SIGNIN_FETCH_SECONDS)
        checker = TokenChecker(signin, IssuerKeys(signin.issuer, signin_http))
        mcp_endpoint = SignInGate(mcp_app, signin, checker)

    async def health(_: Request) -> JSONResponse:
        status, body = await runtime.health()
        return JSONResponse(body, status_code=status)

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        async with runtime.mcp.session_manager.run():
            await runtime.start()
            try:
                yield
            finally:
                await runtime.aclose()
                if signin_http is not None:
                    await signin_http.aclose()

    async def no_stream(_: Request) -> JSONResponse:
        # The SDK would open an endless event stream here (pings every 15 s); nothing in this
        # server sends on it (stateless, JSON responses), so it is refused.
        return JSONResponse(
            {"error": "Use POST with a JSON-RPC request; this server opens no event stream."},
            status_code=405,
            headers={"Allow": "POST"},
        )

    routes: list[BaseRoute] = [
        Route("/health", health, methods=["GET"]),
        Route("/mcp", no_stream, methods=["GET"]),
    ]
    if signin is not None:
        routes += metadata_routes(signin)
    if runtime.identity is not None:
        key_set = runtime.identity.jwks()

        async def jwks(_: Request) -> JSONResponse:
            return JSONResponse(key_set, headers={"Cache-Control": "public, max-age=300"})

        routes.append(Route("/.well-known/jwks.json", jwks, methods=["GET"]))
    if runtime.board is not None and runtime.counters is not None:
        routes += admin_routes(
            settings,
            runtime.board,
            runtime.counters,
            runtime.health,
            runtime.audit,
            runtime.redis.pooled if runtime.redis is not None else None,
        )
    routes += extra_routes or []
    if settings.playground_enabled:
        routes.append(playground_route())
    routes.append(Route("/mcp", mcp_endpoint))
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.runtime = runtime
    return app


def app_from_environment() -> Starlette:
    """The app as a worker process builds it (`WEB_CONCURRENCY` > 1): settings from the
    environment, checked by the parent before it started the workers."""
    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)
    app = build_app(settings)
    tune_collector()
    return app
