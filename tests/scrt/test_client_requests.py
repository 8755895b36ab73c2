"""Every REST method sends the documented method, path, query, headers and body."""

from __future__ import annotations

import asyncio
import email.parser
import email.policy
import json
import time
import uuid
from datetime import UTC, datetime

import httpx
import respx

from app import __version__
from app.scrt import AccessToken, ScrtClient, ScrtConfig
from tests.scrt.conftest import BASE, DEPLOYMENT, FAST_RETRY, ORG_18, body_of, make_jwt

V2 = "/iamessage/api/v2"
CID = "0f8e2c1a-8d3b-4c55-b0a9-3c2f1e0d9a77"
TOKEN = "tok-abc"


def assert_bearer(request: httpx.Request, token: str = TOKEN) -> None:
    assert request.headers["authorization"] == f"Bearer {token}"
    assert "x-org-id" not in request.headers


def assert_uuid4(value: str) -> None:
    parsed = uuid.UUID(value)
    assert parsed.version == 4
    assert value == str(parsed)  # lowercase, canonical form


def token_response(token: str) -> httpx.Response:
    return httpx.Response(
        200,
        json={
            "accessToken": token,
            "lastEventId": 2147867834,
            "context": {
                "endUser": {"role": "EndUser", "subject": "v2/iamessage/UNAUTH/NA/uid:1"},
                "configuration": {"embeddedServiceConfig": {"forms": [{"formType": "PreChat"}]}},
            },
        },
    )


async def test_guest_token_posts_deployment_and_context_without_authorization(
    scrt: ScrtClient, router: respx.MockRouter
) -> None:
    exp = int(time.time()) + 600
    jwt_token = make_jwt(exp)
    route = router.post(f"{V2}/authorization/unauthenticated/access-token").mock(
        return_value=token_response(jwt_token)
    )

    token = await scrt.guest_token()

    request = route.calls.last.request
    assert "authorization" not in request.headers
    assert request.headers["content-type"] == "application/json"
    assert body_of(request) == {
        "orgId": ORG_18,
        "esDeveloperName": DEPLOYMENT,
        "capabilitiesVersion": "1",
        "platform": "Web",
        "context": {"appName": "miaw-mcp", "clientVersion": __version__},
    }
    assert token.bearer == jwt_token
    assert token.last_event_id == "2147867834"
    assert token.subject == "v2/iamessage/UNAUTH/NA/uid:1"
    assert token.expires_at == datetime.fromtimestamp(exp, tz=UTC)
    assert token.embedded_service_config == {"forms": [{"formType": "PreChat"}]}


async def test_verified_token_sends_jwt_identity(
    scrt: ScrtClient, router: respx.MockRouter
) -> None:
    route = router.post(f"{V2}/authorization/authenticated/access-token").mock(
        return_value=token_response("opaque-not-a-jwt")
    )

    token = await scrt.verified_token("customer.identity.jwt")

    body = body_of(route.calls.last.request)
    assert body["authorizationType"] == "JWT"
    assert body["customerIdentityToken"] == "customer.identity.jwt"
    assert body["orgId"] == ORG_18 and body["context"]["appName"] == "miaw-mcp"
    assert "authorization" not in route.calls.last.request.headers
    assert token.expires_at is None


async def test_continuation_token_is_a_get_with_the_callers_bearer(
    scrt: ScrtClient, router: respx.MockRouter
) -> None:
    route = router.get(f"{V2}/authorization/continuation-access-token").mock(
        return_value=httpx.Response(200, json={"accessToken": "tok-2"})
    )

    token = await scrt.continuation_token(TOKEN)

    assert_bearer(route.calls.last.request)
    assert route.calls.last.request.content == b""
    assert token.bearer == "tok-2" and token.last_event_id is None


async def test_revoke_token_deletes_with_bearer(scrt: ScrtClient, router: respx.MockRouter) -> None:
    route = router.delete(f"{V2}/authorization/authenticated/access-token").mock(
        return_value=httpx.Response(204)
    )

    await scrt.revoke_token(TOKEN)

    assert_bearer(route.calls.last.request)


async def test_create_conversation_generates_a_uuid4_and_ignores_the_body(
    scrt: ScrtClient, router: respx.MockRouter
) -> None:
    route = router.post(f"{V2}/conversation").mock(
        return_value=httpx.Response(201, text="not json at all")
    )

    conversation_id = await scrt.create_conversation(
        TOKEN, routing_attributes={"_firstName": "Ana"}, language="en_US"
    )

    assert_uuid4(conversation_id)
    request = route.calls.last.request
    assert_bearer(request)
    assert request.headers["content-type"] == "application/json"
    assert body_of(request) == {
        "conversationId": conversation_id,
        "esDeveloperName": DEPLOYMENT,
        "routingAttributes": {"_firstName": "Ana"},
        "language": "en_US",
    }


async def test_create_conversation_uses_a_given_id_and_omits_empty_options(
    scrt: ScrtClient, router: respx.MockRouter
) -> None:
    route = router.post(f"{V2}/conversation").mock(return_value=httpx.Response(200))

    assert await scrt.create_conversation(TOKEN, conversation_id=CID) == CID
    assert body_of(route.calls.last.request) == {
        "conversationId": CID,
        "esDeveloperName": DEPLOYMENT,
    }


async def test_routing_status_reads_the_conversation_resource(
    scrt: ScrtClient, router: respx.MockRouter
) -> None:
    route = router.get(f"{V2}/conversation/{CID}").mock(
        return_value=httpx.Response(200, json={"conversationId": CID, "routingStatus": "ROUTED"})
    )

    status = await scrt.routing_status(TOKEN, CID)

    assert_bearer(route.calls.last.request)
    assert (status.conversation_id, status.routing_status) == (CID, "ROUTED")


async def test_path_ids_are_percent_encoded(scrt: ScrtClient, router: respx.MockRouter) -> None:
    route = router.get(f"{V2}/conversation/a%2Fb%3Fc").mock(
        return_value=httpx.Response(200, json={})
    )

    status = await scrt.routing_status(TOKEN, "a/b?c")

    assert route.called
    assert status.routing_status is None and status.conversation_id == "a/b?c"


async def test_list_conversations_sends_flags_and_parses_counts(
    scrt: ScrtClient, router: respx.MockRouter
) -> None:
    route = router.get(f"{V2}/conversation/list").mock(
        return_value=httpx.Response(
            200,
            json={
                "openConversationsFound": 1,
                "closedConversationsFound": 2,
                "conversations": [
                    {"conversationId": CID, "startTimestamp": 10, "endTimestamp": 0},
                    {"noId": True},
                ],
            },
        )
    )

    result = await scrt.list_conversations(TOKEN, include_closed=True, limit=50)
    default = await scrt.list_conversations(TOKEN)

    first, second = (call.request for call in route.calls)
    assert dict(first.url.params) == {"inclClosedConvs": "true", "limit": "50"}
    assert dict(second.url.params) == {"inclClosedConvs": "false"}
    assert_bearer(first)
    assert (result.open_count, result.closed_count) == (1, 2)
    assert [c.conversation_id for c in result.conversations] == [CID]
    assert result.conversations[0].end_timestamp == 0
    assert default.conversations == result.conversations


async def test_list_entries_sends_every_filter_and_parses_both_payload_forms(
    scrt: ScrtClient, router: respx.MockRouter
) -> None:
    payload = {
        "entryType": "Message",
        "id": "m1",
        "abstractMessage": {
            "messageType": "StaticContentMessage",
            "staticContent": {"formatType": "Text", "text": "Hello"},
        },
    }
    entries = [
        {"entryType": "Message", "identifier": "m2", "entryPayload": json.dumps(payload)},
        {"entryType": "Message", "identifier": "m1", "entryPayload": payload},
    ]
    route = router.get(f"{V2}/conversation/{CID}/entries").mock(
        return_value=httpx.Response(200, json={"conversationEntries": entries})
    )

    result = await scrt.list_entries(
        TOKEN,
        CID,
        limit=50,
        start_timestamp=1000,
        end_timestamp=2000,
        direction="FromEnd",
        entry_types=["Message", "ParticipantChanged", "RoutingResult"],
    )

    request = route.calls.last.request
    assert_bearer(request)
    assert dict(request.url.params) == {
        "limit": "50",
        "startTimestamp": "1000",
        "endTimestamp": "2000",
        "direction": "FromEnd",
        "entryTypeFilter": "Message,ParticipantChanged,RoutingResult",
    }
    assert [(e.identifier, e.text, e.conversation_id) for e in result] == [
        ("m2", "Hello", CID),
        ("m1", "Hello", CID),
    ]


async def test_list_entries_without_filters_sends_no_query(
    scrt: ScrtClient, router: respx.MockRouter
) -> None:
    route = router.get(f"{V2}/conversation/{CID}/entries").mock(
        return_value=httpx.Response(200, json={})
    )

    assert await scrt.list_entries(TOKEN, CID) == []
    assert route.calls.last.request.url.query == b""


async def test_send_message_posts_text_with_a_fresh_message_id(
    scrt: ScrtClient, router: respx.MockRouter
) -> None:
    route = router.post(f"{V2}/conversation/{CID}/message").mock(return_value=httpx.Response(202))

    sent = await scrt.send_message(TOKEN, CID, "I need help")

    request = route.calls.last.request
    assert_bearer(request)
    assert request.headers["content-type"] == "application/json"
    assert body_of(request) == {
        "message": {
            "id": sent.message_id,
            "messageType": "StaticContentMessage",
            "staticContent": {"formatType": "Text", "text": "I need help"},
        },
        "esDeveloperName": DEPLOYMENT,
    }
    assert_uuid4(sent.message_id)
    assert sent.client_timestamp is None


async def test_send_message_for_a_new_session_carries_prechat_and_reads_the_202_body(
    scrt: ScrtClient, router: respx.MockRouter
) -> None:
    route = router.post(f"{V2}/conversation/{CID}/message").mock(
        return_value=httpx.Response(
            202, json={"conversationEntries": [{"id": "given-id", "clientTimestamp": 1741}]}
        )
    )

    sent = await scrt.send_message(
        TOKEN,
        CID,
        "again",
        message_id="given-id",
        in_reply_to="prev",
        new_session=True,
        routing_attributes={"Order_Number": "A-1001"},
        language="en_US",
    )

    body = body_of(route.calls.last.request)
    assert body["message"]["id"] == "given-id"
    assert body["message"]["inReplyToMessageId"] == "prev"
    assert body["isNewMessagingSession"] is True
    assert body["routingAttributes"] == {"Order_Number": "A-1001"}
    assert body["language"] == "en_US"
    assert (sent.message_id, sent.client_timestamp) == ("given-id", 1741)


async def test_send_choice_posts_a_choices_response(
    scrt: ScrtClient, router: respx.MockRouter
) -> None:
    route = router.post(f"{V2}/conversation/{CID}/message").mock(
        return_value=httpx.Response(200, json={})
    )

    sent = await scrt.send_choice(TOKEN, CID, ["opt-1"], in_reply_to="choices-msg")

    assert body_of(route.calls.last.request) == {
        "message": {
            "id": sent.message_id,
            "messageType": "ChoicesResponseMessage",
            "choicesResponse": {
                "formatType": "Selections",
                "selectedOptions": [{"optionIdentifier": "opt-1"}],
            },
            "inReplyToMessageId": "choices-msg",
        },
        "esDeveloperName": DEPLOYMENT,
    }
    assert_bearer(route.calls.last.request)


async def test_typing_indicators_post_entries(scrt: ScrtClient, router: respx.MockRouter) -> None:
    route = router.post(f"{V2}/conversation/{CID}/entry").mock(return_value=httpx.Response(202))

    await scrt.send_typing(TOKEN, CID)
    await scrt.send_typing(TOKEN, CID, typing=False)

    started, stopped = (body_of(call.request) for call in route.calls)
    assert started["entryType"] == "TypingStartedIndicator"
    assert stopped["entryType"] == "TypingStoppedIndicator"
    assert set(started) == {"entryType", "id"}
    assert_uuid4(started["id"])
    assert started["id"] != stopped["id"]
    assert_bearer(route.calls.last.request)


async def test_acknowledgements_post_delivery_and_read_acks(
    scrt: ScrtClient, router: respx.MockRouter
) -> None:
    route = router.post(f"{V2}/conversation/{CID}/acknowledge-entries").mock(
        return_value=httpx.Response(202)
    )

    await scrt.acknowledge_entries(TOKEN, CID, delivered=["e1", "e2"], read=["e1"])

    acks = body_of(route.calls.last.request)["acks"]
    assert [(a["entryType"], a["conversationEntryId"]) for a in acks] == [
        ("Delivery", "e1"),
        ("Delivery", "e2"),
        ("Read", "e1"),
    ]
    assert len({a["id"] for a in acks}) == 3
    for ack in acks:
        assert_uuid4(ack["id"])
    assert_bearer(route.calls.last.request)


async def test_send_file_posts_multipart_with_entry_json_and_file(
    scrt: ScrtClient, router: respx.MockRouter
) -> None:
    route = router.post(f"{V2}/conversation/{CID}/file").mock(return_value=httpx.Response(202))

    sent = await scrt.send_file(
        TOKEN, CID, filename="receipt.pdf", content=b"%PDF-1.4", mime_type="application/pdf",
        caption="my receipt",
    )  # fmt: skip

    request = route.calls.last.request
    assert_bearer(request)
    content_type = request.headers["content-type"]
    assert content_type.startswith("multipart/form-data; boundary=")
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + request.content
    )
    parts = {
        part.get_param("name", header="content-disposition"): part for part in message.iter_parts()
    }
    entry_part, file_part = parts["messageEntry"], parts["fileData"]
    assert entry_part.get_content_type() == "application/json"
    entry_json = entry_part.get_payload(decode=True)
    assert isinstance(entry_json, bytes)
    entry = json.loads(entry_json)
    assert entry["esDeveloperName"] == DEPLOYMENT
    assert entry["message"]["id"] == sent.message_id
    assert entry["message"]["text"] == "my receipt"
    assert_uuid4(entry["message"]["fileId"])
    assert "isNewMessagingSession" not in entry
    assert file_part.get_content_type() == "application/pdf"
    assert file_part.get_filename() == "receipt.pdf"
    assert file_part.get_payload(decode=True) == b"%PDF-1.4"


async def test_close_and_end_session_delete_without_body_and_encode_the_query(
    http: httpx.AsyncClient, router: respx.MockRouter
) -> None:
    config = ScrtConfig(scrt_url=BASE, org_id=ORG_18, es_developer_name="Chat & Co/1")
    scrt = ScrtClient(http, config, retry=FAST_RETRY)
    close = router.delete(f"{V2}/conversation/{CID}").mock(return_value=httpx.Response(204))
    end = router.delete(f"{V2}/conversation/{CID}/session").mock(return_value=httpx.Response(204))

    await scrt.close_conversation(TOKEN, CID)
    await scrt.end_session(TOKEN, CID)

    for request in (close.calls.last.request, end.calls.last.request):
        assert_bearer(request)
        assert request.content == b""
        assert request.url.params["esDeveloperName"] == "Chat & Co/1"
        assert b"Chat%20%26%20Co" in request.url.query or b"Chat+%26+Co" in request.url.query


async def test_embedded_service_config_is_unauthenticated(
    scrt: ScrtClient, router: respx.MockRouter
) -> None:
    route = router.get("/embeddedservice/v1/embedded-service-config").mock(
        return_value=httpx.Response(200, json={"embeddedServiceConfig": {"name": DEPLOYMENT}})
    )

    config = await scrt.embedded_service_config(language="en_US")

    request = route.calls.last.request
    assert "authorization" not in request.headers
    assert dict(request.url.params) == {
        "orgId": ORG_18,
        "esConfigName": DEPLOYMENT,
        "language": "en_US",
    }
    assert config["embeddedServiceConfig"]["name"] == DEPLOYMENT


async def test_business_hours_parse_windows(scrt: ScrtClient, router: respx.MockRouter) -> None:
    route = router.get("/embeddedservice/v1/businesshours").mock(
        return_value=httpx.Response(
            200,
            json={"businessHoursInfo": {"businessHours": [{"startTime": 100, "endTime": 200}]}},
        )
    )

    hours = await scrt.business_hours()

    assert dict(route.calls.last.request.url.params) == {
        "orgId": ORG_18,
        "esConfigName": DEPLOYMENT,
    }
    assert "authorization" not in route.calls.last.request.headers
    assert hours.is_open(150) and not hours.is_open(200)


async def test_an_access_token_object_is_accepted_as_the_bearer(
    scrt: ScrtClient, router: respx.MockRouter
) -> None:
    route = router.get(f"{V2}/conversation/{CID}").mock(return_value=httpx.Response(200))
    token = AccessToken.from_response({"accessToken": "tok-obj"})

    await scrt.routing_status(token, CID)

    assert_bearer(route.calls.last.request, "tok-obj")


async def test_concurrent_calls_on_one_shared_client_keep_their_own_tokens(
    scrt: ScrtClient, router: respx.MockRouter
) -> None:
    # Both requests are held until both have arrived, so they are truly in flight together.
    both_in_flight = asyncio.Barrier(2)

    async def echo_token(request: httpx.Request) -> httpx.Response:
        await both_in_flight.wait()
        token = request.headers["authorization"].removeprefix("Bearer ")
        return httpx.Response(200, json={"routingStatus": f"seen:{token}"})

    router.get(f"{V2}/conversation/{CID}").mock(side_effect=echo_token)

    alice, bob = await asyncio.gather(
        scrt.routing_status("alice-token", CID), scrt.routing_status("bob-token", CID)
    )

    assert alice.routing_status == "seen:alice-token"
    assert bob.routing_status == "seen:bob-token"
