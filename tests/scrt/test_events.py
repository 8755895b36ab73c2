"""The SSE reader: headers, typed events, resume without loss or repeats, stop on 400/401."""

from __future__ import annotations

import asyncio
import gc
import json
import weakref
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import respx

from app.scrt import (
    ReconnectPolicy,
    ScrtAuthError,
    ScrtBadRequestError,
    ScrtClient,
    ScrtEvent,
    ScrtEventStream,
    ScrtServerError,
)
from tests.markers import not_under_mutmut
from tests.scrt.conftest import ORG_15

CID = "0f8e2c1a-8d3b-4c55-b0a9-3c2f1e0d9a77"
SSE = "/eventrouter/v1/sse"
FAST = ReconnectPolicy(base_delay=0.001, max_delay=0.002, max_failures=3)


def message_envelope(entry_id: str, text: str) -> dict[str, Any]:
    payload = {
        "entryType": "Message",
        "id": entry_id,
        "abstractMessage": {
            "messageType": "StaticContentMessage",
            "id": entry_id,
            "staticContent": {"formatType": "Text", "text": text},
        },
    }
    return {
        "channelPlatformKey": "cpk",
        "channelType": "embedded_messaging",
        "channelAddressIdentifier": "cai",
        "conversationId": CID,
        "conversationEntry": {
            "identifier": entry_id,
            "entryType": "Message",
            "entryPayload": json.dumps(payload),
            "sender": {"role": "Agent", "subject": "005A"},
            "senderDisplayName": "Jane Agent",
            "transcriptedTimestamp": 1741300005000,
        },
    }


def frame(event_id: str, text: str = "hi") -> bytes:
    data = json.dumps(message_envelope(f"entry-{event_id}", text))
    return f"id: {event_id}\nevent: CONVERSATION_MESSAGE\ndata: {data}\n\n".encode()


class SseBody(httpx.AsyncByteStream):
    """A streamed body: the chunks, then the end of the stream (or silence, or a failure).

    `closed` tells whether httpx closed it, i.e. whether the HTTP stream was released.
    """

    def __init__(self, *chunks: bytes | Exception, hang: bool = False) -> None:
        self._chunks = chunks
        self._hang = hang
        self.closed = False
        self.hanging = asyncio.Event()
        """Set once every chunk was read and the body waits (with `hang`)."""

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self._chunks:
            if isinstance(chunk, Exception):
                raise chunk
            yield chunk
        if self._hang:
            self.hanging.set()
            await asyncio.Event().wait()

    async def aclose(self) -> None:
        self.closed = True


def sse(
    *chunks: bytes | Exception, hang: bool = False, body: SseBody | None = None
) -> httpx.Response:
    stream = body or SseBody(*chunks, hang=hang)
    return httpx.Response(200, headers={"content-type": "text/event-stream"}, stream=stream)


async def take(stream: ScrtEventStream, count: int) -> list[ScrtEvent]:
    events: list[ScrtEvent] = []
    async with asyncio.timeout(30), stream:  # safety deadline
        async for event in stream:
            events.append(event)
            if len(events) == count:
                break
    return events


async def test_open_sends_the_documented_headers(
    scrt: ScrtClient, router: respx.MockRouter
) -> None:
    route = router.get(SSE).mock(return_value=sse(frame("11"), hang=True))

    await take(scrt.event_stream("tok-1", last_event_id="10", reconnect=FAST), 1)

    headers = route.calls.last.request.headers
    assert headers["accept"] == "text/event-stream"
    assert headers["authorization"] == "Bearer tok-1"
    assert headers["x-org-id"] == ORG_15
    assert headers["last-event-id"] == "10"
    assert headers["cache-control"] == "no-cache"
    assert headers["accept-encoding"] == "identity"


async def test_first_open_without_a_known_id_sends_no_last_event_id(
    scrt: ScrtClient, router: respx.MockRouter
) -> None:
    route = router.get(SSE).mock(return_value=sse(frame("1"), hang=True))

    await take(scrt.event_stream("tok", reconnect=FAST), 1)

    assert "last-event-id" not in route.calls.last.request.headers


async def test_frames_become_typed_events_pings_skipped_unknown_kept(
    scrt: ScrtClient, router: respx.MockRouter
) -> None:
    # Pretty-printed JSON arrives as several `data:` lines, to be joined with newlines.
    pretty = json.dumps(message_envelope("m1", "Hello\nthere"), indent=1)
    data_lines = "".join(f"data: {line}\n" for line in pretty.splitlines())
    body = (
        b": welcome comment\n\n"
        b"event: ping\ndata: 0\n\n"
        + f"id: 1\nevent: CONVERSATION_MESSAGE\n{data_lines}\n".encode()
        + b'id: 2\nevent: CONVERSATION_SOMETHING_NEW\ndata: {"conversationId": "c9", "x": 1}\n\n'
        + b"id: 3\nevent: CONVERSATION_WEIRD\ndata: not json\n\n"
    )
    router.get(SSE).mock(return_value=sse(body, hang=True))
    stream = scrt.event_stream("tok", reconnect=FAST)

    message, unknown, weird = await take(stream, 3)

    assert (message.id, message.event_type, message.conversation_id) == (
        "1",
        "CONVERSATION_MESSAGE",
        CID,
    )
    assert message.entry is not None
    assert (message.entry.identifier, message.entry.text) == ("m1", "Hello\nthere")
    assert (message.entry.role, message.entry.sender_name) == ("Agent", "Jane Agent")
    assert (unknown.event_type, unknown.conversation_id, unknown.entry) == (
        "CONVERSATION_SOMETHING_NEW",
        "c9",
        None,
    )
    assert unknown.raw == {"conversationId": "c9", "x": 1}
    assert (weird.raw, weird.entry) == ("not json", None)
    assert stream.last_event_id == "3"


async def test_reconnect_after_stream_end_resumes_from_the_last_id_without_repeats(
    scrt: ScrtClient, router: respx.MockRouter
) -> None:
    # The second connection replays event 2 (overlap after a drop), then continues.
    route = router.get(SSE).mock(
        side_effect=[sse(frame("1"), frame("2")), sse(frame("2"), frame("3"), hang=True)]
    )
    stream = scrt.event_stream("tok", last_event_id="0", reconnect=FAST)

    events = await take(stream, 2 + 1)

    assert [e.id for e in events] == ["1", "2", "3"]
    first, second = (call.request for call in route.calls)
    assert first.headers["last-event-id"] == "0"
    assert second.headers["last-event-id"] == "2"
    assert stream.last_event_id == "3"


async def test_a_network_error_mid_stream_reconnects(
    scrt: ScrtClient, router: respx.MockRouter
) -> None:
    route = router.get(SSE).mock(
        side_effect=[
            sse(frame("1"), httpx.ReadError("connection reset")),
            sse(frame("2"), hang=True),
        ]
    )

    events = await take(scrt.event_stream("tok", reconnect=FAST), 2)

    assert [e.id for e in events] == ["1", "2"]
    assert route.calls.last.request.headers["last-event-id"] == "1"


@pytest.mark.looptime
async def test_silence_beyond_the_read_timeout_counts_as_a_drop(
    scrt: ScrtClient, router: respx.MockRouter
) -> None:
    # On a fake loop clock (looptime): the silence lasts the read timeout exactly, however loaded
    # the machine; without the timeout, `take`'s 3 s deadline fails the test.
    route = router.get(SSE).mock(
        side_effect=[sse(frame("1"), hang=True), sse(frame("2"), hang=True)]
    )

    loop = asyncio.get_running_loop()
    start = loop.time()

    events = await take(scrt.event_stream("tok", reconnect=FAST, read_timeout=0.05), 2)

    assert 0.05 <= loop.time() - start <= 0.05 + FAST.max_delay
    assert [e.id for e in events] == ["1", "2"]
    assert route.call_count == 2
    assert route.calls.last.request.headers["last-event-id"] == "1"


async def test_server_errors_on_open_are_retried_then_given_up(
    scrt: ScrtClient, router: respx.MockRouter
) -> None:
    route = router.get(SSE).mock(return_value=httpx.Response(503, text="busy"))

    with pytest.raises(ScrtServerError):
        await take(scrt.event_stream("tok", reconnect=FAST), 1)

    assert route.call_count == FAST.max_failures


async def test_a_successful_open_resets_the_failure_count(
    scrt: ScrtClient, router: respx.MockRouter
) -> None:
    busy = httpx.Response(503)
    route = router.get(SSE).mock(
        side_effect=[busy, busy, sse(frame("1")), busy, busy, sse(frame("2"), hang=True)]
    )

    events = await take(scrt.event_stream("tok", reconnect=FAST), 2)

    assert [e.id for e in events] == ["1", "2"]
    assert route.call_count == 6


async def test_bad_request_stops_with_the_servers_message(
    scrt: ScrtClient, router: respx.MockRouter
) -> None:
    route = router.get(SSE).mock(
        return_value=httpx.Response(
            400,
            json={
                "message": "OrgId in the header and token must match",
                "errorCode": "BAD_REQUEST",
            },
        )
    )

    with pytest.raises(ScrtBadRequestError) as caught:
        await take(scrt.event_stream("tok", reconnect=FAST), 1)

    assert caught.value.message == "OrgId in the header and token must match"
    assert caught.value.route == SSE
    assert route.call_count == 1


async def test_unauthorized_raises_an_auth_error(
    scrt: ScrtClient, router: respx.MockRouter
) -> None:
    route = router.get(SSE).mock(
        return_value=httpx.Response(
            401, json={"timestamp": "t", "status": 401, "error": "Unauthorized", "path": SSE}
        )
    )

    with pytest.raises(ScrtAuthError) as caught:
        await take(scrt.event_stream("expired", reconnect=FAST), 1)

    assert caught.value.message == "Unauthorized"
    assert route.call_count == 1


async def test_the_token_is_asked_for_on_every_connect(
    scrt: ScrtClient, router: respx.MockRouter
) -> None:
    tokens = iter(["first", "second"])

    async def current_token() -> str:
        return next(tokens)

    route = router.get(SSE).mock(side_effect=[sse(frame("1")), sse(frame("2"), hang=True)])

    await take(scrt.event_stream(current_token, reconnect=FAST), 2)

    auth = [call.request.headers["authorization"] for call in route.calls]
    assert auth == ["Bearer first", "Bearer second"]


async def test_cancelling_the_consumer_task_closes_the_http_stream(
    scrt: ScrtClient, router: respx.MockRouter
) -> None:
    body = SseBody(frame("1"), hang=True)
    router.get(SSE).mock(return_value=sse(body=body))
    got_one = asyncio.Event()
    stream = scrt.event_stream("tok", reconnect=FAST)

    async def consume() -> None:
        async for _ in stream:
            got_one.set()

    task = asyncio.create_task(consume())
    async with asyncio.timeout(30):  # safety deadline
        await got_one.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert body.closed


async def test_leaving_the_context_closes_the_http_stream(
    scrt: ScrtClient, router: respx.MockRouter
) -> None:
    body = SseBody(frame("1"), frame("2"), hang=True)
    router.get(SSE).mock(return_value=sse(body=body))

    events = await take(scrt.event_stream("tok", reconnect=FAST), 1)

    assert [e.id for e in events] == ["1"]
    assert body.closed


@not_under_mutmut
async def test_a_delivered_event_is_not_kept_while_the_stream_waits_for_the_next(
    scrt: ScrtClient, router: respx.MockRouter
) -> None:
    """A stream waits for its next chunk most of its life, one per guest session: the event it
    last delivered (with its parsed JSON) is the consumer's, not kept by the stream meanwhile."""
    body = SseBody(frame("1"), hang=True)
    router.get(SSE).mock(return_value=sse(body=body))
    stream = scrt.event_stream("tok", reconnect=FAST)
    async with asyncio.timeout(30), stream:  # safety deadline
        event = await anext(stream)
        delivered = weakref.ref(event)
        del event
        following = asyncio.create_task(anext(stream))
        await body.hanging.wait()
        gc.collect()

        assert delivered() is None
        following.cancel()
        with pytest.raises(asyncio.CancelledError):
            await following
