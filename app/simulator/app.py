"""Wiring: `build_simulator(options)` returns the simulated org as a Starlette app."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.routing import BaseRoute, Route

from app.simulator import console, control, crm, deployment, messaging, rest, sse
from app.simulator.actors import Actors
from app.simulator.errors import SimError, handle_sim_error
from app.simulator.faults import FaultBook, FaultMiddleware
from app.simulator.options import SimulatorOptions
from app.simulator.org import SimulatedOrg

V2 = "/iamessage/api/v2"
CONV = V2 + "/conversation/{conversationId}"

# Headers real MIAW browser clients send; allowed on every endpoint.
CORS_HEADERS = [
    "Authorization",
    "Content-Type",
    "Accept",
    "Cache-Control",
    "X-Org-Id",
    "Last-Event-Id",
]

scrt_routes: list[Route] = [
    Route(
        V2 + "/authorization/unauthenticated/access-token", deployment.guest_token, methods=["POST"]
    ),
    Route(
        V2 + "/authorization/authenticated/access-token",
        deployment.verified_token,
        methods=["POST"],
    ),
    Route(
        V2 + "/authorization/authenticated/access-token",
        deployment.revoke_token,
        methods=["DELETE"],
    ),
    Route(
        V2 + "/authorization/continuation-access-token",
        deployment.continuation_token,
        methods=["GET"],
    ),
    Route(V2 + "/conversation", rest.create_conversation, methods=["POST"]),
    Route(V2 + "/conversation/list", rest.list_conversations, methods=["GET"]),
    Route(CONV, rest.routing_status, methods=["GET"]),
    Route(CONV, rest.close_conversation, methods=["DELETE"]),
    Route(CONV + "/entries", rest.list_entries, methods=["GET"]),
    Route(CONV + "/message", messaging.send_message, methods=["POST"]),
    Route(CONV + "/file", messaging.send_file, methods=["POST"]),
    Route(CONV + "/entry", messaging.send_entry, methods=["POST"]),
    Route(CONV + "/acknowledge-entries", messaging.acknowledge_entries, methods=["POST"]),
    Route(CONV + "/session", rest.end_session, methods=["DELETE"]),
    Route(sse.PATH, sse.event_stream, methods=["GET"]),
    Route(
        "/embeddedservice/v1/embedded-service-config",
        deployment.embedded_service_config_endpoint,
        methods=["GET"],
    ),
    Route("/embeddedservice/v1/businesshours", deployment.business_hours, methods=["GET"]),
    Route("/files/{fileId}", messaging.download_file, methods=["GET"]),
]


def build_simulator(options: SimulatorOptions | None = None) -> Starlette:
    options = options or SimulatorOptions()
    org = SimulatedOrg(options)
    book = FaultBook(options, cut_streams=org.cut_streams)

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        book.cuts.ensure_started()
        try:
            yield
        finally:
            await book.cuts.stop()
            await org.aclose()

    routes: list[BaseRoute] = [
        *scrt_routes,
        *crm.routes,
        *control.routes,
        *crm.control_routes,
        Route("/console", console.console_page, methods=["GET"]),
    ]
    app = Starlette(
        routes=routes,
        middleware=[
            Middleware(
                CORSMiddleware,
                allow_origins=list(options.cors_origins),
                allow_methods=["GET", "POST", "DELETE", "OPTIONS"],
                allow_headers=CORS_HEADERS,
                max_age=600,
            ),
            Middleware(FaultMiddleware, book=book, routes=scrt_routes),
        ],
        exception_handlers={SimError: handle_sim_error},
        lifespan=lifespan,
    )
    app.state.simulator = org
    app.state.actors = Actors(org)
    app.state.faults = book
    app.state.crm = crm.CrmOrg(
        options.crm_client_id,
        options.crm_client_secret,
        refresh_tokens={options.crm_refresh_token},
        batch_size=options.crm_query_batch_size,
        rotate=options.crm_rotate_refresh_tokens,
    )
    return app
