"""Scripted actors and their event order (docs/simulator.md "Scripted actors")."""

from __future__ import annotations

from tests.simulator.conftest import (
    CLOSE_CONVERSATION,
    MESSAGE,
    PARTICIPANT_CHANGED,
    QUEUE_POSITION,
    ROUTING_RESULT,
    ROUTING_WORK_RESULT,
    SESSION_STATUS_CHANGED,
    TYPING_STARTED,
    TYPING_STOPPED,
    Frame,
    Sim,
    SimFactory,
    match,
)


def participant_change(frame: Frame) -> tuple[str, str, str]:
    [change] = frame.payload["entries"]
    return change["operation"], change["participant"]["role"], change["displayName"]


def events(frames: list[Frame]) -> list[str]:
    return [f.event or "" for f in frames]


async def test_create_emits_initial_routing_active_session_bot_join_and_greeting(
    live: Sim,
) -> None:
    guest = await live.guest()
    async with live.stream(guest) as stream:
        cid = await live.create(guest)
        frames = await stream.until(match(MESSAGE, cid=cid, role="Chatbot"))
    assert events(frames) == [ROUTING_RESULT, SESSION_STATUS_CHANGED, PARTICIPANT_CHANGED, MESSAGE]
    routing, session, joined, greeting = frames
    assert routing.payload["routingType"] == "Initial"
    assert routing.payload["failureType"] == "None"
    assert session.payload["sessionStatus"] == "Active"
    assert session.payload["sessionStatusPrev"] == "Waiting"
    assert session.payload["sessionId"].startswith("0Mw")
    assert session.payload["conversationIdentifier"] == cid
    assert participant_change(joined) == ("add", "Chatbot", "Agentforce")
    assert joined.payload["entries"][0]["participant"]["appType"] == "chatbot"
    assert greeting.display_name == "Agentforce"
    assert greeting.entry["sender"]["appType"] == "chatbot"
    assert greeting.text


async def test_bot_name_option_names_the_bot(make_sim: SimFactory) -> None:
    live = await make_sim(live=True, bot_name="Astro")
    guest = await live.guest()
    async with live.stream(guest) as stream:
        await live.start_chat(guest, stream)
    joined = next(f for f in stream.frames if f.event == PARTICIPANT_CHANGED)
    assert participant_change(joined) == ("add", "Chatbot", "Astro")
    assert stream.frames[-1].display_name == "Astro"


async def test_plain_question_gets_a_bot_answer_without_transfer(live: Sim) -> None:
    guest = await live.guest()
    async with live.stream(guest) as stream:
        cid = await live.start_chat(guest, stream)
        assert (await live.send(guest, cid, "Where is my personal order?")).status_code == 202
        frames = await stream.until(match(MESSAGE, cid=cid, role="Chatbot"))
        frames += await live.sentinel(guest, cid, stream)
    assert events(frames) == [MESSAGE, MESSAGE]
    assert frames[0].role == "EndUser"
    assert frames[1].role == "Chatbot" and frames[1].text
    assert await live.routing_status(guest, cid) == "ROUTED"


async def test_agent_request_words_are_matched_as_whole_words_in_any_case(live: Sim) -> None:
    guest = await live.guest()
    async with live.stream(guest) as stream:
        for text in ("AGENT", "a real Person, please", "Representative!", "human"):
            cid = await live.start_chat(guest, stream)
            assert (await live.send(guest, cid, text)).status_code == 202
            await stream.wait_for(match(QUEUE_POSITION, cid=cid))
            assert await live.routing_status(guest, cid) == "TRANSFER"
        for text in ("agentless", "personal", "humane"):
            cid = await live.start_chat(guest, stream)
            assert (await live.send(guest, cid, text)).status_code == 202
            await stream.wait_for(match(MESSAGE, cid=cid, role="Chatbot"))
            later = await live.sentinel(guest, cid, stream)
            assert QUEUE_POSITION not in events(later), text
            assert await live.routing_status(guest, cid) == "ROUTED", text


async def test_bot_to_agent_to_agent_end_follows_the_documented_order(live: Sim) -> None:
    guest = await live.guest()
    async with live.stream(guest) as stream:
        cid = await live.create(guest)
        created = await stream.until(match(MESSAGE, cid=cid, role="Chatbot"))
        assert events(created) == [
            ROUTING_RESULT,
            SESSION_STATUS_CHANGED,
            PARTICIPANT_CHANGED,
            MESSAGE,
        ]

        # The user asks for a person: echo, bot says so, transfer, bot leaves, queue position.
        assert (await live.send(guest, cid, "I want to talk to a HUMAN please")).status_code == 202
        transfer = await stream.until(match(QUEUE_POSITION, cid=cid))
        assert events(transfer) == [
            MESSAGE,
            MESSAGE,
            ROUTING_RESULT,
            PARTICIPANT_CHANGED,
            QUEUE_POSITION,
        ]
        echo, bot_says, routing, bot_leaves, queue = transfer
        assert echo.role == "EndUser" and echo.text == "I want to talk to a HUMAN please"
        assert bot_says.role == "Chatbot"
        assert routing.payload["routingType"] == "Transfer"
        assert routing.payload["failureType"] == "None"
        assert participant_change(bot_leaves) == ("remove", "Chatbot", "Agentforce")
        assert isinstance(queue.payload["position"], int) and queue.payload["position"] >= 1
        assert await live.routing_status(guest, cid) == "TRANSFER"

        # An agent accepts the work and joins.
        await live.agent_join(cid, "Jane Agent")
        joined = await stream.until(match(PARTICIPANT_CHANGED, cid=cid))
        assert events(joined) == [ROUTING_WORK_RESULT, PARTICIPANT_CHANGED]
        assert joined[0].payload["workType"] == "Accepted"
        assert participant_change(joined[1]) == ("add", "Agent", "Jane Agent")
        assert joined[1].payload["entries"][0]["participant"]["subject"].startswith("005")
        assert await live.routing_status(guest, cid) == "ROUTED"

        # The agent types, then writes.
        await live.control_ok("POST", f"/conversations/{cid}/agent/typing", {"typing": True})
        started = await stream.wait_for(match(TYPING_STARTED, cid=cid))
        await live.control_ok("POST", f"/conversations/{cid}/agent/typing", {"typing": False})
        stopped = await stream.wait_for(match(TYPING_STOPPED, cid=cid))
        for frame in (started, stopped):
            assert frame.role == "Agent" and frame.display_name == "Jane Agent"
        entry_id = await live.agent_message(cid, "Hi, I'm Jane.")
        said = await stream.wait_for(match(MESSAGE, cid=cid, role="Agent"))
        assert said.identifier == entry_id
        assert said.text == "Hi, I'm Jane."
        assert said.display_name == "Jane Agent"
        assert said.entry["sender"]["appType"] == "agent"

        # The agent ends the session: agent removed by "Automated Process", session Ended.
        await live.agent_end(cid)
        ended = await stream.until(match(SESSION_STATUS_CHANGED, cid=cid))
        assert events(ended) == [PARTICIPANT_CHANGED, SESSION_STATUS_CHANGED]
        assert participant_change(ended[0]) == ("remove", "Agent", "Jane Agent")
        assert ended[0].display_name == "Automated Process"
        assert ended[1].payload["sessionStatus"] == "Ended"
        assert ended[1].payload["sessionStatusPrev"] == "Active"
        assert ended[1].payload["sessionEndedByRole"] == "Agent"
        assert ended[1].display_name == "Automated Process"
        # ...and no CloseConversation: the conversation stays open.
        assert CLOSE_CONVERSATION not in events(await live.sentinel(guest, cid, stream))
    assert await live.routing_status(guest, cid) == "NEEDS_ROUTING"
    listed = await live.list_conversations(guest)
    assert [c["conversationId"] for c in listed["conversations"]] == [cid]
    assert listed["conversations"][0]["endTimestamp"] == 0


async def test_transcript_keeps_the_whole_flow_in_order(live: Sim) -> None:
    guest = await live.guest()
    async with live.stream(guest) as stream:
        cid = await live.start_chat(guest, stream)
        await live.transfer(guest, cid, stream)
        await live.agent_join(cid)
        await live.agent_message(cid, "Hello from Jane")
        await live.agent_end(cid)
        await stream.wait_for(match(SESSION_STATUS_CHANGED, cid=cid, role="System"))
    entries = await live.entries(guest, cid, direction="FromStart", limit=50)
    kinds = [e["entryType"] for e in entries]
    assert kinds == [
        "RoutingResult",
        "SessionStatusChanged",
        "ParticipantChanged",
        "Message",
        "Message",
        "Message",
        "RoutingResult",
        "ParticipantChanged",
        "RoutingWorkResult",
        "ParticipantChanged",
        "Message",
        "ParticipantChanged",
        "SessionStatusChanged",
    ]


async def test_auto_agent_joins_after_transfer_and_answers(make_sim: SimFactory) -> None:
    live = await make_sim(live=True, auto_agent_name="Sam Auto", auto_agent_delay=0.01)
    guest = await live.guest()
    async with live.stream(guest) as stream:
        cid = await live.start_chat(guest, stream)
        await live.transfer(guest, cid, stream)
        joined = await stream.until(match(PARTICIPANT_CHANGED, cid=cid))
        assert events(joined) == [ROUTING_WORK_RESULT, PARTICIPANT_CHANGED]
        assert joined[0].payload["workType"] == "Accepted"
        assert participant_change(joined[1]) == ("add", "Agent", "Sam Auto")
        assert await live.routing_status(guest, cid) == "ROUTED"
        await live.sentinel(guest, cid, stream)  # let any greeting of the agent pass

        assert (await live.send(guest, cid, "My order #42 never arrived")).status_code == 202
        answer = await stream.until(match(TYPING_STOPPED, cid=cid, role="Agent"))
    assert events(answer) == [MESSAGE, TYPING_STARTED, MESSAGE, TYPING_STOPPED]
    assert answer[0].role == "EndUser"
    assert answer[1].role == "Agent"
    assert answer[2].role == "Agent" and answer[2].display_name == "Sam Auto"
    assert answer[2].text


async def test_without_auto_agent_nobody_joins_after_transfer(live: Sim) -> None:
    guest = await live.guest()
    async with live.stream(guest) as stream:
        cid = await live.start_chat(guest, stream)
        await live.transfer(guest, cid, stream)
        assert (await live.send(guest, cid, "hello? anyone?")).status_code == 202
        later = await live.sentinel(guest, cid, stream)
    assert events(later) == [MESSAGE]  # only the echo: no bot, no agent
    assert await live.routing_status(guest, cid) == "TRANSFER"
    summary = await live.control_conversation(cid)
    assert summary["participants"] == []


async def test_user_close_after_agent_joined_removes_the_agent(live: Sim) -> None:
    guest = await live.guest()
    async with live.stream(guest) as stream:
        cid = await live.start_chat(guest, stream)
        await live.transfer(guest, cid, stream)
        await live.agent_join(cid)
        await stream.wait_for(match(PARTICIPANT_CHANGED, cid=cid, role="System"))
        assert (await live.close(guest, cid)).status_code == 204
        frames = await stream.until(match(CLOSE_CONVERSATION, cid=cid))
    assert events(frames) == [PARTICIPANT_CHANGED, SESSION_STATUS_CHANGED, CLOSE_CONVERSATION]
    assert participant_change(frames[0])[:2] == ("remove", "Agent")
    assert frames[1].payload["sessionEndedByRole"] == "EndUser"
