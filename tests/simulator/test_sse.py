"""The event stream `GET /eventrouter/v1/sse` (docs/simulator.md "Behaviour")."""

from __future__ import annotations

import itertools
import json
import re

from tests.simulator.conftest import (
    API,
    MESSAGE,
    ORG_ID,
    ORG_ID15,
    PARTICIPANT_CHANGED,
    ROUTING_RESULT,
    SESSION_STATUS_CHANGED,
    SSE_PATH,
    Frame,
    Guest,
    Sim,
    SimFactory,
    SseStream,
    assert_spring_error,
    match,
    wait_until,
)


def ids(frames: list[Frame]) -> list[int]:
    return [int(f.id) for f in frames if f.id is not None]


def assert_strictly_increasing(frames: list[Frame]) -> None:
    values = ids(frames)
    assert len(values) == len(frames), "every event frame carries an id"
    assert all(a < b for a, b in itertools.pairwise(values)), values


async def bot_answer_to(stream: SseStream, cid: str, text: str) -> list[Frame]:
    """Frames up to the bot's answer that follows the echo of `text`."""
    frames = await stream.until(match(MESSAGE, cid=cid, role="EndUser", text=text))
    return frames + await stream.until(match(MESSAGE, cid=cid, role="Chatbot"))


async def full_history(live: Sim, guest: Guest, until: Frame) -> list[Frame]:
    """Everything since the token was minted, read on a fresh stream, up to `until`."""
    async with live.stream(guest) as stream:
        return await stream.until(lambda f: f.id == until.id)


# -- frame format ----------------------------------------------------------------------------


async def test_frames_have_numeric_ids_event_names_and_string_payloads(live: Sim) -> None:
    guest = await live.guest()
    async with live.stream(guest) as stream:
        cid = await live.start_chat(guest, stream)
        await live.transfer(guest, cid, stream)
    assert stream.frames
    assert_strictly_increasing(stream.frames)
    assert int(stream.frames[0].id or 0) > int(guest.last_event_id)
    for frame in stream.frames:
        envelope = frame.json()
        assert envelope["conversationId"] == cid
        assert envelope["channelType"] == "embedded_messaging"
        assert envelope["channelPlatformKey"] and envelope["channelAddressIdentifier"]
        entry = envelope["conversationEntry"]
        assert isinstance(entry["entryPayload"], str)
        payload = json.loads(entry["entryPayload"])
        assert payload["entryType"] == entry["entryType"]
        snake = re.sub(r"(?<!^)(?=[A-Z])", "_", entry["entryType"]).upper()
        assert frame.event == f"CONVERSATION_{snake}"
        assert isinstance(entry["transcriptedTimestamp"], int)
        assert {"role", "appType", "subject", "clientIdentifier"} <= set(entry["sender"])


async def test_pings_arrive_as_event_ping_with_data_0_and_no_id(make_sim: SimFactory) -> None:
    live = await make_sim(live=True, ping_interval=0.05)
    guest = await live.guest()
    async with live.stream(guest) as stream:
        first = await stream.wait_ping()
        second = await stream.wait_ping()
    for ping in (first, second):
        assert ping.event == "ping"
        assert ping.data == "0"
        assert ping.id is None


async def test_pings_do_not_disturb_events(make_sim: SimFactory) -> None:
    live = await make_sim(live=True, ping_interval=0.02)
    guest = await live.guest()
    async with live.stream(guest) as stream:
        await stream.wait_ping()
        cid = await live.start_chat(guest, stream)
        await stream.wait_ping()
    assert [f.event for f in stream.frames] == [
        ROUTING_RESULT,
        SESSION_STATUS_CHANGED,
        PARTICIPANT_CHANGED,
        MESSAGE,
    ]
    assert all(f.conversation_id == cid for f in stream.frames)


# -- replay ----------------------------------------------------------------------------------


async def test_token_last_event_id_replays_everything_after_it(live: Sim) -> None:
    guest = await live.guest()
    cid = await live.create(guest)  # no stream open yet
    async with live.stream(guest) as stream:
        frames = await stream.until(match(MESSAGE, cid=cid, role="Chatbot"))
    assert [f.event for f in frames] == [
        ROUTING_RESULT,
        SESSION_STATUS_CHANGED,
        PARTICIPANT_CHANGED,
        MESSAGE,
    ]
    assert_strictly_increasing(frames)


async def test_token_last_event_id_is_the_head_when_minted(live: Sim) -> None:
    guest = await live.guest()
    async with live.stream(guest) as stream:
        cid = await live.start_chat(guest, stream)
        head = stream.frames[-1]
        later = await live.continuation(guest)
        assert later.last_event_id == head.id
    # A stream resumed from it replays nothing old: the first event is the next one.
    async with live.stream(later) as stream:
        assert (await live.send(later, cid, "hi again")).status_code == 202
        first = await stream.wait_for(match())
    assert first.event == MESSAGE and first.role == "EndUser" and first.text == "hi again"


async def test_without_last_event_id_only_live_events_are_sent(live: Sim) -> None:
    guest = await live.guest()
    async with live.stream(guest) as stream:
        cid = await live.start_chat(guest, stream)
    async with live.stream(guest, last_event_id=None) as stream:
        assert (await live.send(guest, cid, "live only")).status_code == 202
        first = await stream.wait_for(match())
    assert first.event == MESSAGE and first.text == "live only"


async def test_replay_after_last_event_id_misses_and_repeats_nothing(live: Sim) -> None:
    guest = await live.guest()
    async with live.stream(guest) as stream:
        cid = await live.start_chat(guest, stream)
        assert (await live.send(guest, cid, "first question")).status_code == 202
        await bot_answer_to(stream, cid, "first question")
        seen = list(stream.frames)
    # Disconnected: more happens meanwhile (the echo now, the bot's answer right after).
    assert (await live.send(guest, cid, "second question")).status_code == 202
    async with live.stream(guest, last_event_id=seen[-1].id) as stream:
        await bot_answer_to(stream, cid, "second question")
        resumed = list(stream.frames)

    union = seen + resumed
    assert_strictly_increasing(union)
    full = await full_history(live, guest, union[-1])
    assert [(f.id, f.event, f.data) for f in union] == [(f.id, f.event, f.data) for f in full]
    assert len({f.identifier for f in union}) == len(union)


async def test_replay_from_an_older_id_repeats_exactly_the_later_events(live: Sim) -> None:
    guest = await live.guest()
    async with live.stream(guest) as stream:
        cid = await live.start_chat(guest, stream)
        assert (await live.send(guest, cid, "question")).status_code == 202
        await bot_answer_to(stream, cid, "question")
        seen = list(stream.frames)
    middle = seen[2]
    async with live.stream(guest, last_event_id=middle.id) as stream:
        again = await stream.until(lambda f: f.id == seen[-1].id)
    assert [f.id for f in again] == [f.id for f in seen[3:]]


# -- per subject -----------------------------------------------------------------------------


async def test_streams_are_per_subject(live: Sim) -> None:
    a, b = await live.guest(), await live.guest()
    async with live.stream(a) as stream_a, live.stream(b) as stream_b:
        cid_a = await live.start_chat(a, stream_a)
        assert (await live.send(a, cid_a, "secret of A")).status_code == 202
        await bot_answer_to(stream_a, cid_a, "secret of A")
        cid_b = await live.start_chat(b, stream_b)
        # B's own later event proves B's stream is past anything of A's.
        await live.sentinel(b, cid_b, stream_b)
        await live.sentinel(a, cid_a, stream_a)
    assert {f.conversation_id for f in stream_b.frames} == {cid_b}
    assert {f.conversation_id for f in stream_a.frames} == {cid_a}
    assert all(f.text != "secret of A" for f in stream_b.frames)


async def test_one_stream_carries_all_conversations_of_the_subject(live: Sim) -> None:
    guest = await live.guest()
    async with live.stream(guest) as stream:
        first = await live.start_chat(guest, stream)
        second = await live.start_chat(guest, stream)
    assert {f.conversation_id for f in stream.frames} == {first, second}


# -- errors ----------------------------------------------------------------------------------


async def test_sse_without_org_id_is_400_org_id_is_required(sim: Sim) -> None:
    guest = await sim.guest()
    body = assert_spring_error(await sim.sse_error(sim.sse_headers(guest, org_id=None)), 400)
    assert body["message"] == "OrgId is required"


async def test_sse_with_18_char_org_id_is_400_must_match(sim: Sim) -> None:
    guest = await sim.guest()
    body = assert_spring_error(await sim.sse_error(sim.sse_headers(guest, org_id=ORG_ID)), 400)
    assert body["message"] == "OrgId in the header and token must match"


async def test_sse_with_another_org_id_is_400_must_match(sim: Sim) -> None:
    guest = await sim.guest()
    body = assert_spring_error(
        await sim.sse_error(sim.sse_headers(guest, org_id="00D000000000999")), 400
    )
    assert body["message"] == "OrgId in the header and token must match"


async def test_sse_org_id_header_name_is_case_insensitive(live: Sim) -> None:
    guest = await live.guest()
    for name in ("X-Org-ID", "x-org-id", "X-ORG-ID"):
        headers = live.sse_headers(guest, org_id=None)
        headers[name] = ORG_ID15
        async with live.stream(guest, headers=headers) as stream:
            cid = await live.start_chat(guest, stream)
            assert stream.frames[-1].conversation_id == cid


async def test_sse_without_token_is_401_spring_style(sim: Sim) -> None:
    guest = await sim.guest()
    headers = sim.sse_headers(guest)
    del headers["Authorization"]
    body = assert_spring_error(await sim.sse_error(headers), 401)
    assert body["error"] == "Unauthorized"


async def test_sse_with_expired_token_is_401_spring_style(make_sim: SimFactory) -> None:
    sim = await make_sim(guest_token_ttl=0.0)
    guest = await sim.guest()
    body = assert_spring_error(await sim.sse_error(sim.sse_headers(guest)), 401)
    assert body["error"] == "Unauthorized"
    assert "expired" in body["message"].lower()


async def test_sse_with_revoked_token_is_401_spring_style(sim: Sim) -> None:
    user = await sim.verified()
    response = await sim.client.delete(
        f"{API}/authorization/authenticated/access-token", headers=user.headers
    )
    assert response.status_code == 204
    body = assert_spring_error(await sim.sse_error(sim.sse_headers(user)), 401)
    assert body["error"] == "Unauthorized"


async def test_control_expire_cuts_open_streams_and_reconnect_is_401(live: Sim) -> None:
    guest = await live.guest()
    async with live.stream(guest) as stream:
        await live.start_chat(guest, stream)
        await live.control_ok("POST", "/tokens/expire")
        await stream.wait_closed()
    assert stream.ended
    body = assert_spring_error(await live.sse_error(live.sse_headers(guest)), 401)
    assert body["error"] == "Unauthorized"
    assert body["message"] == "Jwt is expired"


# -- dropped streams -------------------------------------------------------------------------


async def test_cut_streams_fault_ends_streams_and_reconnect_resumes_without_loss(
    live: Sim,
) -> None:
    guest = await live.guest()
    async with live.stream(guest) as stream:
        cid = await live.start_chat(guest, stream)
        cut = await live.control_ok("POST", "/faults", {"cutStreams": True})
        assert cut == {"cut": 1}
        await stream.wait_closed()
        seen = list(stream.frames)
    assert stream.ended
    assert (await live.send(guest, cid, "after the cut")).status_code == 202
    async with live.stream(guest, last_event_id=seen[-1].id) as stream:
        await bot_answer_to(stream, cid, "after the cut")
        resumed = list(stream.frames)
    union = seen + resumed
    assert_strictly_increasing(union)
    full = await full_history(live, guest, union[-1])
    assert [f.id for f in union] == [f.id for f in full]


async def test_cut_streams_cuts_every_subjects_streams(live: Sim) -> None:
    a, b = await live.guest(), await live.guest()
    async with live.stream(a) as one, live.stream(a) as two, live.stream(b) as three:
        await wait_until(lambda: _open_streams_is(live, 3))
        assert await live.control_ok("POST", "/faults", {"cutStreams": True}) == {"cut": 3}
        for stream in (one, two, three):
            await stream.wait_closed()


async def _open_streams_is(live: Sim, count: int) -> bool:
    return bool((await live.stats())["openSseStreams"] == count)


async def test_sse_path_only_answers_get(live: Sim) -> None:
    guest = await live.guest()
    response = await live.client.post(SSE_PATH, headers=live.sse_headers(guest))
    assert response.status_code == 405
