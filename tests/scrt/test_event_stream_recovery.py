"""The event stream's recovery: back-off between reconnects, the HTTP time limits of the stream,
opens reported to the caller, the connected flag, giving up with the right error, the window of
event ids it remembers to drop replays, and failed opens read like any other error. Time is the
event loop's, fast-forwarded (looptime) where the stream waits."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import httpx
import pytest
import respx

from app.scrt import (
    ReconnectPolicy,
    ScrtBadRequestError,
    ScrtCertificateError,
    ScrtClient,
    ScrtConfig,
    ScrtConnectionError,
    ScrtEvent,
    ScrtEventStream,
    ScrtRateLimitError,
    ScrtTimeoutError,
)
from tests.certificates import self_signed, server_context
from tests.scrt.conftest import DEPLOYMENT, ORG_18
from tests.scrt.test_events import FAST, SSE, SseBody, frame, sse
from tests.servers import silent_listener


async def take(stream: ScrtEventStream, count: int) -> list[ScrtEvent]:
    events: list[ScrtEvent] = []
    async with asyncio.timeout(60), stream:  # virtual seconds: a hang fails, it never waits
        async for event in stream:
            events.append(event)
            if len(events) == count:
                break
    return events


@pytest.mark.parametrize("failures", [0, 1, 3, 20])
def test_reconnect_pauses_fill_the_upper_half_of_a_growing_capped_ceiling(failures: int) -> None:
    policy = ReconnectPolicy(base_delay=2.0, max_delay=30.0, multiplier=1.5)
    ceiling = min(30.0, 2.0 * 1.5**failures)

    pauses = [policy.delay(failures) for _ in range(2000)]

    assert all(ceiling / 2 <= pause <= ceiling for pause in pauses)
    # Jittered across the whole half, not bunched at one end.
    assert min(pauses) < ceiling * 0.55
    assert max(pauses) > ceiling * 0.95


@pytest.mark.looptime
async def test_the_stream_request_outlasts_the_silence_watchdog(
    http: httpx.AsyncClient, config: ScrtConfig, router: respx.MockRouter
) -> None:
    route = router.get(SSE).mock(return_value=sse(frame("1"), hang=True))

    await take(ScrtEventStream(http, config, "tok", reconnect=FAST), 1)
    await take(
        ScrtEventStream(http, config, "tok", reconnect=FAST, read_timeout=20, connect_timeout=3),
        1,
    )

    default, custom = (call.request.extensions["timeout"] for call in route.calls)
    # httpx must never cut the stream before the watchdog (60 s of silence) notices it.
    assert default == {"connect": 10.0, "read": 65.0, "write": 10.0, "pool": 10.0}
    assert custom == {"connect": 3.0, "read": 25.0, "write": 3.0, "pool": 3.0}


@pytest.mark.looptime
async def test_every_open_is_reported_with_its_count(
    scrt: ScrtClient, router: respx.MockRouter
) -> None:
    router.get(SSE).mock(
        side_effect=[
            sse(frame("1")),
            httpx.Response(503),
            sse(frame("2")),
            sse(frame("3"), hang=True),
        ]
    )
    opens: list[int] = []

    await take(scrt.event_stream("tok", reconnect=FAST, on_open=opens.append), 3)

    assert opens == [1, 2, 3]


@pytest.mark.looptime
async def test_connected_is_true_only_while_a_stream_is_open(
    scrt: ScrtClient, router: respx.MockRouter
) -> None:
    router.get(SSE).mock(
        side_effect=[sse(frame("1")), httpx.Response(503), sse(frame("2"), hang=True)]
    )
    stream = scrt.event_stream("tok", reconnect=ReconnectPolicy(base_delay=5, max_delay=5))
    assert not stream.connected

    async with asyncio.timeout(60), stream:
        first = await anext(stream)
        assert first.id == "1" and stream.connected
        waiting = asyncio.create_task(anext(stream))
        await asyncio.sleep(1)  # the first stream ended; the reconnect is pausing
        assert not stream.connected
        second = await waiting
        assert second.id == "2" and stream.connected

    assert not stream.connected


@pytest.mark.looptime
@pytest.mark.parametrize(
    ("failure", "error", "name"),
    [
        (httpx.ConnectError("refused"), ScrtConnectionError, "ConnectError"),
        (httpx.ConnectTimeout("slow"), ScrtTimeoutError, "ConnectTimeout"),
    ],
)
async def test_a_stream_that_never_opens_gives_up_naming_the_failure(
    scrt: ScrtClient,
    router: respx.MockRouter,
    failure: Exception,
    error: type[Exception],
    name: str,
) -> None:
    route = router.get(SSE).mock(side_effect=failure)

    with pytest.raises(error) as caught:
        await take(scrt.event_stream("tok", reconnect=FAST), 1)

    assert name in str(caught.value)
    assert route.call_count == FAST.max_failures


async def test_a_certificate_failure_ends_the_stream_at_once_even_without_a_failure_limit(
    http: httpx.AsyncClient, tmp_path: Path
) -> None:
    tls = server_context(*self_signed(tmp_path))
    forever = ReconnectPolicy(base_delay=0.05, max_delay=0.05, max_failures=None)
    async with silent_listener(tls) as listener:
        config = ScrtConfig(
            scrt_url=listener.url("https"), org_id=ORG_18, es_developer_name=DEPLOYMENT
        )
        stream = ScrtClient(http, config).event_stream("tok", reconnect=forever)
        with pytest.raises(ScrtCertificateError) as caught:
            async with asyncio.timeout(10), stream:  # retrying forever would hit this bound
                await anext(stream)

    assert caught.value.cause == "self-signed certificate"
    assert listener.connections == 1


async def test_a_certificate_failure_after_the_stream_worked_only_backs_off() -> None:
    """Once the stream has opened, the same failure is more likely a passing one (a network
    that is down for a moment): the stream keeps trying instead of giving up."""
    answers: list[httpx.Response | Exception] = [sse(frame("1"))]
    for _ in range(3):
        error = httpx.ConnectError("[SSL: CERTIFICATE_VERIFY_FAILED]")
        error.__cause__ = ssl.SSLCertVerificationError(1, "certificate verify failed")
        answers.append(error)
    answers.append(sse(frame("2"), hang=True))

    def handler(request: httpx.Request) -> httpx.Response:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    config = ScrtConfig(scrt_url="https://sse.test", org_id=ORG_18, es_developer_name=DEPLOYMENT)
    fast = ReconnectPolicy(base_delay=0.001, max_delay=0.002, max_failures=None)
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        events = await take(ScrtClient(http, config).event_stream("tok", reconnect=fast), 2)

    assert [e.id for e in events] == ["1", "2"]


@pytest.mark.looptime
async def test_replays_of_the_last_4096_events_are_dropped(
    scrt: ScrtClient, router: respx.MockRouter
) -> None:
    first = b"".join(frame(str(n)) for n in range(1, 4098))  # 4097 events
    # After a drop the server replays the second-oldest and the newest event it sent.
    router.get(SSE).mock(
        side_effect=[sse(first), sse(frame("2"), frame("4097"), frame("4098"), hang=True)]
    )

    events = await take(scrt.event_stream("tok", reconnect=FAST), 4098)

    assert [e.id for e in events] == [str(n) for n in range(1, 4099)]


@pytest.mark.looptime
async def test_a_failed_open_with_a_long_body_still_raises_its_error(
    scrt: ScrtClient, router: respx.MockRouter
) -> None:
    message = "OrgId in the header and token must match. " * 200  # about 8 KB
    body = SseBody(b'{"errorCode": "BAD_REQUEST", ', f'"message": "{message}"}}'.encode())
    router.get(SSE).mock(return_value=httpx.Response(400, stream=body))

    with pytest.raises(ScrtBadRequestError) as caught:
        await take(scrt.event_stream("tok", reconnect=FAST), 1)

    assert (caught.value.method, caught.value.route) == ("GET", SSE)
    assert str(caught.value).startswith(f"GET {SSE} -> 400")


@pytest.mark.looptime
async def test_an_error_body_in_several_chunks_is_read_whole(
    scrt: ScrtClient, router: respx.MockRouter
) -> None:
    body = SseBody(b'{"errorCode": "BAD_REQUEST", ', b'"message": "Unknown deployment"}')
    router.get(SSE).mock(return_value=httpx.Response(400, stream=body))

    with pytest.raises(ScrtBadRequestError) as caught:
        await take(scrt.event_stream("tok", reconnect=FAST), 1)

    assert (caught.value.message, caught.value.error_code) == (
        "Unknown deployment",
        "BAD_REQUEST",
    )


@pytest.mark.looptime
async def test_a_rate_limited_open_gives_up_with_the_servers_retry_after(
    scrt: ScrtClient, router: respx.MockRouter
) -> None:
    router.get(SSE).mock(
        return_value=httpx.Response(
            429, headers={"Retry-After": "7", "X-Other": "1"}, json={"message": "slow down"}
        )
    )

    with pytest.raises(ScrtRateLimitError) as caught:
        await take(scrt.event_stream("tok", reconnect=FAST), 1)

    assert caught.value.retry_after == 7.0
    assert caught.value.message == "slow down"
