"""The SCRT event stream (`GET /eventrouter/v1/sse`): typed events, resumed after every drop.

SCRT drops SSE connections at will and says "custom clients must detect dropped connections and
reconnect". This reader reconnects with exponential back-off and jitter and resumes with
`Last-Event-Id`, so no event is lost; it also drops event ids it has already yielded, because a
replay may overlap what was delivered before the drop. A silent connection (not even a `ping` for
`read_timeout` seconds) counts as a drop. 400 and 401 are not retried: they repeat forever.

Usage, typically in a background task (cancelling the task closes the HTTP stream):

    async with client.event_stream(get_token, last_event_id=token.last_event_id) as stream:
        async for event in stream:
            if event.entry is not None:
                log.append(event.entry)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from collections import OrderedDict
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import httpx
import structlog

from app.scrt import routes, shapes
from app.scrt.config import ScrtConfig
from app.scrt.errors import (
    ScrtConnectionError,
    ScrtError,
    ScrtRateLimitError,
    ScrtServerError,
    ScrtTimeoutError,
    error_from_response,
    is_permanent,
    transport_error,
)
from app.scrt.models import Entry
from app.scrt.sse import SseFrame, SseParser

log = structlog.get_logger(__name__)

TokenSource = str | Callable[[], Awaitable[str]]
"""A bearer token, or an async callable asked for one before every (re)connect."""

_SEEN_IDS = 4096
_ERROR_BODY_BYTES = 4096


@dataclass(frozen=True)
class ReconnectPolicy:
    """Back-off between connection attempts (the official sample: 1 s * 1.5^n, cap 30 s, 10 tries).

    `max_failures` counts consecutive failed connects; a successful open resets it. None retries
    forever.
    """

    base_delay: float = 1.0
    max_delay: float = 30.0
    multiplier: float = 1.5
    max_failures: int | None = 10

    def delay(self, failures: int) -> float:
        ceiling = min(self.max_delay, self.base_delay * self.multiplier**failures)
        return ceiling / 2 + random.uniform(0, ceiling / 2)


@dataclass(frozen=True)
class ScrtEvent:
    """One SSE event. `entry` is set for `CONVERSATION_*` events; `raw` is the parsed `data`
    (or the data string when it is not JSON, or None when there was no data)."""

    id: str | None
    event_type: str
    conversation_id: str | None
    entry: Entry | None
    raw: Any


class ScrtEventStream:
    """Async iterator of `ScrtEvent`s for every conversation of the token's subject."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        config: ScrtConfig,
        token: TokenSource,
        *,
        last_event_id: str | None = None,
        reconnect: ReconnectPolicy | None = None,
        read_timeout: float = 60.0,
        connect_timeout: float = 10.0,
        on_open: Callable[[int], None] | None = None,
    ) -> None:
        self._http = http
        self._on_open = on_open
        self._opens = 0
        self._config = config
        self._token = token
        self._last_event_id = last_event_id
        self._reconnect = reconnect or ReconnectPolicy()
        self._read_timeout = read_timeout
        self._timeout = httpx.Timeout(
            connect=connect_timeout,
            read=read_timeout + 5,
            write=connect_timeout,
            pool=connect_timeout,
        )
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._events: AsyncGenerator[ScrtEvent, None] | None = None
        self._connected = False

    @property
    def last_event_id(self) -> str | None:
        """The id of the last frame that had one: resume a new stream from it."""
        return self._last_event_id

    @property
    def connected(self) -> bool:
        """True while a stream is open; False while (re)connecting or after it stopped. Callers
        fall back to polling the entries endpoint while it is False."""
        return self._connected

    def __aiter__(self) -> ScrtEventStream:
        return self

    async def __anext__(self) -> ScrtEvent:
        if self._events is None:
            self._events = self._run()
        return await anext(self._events)

    async def aclose(self) -> None:
        """Close the HTTP stream and end iteration."""
        if self._events is not None:
            await self._events.aclose()

    async def __aenter__(self) -> ScrtEventStream:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def _run(self) -> AsyncGenerator[ScrtEvent, None]:
        failures = 0
        while True:
            opened = False
            try:
                bearer = self._token if isinstance(self._token, str) else await self._token()
                async with self._http.stream(
                    "GET",
                    self._config.url(routes.SSE),
                    headers=self._headers(bearer),
                    timeout=self._timeout,
                ) as response:
                    await raise_for_stream_status(response)
                    opened, failures = True, 0
                    self._connected = True
                    self._opens += 1
                    if self._on_open is not None:
                        # Told every (re)open, so a caller can catch up on what a drop may
                        # have hidden if the server's replay falls short.
                        self._on_open(self._opens)
                    log.info("scrt.sse.open", resumed_from=self._last_event_id)
                    async with contextlib.aclosing(self._read(response)) as events:
                        async for event in events:
                            yield event
                            del event  # not kept while the next one is awaited
                reason: ScrtError = ScrtConnectionError("stream ended")
            except (
                ScrtServerError,
                ScrtRateLimitError,
                ScrtConnectionError,
                ScrtTimeoutError,
            ) as error:
                reason = error
            except TimeoutError:
                reason = ScrtTimeoutError(f"no data for {self._read_timeout:g} s")
            except httpx.TransportError as exc:
                reason = transport_error(exc, f"GET {routes.SSE}")
            finally:
                self._connected = False
            if not opened:
                failures += 1
                limit = self._reconnect.max_failures
                # A certificate or a host name that does not exist will not fix itself; once
                # the stream has worked, the same failure is more likely passing (a resolver
                # or a network that is down for a moment), so it only backs off.
                first = self._opens == 0
                if (first and is_permanent(reason)) or (limit is not None and failures >= limit):
                    raise reason
            pause = self._reconnect.delay(failures)
            log.info(
                "scrt.sse.reconnect",
                reason=type(reason).__name__,
                status=getattr(reason, "status", None),
                cause=getattr(reason, "cause", None) or None,
                failures=failures,
                delay=round(pause, 3),
            )
            await asyncio.sleep(pause)

    async def _read(self, response: httpx.Response) -> AsyncGenerator[ScrtEvent, None]:
        parser = SseParser()
        chunks = response.aiter_bytes()
        try:
            while True:
                try:
                    async with asyncio.timeout(self._read_timeout):
                        chunk = await anext(chunks)
                except StopAsyncIteration:
                    return
                # A stream waits for its next chunk most of its life: the last chunk, frame and
                # event (with its parsed JSON) are not kept meanwhile, for every guest session.
                events = [e for e in map(self._accept, parser.feed(chunk)) if e is not None]
                del chunk
                while events:
                    yield events.pop(0)
        finally:
            if isinstance(chunks, AsyncGenerator):
                await chunks.aclose()

    def _headers(self, bearer: str) -> dict[str, str]:
        return sse_headers(self._config, bearer, self._last_event_id)

    def _accept(self, frame: SseFrame) -> ScrtEvent | None:
        """Track the id; drop keep-alives and repeats; parse the rest best-effort."""
        if frame.id is not None:
            self._last_event_id = frame.id
        if frame.event == "ping":
            return None
        if frame.id is not None:
            if frame.id in self._seen:
                return None
            self._seen[frame.id] = None
            if len(self._seen) > _SEEN_IDS:
                self._seen.popitem(last=False)
        return parse_event(frame)


def sse_headers(config: ScrtConfig, bearer: str, last_event_id: str | None) -> dict[str, str]:
    """The headers of an event-stream request (the org id in its 15-character form)."""
    headers = {
        "Accept": "text/event-stream",
        "Authorization": f"Bearer {bearer}",
        "X-Org-Id": config.org_id_15,
        "Cache-Control": "no-cache",
        # Compression would make the server buffer frames.
        "Accept-Encoding": "identity",
    }
    if last_event_id:
        headers["Last-Event-Id"] = last_event_id
    return headers


async def sse_frames(response: httpx.Response) -> AsyncGenerator[SseFrame, None]:
    """The frames of an open event-stream response, as they arrive."""
    parser = SseParser()
    async for chunk in response.aiter_bytes():
        for frame in parser.feed(chunk):
            yield frame


def parse_event(frame: SseFrame) -> ScrtEvent:
    """Turn a frame into an event; never raises, whatever the data holds."""
    raw: Any = frame.data
    if frame.data is not None:
        with contextlib.suppress(ValueError):
            raw = json.loads(frame.data)
    envelope = raw if isinstance(raw, dict) else {}
    entry = None
    if isinstance(envelope.get("conversationEntry"), dict):
        entry = Entry.from_sse_envelope(envelope)
    return ScrtEvent(
        id=frame.id,
        event_type=frame.event,
        conversation_id=shapes.text(envelope.get("conversationId")),
        entry=entry,
        raw=raw,
    )


async def raise_for_stream_status(response: httpx.Response) -> None:
    """Raise the ScrtError of a non-2xx open, reading at most a few KB of its body."""
    if response.is_success:
        return
    body = b""
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) >= _ERROR_BODY_BYTES:
            break
    # Only Retry-After survives: the body is already decoded, Content-Encoding must not.
    headers = {k: v for k, v in response.headers.items() if k.lower() == "retry-after"}
    failed = httpx.Response(response.status_code, headers=headers, content=body[:_ERROR_BODY_BYTES])
    raise error_from_response(failed, method="GET", route=routes.SSE)
