"""The control API (docs/simulator.md "Control API"; not part of Salesforce)."""

from __future__ import annotations

import asyncio

import pytest

from tests.simulator.conftest import (
    API,
    DEPLOYMENT,
    MESSAGE,
    SESSION_STATUS_CHANGED,
    Sim,
    assert_error,
    match,
    new_id,
    wait_until,
)

CONV_TEMPLATE = "/iamessage/api/v2/conversation/{conversationId}"


# -- conversations ---------------------------------------------------------------------------


async def test_control_conversations_lists_every_conversation_with_its_state(live: Sim) -> None:
    guest = await live.guest()
    other = await live.guest()
    async with live.stream(guest) as stream:
        cid = await live.start_chat(guest, stream, routingAttributes={"_firstName": "Ana"})
        await live.send(guest, cid, "hello")
        await stream.wait_for(match(MESSAGE, cid=cid, role="Chatbot"))
    other_cid = await live.create(other)

    conversations = await live.control_conversations()
    assert {c["conversationId"] for c in conversations} == {cid, other_cid}
    summary = await live.control_conversation(cid)
    assert summary["subject"] == guest.subject
    assert summary["esDeveloperName"] == DEPLOYMENT
    assert summary["open"] is True
    assert summary["routingStatus"] == "ROUTED"
    assert summary["routingAttributes"] == {"_firstName": "Ana"}
    [bot] = summary["participants"]
    assert (bot["role"], bot["displayName"]) == ("Chatbot", "Agentforce")
    assert isinstance(bot["subject"], str) and bot["subject"]
    assert summary["session"]["sessionId"].startswith("0Mw")
    assert summary["session"]["status"] == "Active"
    assert summary["session"]["endedByRole"] is None
    assert summary["queuePosition"] is None
    assert summary["startTimestamp"] > 0
    assert summary["endTimestamp"] == 0
    entries = summary["entries"]
    assert [e["entryType"] for e in entries][:4] == [
        "RoutingResult",
        "SessionStatusChanged",
        "ParticipantChanged",
        "Message",
    ]
    assert all(isinstance(e["entryPayload"], dict) for e in entries)
    stamps = [e["transcriptedTimestamp"] for e in entries]
    assert stamps == sorted(stamps)
    rest_entries = await live.entries(guest, cid, direction="FromStart", limit=50)
    assert [e["identifier"] for e in entries] == [e["identifier"] for e in rest_entries]


async def test_control_conversation_state_follows_transfer_agent_and_end(live: Sim) -> None:
    guest = await live.guest()
    async with live.stream(guest) as stream:
        cid = await live.start_chat(guest, stream)
        await live.transfer(guest, cid, stream)
        waiting = await live.control_conversation(cid)
        assert waiting["routingStatus"] == "TRANSFER"
        assert waiting["participants"] == []
        assert waiting["queuePosition"] >= 1
        await live.agent_join(cid, "Jane Agent")
        joined = await live.control_conversation(cid)
        assert [(p["role"], p["displayName"]) for p in joined["participants"]] == [
            ("Agent", "Jane Agent")
        ]
        assert joined["queuePosition"] is None
        await live.agent_end(cid)
        await stream.wait_for(match(SESSION_STATUS_CHANGED, cid=cid))
    ended = await live.control_conversation(cid)
    assert ended["open"] is True
    assert ended["routingStatus"] == "NEEDS_ROUTING"
    assert ended["session"]["status"] == "Ended"
    assert ended["session"]["endedByRole"] == "Agent"
    assert ended["participants"] == []


# -- agent and bot ---------------------------------------------------------------------------


async def test_agent_join_is_409_when_an_agent_is_already_on(sim: Sim) -> None:
    guest = await sim.guest()
    cid = await sim.create(guest)
    await sim.agent_join(cid, "Jane Agent")
    response = await sim.control("POST", f"/conversations/{cid}/agent/join", {"name": "Bob"})
    assert_error(response, 409, "CONFLICT")


async def test_agent_join_is_409_on_a_closed_conversation(sim: Sim) -> None:
    guest = await sim.guest()
    cid = await sim.create(guest)
    assert (await sim.close(guest, cid)).status_code == 204
    response = await sim.control("POST", f"/conversations/{cid}/agent/join", {"name": "Jane"})
    assert_error(response, 409, "CONFLICT")


async def test_agent_join_without_name_is_400_naming_the_field(sim: Sim) -> None:
    guest = await sim.guest()
    cid = await sim.create(guest)
    for body in ({}, {"name": ""}, {"name": 42}):
        response = await sim.control("POST", f"/conversations/{cid}/agent/join", body)
        assert "name" in assert_error(response, 400, "BAD_REQUEST")["message"]


async def test_agent_message_and_typing_and_end_are_409_without_an_agent(sim: Sim) -> None:
    guest = await sim.guest()
    cid = await sim.create(guest)
    for path, body in (
        ("agent/message", {"text": "hello"}),
        ("agent/typing", {"typing": True}),
        ("agent/end", None),
    ):
        response = await sim.control("POST", f"/conversations/{cid}/{path}", body)
        assert_error(response, 409, "CONFLICT")


async def test_agent_message_without_text_is_400_naming_the_field(sim: Sim) -> None:
    guest = await sim.guest()
    cid = await sim.create(guest)
    await sim.agent_join(cid)
    response = await sim.control("POST", f"/conversations/{cid}/agent/message", {})
    assert "text" in assert_error(response, 400, "BAD_REQUEST")["message"]
    response = await sim.control("POST", f"/conversations/{cid}/agent/typing", {"typing": "yes"})
    assert "typing" in assert_error(response, 400, "BAD_REQUEST")["message"]


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("agent/join", {"name": "Jane"}),
        ("agent/message", {"text": "hi"}),
        ("agent/typing", {"typing": True}),
        ("agent/end", None),
        ("bot/message", {"text": "hi"}),
    ],
)
async def test_control_calls_on_unknown_conversation_are_404(
    sim: Sim, path: str, body: dict[str, object] | None
) -> None:
    response = await sim.control("POST", f"/conversations/{new_id()}/{path}", body)
    assert_error(response, 404, "NOT_FOUND")


async def test_bot_message_is_sent_by_the_bot(live: Sim) -> None:
    guest = await live.guest()
    async with live.stream(guest) as stream:
        cid = await live.start_chat(guest, stream)
        body = await live.control_ok(
            "POST", f"/conversations/{cid}/bot/message", {"text": "Anything else?"}
        )
        said = await stream.wait_for(match(MESSAGE, cid=cid, text="Anything else?"))
    assert said.role == "Chatbot"
    assert said.display_name == "Agentforce"
    assert said.identifier == body["entryId"]


async def test_bot_message_is_409_when_the_bot_is_not_on(live: Sim) -> None:
    guest = await live.guest()
    async with live.stream(guest) as stream:
        cid = await live.start_chat(guest, stream)
        await live.transfer(guest, cid, stream)
    response = await live.control("POST", f"/conversations/{cid}/bot/message", {"text": "hi"})
    assert_error(response, 409, "CONFLICT")


async def test_agent_end_twice_is_409(live: Sim) -> None:
    guest = await live.guest()
    async with live.stream(guest) as stream:
        cid = await live.start_chat(guest, stream)
        await live.transfer(guest, cid, stream)
        await live.agent_join(cid)
        await live.agent_end(cid)
        await stream.wait_for(match(SESSION_STATUS_CHANGED, cid=cid))
    assert_error(await live.control("POST", f"/conversations/{cid}/agent/end"), 409, "CONFLICT")


async def test_control_bad_json_is_400(sim: Sim) -> None:
    guest = await sim.guest()
    cid = await sim.create(guest)
    response = await sim.client.post(
        f"/control/conversations/{cid}/agent/join",
        content=b"{nope",
        headers={"Content-Type": "application/json"},
    )
    assert_error(response, 400, "BAD_REQUEST")


# -- faults ----------------------------------------------------------------------------------


async def test_status_fault_fails_count_requests_then_normal(sim: Sim) -> None:
    guest = await sim.guest()
    response = await sim.control(
        "POST", "/faults", {"path": "/iamessage/api/v2/conversation", "status": 503, "count": 2}
    )
    assert response.status_code == 201
    fault = response.json()["fault"]
    assert fault["path"] == "/iamessage/api/v2/conversation"
    assert fault["status"] == 503

    assert (await sim.create_response(guest, new_id())).status_code == 503
    assert (await sim.create_response(guest, new_id())).status_code == 503
    assert (await sim.create_response(guest, new_id())).status_code == 201
    assert (await sim.list_conversations(guest))["openConversationsFound"] == 1


async def test_fault_only_hits_its_exact_path(sim: Sim) -> None:
    guest = await sim.guest()
    await sim.control_ok(
        "POST", "/faults", {"path": "/iamessage/api/v2/conversation", "status": 500, "count": 1}
    )
    await sim.list_conversations(guest)  # /conversation/list is another path
    assert (await sim.create_response(guest, new_id())).status_code == 500


@pytest.mark.looptime
async def test_delay_fault_delays_a_request_by_its_delay_then_normal(sim: Sim) -> None:
    # In-process (ASGITransport) under a fake loop clock: it moves only by the simulator's sleeps.
    guest = await sim.guest()
    await sim.control_ok(
        "POST",
        "/faults",
        {"path": "/iamessage/api/v2/conversation/list", "delay": 0.25, "count": 1},
    )
    loop = asyncio.get_running_loop()
    start = loop.time()
    await sim.list_conversations(guest)
    slowed = loop.time() - start
    start = loop.time()
    await sim.list_conversations(guest)
    normal = loop.time() - start
    assert slowed == pytest.approx(0.25)
    assert normal == 0


async def test_fault_method_filter(sim: Sim) -> None:
    guest = await sim.guest()
    cid = await sim.create(guest)
    await sim.control_ok(
        "POST",
        "/faults",
        {"path": CONV_TEMPLATE, "method": "DELETE", "status": 500, "count": 1},
    )
    assert await sim.routing_status(guest, cid)  # GET on the same route is untouched
    assert (await sim.close(guest, cid)).status_code == 500
    assert (await sim.close(guest, cid)).status_code == 204


async def test_fault_route_template_matches_any_conversation(sim: Sim) -> None:
    guest = await sim.guest()
    first, second = await sim.create(guest), await sim.create(guest)
    await sim.control_ok(
        "POST",
        "/faults",
        {"path": CONV_TEMPLATE + "/message", "status": 502, "count": 2},
    )
    assert (await sim.send(guest, first, "a")).status_code == 502
    assert (await sim.send(guest, second, "b")).status_code == 502
    assert (await sim.send(guest, first, "c")).status_code == 202


async def test_fault_glob_matches(sim: Sim) -> None:
    guest = await sim.guest()
    cid = await sim.create(guest)
    await sim.control_ok(
        "POST",
        "/faults",
        {"path": "/iamessage/api/v2/conversation/*/entries", "status": 500, "count": 1},
    )
    assert (await sim.send(guest, cid, "not entries")).status_code == 202
    response = await sim.client.get(f"{API}/conversation/{cid}/entries", headers=guest.headers)
    assert response.status_code == 500
    await sim.entries(guest, cid)


async def test_fault_on_token_endpoint(sim: Sim) -> None:
    await sim.control_ok(
        "POST",
        "/faults",
        {"path": "/iamessage/api/v2/authorization/*", "status": 503, "count": 1},
    )
    assert (await sim.guest_response()).status_code == 503
    assert (await sim.guest_response()).status_code == 200


async def test_faults_can_be_listed_and_deleted(sim: Sim) -> None:
    guest = await sim.guest()
    await sim.control_ok(
        "POST", "/faults", {"path": "/iamessage/api/v2/conversation", "status": 500, "count": 5}
    )
    await sim.control_ok(
        "POST", "/faults", {"path": "/iamessage/api/v2/conversation/list", "delay": 1, "count": 1}
    )
    listed = await sim.control_ok("GET", "/faults")
    faults = listed["faults"] if isinstance(listed, dict) else listed
    assert sorted(f["path"] for f in faults) == [
        "/iamessage/api/v2/conversation",
        "/iamessage/api/v2/conversation/list",
    ]
    assert (await sim.create_response(guest, new_id())).status_code == 500
    response = await sim.control("DELETE", "/faults")
    assert response.is_success
    listed = await sim.control_ok("GET", "/faults")
    assert (listed["faults"] if isinstance(listed, dict) else listed) == []
    assert (await sim.create_response(guest, new_id())).status_code == 201


async def test_fault_with_bad_input_is_400(sim: Sim) -> None:
    for body in (
        {"status": 500},
        {"path": "no-slash", "status": 500},
        {"path": "/x"},
        {"path": "/x", "status": 500, "count": 0},
        {"path": "/x", "status": 200},
    ):
        assert_error(await sim.control("POST", "/faults", body), 400, "BAD_REQUEST")


# -- tokens, stats, reset --------------------------------------------------------------------


async def test_tokens_expire_counts_tokens_and_new_tokens_still_work(sim: Sim) -> None:
    guests = [await sim.guest() for _ in range(3)]
    assert await sim.control_ok("POST", "/tokens/expire") == {"expired": 3}
    for guest in guests:
        response = await sim.client.get(f"{API}/conversation/list", headers=guest.headers)
        assert_error(response, 401, "UNAUTHORIZED")
    fresh = await sim.guest()
    await sim.create(fresh)


async def test_stats_count_requests_per_route_template(sim: Sim) -> None:
    guest = await sim.guest()
    cid = await sim.create(guest)
    await sim.send(guest, cid, "one")
    await sim.send(guest, cid, "two")
    await sim.routing_status(guest, cid)
    requests = (await sim.stats())["requests"]
    assert requests["POST /iamessage/api/v2/authorization/unauthenticated/access-token"] == 1
    assert requests["POST /iamessage/api/v2/conversation"] == 1
    assert requests["POST /iamessage/api/v2/conversation/{conversationId}/message"] == 2
    assert requests["GET /iamessage/api/v2/conversation/{conversationId}"] == 1


async def test_stats_open_sse_streams_go_up_then_down(live: Sim) -> None:
    guest = await live.guest()
    assert (await live.stats())["openSseStreams"] == 0

    async def open_streams_is(count: int) -> bool:
        return bool((await live.stats())["openSseStreams"] == count)

    async with live.stream(guest) as one:
        await wait_until(lambda: open_streams_is(1))
        async with live.stream(guest):
            await wait_until(lambda: open_streams_is(2))
        await wait_until(lambda: open_streams_is(1))
        assert not one.ended
    await wait_until(lambda: open_streams_is(0))
    assert (await live.stats())["requests"]["GET /eventrouter/v1/sse"] == 2


async def test_reset_forgets_tokens_conversations_faults_and_counters(live: Sim) -> None:
    guest = await live.guest()
    async with live.stream(guest) as stream:
        await live.start_chat(guest, stream)
        await live.control_ok(
            "POST", "/faults", {"path": "/iamessage/api/v2/conversation", "status": 500}
        )
        response = await live.control("POST", "/reset")
        assert response.is_success
        await stream.wait_closed()
    assert await live.control_conversations() == []
    listed = await live.control_ok("GET", "/faults")
    assert (listed["faults"] if isinstance(listed, dict) else listed) == []
    stats = await live.stats()
    assert stats["openSseStreams"] == 0
    assert stats["requests"].get("POST /iamessage/api/v2/conversation", 0) == 0
    response = await live.client.get(f"{API}/conversation/list", headers=guest.headers)
    assert_error(response, 401, "UNAUTHORIZED")
    fresh = await live.guest()
    assert (await live.create_response(fresh, new_id())).status_code == 201
