"""`miaw-mcp`: the command line: `serve` (the MCP server), `demo`, `simulator`."""

from __future__ import annotations

import argparse
import asyncio
import math
import socket
import sys
from collections.abc import Callable, Coroutine, Sequence
from types import FrameType
from typing import Any

import uvicorn
from uvicorn.supervisors import Multiprocess

from app import __version__
from app.arguments import seconds
from app.collector import tune_collector
from app.config import ConfigError, Settings, load_settings
from app.contract import add_contract_parser, run_contract
from app.crm_cli import add_crm_parser, run_crm
from app.demo import build_demo_app, demo_banner
from app.doctor import add_doctor_parser, run_doctor
from app.logs import configure_logging
from app.main import build_app, build_runtime
from app.simulator import SimulatorOptions, build_simulator
from app.simulator.options import (
    DEFAULT_DEPLOYMENT,
    DEFAULT_ORG_ID,
    MAX_FAULT_DELAY,
    FaultSpec,
)

# What --fail-rate hits: every SCRT REST call (token minting included) and every SSE open.
FAIL_RATE_PATHS = ("/iamessage/*", "/eventrouter/*")
SEND_PATH = "/iamessage/api/v2/conversation/{conversationId}/message"


KEEP_ALIVE_SECONDS = 95
"""Idle keep-alive timeout of the server: above Heroku Router 2.0's 90 s."""


class AnnouncingServer(uvicorn.Server):
    """Announces where it listens once it accepts connections, so scripts can wait for it."""

    def __init__(
        self,
        config: uvicorn.Config,
        announce: Callable[[], None],
        stopping: Callable[[], Coroutine[Any, Any, None]] | None = None,
    ) -> None:
        super().__init__(config)
        self._announce = announce
        self._stopping = stopping
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping_task: asyncio.Task[None] | None = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().startup(sockets)
        if self.started:
            self._announce()

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # At the signal, not after open requests drained (up to 28 s): what must happen before
        # the process dies starts now.
        super().handle_exit(sig, frame)
        stopping, loop = self._stopping, self._loop
        if stopping is not None and loop is not None:
            loop.call_soon_threadsafe(self._start_stopping, loop, stopping)

    def _start_stopping(
        self, loop: asyncio.AbstractEventLoop, stopping: Callable[[], Coroutine[Any, Any, None]]
    ) -> None:
        if self._stopping_task is None:  # a second signal changes nothing
            self._stopping_task = loop.create_task(stopping())


def fraction(raw: str) -> float:
    """A probability for a fault flag: above 0, at most 1."""
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not 0 < value <= 1:  # also rejects nan
        raise argparse.ArgumentTypeError(f"must be a fraction above 0, at most 1, got {raw!r}")
    return value


seconds_above_zero = seconds()
delay_seconds = seconds(MAX_FAULT_DELAY)


def add_fault_arguments(sim: argparse.ArgumentParser) -> None:
    faults = sim.add_argument_group(
        "faults",
        "Armed at start-up and again on POST /control/reset; the control API is never affected. "
        "Draws are reproducible for a --seed.",
    )
    faults.add_argument(
        "--no-replay",
        action="store_true",
        help="ignore Last-Event-Id: a reopened stream carries live events only",
    )
    faults.add_argument(
        "--fail-rate",
        type=fraction,
        metavar="P",
        help="answer this fraction of SCRT REST requests (token minting included) and SSE opens "
        "with 503",
    )
    faults.add_argument(
        "--delay-sends-rate",
        type=fraction,
        metavar="P",
        help="process this fraction of POST .../message requests only after "
        "--delay-sends-seconds (the request is read first, so the message lands)",
    )
    faults.add_argument("--delay-sends-seconds", type=delay_seconds, metavar="S")
    faults.add_argument(
        "--cut-streams-every",
        type=seconds_above_zero,
        metavar="S",
        help="cut every open SSE stream every S seconds",
    )
    faults.add_argument(
        "--seed", type=int, default=0, metavar="N", help="seed of the fault draws (default 0)"
    )


def startup_faults(args: argparse.Namespace) -> tuple[FaultSpec, ...]:
    faults: list[FaultSpec] = []
    if args.fail_rate is not None:
        faults += [
            FaultSpec(path, status=503, probability=args.fail_rate) for path in FAIL_RATE_PATHS
        ]
    if args.delay_sends_rate is not None:
        faults.append(
            FaultSpec(
                SEND_PATH,
                method="POST",
                delay=args.delay_sends_seconds,
                probability=args.delay_sends_rate,
            )
        )
    return tuple(faults)


def simulator_options(args: argparse.Namespace) -> SimulatorOptions:
    """The options the `simulator` flags describe; ValueError names the flag that is wrong."""
    if bool(args.ssl_certfile) != bool(args.ssl_keyfile):
        raise ValueError("--ssl-certfile and --ssl-keyfile go together")
    if len(args.org_id) != 18 or not args.org_id.startswith("00D"):
        raise ValueError(
            f"--org-id must be an 18-character org id starting with 00D, got {args.org_id!r}"
        )
    if (args.delay_sends_rate is None) != (args.delay_sends_seconds is None):
        raise ValueError("--delay-sends-rate and --delay-sends-seconds go together")
    return SimulatorOptions(
        org_id=args.org_id,
        es_developer_name=args.deployment,
        bot_name=args.bot_name,
        bot_menu=args.bot_menu,
        auto_agent_name=args.auto_agent,
        auto_agent_delay=args.auto_agent_delay,
        prechat_display_context="Session" if args.prechat_per_session else "Conversation",
        prechat_required=tuple(args.prechat_required or ()),
        prechat_hidden_fields=tuple(args.prechat_hidden or ()),
        deployment_type=args.deployment_type,
        deployment_published=not args.unpublished,
        business_hours=args.business_hours,
        routing_failure=args.routing_fails,
        rate_limits=not args.no_rate_limits,
        ping_interval=args.ping_interval,
        guest_token_ttl=args.guest_token_ttl,
        cors_origins=tuple(args.cors_origin) if args.cors_origin else ("*",),
        replay=not args.no_replay,
        faults=startup_faults(args),
        fault_seed=args.seed,
        cut_streams_every=args.cut_streams_every,
        identity_jwks_url=args.identity_jwks_url,
        identity_fallback_to_guest=args.identity_fallback_to_guest,
        sse_accepts_org_id18=args.sse_accepts_18_char_org_id,
    )


def add_simulator_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sim = subparsers.add_parser(
        "simulator",
        help="run the local Salesforce MIAW simulator",
        description="Serve a simulated Salesforce org's SCRT messaging API (REST v2 + SSE) and its "
        "control API. Loopback only by default.",
    )
    sim.add_argument("--host", default="127.0.0.1")
    sim.add_argument("--port", type=int, default=8081)
    sim.add_argument("--org-id", default=DEFAULT_ORG_ID, help="18-character org id")
    sim.add_argument("--deployment", default=DEFAULT_DEPLOYMENT, help="esDeveloperName")
    sim.add_argument("--bot-name", default="Agentforce")
    sim.add_argument(
        "--bot-menu",
        action="store_true",
        help="the bot greets with a menu of choices (Orders, Billing, Talk to an agent)",
    )
    sim.add_argument(
        "--auto-agent", metavar="NAME", help="a human agent of this name joins by itself"
    )
    sim.add_argument("--auto-agent-delay", type=float, default=2.0, metavar="SECONDS")
    sim.add_argument(
        "--prechat-per-session",
        action="store_true",
        help="pre-chat per messaging session (sends after a session ended get 417)",
    )
    sim.add_argument("--no-rate-limits", action="store_true")
    setup = sim.add_argument_group(
        "misconfigurations", "Reproduce an org set up wrongly (what `miaw-mcp doctor` finds)."
    )
    setup.add_argument(
        "--deployment-type",
        default="Api",
        metavar="TYPE",
        help='the deployment\'s type (default "Api", i.e. Custom Client; e.g. "Web" is refused)',
    )
    setup.add_argument("--unpublished", action="store_true", help="the deployment is not published")
    setup.add_argument(
        "--business-hours",
        choices=["open", "closed", "unset"],
        default="open",
        help="the deployment's business hours now: open (default), closed (opening in two hours) "
        "or unset (none configured)",
    )
    setup.add_argument(
        "--routing-fails",
        nargs="?",
        const="RoutingError",
        metavar="FAILURE_TYPE",
        help="initial routing fails with this failureType (default RoutingError) and no bot "
        "joins, as when the channel's Omni-Channel flow routes nowhere",
    )
    setup.add_argument(
        "--prechat-hidden",
        action="append",
        metavar="FIELD",
        help="add a hidden Text pre-chat field of at most 255 characters, e.g. "
        "ChatGPT_Summary__c (repeat)",
    )
    setup.add_argument(
        "--prechat-required",
        action="append",
        choices=["_firstName", "Topic", "Source"],
        help="mark a pre-chat field required (repeat)",
    )
    sim.add_argument("--ping-interval", type=float, default=15.0, metavar="SECONDS")
    sim.add_argument("--guest-token-ttl", type=float, default=3600.0, metavar="SECONDS")
    sim.add_argument(
        "--cors-origin",
        action="append",
        metavar="ORIGIN",
        help="allowed browser origin (repeat; default: any)",
    )
    sim.add_argument(
        "--identity-jwks-url",
        metavar="URL",
        help="User Verification: the key set customer identity tokens must be signed with "
        "(e.g. the MCP server's /.well-known/jwks.json; default: any well-formed token)",
    )
    sim.add_argument(
        "--identity-fallback-to-guest",
        action="store_true",
        help="answer a bad identity token with an anonymous token (200), as real orgs are "
        "reported to, instead of 401",
    )
    sim.add_argument(
        "--sse-accepts-18-char-org-id",
        action="store_true",
        help="open the event stream also for the 18-character org id in X-Org-Id (400 by "
        "default), reproducing a report that a real org accepted it",
    )
    sim.add_argument("--ssl-certfile", help="serve HTTPS with this certificate (PEM)")
    sim.add_argument("--ssl-keyfile", help="private key for --ssl-certfile (PEM)")
    add_fault_arguments(sim)


def run_simulator(args: argparse.Namespace) -> int:
    try:
        options = simulator_options(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    scheme = "https" if args.ssl_certfile else "http"
    base = f"{scheme}://{args.host}:{args.port}"

    def announce() -> None:
        print(f"MIAW simulator {__version__} listening on {base}", flush=True)
        print(
            f"  org id {options.org_id} (X-Org-Id {options.org_id15}), "
            f"deployment {options.es_developer_name}",
            flush=True,
        )
        print(f"  control API: {base}/control/conversations", flush=True)
        if options.faults or options.cut_streams_every or not options.replay:
            print(f"  {fault_summary(options)}", flush=True)

    config = uvicorn.Config(
        build_simulator(options),
        host=args.host,
        port=args.port,
        log_level="warning",
        ssl_certfile=args.ssl_certfile,
        ssl_keyfile=args.ssl_keyfile,
    )
    AnnouncingServer(config, announce).run()
    return 0


def fault_summary(options: SimulatorOptions) -> str:
    parts = [] if options.replay else ["no replay"]
    for fault in options.faults:
        effect = f"{fault.status}" if fault.status else f"delay {fault.delay:g} s"
        method = f"{fault.method} " if fault.method else ""
        parts.append(f"{method}{fault.path}: {effect} at p={fault.probability:g}")
    if options.cut_streams_every:
        parts.append(f"streams cut every {options.cut_streams_every:g} s")
    return f"faults (seed {options.fault_seed}): " + "; ".join(parts)


def add_serve_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = subparsers.add_parser(
        "serve",
        help="run the MCP server",
        description="Serve the MCP endpoint at /mcp (MCP_TRANSPORT=http, the default) or speak MCP "
        "on stdin/stdout (MCP_TRANSPORT=stdio). Configuration comes from the environment.",
    )
    serve.add_argument("--host", help="bind address (default: HOST or 0.0.0.0)")
    serve.add_argument("--port", type=int, help="port (default: PORT or 8000)")
    serve.add_argument("--transport", choices=["http", "stdio"], help="overrides MCP_TRANSPORT")


def run_serve(args: argparse.Namespace) -> int:
    try:
        settings = load_settings()
        settings.require_salesforce()
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.log_format)
    transport = args.transport or settings.mcp_transport
    refusal = settings.crm_refusal(transport)
    if refusal is not None:
        print(f"error: {refusal}", file=sys.stderr)
        return 2
    if transport == "stdio":
        asyncio.run(serve_stdio(settings.model_copy(update={"mcp_transport": "stdio"})))
        return 0
    host = args.host or settings.host
    port = args.port or settings.port
    settings = settings.model_copy(update={"host": host, "port": port})
    options: dict[str, object] = {
        "host": host,
        "port": port,
        "log_level": "warning",
        # uvicorn's own records go through our logging set-up (one JSON object per line).
        "log_config": None,
        # The peer address stays the connection's: X-Forwarded-For is read only as far as
        # TRUSTED_PROXY_HOPS says (app/limits.py); uvicorn's rewrite would trust the client's say.
        "proxy_headers": False,
        # Heroku sends SIGKILL 30 s after SIGTERM; every tool call answers within
        # TOOL_DEADLINE_SECONDS (at most 28).
        "timeout_graceful_shutdown": 28,
        # Longer than the router's 90 s keep-alive, so idle connections are closed by the router:
        # closing them first races a request the router is sending on it (uvicorn's default: 5 s).
        "timeout_keep_alive": KEEP_ALIVE_SECONDS,
    }

    def announce() -> None:
        workers = settings.web_concurrency
        print(
            f"miaw-mcp {__version__} serving MCP at http://{host}:{port}/mcp"
            + (f" ({workers} workers)" if workers > 1 else ""),
            flush=True,
        )
        if not settings.public_host_configured:
            print(
                "warning: no PUBLIC_URL, HEROKU_APP_NAME or MCP_ALLOWED_HOSTS: only localhost "
                "may reach /mcp; other hosts get 421 Invalid Host header",
                file=sys.stderr,
                flush=True,
            )

    if settings.web_concurrency > 1:
        # Workers import the app themselves (each its own process, state shared in Redis). The
        # socket listens before they start, so the announcement is true at once: early
        # connections wait in the backlog.
        config = uvicorn.Config(
            "app.main:app_from_environment",
            factory=True,
            workers=settings.web_concurrency,
            **options,  # type: ignore[arg-type]
        )
        sock = config.bind_socket()
        sock.listen(config.backlog)
        announce()
        Multiprocess(config, sockets=[sock]).run()
        return 0
    app = build_app(settings)
    tune_collector()
    config = uvicorn.Config(app, **options)  # type: ignore[arg-type]
    AnnouncingServer(config, announce, app.state.runtime.stopping).run()
    return 0


def add_demo_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    demo = subparsers.add_parser(
        "demo",
        help="run the server with a simulated Salesforce org, a playground and an agent console",
        description="One process on 127.0.0.1: /mcp, the simulator at /sim (agent console at "
        "/sim/console), and the playground at /playground. No Salesforce org needed.",
    )
    demo.add_argument("--port", type=int, default=8000)


def run_demo(args: argparse.Namespace) -> int:
    configure_logging("INFO", "console")
    config = uvicorn.Config(
        build_demo_app(args.port),
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
        # The server's own event streams to the mounted simulator are connections to itself:
        # they end only when the lifespan closes the feeds, which runs after the connections
        # close. Without a bound Ctrl+C would wait for them forever.
        timeout_graceful_shutdown=2,
    )
    AnnouncingServer(config, lambda: print(demo_banner(args.port), flush=True)).run()
    return 0


async def serve_stdio(settings: Settings) -> None:
    runtime = build_runtime(settings)
    await runtime.start()
    try:
        await runtime.mcp.run_stdio_async()
    finally:
        await runtime.aclose()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="miaw-mcp", description=__doc__)
    parser.add_argument("--version", action="version", version=f"miaw-mcp {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True)
    add_simulator_parser(subparsers)
    add_serve_parser(subparsers)
    add_demo_parser(subparsers)
    add_contract_parser(subparsers)
    add_doctor_parser(subparsers)
    add_crm_parser(subparsers)
    args = parser.parse_args(argv)
    if args.command == "simulator":
        return run_simulator(args)
    if args.command == "serve":
        return run_serve(args)
    if args.command == "demo":
        return run_demo(args)
    if args.command == "contract":
        return run_contract(args)
    if args.command == "doctor":
        return run_doctor(args)
    if args.command == "crm":
        return run_crm(args)
    parser.error(f"unknown command {args.command}")
    return 2
