"""Rich messages in the simulator's control API and uploads (docs/simulator.md): what the agent and
bot can send, the streamed answer's tokens, a retried upload recorded once."""

from __future__ import annotations

import pytest

from tests.simulator.conftest import Sim, assert_error, new_id


async def with_agent(sim: Sim) -> str:
    guest = await sim.guest()
    cid = await sim.create(guest)
    await sim.send(guest, cid, "hello")
    await sim.agent_join(cid)
    return cid


async def test_a_retried_upload_with_the_same_id_is_recorded_once(sim: Sim) -> None:
    guest = await sim.guest()
    cid = await sim.create(guest)
    message_id = new_id()

    first = await sim.upload(guest, cid, b"notes", message_id=message_id)
    again = await sim.upload(guest, cid, b"notes", message_id=message_id)

    assert (first.status_code, again.status_code) == (202, 202)
    assert (
        first.json()["conversationEntries"][0]["id"] == again.json()["conversationEntries"][0]["id"]
    )
    entries = (await sim.control_conversation(cid))["entries"]
    assert [e["identifier"] for e in entries if e["entryType"] == "Message"].count(message_id) == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"text": "Pick", "choices": []}, '"choices"'),
        ({"text": "Pick", "choices": [{"title": 3}]}, "choices[0]"),
        ({"text": "Pick", "choices": ["A"], "choiceFormat": "Carousel"}, '"choiceFormat"'),
        ({"choices": ["A"]}, '"text"'),
        ({"link": {"title": "no url"}}, '"link"'),
        ({"file": {"name": "a.png", "mimeType": "image/png", "content": "%%%"}}, '"file.content"'),
        ({"file": {"name": "a.png", "mimeType": "png", "content": ""}}, '"file.mimeType"'),
        ({"form": {}}, '"form"'),
        ({"text": "x", "link": {"url": "https://a"}, "form": {"title": "F"}}, "one of"),
    ],
)
async def test_a_bad_rich_message_is_refused_naming_the_field(
    sim: Sim, body: dict[str, object], field: str
) -> None:
    cid = await with_agent(sim)

    response = await sim.control("POST", f"/conversations/{cid}/agent/message", body)

    assert field in assert_error(response, 400, "BAD_REQUEST")["message"]


async def test_an_entry_id_already_in_the_conversation_is_a_conflict(sim: Sim) -> None:
    cid = await with_agent(sim)
    path = f"/conversations/{cid}/agent/message"
    first = await sim.control_ok("POST", path, {"text": "one", "id": "fixed-id"})

    response = await sim.control("POST", path, {"text": "two", "id": "fixed-id"})

    assert first == {"entryId": "fixed-id"}
    assert_error(response, 409)


async def test_stream_tokens_may_be_spaces_and_line_breaks_but_not_empty(live: Sim) -> None:
    guest = await live.guest()
    async with live.stream(guest) as stream:
        cid = await live.start_chat(guest, stream)
        path = f"/conversations/{cid}/bot/token"
        first = await live.control_ok("POST", path, {"text": " "})
        second = await live.control_ok("POST", path, {"text": "\n", "targetId": first["targetId"]})
        empty = await live.control("POST", path, {"text": "", "targetId": first["targetId"]})

    assert (first["sequence"], second["sequence"]) == (1, 2)
    assert second["targetId"] == first["targetId"]
    assert '"text"' in assert_error(empty, 400, "BAD_REQUEST")["message"]
