"""Per-call cost of the MCP endpoint: server CPU per stateless JSON-RPC request, and where it goes.

Builds the app in this process (memory mode, Salesforce never contacted: no call below needs it),
runs its lifespan, and calls the ASGI app directly with a POST /mcp for each of:

  ping          the JSON-RPC ping: the stateless transport and dispatcher, nothing else;
  tools/list    the tool list the model reads at every connector refresh;
  tools/call    list_conversation_entries for a session this server never issued: the whole tool
                path (argument validation, our handler, the tool error result) without Salesforce;
  tools/call@2026  the same call in protocol revision 2026-07-28, which the SDK serves inline
                (one exchange: no per-request transport, dispatcher, task group or streams),
                where the handshake revisions ChatGPT uses today take the per-request transport.

For each it prints the CPU time per call (time.process_time over --calls calls, after --warmup
calls; the median of --rounds rounds, each on a fresh app) and the allocations per call
(tracemalloc's count of blocks allocated and not freed by the end of one call, over a separate
run: a steady growth would show a leak), then a cProfile of
--calls tools/call requests with the CPU per call grouped by package (the MCP SDK, Starlette,
anyio, pydantic, our app, asyncio and the rest of the standard library) and the SDK's costliest
functions. Tool calls log their line at INFO, as in production (to a discarded stderr). No HTTP
server: uvicorn's parsing (h11) is not counted, and the numbers are the
request path's own.

`--mount sdk` measures the app as main builds it before the /mcp route was served directly (the
SDK's Starlette app mounted at /, its routing and middleware run on every request) for a
side-by-side in one run.

The memory a waiting call holds is measured where its event stream is live, with real
sockets: bench/scale.py's "KiB/conv" (a waiting conversation's state plus its waiting call).
Run with `PYTHONPATH=DIR` to measure a patched SDK in DIR (docs/performance.md).

Usage: .venv/bin/python bench/calls.py [--calls 2000] [--warmup 200] [--rounds 5]
           [--mount direct|sdk|both]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import gc
import io
import json
import pstats
import statistics
import sys
import time
import tracemalloc
from collections import defaultdict
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from starlette.routing import Mount  # noqa: E402
from starlette.types import ASGIApp, Message, Scope  # noqa: E402

from app.collector import tune_collector  # noqa: E402
from app.config import Settings  # noqa: E402
from app.logs import configure_logging  # noqa: E402
from app.main import build_app  # noqa: E402
from app.simulator.options import DEFAULT_DEPLOYMENT, DEFAULT_ORG_ID  # noqa: E402

REQUESTS: dict[str, dict[str, Any]] = {
    "ping": {"jsonrpc": "2.0", "id": 1, "method": "ping"},
    "tools/list": {"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
    "tools/call": {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {
            "name": "list_conversation_entries",
            "arguments": {
                "sessionId": "s" * 43,
                "conversationId": "0f8e2c1a-8d3b-4c55-b0a9-3c2f1e0d9a77",
                "waitSeconds": 0,
            },
        },
    },
}

# The same tool call in the 2026-07-28 revision (the SDK's "modern" stateless path: one exchange
# served inline, no per-request transport): the envelope in params._meta and the routing headers.
MODERN = "2026-07-28"
REQUESTS["tools/call@2026"] = {
    **REQUESTS["tools/call"],
    "params": {
        **REQUESTS["tools/call"]["params"],
        "_meta": {
            "io.modelcontextprotocol/protocolVersion": MODERN,
            "io.modelcontextprotocol/clientCapabilities": {},
            "io.modelcontextprotocol/clientInfo": {"name": "bench", "version": "1"},
        },
    },
}
HEADERS: dict[str, list[tuple[bytes, bytes]]] = {
    "tools/call@2026": [
        (b"mcp-protocol-version", MODERN.encode()),
        (b"mcp-method", b"tools/call"),
        (b"mcp-name", b"list_conversation_entries"),
    ]
}

GROUPS = (
    ("mcp SDK", "/mcp/"),
    ("starlette", "/starlette/"),
    ("anyio", "/anyio/"),
    ("pydantic", "/pydantic"),
    ("app (ours)", str(REPO / "app")),
    ("structlog", "/structlog/"),
    ("asyncio", "/asyncio/"),
)


def settings() -> Settings:
    return Settings(  # type: ignore[call-arg]
        _env_file=None,
        miaw_scrt_url="https://example.my.salesforce-scrt.com",
        miaw_org_id=DEFAULT_ORG_ID,
        miaw_es_developer_name=DEFAULT_DEPLOYMENT,
        log_level="WARNING",
        rate_limit_per_ip="off",
        rate_limit_per_user="off",
    )


def scope_for(body: bytes, extra: list[tuple[bytes, bytes]]) -> Scope:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/mcp",
        "raw_path": b"/mcp",
        "root_path": "",
        "query_string": b"",
        "headers": [
            (b"host", b"127.0.0.1:8000"),
            (b"content-type", b"application/json"),
            (b"accept", b"application/json, text/event-stream"),
            (b"content-length", str(len(body)).encode()),
            *extra,
        ],
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }


async def call(app: ASGIApp, body: bytes, extra: list[tuple[bytes, bytes]]) -> tuple[int, bytes]:
    sent = False
    status = 0
    out = bytearray()

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Event().wait()  # the client never disconnects
        raise AssertionError

    async def send(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            out.extend(message.get("body", b""))

    await app(scope_for(body, extra), receive, send)
    return status, bytes(out)


def check(kind: str, status: int, body: bytes) -> None:
    answer = json.loads(body) if body else {}
    ok = status == 200 and "result" in answer
    if kind.startswith("tools/call"):
        ok = ok and answer["result"].get("isError") is True
    if not ok:
        raise SystemExit(f"{kind}: unexpected answer {status} {body[:300]!r}")


def sdk_mounted(app: Any) -> Any:
    """The app with /mcp reached through the SDK's own Starlette app mounted at / (as main built
    it before), for the side-by-side."""
    runtime = app.state.runtime
    inner = runtime.mcp.streamable_http_app(
        streamable_http_path="/mcp",
        stateless_http=True,
        json_response=True,
        transport_security=runtime.mcp.session_manager.security_settings,
    )
    app.router.routes = [
        r
        for r in app.router.routes
        if not (getattr(r, "path", None) == "/mcp" and getattr(r, "methods", ()) is None)
    ]
    app.router.routes.append(Mount("/", app=inner))
    return app


async def measure(mount: str, calls: int, warmup: int, profiled: bool) -> dict[str, Any]:
    """One round on a fresh app: CPU µs per call and blocks kept per call for each request; with
    `profiled`, a cProfile of `calls` tools/call requests under "profile"."""
    app = build_app(settings())
    if mount == "sdk":
        app = sdk_mounted(app)
    results: dict[str, Any] = {}
    async with app.router.lifespan_context(app):
        for kind, request in REQUESTS.items():
            body = json.dumps(request).encode()
            extra = HEADERS.get(kind, [])
            for _ in range(warmup):
                check(kind, *await call(app, body, extra))
            gc.collect()
            started = time.process_time()
            for _ in range(calls):
                await call(app, body, extra)
            cpu_us = (time.process_time() - started) / calls * 1e6

            gc.collect()
            tracemalloc.start()
            blocks_before = len(tracemalloc.take_snapshot().traces)
            for _ in range(200):
                await call(app, body, extra)
            gc.collect()
            grown = len(tracemalloc.take_snapshot().traces) - blocks_before
            tracemalloc.stop()
            results[kind] = (cpu_us, grown / 200)

        if profiled:
            body = json.dumps(REQUESTS["tools/call"]).encode()
            profile = cProfile.Profile()
            profile.enable()
            for _ in range(calls):
                await call(app, body, [])
            profile.disable()
            results["profile"] = profile
    return results


def grouped(
    profile: cProfile.Profile, calls: int
) -> tuple[dict[str, float], list[tuple[float, str]]]:
    stats = pstats.Stats(profile)
    groups: dict[str, float] = defaultdict(float)
    sdk: list[tuple[float, str]] = []
    for (filename, line, name), (_, _, tottime, _, _) in stats.stats.items():  # type: ignore[attr-defined]
        group = next((g for g, marker in GROUPS if marker in filename), None)
        if group is None:
            group = "stdlib, builtins" if "site-packages" not in filename else "other packages"
        groups[group] += tottime / calls * 1e6
        if "/mcp/" in filename:
            sdk.append((tottime / calls * 1e6, f"{filename.split('/mcp/')[-1]}:{line} {name}"))
    return groups, sorted(sdk, reverse=True)


async def main(args: argparse.Namespace) -> None:
    # As in production: a JSON line per tool call at INFO (to stderr, which is discarded here).
    configure_logging("INFO", "json")
    tune_collector()  # the collector's settings of `miaw-mcp serve`
    mounts = ["sdk", "direct"] if args.mount == "both" else [args.mount]
    print(
        f"per-call cost of POST /mcp (in-process ASGI; {args.rounds} rounds of {args.calls} calls "
        f"after {args.warmup} warm-up, the mounts alternating; medians; Python "
        f"{sys.version.split()[0]})"
    )
    rounds: dict[str, list[dict[str, Any]]] = {mount: [] for mount in mounts}
    devnull = io.StringIO()
    for i in range(args.rounds):
        for mount in mounts:
            with contextlib.redirect_stderr(devnull):
                result = await measure(mount, args.calls, args.warmup, i == args.rounds - 1)
            devnull.seek(0)
            devnull.truncate()
            rounds[mount].append(result)
            print(
                f"  round {i + 1} {mount:>6}: "
                + ", ".join(f"{kind} {result[kind][0]:.0f} µs" for kind in REQUESTS),
                flush=True,
            )
    for mount in mounts:
        results = rounds[mount]
        title = "through the SDK app mounted at /" if mount == "sdk" else "served directly"
        print(f"\n== /mcp {title}")
        print(f"{'request':<16} {'CPU µs/call':>12} {'blocks kept/call':>17}")
        for kind in REQUESTS:
            cpu_us = statistics.median(r[kind][0] for r in results)
            grown = statistics.median(r[kind][1] for r in results)
            print(f"{kind:<16} {cpu_us:>12.0f} {grown:>17.1f}")
        groups, sdk = grouped(results[-1]["profile"], args.calls)
        total = sum(groups.values())
        print(
            f"\ntools/call under cProfile (last round): {total:.0f} µs/call profiled, by package:"
        )
        for group, us in sorted(groups.items(), key=lambda kv: -kv[1]):
            print(f"  {group:<18} {us:7.0f} µs  {us / total:5.1%}")
        print("  the SDK's costliest functions (own time):")
        for us, where in sdk[:8]:
            print(f"    {us:6.1f} µs  {where}")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--mount", choices=("direct", "sdk", "both"), default="both")
    return parser.parse_args()


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main(parse_args()))
