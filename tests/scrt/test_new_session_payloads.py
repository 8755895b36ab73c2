"""Choices and files carry the new-session pre-chat like texts do (after a 417 any of them may be
the message that starts the next messaging session)."""

from __future__ import annotations

import email.parser
import email.policy
import json
from typing import Any

import httpx
import pytest
import respx

from app.scrt import ScrtClient, ScrtProtocolError
from tests.scrt.conftest import body_of

CID = "0f8e2c1a-8d3b-4c55-b0a9-3c2f1e0d9a77"
V2 = "/iamessage/api/v2"
TOKEN = "secret-token-value"
PRECHAT = {"Order_Number": "A-1001"}


async def test_a_choice_can_start_a_new_session_with_its_prechat(
    scrt: ScrtClient, router: respx.MockRouter
) -> None:
    route = router.post(f"{V2}/conversation/{CID}/message").mock(return_value=httpx.Response(202))

    await scrt.send_choice(
        TOKEN,
        CID,
        ["opt-1"],
        in_reply_to="menu",
        new_session=True,
        routing_attributes=PRECHAT,
        language="fr",
    )

    body = body_of(route.calls.last.request)
    assert body["isNewMessagingSession"] is True
    assert body["routingAttributes"] == PRECHAT
    assert body["language"] == "fr"


def multipart_entry(request: httpx.Request) -> dict[str, Any]:
    content_type = request.headers["content-type"]
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + request.content
    )
    for part in message.iter_parts():
        if part.get_param("name", header="content-disposition") == "messageEntry":
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            entry: dict[str, Any] = json.loads(payload)
            return entry
    raise AssertionError("no messageEntry part")


async def test_a_file_can_start_a_new_session_with_its_prechat(
    scrt: ScrtClient, router: respx.MockRouter
) -> None:
    route = router.post(f"{V2}/conversation/{CID}/file").mock(return_value=httpx.Response(202))

    await scrt.send_file(
        TOKEN,
        CID,
        filename="a.txt",
        content=b"hello",
        mime_type="text/plain",
        new_session=True,
        routing_attributes=PRECHAT,
        language="de",
    )

    entry = multipart_entry(route.calls.last.request)
    assert entry["isNewMessagingSession"] is True
    assert entry["routingAttributes"] == PRECHAT
    assert entry["language"] == "de"


@pytest.mark.parametrize("body", [b"", b"[]", b"not json"])
async def test_a_deployment_config_that_is_not_an_object_is_a_protocol_error_naming_it(
    scrt: ScrtClient, router: respx.MockRouter, body: bytes
) -> None:
    router.get("/embeddedservice/v1/embedded-service-config").mock(
        return_value=httpx.Response(200, content=body)
    )

    with pytest.raises(ScrtProtocolError, match="embedded-service-config answered without a JSON"):
        await scrt.embedded_service_config()
