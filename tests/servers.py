"""Run an ASGI app on a real loopback port inside the test's event loop.

httpx's ASGITransport buffers whole responses, so anything that streams (SSE) needs a real socket.
The socket is bound and listening before uvicorn starts, so clients can connect at once: early
connections wait in the backlog instead of being refused, and no start-up polling is needed.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import uvicorn
from starlette.types import ASGIApp

from app.cli import KEEP_ALIVE_SECONDS


def free_port() -> int:
    """A loopback port nothing listens on now (for servers run as subprocesses)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.asynccontextmanager
async def serve(
    app: ASGIApp, *, lifespan: str = "auto", tls: tuple[Path, Path] | None = None
) -> AsyncIterator[str]:
    """Serve `app` on 127.0.0.1 with an ephemeral port; yield its base URL (no trailing slash).
    `tls`: a certificate and its key (PEM files) to serve HTTPS with."""
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
        ssl_certfile=tls[0] if tls else None,
        ssl_keyfile=tls[1] if tls else None,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        yield f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    finally:
        # Open SSE streams are cut after timeout_graceful_shutdown.
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, timeout=10)
        sock.close()


class SilentListener:
    """A loopback TCP listener that counts connections and never sends a byte (after a TLS
    handshake, when given a certificate): a server that hangs, or one whose certificate the
    client refuses."""

    def __init__(self) -> None:
        self.connections = 0
        self.connected = asyncio.Event()
        """Set at the first connection."""
        self.port = 0
        self._transports: list[asyncio.BaseTransport] = []

    def url(self, scheme: str) -> str:
        return f"{scheme}://127.0.0.1:{self.port}"

    def _protocol(self) -> asyncio.Protocol:
        self.connections += 1
        self.connected.set()
        transports = self._transports

        class Silent(asyncio.Protocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                transports.append(transport)

        return Silent()


@contextlib.asynccontextmanager
async def silent_listener(tls: ssl.SSLContext | None = None) -> AsyncIterator[SilentListener]:
    listener = SilentListener()
    server = await asyncio.get_running_loop().create_server(
        listener._protocol, "127.0.0.1", 0, ssl=tls
    )
    listener.port = server.sockets[0].getsockname()[1]
    try:
        yield listener
    finally:
        for transport in listener._transports:
            transport.close()
        server.close()
