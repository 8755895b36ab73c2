"""How a failed call reads: the message taken from any body (broken UTF-8, bare JSON values,
`error`/`errorMessage` keys, exactly the clip length), the status line with and without an error
code, Retry-After, network failures naming the call, and the headers every REST call sends."""

from __future__ import annotations

import httpx
import pytest
import respx

from app.scrt import (
    ScrtAuthError,
    ScrtBadRequestError,
    ScrtClient,
    ScrtConfig,
    ScrtConnectionError,
    ScrtRateLimitError,
    ScrtServerError,
    ScrtTimeoutError,
)
from tests.scrt.conftest import NO_RETRY

CID = "0f8e2c1a-8d3b-4c55-b0a9-3c2f1e0d9a77"
STATUS_PATH = f"/iamessage/api/v2/conversation/{CID}"
STATUS_ROUTE = "/iamessage/api/v2/conversation/{conversationId}"
TOKEN = "tok"


@pytest.fixture
def once(http: httpx.AsyncClient, config: ScrtConfig) -> ScrtClient:
    return ScrtClient(http, config, retry=NO_RETRY)


async def status_error(
    once: ScrtClient, router: respx.MockRouter, response: httpx.Response
) -> BaseException:
    router.get(STATUS_PATH).mock(return_value=response)
    with pytest.raises(Exception) as caught:
        await once.routing_status(TOKEN, CID)
    return caught.value


async def test_a_body_that_is_not_utf8_still_gives_a_message(
    once: ScrtClient, router: respx.MockRouter
) -> None:
    error = await status_error(once, router, httpx.Response(400, content=b"bad \xff\xfe input"))

    assert isinstance(error, ScrtBadRequestError)
    assert error.message == "bad \ufffd\ufffd input"


@pytest.mark.parametrize("body", [b'"Gateway said no"', b"[1, 2]", b"42"])
async def test_a_json_body_without_an_object_is_shown_as_sent(
    once: ScrtClient, router: respx.MockRouter, body: bytes
) -> None:
    error = await status_error(once, router, httpx.Response(502, content=body))

    assert isinstance(error, ScrtServerError)
    assert error.message == body.decode()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"error": "invalid_token"}, "invalid_token"),
        ({"errorMessage": "Session expired"}, "Session expired"),
    ],
)
async def test_error_and_error_message_keys_are_read(
    once: ScrtClient, router: respx.MockRouter, body: dict[str, str], message: str
) -> None:
    error = await status_error(once, router, httpx.Response(401, json=body))

    assert isinstance(error, ScrtAuthError)
    assert error.message == message


async def test_a_message_of_exactly_the_clip_length_is_kept_whole(
    once: ScrtClient, router: respx.MockRouter
) -> None:
    text = "x" * 300

    error = await status_error(once, router, httpx.Response(400, json={"message": text}))

    assert isinstance(error, ScrtBadRequestError)
    assert error.message == text


async def test_the_status_line_shows_the_error_code_only_when_there_is_one(
    once: ScrtClient, router: respx.MockRouter
) -> None:
    coded = await status_error(
        once, router, httpx.Response(400, json={"message": "No.", "errorCode": "BAD_REQUEST"})
    )
    uncoded = await status_error(once, router, httpx.Response(400, json={"message": "No."}))

    assert str(coded) == f"GET {STATUS_ROUTE} -> 400 BAD_REQUEST: No."
    assert str(uncoded) == f"GET {STATUS_ROUTE} -> 400: No."


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("7", 7.0), ("0", 0.0), ("1.5", 1.5), ("-3", None), ("Wed, 21 Oct 2026 07:28:00 GMT", None)],
)
async def test_retry_after_is_read_in_seconds_when_numeric_and_not_negative(
    once: ScrtClient, router: respx.MockRouter, header: str, seconds: float | None
) -> None:
    error = await status_error(
        once, router, httpx.Response(429, headers={"Retry-After": header}, json={})
    )

    assert isinstance(error, ScrtRateLimitError)
    assert error.retry_after == seconds


@pytest.mark.parametrize(
    ("failure", "error_class", "name"),
    [
        (httpx.ConnectError("refused"), ScrtConnectionError, "ConnectError"),
        (httpx.ReadTimeout("slow"), ScrtTimeoutError, "ReadTimeout"),
    ],
)
async def test_a_network_failure_names_the_call_and_the_failure(
    once: ScrtClient,
    router: respx.MockRouter,
    failure: Exception,
    error_class: type[Exception],
    name: str,
) -> None:
    router.get(STATUS_PATH).mock(side_effect=failure)

    with pytest.raises(error_class) as caught:
        await once.routing_status(TOKEN, CID)

    assert str(caught.value) == f"GET {STATUS_ROUTE}: {name}"


async def test_every_rest_call_asks_for_json(once: ScrtClient, router: respx.MockRouter) -> None:
    route = router.get(STATUS_PATH).mock(return_value=httpx.Response(200, json={}))

    await once.routing_status(TOKEN, CID)

    assert route.calls.last.request.headers["accept"] == "application/json"


async def test_an_id_with_a_slash_stays_one_path_segment(
    once: ScrtClient, router: respx.MockRouter
) -> None:
    route = router.get("/iamessage/api/v2/conversation/a%2Fb").mock(
        return_value=httpx.Response(200, json={})
    )

    await once.routing_status(TOKEN, "a/b")

    assert route.called
