"""End-user sends: messages, files, typing indicators, acknowledgements."""

from __future__ import annotations

import json

from tests.simulator.conftest import (
    API,
    DELIVERY_ACK,
    DEPLOYMENT,
    MESSAGE,
    PARTICIPANT_CHANGED,
    READ_ACK,
    ROUTING_RESULT,
    SESSION_STATUS_CHANGED,
    TYPING_STARTED,
    TYPING_STOPPED,
    Sim,
    SimFactory,
    assert_error,
    match,
    new_id,
)

# -- send message ----------------------------------------------------------------------------


async def test_send_message_is_202_with_the_message_id(sim: Sim) -> None:
    guest = await sim.guest()
    cid = await sim.create(guest)
    message_id = new_id()
    response = await sim.send(guest, cid, "I need help with my order", message_id)
    assert response.status_code == 202, response.text
    body = response.json()
    assert len(body["conversationEntries"]) == 1
    accepted = body["conversationEntries"][0]
    assert accepted["id"] == message_id
    assert isinstance(accepted["clientTimestamp"], int) and accepted["clientTimestamp"] > 0


async def test_send_message_is_echoed_on_sse_as_guest_end_user(live: Sim) -> None:
    guest = await live.guest()
    async with live.stream(guest) as stream:
        cid = await live.start_chat(guest, stream)
        message_id = new_id()
        assert (await live.send(guest, cid, "hello there", message_id)).status_code == 202
        echo = await stream.wait_for(match(MESSAGE, cid=cid, role="EndUser"))
    assert echo.identifier == message_id
    assert echo.display_name == "Guest"
    assert echo.text == "hello there"
    assert echo.entry["sender"]["subject"] == guest.subject
    assert echo.entry["sender"]["appType"] == "iamessage"
    payload = echo.payload
    assert payload["id"] == message_id
    assert payload["abstractMessage"]["messageType"] == "StaticContentMessage"


async def test_send_message_with_invalid_json_is_400(sim: Sim) -> None:
    guest = await sim.guest()
    cid = await sim.create(guest)
    response = await sim.client.post(
        f"{API}/conversation/{cid}/message",
        content=b"{oops",
        headers={**guest.headers, "Content-Type": "application/json"},
    )
    assert_error(response, 400, "BAD_REQUEST")


async def test_send_message_over_max_chars_is_400(make_sim: SimFactory) -> None:
    sim = await make_sim(max_message_chars=10)
    guest = await sim.guest()
    cid = await sim.create(guest)
    assert (await sim.send(guest, cid, "x" * 10)).status_code == 202
    assert_error(await sim.send(guest, cid, "x" * 11), 400, "BAD_REQUEST")


async def test_send_to_unknown_conversation_is_404(sim: Sim) -> None:
    guest = await sim.guest()
    assert_error(await sim.send(guest, new_id(), "hi"), 404, "NOT_FOUND")


# -- rate limit ------------------------------------------------------------------------------


async def test_send_over_22_messages_per_minute_on_one_conversation_is_429(
    make_sim: SimFactory,
) -> None:
    sim = await make_sim(rate_limits=True)
    guest = await sim.guest()
    cid = await sim.create(guest)
    for i in range(22):
        response = await sim.send(guest, cid, f"message {i}")
        assert response.status_code == 202, (i, response.text)
    assert_error(await sim.send(guest, cid, "one too many"), 429)
    # The limit is per conversation: another conversation still takes messages.
    other = await sim.create(guest)
    assert (await sim.send(guest, other, "fresh conversation")).status_code == 202


async def test_rate_limited_message_is_not_delivered(make_sim: SimFactory) -> None:
    sim = await make_sim(rate_limits=True, messages_per_minute=2)
    guest = await sim.guest()
    cid = await sim.create(guest)
    assert (await sim.send(guest, cid, "one")).status_code == 202
    assert (await sim.send(guest, cid, "two")).status_code == 202
    assert (await sim.send(guest, cid, "three")).status_code == 429
    texts = [
        e["entryPayload"]["abstractMessage"]["staticContent"]["text"]
        for e in await sim.entries(guest, cid, entryTypeFilter="Message", limit=50)
        if e["sender"]["role"] == "EndUser"
    ]
    assert sorted(texts) == ["one", "two"]


async def test_no_429_with_rate_limits_off(sim: Sim) -> None:
    guest = await sim.guest()
    cid = await sim.create(guest)
    for i in range(40):
        response = await sim.send(guest, cid, f"message {i}")
        assert response.status_code == 202, (i, response.text)


# -- 417: no messaging session with per-session pre-chat -------------------------------------


async def test_send_after_agent_ended_with_per_session_prechat_is_417(
    make_sim: SimFactory,
) -> None:
    live = await make_sim(live=True, prechat_display_context="Session")
    guest = await live.guest()
    async with live.stream(guest) as stream:
        cid = await live.start_chat(guest, stream)
        await live.transfer(guest, cid, stream)
        await live.agent_join(cid)
        await live.agent_end(cid)
        await stream.wait_for(match(SESSION_STATUS_CHANGED, cid=cid))

        message_id = new_id()
        assert_error(await live.send(guest, cid, "are you there?", message_id), 417)
        # Nothing was recorded for the refused send.
        after_417 = await live.sentinel(guest, cid, stream)
        assert not [f for f in after_417 if f.event == MESSAGE]

        response = await live.send(
            guest,
            cid,
            "are you there?",
            message_id,
            isNewMessagingSession=True,
            routingAttributes={"_firstName": "Ana"},
        )
        assert response.status_code == 202, response.text
        frames = await stream.until(match(MESSAGE, cid=cid, role="Chatbot"))
    events = [f.event for f in frames]
    assert ROUTING_RESULT in events and SESSION_STATUS_CHANGED in events
    initial = next(f for f in frames if f.event == ROUTING_RESULT)
    assert initial.payload["routingType"] == "Initial"
    active = next(f for f in frames if f.event == SESSION_STATUS_CHANGED)
    assert active.payload["sessionStatus"] == "Active"
    echo = [f for f in frames if f.event == MESSAGE and f.role == "EndUser"]
    assert [f.identifier for f in echo] == [message_id]
    assert (await live.control_conversation(cid))["routingAttributes"] == {"_firstName": "Ana"}


async def test_send_after_user_ended_session_with_per_session_prechat_is_417(
    make_sim: SimFactory,
) -> None:
    sim = await make_sim(prechat_display_context="Session")
    guest = await sim.guest()
    cid = await sim.create(guest)
    assert (await sim.end_session(guest, cid)).status_code == 204
    assert_error(await sim.send(guest, cid, "hello?"), 417)
    response = await sim.send(guest, cid, "hello?", isNewMessagingSession=True)
    assert response.status_code == 202, response.text
    # The new session is active: a plain send works again.
    assert (await sim.send(guest, cid, "and again")).status_code == 202


async def test_send_after_agent_ended_without_per_session_prechat_starts_new_session(
    live: Sim,
) -> None:
    guest = await live.guest()
    async with live.stream(guest) as stream:
        cid = await live.start_chat(guest, stream)
        await live.transfer(guest, cid, stream)
        await live.agent_join(cid)
        await live.agent_end(cid)
        await stream.wait_for(match(SESSION_STATUS_CHANGED, cid=cid))
        response = await live.send(guest, cid, "one more question")
        assert response.status_code == 202, response.text
        frames = await stream.until(match(MESSAGE, cid=cid, role="Chatbot"))
    events = [f.event for f in frames]
    assert events.index(ROUTING_RESULT) < events.index(SESSION_STATUS_CHANGED)
    assert events.index(SESSION_STATUS_CHANGED) < events.index(PARTICIPANT_CHANGED)
    assert frames[events.index(ROUTING_RESULT)].payload["routingType"] == "Initial"
    assert await live.routing_status(guest, cid) == "ROUTED"


# -- typing ----------------------------------------------------------------------------------


async def test_typing_entry_is_202_and_echoed_with_role_end_user(live: Sim) -> None:
    guest = await live.guest()
    async with live.stream(guest) as stream:
        cid = await live.start_chat(guest, stream)
        started, stopped = new_id(), new_id()
        response = await live.typing(guest, cid, started=True, entry_id=started)
        assert response.status_code == 202
        assert response.content == b""
        start_frame = await stream.wait_for(match(TYPING_STARTED, cid=cid))
        assert (await live.typing(guest, cid, started=False, entry_id=stopped)).status_code == 202
        stop_frame = await stream.wait_for(match(TYPING_STOPPED, cid=cid))
    for frame, entry_id, kind in (
        (start_frame, started, "TypingStartedIndicator"),
        (stop_frame, stopped, "TypingStoppedIndicator"),
    ):
        assert frame.role == "EndUser"
        assert frame.identifier == entry_id
        assert frame.payload["entryType"] == kind


async def test_typing_entry_with_unknown_type_is_400(sim: Sim) -> None:
    guest = await sim.guest()
    cid = await sim.create(guest)
    response = await sim.client.post(
        f"{API}/conversation/{cid}/entry",
        json={"entryType": "Typing", "id": new_id()},
        headers=guest.headers,
    )
    assert_error(response, 400, "BAD_REQUEST")


# -- acknowledgements ------------------------------------------------------------------------


async def test_acknowledge_entries_is_202_and_emits_delivery_and_read_events(live: Sim) -> None:
    guest = await live.guest()
    async with live.stream(guest) as stream:
        cid = await live.start_chat(guest, stream)
        greeting = next(f for f in stream.frames if f.event == MESSAGE)
        delivery_id, read_id = new_id(), new_id()
        response = await live.client.post(
            f"{API}/conversation/{cid}/acknowledge-entries",
            json={
                "acks": [
                    {
                        "id": delivery_id,
                        "entryType": "Delivery",
                        "conversationEntryId": greeting.identifier,
                    },
                    {
                        "id": read_id,
                        "entryType": "Read",
                        "conversationEntryId": greeting.identifier,
                    },
                ]
            },
            headers=guest.headers,
        )
        assert response.status_code == 202, response.text
        assert response.content == b""
        frames = await stream.until(match(READ_ACK, cid=cid))
    delivery = next(f for f in frames if f.event == DELIVERY_ACK)
    read = frames[-1]
    assert [f.event for f in frames].index(DELIVERY_ACK) < len(frames) - 1
    for frame, ack_id, kind in (
        (delivery, delivery_id, "DeliveryAcknowledgement"),
        (read, read_id, "ReadAcknowledgement"),
    ):
        assert frame.identifier == ack_id
        assert frame.role == "EndUser"
        assert frame.entry["relatedRecords"][0] == greeting.identifier
        payload = frame.payload
        assert payload["entryType"] == kind
        assert payload["acknowledgedConversationEntryIdentifier"] == greeting.identifier
        assert isinstance(payload["acknowledgementTimestamp"], int)


async def test_acknowledge_entries_with_bad_body_is_400(sim: Sim) -> None:
    guest = await sim.guest()
    cid = await sim.create(guest)
    bodies: list[dict[str, object]] = [
        {},
        {"acks": []},
        {"acks": [{"id": new_id(), "entryType": "Seen"}]},
    ]
    for body in bodies:
        response = await sim.client.post(
            f"{API}/conversation/{cid}/acknowledge-entries", json=body, headers=guest.headers
        )
        assert_error(response, 400, "BAD_REQUEST")


# -- files -----------------------------------------------------------------------------------


async def test_file_upload_is_202_and_an_attachments_message_serves_the_bytes(live: Sim) -> None:
    guest = await live.guest()
    content = b"%PDF-1.4 pretend this is a receipt\n" * 10
    async with live.stream(guest) as stream:
        cid = await live.start_chat(guest, stream)
        message_id = new_id()
        response = await live.upload(
            guest, cid, content, name="receipt.pdf", mime="application/pdf", message_id=message_id
        )
        assert response.status_code == 202, response.text
        frame = await stream.wait_for(match(MESSAGE, cid=cid, role="EndUser"))
    assert frame.identifier == message_id
    static = frame.payload["abstractMessage"]["staticContent"]
    assert static["formatType"] == "Attachments"
    assert static["text"] == "here is the file"
    [attachment] = static["attachments"]
    assert attachment["name"] == "receipt.pdf"
    assert attachment["mimeType"] == "application/pdf"
    download = await live.client.get(live.absolute(attachment["url"]))
    assert download.status_code == 200
    assert download.content == content
    assert download.headers["content-type"].startswith("application/pdf")
    # Kept in the transcript with the same attachment.
    [entry] = [e for e in await live.entries(guest, cid) if e["identifier"] == message_id]
    kept = entry["entryPayload"]["abstractMessage"]["staticContent"]["attachments"][0]
    assert kept["url"] == attachment["url"]


async def test_file_upload_over_5_mb_is_413(sim: Sim) -> None:
    guest = await sim.guest()
    cid = await sim.create(guest)
    too_big = b"\0" * (5 * 1024 * 1024 + 1)
    assert_error(await sim.upload(guest, cid, too_big, name="big.png", mime="image/png"), 413)
    exactly = b"\0" * (5 * 1024 * 1024)
    response = await sim.upload(guest, cid, exactly, name="ok.png", mime="image/png")
    assert response.status_code == 202, response.text


async def test_file_upload_with_disallowed_mime_is_415(sim: Sim) -> None:
    guest = await sim.guest()
    cid = await sim.create(guest)
    response = await sim.upload(
        guest, cid, b"MZ...", name="setup.exe", mime="application/x-msdownload"
    )
    assert_error(response, 415)
    assert [
        e for e in await sim.entries(guest, cid, limit=50) if e["sender"]["role"] == "EndUser"
    ] == []


async def test_file_upload_without_message_entry_is_400(sim: Sim) -> None:
    guest = await sim.guest()
    cid = await sim.create(guest)
    response = await sim.client.post(
        f"{API}/conversation/{cid}/file",
        files={"fileData": ("a.txt", b"hi", "text/plain")},
        headers=guest.headers,
    )
    assert_error(response, 400, "BAD_REQUEST")


async def test_file_upload_needs_a_token(sim: Sim) -> None:
    guest = await sim.guest()
    cid = await sim.create(guest)
    response = await sim.client.post(
        f"{API}/conversation/{cid}/file",
        files={
            "messageEntry": (None, json.dumps({"esDeveloperName": DEPLOYMENT, "message": {}})),
            "fileData": ("a.txt", b"hi", "text/plain"),
        },
    )
    assert_error(response, 401, "UNAUTHORIZED")
