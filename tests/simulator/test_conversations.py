"""Conversation endpoints: create, status, list, entries, close, end session."""

from __future__ import annotations

import uuid

from tests.simulator.conftest import (
    API,
    CLOSE_CONVERSATION,
    DEPLOYMENT,
    MESSAGE,
    PARTICIPANT_CHANGED,
    ROUTING_RESULT,
    SESSION_STATUS_CHANGED,
    STREAM_ONLY_TYPES,
    Frame,
    Guest,
    Sim,
    SseStream,
    assert_error,
    match,
    new_id,
)

ROUTING_STATUSES = {"INITIAL", "ROUTED", "TRANSFER", "NEEDS_ROUTING"}


def transcript_ids(frames: list[Frame]) -> list[str]:
    """Identifiers of the frames the transcript keeps, in stream order."""
    return [f.identifier for f in frames if f.entry["entryType"] not in STREAM_ONLY_TYPES]


async def chat_with_answers(sim: Sim, guest: Guest, stream: SseStream, texts: list[str]) -> str:
    """A conversation where the user said each text and the bot answered each one."""
    cid = await sim.start_chat(guest, stream)
    for text in texts:
        assert (await sim.send(guest, cid, text)).status_code == 202
    if texts:
        await stream.until_count(match(MESSAGE, cid=cid, role="EndUser"), len(texts))
        await stream.until_count(match(MESSAGE, cid=cid, role="Chatbot"), 1 + len(texts))
    return cid


# -- create ----------------------------------------------------------------------------------


async def test_create_conversation_is_201_with_empty_body(sim: Sim) -> None:
    guest = await sim.guest()
    response = await sim.create_response(guest, new_id(), routingAttributes={"_firstName": "Ana"})
    assert response.status_code == 201
    assert response.content == b""


async def test_create_conversation_with_bad_uuid_is_400(sim: Sim) -> None:
    guest = await sim.guest()
    v1 = str(uuid.uuid1())
    bad_variant = str(uuid.uuid4())[:19] + "c" + str(uuid.uuid4())[20:]
    for bad in ("not-a-uuid", "", v1, bad_variant, str(uuid.uuid4()).replace("-", "")):
        body = assert_error(await sim.create_response(guest, bad), 400, "BAD_REQUEST")
        assert body["message"] == "Specify the conversationId in UUID format.", bad


async def test_create_conversation_accepts_uppercase_uuid_and_stores_it_lowercase(
    sim: Sim,
) -> None:
    guest = await sim.guest()
    cid = str(uuid.uuid4())
    response = await sim.create_response(guest, cid.upper())
    assert response.status_code == 201, response.text
    listed = await sim.list_conversations(guest)
    assert [c["conversationId"] for c in listed["conversations"]] == [cid]
    assert await sim.routing_status(guest, cid) in ROUTING_STATUSES


async def test_create_conversation_with_existing_id_is_409(sim: Sim) -> None:
    guest = await sim.guest()
    cid = await sim.create(guest)
    assert_error(await sim.create_response(guest, cid), 409, "CONFLICT")
    assert_error(await sim.create_response(guest, cid.upper()), 409, "CONFLICT")


async def test_create_conversation_needs_a_token(sim: Sim) -> None:
    response = await sim.client.post(
        f"{API}/conversation", json={"conversationId": new_id(), "esDeveloperName": DEPLOYMENT}
    )
    assert_error(response, 401, "UNAUTHORIZED")


# -- routing status --------------------------------------------------------------------------


async def test_routing_status_echoes_conversation_id(sim: Sim) -> None:
    guest = await sim.guest()
    cid = await sim.create(guest)
    response = await sim.client.get(f"{API}/conversation/{cid}", headers=guest.headers)
    assert response.status_code == 200
    body = response.json()
    assert body["conversationId"] == cid
    assert body["routingStatus"] in ROUTING_STATUSES


async def test_routing_status_is_routed_once_the_bot_is_on(live: Sim) -> None:
    guest = await live.guest()
    async with live.stream(guest) as stream:
        cid = await live.start_chat(guest, stream)
        assert await live.routing_status(guest, cid) == "ROUTED"


async def test_unknown_conversation_is_404(sim: Sim) -> None:
    guest = await sim.guest()
    response = await sim.client.get(f"{API}/conversation/{new_id()}", headers=guest.headers)
    assert_error(response, 404, "NOT_FOUND")


async def test_bad_uuid_in_path_is_400_or_404_never_200(sim: Sim) -> None:
    guest = await sim.guest()
    response = await sim.client.get(f"{API}/conversation/not-a-uuid", headers=guest.headers)
    assert response.status_code in (400, 404)


# -- other subjects --------------------------------------------------------------------------


async def test_guest_b_cannot_read_send_to_or_close_guest_a_conversation(sim: Sim) -> None:
    a, b = await sim.guest(), await sim.guest()
    cid = await sim.create(a)
    url = f"{API}/conversation/{cid}"
    attempts = [
        sim.client.get(url, headers=b.headers),
        sim.client.get(f"{url}/entries", headers=b.headers),
        sim.send(b, cid, "let me in"),
        sim.typing(b, cid, started=True),
        sim.upload(b, cid, b"x"),
        sim.end_session(b, cid),
        sim.close(b, cid),
    ]
    for attempt in attempts:
        assert_error(await attempt, 404, "NOT_FOUND")
    # B does not see it in its list; A's conversation is untouched.
    assert (await sim.list_conversations(b))["conversations"] == []
    listed = await sim.list_conversations(a)
    assert listed["openConversationsFound"] == 1


async def test_other_subject_cannot_reuse_a_taken_conversation_id(sim: Sim) -> None:
    a, b = await sim.guest(), await sim.guest()
    cid = await sim.create(a)
    response = await sim.create_response(b, cid)
    assert response.status_code in (404, 409)
    assert (await sim.list_conversations(b))["conversations"] == []


# -- list conversations ----------------------------------------------------------------------


async def test_list_conversations_counts_open_and_closed(sim: Sim) -> None:
    guest = await sim.guest()
    first = await sim.create(guest)
    second = await sim.create(guest)
    third = await sim.create(guest)
    assert (await sim.close(guest, second)).status_code == 204

    open_only = await sim.list_conversations(guest)
    assert open_only["openConversationsFound"] == 2
    assert {c["conversationId"] for c in open_only["conversations"]} == {first, third}
    for conv in open_only["conversations"]:
        assert conv["endTimestamp"] == 0
        assert isinstance(conv["startTimestamp"], int) and conv["startTimestamp"] > 0

    everything = await sim.list_conversations(guest, inclClosedConvs="true")
    assert everything["openConversationsFound"] == 2
    assert everything["closedConversationsFound"] == 1
    by_id = {c["conversationId"]: c for c in everything["conversations"]}
    assert set(by_id) == {first, second, third}
    assert by_id[second]["endTimestamp"] >= by_id[second]["startTimestamp"] > 0

    explicit_false = await sim.list_conversations(guest, inclClosedConvs="false")
    assert {c["conversationId"] for c in explicit_false["conversations"]} == {first, third}


async def test_list_conversations_limit_and_cap_at_50(sim: Sim) -> None:
    guest = await sim.guest()
    for _ in range(52):
        await sim.create(guest)
    assert len((await sim.list_conversations(guest, limit=3))["conversations"]) == 3
    assert len((await sim.list_conversations(guest))["conversations"]) == 20
    capped = await sim.list_conversations(guest, limit=100)
    assert len(capped["conversations"]) == 50
    assert capped["openConversationsFound"] == 52


async def test_list_conversations_is_per_subject(sim: Sim) -> None:
    a, b = await sim.guest(), await sim.guest()
    await sim.create(a)
    mine = await sim.create(b)
    listed = await sim.list_conversations(b)
    assert [c["conversationId"] for c in listed["conversations"]] == [mine]
    assert listed["openConversationsFound"] == 1


# -- list entries ----------------------------------------------------------------------------


async def test_entries_have_object_payloads_newest_first(live: Sim) -> None:
    guest = await live.guest()
    async with live.stream(guest) as stream:
        cid = await chat_with_answers(live, guest, stream, ["one", "two"])
        streamed = [f for f in stream.frames if f.conversation_id == cid]

    entries = await live.entries(guest, cid)
    for entry in entries:
        assert isinstance(entry["entryPayload"], dict), entry
        assert entry["entryPayload"]["entryType"] == entry["entryType"]
        assert {"identifier", "sender", "senderDisplayName", "transcriptedTimestamp"} <= set(entry)
    assert [e["identifier"] for e in entries] == transcript_ids(streamed)[::-1]
    assert entries[0]["entryType"] == "Message"
    assert entries[0]["sender"]["role"] == "Chatbot"
    stamps = [e["transcriptedTimestamp"] for e in entries]
    assert stamps == sorted(stamps, reverse=True)


async def test_entries_from_start_are_oldest_first(live: Sim) -> None:
    guest = await live.guest()
    async with live.stream(guest) as stream:
        cid = await chat_with_answers(live, guest, stream, ["one"])
        streamed = [f for f in stream.frames if f.conversation_id == cid]
    entries = await live.entries(guest, cid, direction="FromStart")
    assert [e["identifier"] for e in entries] == transcript_ids(streamed)
    assert entries[0]["entryType"] == "RoutingResult"


async def test_entries_limit_and_cap_at_50(live: Sim) -> None:
    guest = await live.guest()
    async with live.stream(guest) as stream:
        cid = await chat_with_answers(live, guest, stream, [f"message {i}" for i in range(25)])
    newest_two = await live.entries(guest, cid, limit=2)
    default_page = await live.entries(guest, cid)
    assert len(default_page) == 20
    assert newest_two == default_page[:2]
    assert newest_two[0]["sender"]["role"] == "Chatbot"  # the answer to "message 24"
    capped = await live.entries(guest, cid, limit=500)
    assert len(capped) == 50
    assert capped[:20] == default_page
    oldest = await live.entries(guest, cid, limit=500, direction="FromStart")
    assert len(oldest) == 50
    assert oldest[0]["entryType"] == "RoutingResult"


async def test_entries_timestamp_window_is_inclusive(live: Sim) -> None:
    guest = await live.guest()
    async with live.stream(guest) as stream:
        cid = await chat_with_answers(live, guest, stream, ["one", "two", "three"])
    everything = await live.entries(guest, cid, direction="FromStart", limit=50)
    assert len(everything) >= 8
    start = everything[2]["transcriptedTimestamp"]
    end = everything[5]["transcriptedTimestamp"]
    expected = [e["identifier"] for e in everything if start <= e["transcriptedTimestamp"] <= end]
    window = await live.entries(
        guest, cid, direction="FromStart", startTimestamp=start, endTimestamp=end, limit=50
    )
    assert [e["identifier"] for e in window] == expected
    assert everything[2]["identifier"] in expected and everything[5]["identifier"] in expected
    after = await live.entries(guest, cid, startTimestamp=end, limit=50)
    assert all(e["transcriptedTimestamp"] >= end for e in after)
    before = await live.entries(guest, cid, endTimestamp=start, limit=50)
    assert all(e["transcriptedTimestamp"] <= start for e in before)
    assert len(after) + len(before) >= 2


async def test_entries_type_filter(live: Sim) -> None:
    guest = await live.guest()
    async with live.stream(guest) as stream:
        cid = await chat_with_answers(live, guest, stream, ["one"])
    messages = await live.entries(guest, cid, entryTypeFilter="Message")
    assert messages and {e["entryType"] for e in messages} == {"Message"}
    assert len(messages) == 3  # greeting, "one", answer
    mixed = await live.entries(
        guest, cid, entryTypeFilter="Message,ParticipantChanged,RoutingResult"
    )
    assert {e["entryType"] for e in mixed} == {"Message", "ParticipantChanged", "RoutingResult"}


async def test_entries_leave_out_typing_acks_and_queue_positions(live: Sim) -> None:
    guest = await live.guest()
    async with live.stream(guest) as stream:
        cid = await live.start_chat(guest, stream)
        await live.sentinel(guest, cid, stream)
        greeting = next(f for f in stream.frames if f.event == MESSAGE)
        response = await live.client.post(
            f"{API}/conversation/{cid}/acknowledge-entries",
            json={
                "acks": [
                    {
                        "id": new_id(),
                        "entryType": "Read",
                        "conversationEntryId": greeting.identifier,
                    }
                ]
            },
            headers=guest.headers,
        )
        assert response.status_code == 202
        await live.transfer(guest, cid, stream)
        await live.sentinel(guest, cid, stream)
    types = {e["entryType"] for e in await live.entries(guest, cid, limit=50)}
    assert types.isdisjoint(STREAM_ONLY_TYPES), types
    assert "Message" in types and "RoutingResult" in types


# -- close -----------------------------------------------------------------------------------


async def test_close_conversation_is_204_then_close_event_and_listed_closed(live: Sim) -> None:
    guest = await live.guest()
    async with live.stream(guest) as stream:
        cid = await live.start_chat(guest, stream)
        response = await live.close(guest, cid)
        assert response.status_code == 204
        assert response.content == b""
        frames = await stream.until(match(CLOSE_CONVERSATION, cid=cid))

    events = [f.event for f in frames]
    assert events == [PARTICIPANT_CHANGED, SESSION_STATUS_CHANGED, CLOSE_CONVERSATION]
    removed = frames[0].payload["entries"][0]
    assert removed["operation"] == "remove"
    assert removed["participant"]["role"] == "Chatbot"
    ended = frames[1].payload
    assert ended["sessionStatus"] == "Ended"
    assert ended["sessionEndedByRole"] == "EndUser"
    assert frames[2].payload["conversationIdentifier"] == cid

    listed = await live.list_conversations(guest)
    assert listed["openConversationsFound"] == 0
    assert listed["conversations"] == []
    everything = await live.list_conversations(guest, inclClosedConvs="true")
    assert everything["closedConversationsFound"] == 1
    assert everything["conversations"][0]["endTimestamp"] > 0


async def test_send_after_close_is_400_conversation_closed(sim: Sim) -> None:
    guest = await sim.guest()
    cid = await sim.create(guest)
    assert (await sim.close(guest, cid)).status_code == 204
    body = assert_error(await sim.send(guest, cid, "anyone?"), 400, "BAD_REQUEST")
    assert body["message"] == "The conversation is closed."
    # The transcript stays readable.
    await sim.entries(guest, cid)


async def test_close_twice_is_an_error(sim: Sim) -> None:
    guest = await sim.guest()
    cid = await sim.create(guest)
    assert (await sim.close(guest, cid)).status_code == 204
    assert (await sim.close(guest, cid)).status_code in (400, 404)


# -- end session -----------------------------------------------------------------------------


async def test_end_session_is_204_ended_by_end_user_and_conversation_stays_open(
    live: Sim,
) -> None:
    guest = await live.guest()
    async with live.stream(guest) as stream:
        cid = await live.start_chat(guest, stream)
        response = await live.end_session(guest, cid)
        assert response.status_code == 204
        assert response.content == b""
        frames = await stream.until(match(SESSION_STATUS_CHANGED, cid=cid))
        later = await live.sentinel(guest, cid, stream)

    assert [f.event for f in frames] == [PARTICIPANT_CHANGED, SESSION_STATUS_CHANGED]
    assert frames[0].payload["entries"][0]["operation"] == "remove"
    assert frames[1].payload["sessionStatus"] == "Ended"
    assert frames[1].payload["sessionEndedByRole"] == "EndUser"
    assert CLOSE_CONVERSATION not in {f.event for f in later}
    listed = await live.list_conversations(guest)
    assert [c["conversationId"] for c in listed["conversations"]] == [cid]
    assert listed["conversations"][0]["endTimestamp"] == 0


async def test_message_after_end_session_starts_a_new_session(live: Sim) -> None:
    guest = await live.guest()
    async with live.stream(guest) as stream:
        cid = await live.start_chat(guest, stream)
        first_session = next(
            f.payload["sessionId"] for f in stream.frames if f.event == SESSION_STATUS_CHANGED
        )
        assert (await live.end_session(guest, cid)).status_code == 204
        await stream.wait_for(match(SESSION_STATUS_CHANGED, cid=cid))
        response = await live.send(guest, cid, "Hello again")
        assert response.status_code == 202
        frames = await stream.until(match(MESSAGE, cid=cid, role="Chatbot"))
    events = [f.event for f in frames]
    assert MESSAGE in events
    routing = [f for f in frames if f.event == ROUTING_RESULT]
    assert routing and routing[0].payload["routingType"] == "Initial"
    active = [f for f in frames if f.event == SESSION_STATUS_CHANGED]
    assert active and active[0].payload["sessionStatus"] == "Active"
    assert active[0].payload["sessionId"] != first_session
    added = [f for f in frames if f.event == PARTICIPANT_CHANGED]
    assert added and added[0].payload["entries"][0]["participant"]["role"] == "Chatbot"
    assert events.index(ROUTING_RESULT) < events.index(SESSION_STATUS_CHANGED)
    assert events.index(SESSION_STATUS_CHANGED) < events.index(PARTICIPANT_CHANGED)
    echo = [f for f in frames if f.event == MESSAGE and f.role == "EndUser"]
    assert [f.text for f in echo] == ["Hello again"]
