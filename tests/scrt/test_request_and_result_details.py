"""Request bodies for the less common arguments (a device id, one option or one entry id given as
a plain string, a file sent in reply), arguments refused before any request, and answers read
in full (the conversation id Salesforce returns, start times, partial business-hours windows)."""

from __future__ import annotations

import json

import httpx
import pytest
import respx

from app.scrt import (
    AccessToken,
    BusinessHours,
    ConversationList,
    RoutingStatus,
    ScrtClient,
    ScrtProtocolError,
)
from tests.scrt.conftest import body_of, future_jwt

CID = "0f8e2c1a-8d3b-4c55-b0a9-3c2f1e0d9a77"
V2 = "/iamessage/api/v2"
TOKEN = "tok"


async def test_a_guest_token_for_a_device_names_the_device(
    scrt: ScrtClient, router: respx.MockRouter
) -> None:
    route = router.post(f"{V2}/authorization/unauthenticated/access-token").mock(
        return_value=httpx.Response(200, json={"accessToken": future_jwt()})
    )

    await scrt.guest_token(device_id="device-42")

    assert body_of(route.calls.last.request)["deviceId"] == "device-42"


async def test_one_option_given_as_a_string_is_one_selection(
    scrt: ScrtClient, router: respx.MockRouter
) -> None:
    route = router.post(f"{V2}/conversation/{CID}/message").mock(
        return_value=httpx.Response(200, json={})
    )

    await scrt.send_choice(TOKEN, CID, "opt-1", in_reply_to="choices-msg")

    selected = body_of(route.calls.last.request)["message"]["choicesResponse"]["selectedOptions"]
    assert selected == [{"optionIdentifier": "opt-1"}]


async def test_one_entry_id_given_as_a_string_is_one_receipt(
    scrt: ScrtClient, router: respx.MockRouter
) -> None:
    route = router.post(f"{V2}/conversation/{CID}/acknowledge-entries").mock(
        return_value=httpx.Response(202)
    )

    await scrt.acknowledge_entries(TOKEN, CID, delivered="entry-1", read="entry-1")

    acks = body_of(route.calls.last.request)["acks"]
    assert [(a["entryType"], a["conversationEntryId"]) for a in acks] == [
        ("Delivery", "entry-1"),
        ("Read", "entry-1"),
    ]


async def test_a_file_sent_in_reply_names_the_message_it_answers(
    scrt: ScrtClient, router: respx.MockRouter
) -> None:
    route = router.post(f"{V2}/conversation/{CID}/file").mock(return_value=httpx.Response(202))

    await scrt.send_file(
        TOKEN, CID, filename="a.txt", content=b"hi", mime_type="text/plain", in_reply_to="m-9"
    )

    content = route.calls.last.request.content
    start = content.index(b'{"message"')
    entry, _ = json.JSONDecoder().raw_decode(content[start:].decode())
    assert entry["message"]["inReplyToMessageId"] == "m-9"


async def test_arguments_that_name_nothing_are_refused_before_any_request(
    scrt: ScrtClient, router: respx.MockRouter
) -> None:
    with pytest.raises(ValueError, match="text must not be empty"):
        await scrt.send_message(TOKEN, CID, "   ")
    with pytest.raises(ValueError, match="option_identifiers must not be empty"):
        await scrt.send_choice(TOKEN, CID, [], in_reply_to="m")
    with pytest.raises(ValueError, match="nothing to acknowledge"):
        await scrt.acknowledge_entries(TOKEN, CID)
    with pytest.raises(ValueError, match="access token must not be empty"):
        await scrt.routing_status(" ", CID)

    assert not router.calls


def test_a_token_answer_without_a_token_says_what_is_missing() -> None:
    with pytest.raises(ScrtProtocolError, match="no accessToken"):
        AccessToken.from_response({"context": {}})


def test_the_routing_status_names_the_conversation_salesforce_returned() -> None:
    status = RoutingStatus.from_response("asked", {"conversationId": "answered"})

    assert status.conversation_id == "answered"


def test_conversation_summaries_carry_their_start_time() -> None:
    listed = ConversationList.from_response(
        {"conversations": [{"conversationId": "c1", "startTimestamp": 10, "endTimestamp": 0}]}
    )

    assert [
        (c.conversation_id, c.start_timestamp, c.end_timestamp) for c in listed.conversations
    ] == [("c1", 10, 0)]


def test_business_hours_skip_windows_missing_an_end_and_open_at_the_start() -> None:
    hours = BusinessHours.from_response(
        {
            "businessHoursInfo": {
                "businessHours": [
                    {"startTime": 100},
                    {"endTime": 900},
                    {"startTime": 300, "endTime": 400},
                ]
            }
        }
    )

    assert [(w.start, w.end) for w in hours.windows] == [(300, 400)]
    assert hours.is_open(300) and not hours.is_open(299) and not hours.is_open(400)
