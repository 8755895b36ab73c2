"""Run an ASGI app on a real loopback port inside the test's event loop.

httpx's ASGITransport buffers whole responses, so anything that streams (SSE) needs a real socket.
The socket is bound and listening before uvicorn starts, so clients can connect at once: early
connections wait in the backlog instead of being refused, and no start-up polling is needed.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator

import uvicorn
from starlette.types import ASGIApp

from app.cli import KEEP_ALIVE_SECONDS


def free_port() -> int:
    """A loopback port nothing listens on now (for servers run as subprocesses)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.asynccontextmanager
async def serve(app: ASGIApp, *, lifespan: str = "auto") -> AsyncIterator[str]:
    """Serve `app` on 127.0.0.1 with an ephemeral port; yield its base URL (no trailing slash)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        log_level="warning",
        lifespan=lifespan,
        timeout_graceful_shutdown=2,
        # As in production (app/cli.py): the client, not the server, closes idle connections, so
        # a request never races the server closing the connection it was sent on.
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        # Open SSE streams are cut after timeout_graceful_shutdown.
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, timeout=10)
        sock.close()
