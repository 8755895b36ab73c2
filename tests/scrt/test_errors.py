"""Every status class maps to its error; error bodies of every known shape are read."""

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
    ScrtError,
    ScrtNoSessionError,
    ScrtNotFoundError,
    ScrtPayloadTooLargeError,
    ScrtProtocolError,
    ScrtRateLimitError,
    ScrtServerError,
    ScrtStatusError,
    ScrtTimeoutError,
    ScrtUnsupportedMediaTypeError,
)
from tests.scrt.conftest import NO_RETRY

CID = "0f8e2c1a-8d3b-4c55-b0a9-3c2f1e0d9a77"
MESSAGE_PATH = f"/iamessage/api/v2/conversation/{CID}/message"
MESSAGE_ROUTE = "/iamessage/api/v2/conversation/{conversationId}/message"
ENTRIES_PATH = f"/iamessage/api/v2/conversation/{CID}/entries"
TOKEN = "secret-token-value"


@pytest.fixture
def once(http: httpx.AsyncClient, config: ScrtConfig) -> ScrtClient:
    return ScrtClient(http, config, retry=NO_RETRY)


@pytest.mark.parametrize(
    ("status", "error_class"),
    [
        (400, ScrtBadRequestError),
        (401, ScrtAuthError),
        (403, ScrtNotFoundError),
        (404, ScrtNotFoundError),
        (413, ScrtPayloadTooLargeError),
        (415, ScrtUnsupportedMediaTypeError),
        (417, ScrtNoSessionError),
        (429, ScrtRateLimitError),
        (500, ScrtServerError),
        (503, ScrtServerError),
        (418, ScrtStatusError),
    ],
)
async def test_status_maps_to_its_error_class_carrying_message_and_code(
    once: ScrtClient, router: respx.MockRouter, status: int, error_class: type[ScrtStatusError]
) -> None:
    router.post(MESSAGE_PATH).mock(
        return_value=httpx.Response(status, json={"message": "Nope.", "errorCode": "SOME_CODE"})
    )
    # A 500 may come after Salesforce took the message: it is looked for (and not found) first.
    router.get(ENTRIES_PATH).mock(
        return_value=httpx.Response(200, json={"conversationEntries": []})
    )

    with pytest.raises(ScrtStatusError) as caught:
        await once.send_message(TOKEN, CID, "private words")

    error = caught.value
    assert type(error) is error_class
    assert (error.status, error.message, error.error_code) == (status, "Nope.", "SOME_CODE")
    assert (error.method, error.route) == ("POST", MESSAGE_ROUTE)
    assert TOKEN not in str(error) and "private words" not in str(error)
    assert CID not in str(error)


@pytest.mark.parametrize(
    ("response", "message", "error_code"),
    [
        (
            httpx.Response(
                401,
                json={
                    "timestamp": "2025-03-01T10:00:00.000+00:00",
                    "status": 401,
                    "error": "Unauthorized",
                    "path": "/eventrouter/v1/sse",
                },
            ),
            "Unauthorized",
            None,
        ),
        (
            httpx.Response(400, json={"status": 400, "error": "Bad Request", "message": "Bad X"}),
            "Bad X",
            None,
        ),
        (
            httpx.Response(412, json={"text": "Embedded Messaging Config is not Published"}),
            "Embedded Messaging Config is not Published",
            None,
        ),
        (
            httpx.Response(400, json=[{"message": "Listed", "errorCode": "BAD_REQUEST"}]),
            "Listed",
            "BAD_REQUEST",
        ),
        (httpx.Response(401, text="Jwt is expired"), "Jwt is expired", None),
        (
            httpx.Response(502, text="<html>\n<b>Bad</b>  gateway</html>"),
            "<html> <b>Bad</b> gateway</html>",
            None,
        ),
        (httpx.Response(503), "Service Unavailable", None),
        (httpx.Response(400, text="x" * 5000), "x" * 299 + "…", None),
    ],
)
async def test_error_bodies_of_every_shape_yield_a_message(
    once: ScrtClient,
    router: respx.MockRouter,
    response: httpx.Response,
    message: str,
    error_code: str | None,
) -> None:
    router.get(f"/iamessage/api/v2/conversation/{CID}").mock(return_value=response)

    with pytest.raises(ScrtStatusError) as caught:
        await once.routing_status(TOKEN, CID)

    assert (caught.value.message, caught.value.error_code) == (message, error_code)


async def test_config_not_published_is_a_plain_status_error(
    once: ScrtClient, router: respx.MockRouter
) -> None:
    router.get("/embeddedservice/v1/embedded-service-config").mock(
        return_value=httpx.Response(
            412, json={"text": "Embedded Messaging Config is not Published"}
        )
    )

    with pytest.raises(ScrtStatusError) as caught:
        await once.embedded_service_config()

    assert type(caught.value) is ScrtStatusError and caught.value.status == 412


@pytest.mark.parametrize(
    ("exception", "error_class"),
    [
        (httpx.ConnectError("refused"), ScrtConnectionError),
        (httpx.RemoteProtocolError("reset"), ScrtConnectionError),
        (httpx.ReadTimeout("slow"), ScrtTimeoutError),
        (httpx.ConnectTimeout("slow"), ScrtTimeoutError),
    ],
)
async def test_httpx_failures_are_translated_at_the_boundary(
    once: ScrtClient, router: respx.MockRouter, exception: Exception, error_class: type[ScrtError]
) -> None:
    router.delete(f"/iamessage/api/v2/conversation/{CID}/session").mock(side_effect=exception)

    with pytest.raises(error_class) as caught:
        await once.end_session(TOKEN, CID)

    assert isinstance(caught.value.__cause__, httpx.HTTPError)


async def test_a_token_response_without_access_token_is_a_protocol_error(
    once: ScrtClient, router: respx.MockRouter
) -> None:
    router.post("/iamessage/api/v2/authorization/unauthenticated/access-token").mock(
        return_value=httpx.Response(200, json={"lastEventId": "1"})
    )

    with pytest.raises(ScrtProtocolError):
        await once.guest_token()
