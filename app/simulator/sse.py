"""`GET /eventrouter/v1/sse`: the subject's events, replayed after `Last-Event-Id`, then live."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from app.simulator.errors import SimError, spring_error
from app.simulator.org import SimulatedOrg, Stream

PATH = "/eventrouter/v1/sse"
PING = "event: ping\ndata: 0\n\n"


async def event_stream(request: Request) -> Response:
    org: SimulatedOrg = request.app.state.simulator
    try:
        token = org.tokens.verify(request.headers.get("authorization"))
    except SimError as exc:
        return spring_error(401, "Unauthorized", exc.message, PATH)
    org_header = request.headers.get("x-org-id")
    if not org_header:
        return spring_error(400, "Bad Request", "OrgId is required", PATH)
    accepted = {org.options.org_id15}
    if org.options.sse_accepts_org_id18:
        accepted.add(org.options.org_id)
    if org_header not in accepted:
        return spring_error(400, "Bad Request", "OrgId in the header and token must match", PATH)
    stream = org.open_stream(token, request.headers.get("last-event-id"))
    return StreamingResponse(
        frames(org, stream),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def frames(org: SimulatedOrg, stream: Stream) -> AsyncIterator[str]:
    try:
        while True:
            # Clear before reading: an event appended while we send still wakes the next wait.
            stream.wake.clear()
            for event in org.events_after(stream.subject, stream.last_id):
                stream.last_id = event.id
                yield f"id: {event.id}\nevent: {event.event_type}\ndata: {event.data}\n\n"
            if stream.cut or stream.token.revoked or stream.token.expired(time.time()):
                return
            try:
                async with asyncio.timeout(org.options.ping_interval):
                    await stream.wake.wait()
            except TimeoutError:
                yield PING
    finally:
        org.close_stream(stream)
