"""The real `ScrtClient` against the simulator on a loopback port (issue 3, points 2-4).

Every client method is exercised for real; the event stream is cut mid-conversation and must still
deliver every event exactly once; two guests share one httpx client without ever seeing each
other's token or entries; retries driven by the simulator's fault injection stay bounded and never
duplicate a message. Assertions are on what the simulator recorded (its transcript, its event log,
its request counters), not on which calls were made.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass

import jwt
import pytest

from app.scrt import (
    AccessToken,
    Entry,
    RetryPolicy,
    ScrtAuthError,
    ScrtBadRequestError,
    ScrtConflictError,
    ScrtEvent,
    ScrtNoSessionError,
    ScrtNotFoundError,
    ScrtPayloadTooLargeError,
    ScrtRateLimitError,
    ScrtServerError,
    ScrtStatusError,
    ScrtTimeoutError,
    ScrtUnsupportedMediaTypeError,
    chronological,
    new_id,
)
from tests.scrt.sim_fixtures import (
    CLOSE_CONVERSATION,
    DEADLINE,
    DELIVERY_ACK,
    DEPLOYMENT,
    EPHEMERAL_EVENTS,
    MESSAGE,
    MESSAGE_ROUTE,
    PARTICIPANT_CHANGED,
    QUEUE_POSITION,
    READ_ACK,
    ROUTING_RESULT,
    ROUTING_WORK_RESULT,
    SESSION_STATUS_CHANGED,
    SSE_ROUTE,
    TYPING_STARTED,
    TYPING_STOPPED,
    V2,
    Collector,
    EnvFactory,
    SimEnv,
    claims_of,
    collect,
    match,
    sim_environments,
)

GUEST_TOKEN_ROUTE = V2 + "/authorization/unauthenticated/access-token"
VERIFIED_TOKEN_ROUTE = V2 + "/authorization/authenticated/access-token"
CONVERSATION_ROUTE = V2 + "/conversation/{conversationId}"
ENTRIES_ROUTE = V2 + "/conversation/{conversationId}/entries"
FILE_ROUTE = V2 + "/conversation/{conversationId}/file"
LIST_ROUTE = V2 + "/conversation/list"


@pytest.fixture
async def make_env() -> AsyncIterator[EnvFactory]:
    """`await make_env(retry=..., **SimulatorOptions overrides)`: a simulator and a client."""
    async with sim_environments() as make:
        yield make


@pytest.fixture
async def env(make_env: EnvFactory) -> SimEnv:
    return await make_env()


def unsigned_identity(sub: str) -> str:
    """A customer identity token as an unsigned JWT (the simulator trusts any well-formed one)."""
    now = int(time.time())
    claims = {"sub": sub, "iat": now, "exp": now + 600, "iss": "https://customer.example"}
    return jwt.encode(claims, "", algorithm="none")


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class Chat:
    token: AccessToken
    cid: str
    events: Collector
    greeting: ScrtEvent


@contextlib.asynccontextmanager
async def guest_chat(
    env: SimEnv,
    *,
    conversation_id: str | None = None,
    routing_attributes: dict[str, str] | None = None,
) -> AsyncIterator[Chat]:
    """A guest with its event stream open and a conversation the bot has greeted."""
    client = env.client
    token = await client.guest_token()
    async with collect(client, token.bearer, token.last_event_id) as events:
        cid = await client.create_conversation(
            token, conversation_id=conversation_id, routing_attributes=routing_attributes
        )
        greeting = await events.wait_for(match(MESSAGE, cid=cid, role="Chatbot"))
        yield Chat(token, cid, events, greeting)


def entry_of(event: ScrtEvent) -> Entry:
    assert event.entry is not None, event
    return event.entry


def payload_message(entry: dict[str, object]) -> dict[str, object]:
    payload = entry["entryPayload"]
    assert isinstance(payload, dict)
    message = payload["abstractMessage"]
    assert isinstance(message, dict)
    return message


def transcript_text(entry: dict[str, object]) -> object:
    content = payload_message(entry).get("staticContent")
    return content.get("text") if isinstance(content, dict) else None


# == 2. every client method, for real =========================================================


async def test_guest_token_mints_a_new_guest_subject_each_time(env: SimEnv) -> None:
    first = await env.client.guest_token()
    second = await env.client.guest_token(device_id="device-1")

    for token in (first, second):
        assert token.subject is not None
        assert token.subject.startswith("v2/iamessage/UNAUTH/NA/uid:")
        claims = claims_of(token.bearer)
        assert claims["sub"] == token.subject
        assert token.expires_at is not None
        assert token.expires_at.timestamp() == claims["exp"]
        assert claims["exp"] - claims["iat"] == 3600  # the simulator's guest tokens last 1 h
        assert token.last_event_id is not None and token.last_event_id.isdigit()
        assert token.embedded_service_config is not None
        assert token.embedded_service_config["name"] == DEPLOYMENT
    assert first.subject != second.subject
    assert first.bearer != second.bearer
    assert await env.requests("POST", GUEST_TOKEN_ROUTE) == 2


async def test_verified_token_carries_the_identity_subject(env: SimEnv) -> None:
    client = env.client
    identity = unsigned_identity("customer-42")

    first = await client.verified_token(identity)
    second = await client.verified_token(identity)

    expected = "v2/iamessage/AUTH/Demo_Keyset/uid:customer-42"
    assert first.subject == second.subject == expected
    assert claims_of(first.bearer)["sub"] == expected
    # Same subject, so a conversation started with one token is listed with the other.
    cid = await client.create_conversation(first)
    listed = await client.list_conversations(second)
    assert [c.conversation_id for c in listed.conversations] == [cid]

    with pytest.raises(ScrtBadRequestError) as bad:
        await client.verified_token("not-a-jwt")
    assert bad.value.status == 400

    # Never retried (identity tokens may be single-use), even on a 5xx.
    await env.fault(path=VERIFIED_TOKEN_ROUTE, method="POST", status=503, count=1)
    before = await env.requests("POST", VERIFIED_TOKEN_ROUTE)
    with pytest.raises(ScrtServerError):
        await client.verified_token(identity)
    assert await env.requests("POST", VERIFIED_TOKEN_ROUTE) == before + 1


async def test_continuation_token_has_same_subject_and_expiry(env: SimEnv) -> None:
    client = env.client
    token = await client.guest_token()
    cid = await client.create_conversation(token)

    continued = await client.continuation_token(token)

    assert continued.subject == token.subject
    assert continued.expires_at == token.expires_at
    assert continued.bearer != token.bearer
    original, other = claims_of(token.bearer), claims_of(continued.bearer)
    assert other["sub"] == original["sub"] and other["exp"] == original["exp"]
    assert other["clientId"] != original["clientId"]
    # Both are valid readers of the same conversation.
    assert (await client.routing_status(continued, cid)).conversation_id == cid
    assert (await client.routing_status(token, cid)).conversation_id == cid


async def test_revoked_token_gets_401_and_is_not_retried(env: SimEnv) -> None:
    client = env.client
    token = await client.guest_token()
    await client.create_conversation(token)
    await client.list_conversations(token)

    await client.revoke_token(token)

    before = await env.requests("GET", LIST_ROUTE)
    with pytest.raises(ScrtAuthError) as denied:
        await client.list_conversations(token)
    assert denied.value.status == 401
    assert denied.value.message == "Token has been revoked"
    assert await env.requests("GET", LIST_ROUTE) == before + 1
    with pytest.raises(ScrtAuthError):
        await client.revoke_token(token)
    # The event stream refuses it too, and stops instead of reconnecting forever.
    async with collect(client, token.bearer, token.last_event_id) as events:
        error = await events.wait_end()
    assert isinstance(error, ScrtAuthError) and error.status == 401
    assert await env.requests("GET", SSE_ROUTE) == 1


async def test_conversation_lifecycle_create_status_list_close(env: SimEnv) -> None:
    client = env.client
    chosen = new_id()
    async with guest_chat(
        env, conversation_id=chosen, routing_attributes={"Topic": "Billing"}
    ) as chat:
        token, cid = chat.token, chat.cid
        assert cid == chosen
        conversation = await env.conversation(cid)
        assert conversation["subject"] == token.subject
        assert conversation["routingAttributes"] == {"Topic": "Billing"}
        assert chat.greeting.entry is not None
        assert chat.greeting.entry.sender_name == "Agentforce"

        status = await client.routing_status(token, cid)
        assert (status.conversation_id, status.routing_status) == (cid, "ROUTED")

        with pytest.raises(ScrtConflictError):
            await client.create_conversation(token, conversation_id=cid)
        second = await client.create_conversation(token)

        listed = await client.list_conversations(token)
        assert {c.conversation_id for c in listed.conversations} == {cid, second}
        assert (listed.open_count, listed.closed_count) == (2, 0)
        assert all(c.end_timestamp == 0 for c in listed.conversations)
        limited = await client.list_conversations(token, limit=1)
        assert len(limited.conversations) == 1 and limited.open_count == 2

        await client.close_conversation(token, cid)
        await chat.events.wait_for(match(CLOSE_CONVERSATION, cid=cid))

        open_only = await client.list_conversations(token)
        assert [c.conversation_id for c in open_only.conversations] == [second]
        assert (open_only.open_count, open_only.closed_count) == (1, 1)
        everything = await client.list_conversations(token, include_closed=True)
        closed = [c for c in everything.conversations if c.conversation_id == cid]
        assert len(closed) == 1 and (closed[0].end_timestamp or 0) > 0
        assert (await env.conversation(cid))["open"] is False
        with pytest.raises(ScrtBadRequestError):
            await client.close_conversation(token, cid)


async def test_list_entries_honours_every_query_parameter(env: SimEnv) -> None:
    client = env.client
    async with guest_chat(env) as chat:
        token, cid = chat.token, chat.cid
        sent = await client.send_message(token, cid, "hello there")
        await chat.events.wait_for(
            match(MESSAGE, cid=cid, role="Chatbot", where=lambda e: e.id != chat.greeting.id)
        )
        transcript = await env.transcript(cid)
        ids = [e["identifier"] for e in transcript]
        stamps = [e["transcriptedTimestamp"] for e in transcript]
        kinds = [e["entryType"] for e in transcript]
        assert len(ids) == 6  # routing, session, bot joins, greeting, echo, bot answer

        def identifiers(entries: list[Entry]) -> list[str | None]:
            return [e.identifier for e in entries]

        newest_first = await client.list_entries(token, cid)
        assert identifiers(newest_first) == ids[::-1]
        assert identifiers(chronological(newest_first)) == ids
        assert all(e.conversation_id == cid for e in newest_first)
        echo = next(e for e in newest_first if e.identifier == sent.message_id)
        assert (echo.role, echo.text, echo.sender_subject) == (
            "EndUser",
            "hello there",
            token.subject,
        )

        assert identifiers(await client.list_entries(token, cid, limit=2)) == ids[::-1][:2]
        from_start = await client.list_entries(token, cid, limit=3, direction="FromStart")
        assert identifiers(from_start) == ids[:3]
        from_end = await client.list_entries(token, cid, limit=3, direction="FromEnd")
        assert identifiers(from_end) == ids[::-1][:3]

        messages = [i for i, k in zip(ids, kinds, strict=True) if k == "Message"]
        only_messages = await client.list_entries(token, cid, entry_types=["Message"])
        assert identifiers(only_messages) == messages[::-1]
        two_types = await client.list_entries(
            token, cid, entry_types=["Message", "ParticipantChanged"], direction="FromStart"
        )
        wanted = {"Message", "ParticipantChanged"}
        assert identifiers(two_types) == [i for i, k in zip(ids, kinds, strict=True) if k in wanted]

        window = await client.list_entries(
            token, cid, start_timestamp=stamps[1], end_timestamp=stamps[3], direction="FromStart"
        )
        assert identifiers(window) == ids[1:4]  # both bounds inclusive
        since = await client.list_entries(token, cid, start_timestamp=stamps[4])
        assert identifiers(since) == ids[4:][::-1]
        until = await client.list_entries(token, cid, end_timestamp=stamps[0])
        assert identifiers(until) == ids[:1]

        everything_at_once = await client.list_entries(
            token,
            cid,
            limit=1,
            start_timestamp=stamps[1],
            end_timestamp=stamps[5],
            direction="FromStart",
            entry_types=["Message"],
        )
        assert identifiers(everything_at_once) == [entry_of(chat.greeting).identifier]


async def test_send_message_is_echoed_and_answered(env: SimEnv) -> None:
    client = env.client
    async with guest_chat(env) as chat:
        greeting_id = entry_of(chat.greeting).identifier
        message_id = new_id()

        sent = await client.send_message(
            chat.token,
            chat.cid,
            "What are your hours?",
            message_id=message_id,
            in_reply_to=greeting_id,
        )

        assert sent.message_id == message_id
        echo = await chat.events.wait_for(match(MESSAGE, cid=chat.cid, identifier=message_id))
        assert echo.entry is not None
        assert (echo.entry.role, echo.entry.sender_name, echo.entry.text) == (
            "EndUser",
            "Guest",
            "What are your hours?",
        )
        assert echo.entry.in_reply_to_message_id == greeting_id
        answer = await chat.events.wait_for(
            match(MESSAGE, role="Chatbot", where=lambda e: int(e.id or 0) > int(echo.id or 0))
        )
        assert answer.entry is not None and answer.entry.text
        [recorded] = await env.end_user_messages(chat.cid)
        assert recorded["identifier"] == message_id
        assert transcript_text(recorded) == "What are your hours?"
        assert payload_message(recorded)["inReplyToMessageId"] == greeting_id
        assert sent.client_timestamp == recorded["clientTimestamp"]


async def test_send_choice_answers_with_a_choices_response(env: SimEnv) -> None:
    client = env.client
    async with guest_chat(env) as chat:
        greeting_id = entry_of(chat.greeting).identifier

        sent = await client.send_choice(
            chat.token, chat.cid, ["opt-orders", "opt-billing"], in_reply_to=greeting_id or ""
        )

        echo = await chat.events.wait_for(match(MESSAGE, identifier=sent.message_id))
        assert echo.entry is not None
        assert (echo.entry.message_type, echo.entry.format_type) == (
            "ChoicesResponseMessage",
            "Selections",
        )
        assert echo.entry.in_reply_to_message_id == greeting_id
        [recorded] = await env.end_user_messages(chat.cid)
        message = payload_message(recorded)
        assert message["messageType"] == "ChoicesResponseMessage"
        assert message["inReplyToMessageId"] == greeting_id
        assert message["choicesResponse"] == {
            "formatType": "Selections",
            "selectedOptions": [
                {"optionIdentifier": "opt-orders"},
                {"optionIdentifier": "opt-billing"},
            ],
        }


async def test_send_file_uploads_and_refuses_big_or_wrong_files(env: SimEnv) -> None:
    client = env.client
    async with guest_chat(env) as chat:
        token, cid = chat.token, chat.cid

        sent = await client.send_file(
            token,
            cid,
            filename="receipt.txt",
            content=b"total: 42",
            mime_type="text/plain",
            caption="my receipt",
        )

        echo = await chat.events.wait_for(match(MESSAGE, identifier=sent.message_id))
        assert echo.entry is not None and echo.entry.role == "EndUser"
        assert echo.entry.text == "my receipt"
        [attachment] = echo.entry.attachments
        assert (attachment.name, attachment.mime_type) == ("receipt.txt", "text/plain")
        assert attachment.url is not None and attachment.url.startswith(env.base_url + "/files/")
        download = await env.control.get(attachment.url)
        assert download.status_code == 200 and download.content == b"total: 42"

        too_big = b"\0" * (5 * 1024 * 1024 + 1)
        with pytest.raises(ScrtPayloadTooLargeError) as large:
            await client.send_file(
                token, cid, filename="big.pdf", content=too_big, mime_type="application/pdf"
            )
        assert large.value.status == 413 and large.value.error_code == "PAYLOAD_TOO_LARGE"
        with pytest.raises(ScrtUnsupportedMediaTypeError) as media:
            await client.send_file(
                token, cid, filename="tool.exe", content=b"MZ", mime_type="application/x-msdownload"
            )
        assert media.value.status == 415

        # 413 and 415 are final: one request each, and only the good file is in the transcript.
        assert await env.requests("POST", FILE_ROUTE) == 3
        [recorded] = await env.end_user_messages(cid)
        assert recorded["identifier"] == sent.message_id
        content = payload_message(recorded)["staticContent"]
        assert isinstance(content, dict) and content["formatType"] == "Attachments"


async def test_typing_and_acknowledgements_reach_the_stream_only(env: SimEnv) -> None:
    client = env.client
    async with guest_chat(env) as chat:
        token, cid = chat.token, chat.cid
        greeting_id = entry_of(chat.greeting).identifier
        assert greeting_id is not None
        before = [e["identifier"] for e in await env.transcript(cid)]

        await client.send_typing(token, cid, typing=True)
        await client.send_typing(token, cid, typing=False)
        await client.acknowledge_entries(token, cid, delivered=[greeting_id], read=[greeting_id])

        started = await chat.events.wait_for(match(TYPING_STARTED, cid=cid, role="EndUser"))
        stopped = await chat.events.wait_for(match(TYPING_STOPPED, cid=cid, role="EndUser"))
        delivered = await chat.events.wait_for(match(DELIVERY_ACK, cid=cid))
        read = await chat.events.wait_for(match(READ_ACK, cid=cid))
        assert int(started.id or 0) < int(stopped.id or 0) < int(delivered.id or 0)
        assert delivered.entry is not None and read.entry is not None
        assert delivered.entry.acknowledged_entry_id == greeting_id
        assert read.entry.acknowledged_entry_id == greeting_id
        assert [e["identifier"] for e in await env.transcript(cid)] == before


async def test_end_session_keeps_the_conversation_and_a_new_message_restarts_it(
    env: SimEnv,
) -> None:
    client = env.client
    async with guest_chat(env) as chat:
        token, cid = chat.token, chat.cid
        first_session = (await env.conversation(cid))["session"]["sessionId"]

        await client.end_session(token, cid)

        ended = await chat.events.wait_for(
            match(
                SESSION_STATUS_CHANGED,
                cid=cid,
                where=lambda e: (
                    e.entry is not None
                    and e.entry.session is not None
                    and e.entry.session.status == "Ended"
                ),
            )
        )
        assert ended.entry is not None and ended.entry.session is not None
        assert ended.entry.session.ended_by_role == "EndUser"
        removed = chat.events.matching(match(PARTICIPANT_CHANGED, cid=cid))[-1]
        assert removed.entry is not None
        assert [(c.operation, c.role) for c in removed.entry.participant_changes] == [
            ("remove", "Chatbot")
        ]
        assert (await client.routing_status(token, cid)).routing_status == "NEEDS_ROUTING"
        assert [
            c.conversation_id for c in (await client.list_conversations(token)).conversations
        ] == [cid]

        again = await client.send_message(token, cid, "one more question")
        echo = await chat.events.wait_for(match(MESSAGE, identifier=again.message_id))
        await chat.events.wait_for(
            match(ROUTING_RESULT, cid=cid, where=lambda e: int(e.id or 0) > int(echo.id or 0))
        )
        await chat.events.wait_for(
            match(MESSAGE, role="Chatbot", where=lambda e: int(e.id or 0) > int(echo.id or 0))
        )
        session = (await env.conversation(cid))["session"]
        assert session["status"] == "Active" and session["sessionId"] != first_session


async def test_deployment_config_and_business_hours(make_env: EnvFactory) -> None:
    env = await make_env()
    config = await env.client.embedded_service_config(language="en_US")
    service = config["embeddedServiceConfig"]
    assert (service["name"], service["deploymentType"]) == (DEPLOYMENT, "Api")
    assert service["forms"][0]["formType"] == "PreChat"

    hours = await env.client.business_hours()
    assert len(hours.windows) == 1 and hours.is_open(now_ms())

    unpublished = await make_env(deployment_published=False)
    with pytest.raises(ScrtStatusError) as not_published:
        await unpublished.client.embedded_service_config()
    assert type(not_published.value) is ScrtStatusError
    assert not_published.value.status == 412
    assert not_published.value.message == "Embedded Messaging Config is not Published"
    with pytest.raises(ScrtBadRequestError) as setup:
        await unpublished.client.guest_token()
    assert setup.value.error_code == "SETUP_ERROR"


# == 2b. the event stream survives cuts =======================================================


async def test_event_stream_resumes_after_cuts_with_every_event_exactly_once(env: SimEnv) -> None:
    client = env.client
    token = await client.guest_token()
    assert token.subject is not None and token.last_event_id is not None
    cuts: list[int] = []
    agent_ids: list[str] = []

    async with collect(client, token.bearer, token.last_event_id) as events:

        async def burst(first: int, count: int, started: asyncio.Event | None = None) -> None:
            for number in range(first, first + count):
                agent_ids.append(await env.agent_says(cid, f"agent message {number}"))
                if started is not None and number == first + 2:
                    started.set()

        cid = await client.create_conversation(token)
        await events.wait_for(match(MESSAGE, cid=cid, role="Chatbot"))

        # Cut 1, after the greeting: the transfer happens while the client reconnects.
        cuts.append(await env.cut_streams())
        await client.send_message(token, cid, "Can I talk to a human agent, please?")
        await events.wait_for(match(QUEUE_POSITION, cid=cid))
        await env.agent(cid, "join", {"name": "Jane Agent"})
        await env.agent(cid, "typing", {"typing": True})

        # Cut 2, in the middle of a burst of agent messages.
        started = asyncio.Event()
        producer = asyncio.create_task(burst(1, 8, started))
        async with asyncio.timeout(DEADLINE):
            await started.wait()
            cuts.append(await env.cut_streams())
            await producer

        # A marker sent after cut 2 can only arrive on a new connection: cut 3 hits a live one.
        marker = await env.agent_says(cid, "are you still with me?")
        await events.wait_for(match(MESSAGE, identifier=marker))

        # Cut 3, at the same time as more agent messages.
        async with asyncio.timeout(DEADLINE):
            cut, _ = await asyncio.gather(env.cut_streams(), burst(9, 5))
        cuts.append(cut)
        await env.agent(cid, "typing", {"typing": False})
        await client.send_message(token, cid, "Thanks, that helps")
        await client.send_typing(token, cid, typing=True)
        await client.acknowledge_entries(token, cid, delivered=[agent_ids[-1]], read=[marker])
        await env.agent(cid, "end")
        await client.close_conversation(token, cid)
        await events.wait_for(match(CLOSE_CONVERSATION, cid=cid))

        collected = list(events.events)
        simulated = env.org.events_after(token.subject, int(token.last_event_id))
        resumed_from = events.stream.last_event_id

    assert cuts == [1, 1, 1]  # each cut ended a live stream
    assert await env.requests("GET", SSE_ROUTE) == 4  # one open + one resume per cut

    # The simulator's full sequence for this subject, each event exactly once, in order.
    ids = [int(e.id or 0) for e in collected]
    assert ids == sorted(set(ids)), "event ids must be strictly increasing (no repeats)"
    assert [(e.id, e.event_type) for e in collected] == [
        (str(e.id), e.event_type) for e in simulated
    ]
    assert resumed_from == str(simulated[-1].id)
    assert all(e.event_type.startswith("CONVERSATION_") for e in collected)
    assert all(e.conversation_id == cid and e.entry is not None for e in collected)

    # Durable events are exactly the transcript, in order; ephemeral ones are what we caused.
    transcript = await env.transcript(cid)
    durable = [entry_of(e).identifier for e in collected if e.event_type not in EPHEMERAL_EVENTS]
    assert durable == [entry["identifier"] for entry in transcript]
    ephemeral = Counter(e.event_type for e in collected if e.event_type in EPHEMERAL_EVENTS)
    assert ephemeral == {
        QUEUE_POSITION: 1,  # the transfer
        TYPING_STARTED: 2,  # agent, then end user
        TYPING_STOPPED: 1,  # agent
        DELIVERY_ACK: 1,
        READ_ACK: 1,
    }
    acks = [
        entry_of(e).acknowledged_entry_id
        for e in collected
        if e.event_type in (DELIVERY_ACK, READ_ACK)
    ]
    assert acks == [agent_ids[-1], marker]
    agent_texts = [entry_of(e).text for e in collected if match(MESSAGE, role="Agent")(e)]
    assert agent_texts == [
        *(f"agent message {n}" for n in range(1, 9)),
        "are you still with me?",
        *(f"agent message {n}" for n in range(9, 14)),
    ]
    kinds = {e.event_type for e in collected}
    assert {
        ROUTING_RESULT,
        ROUTING_WORK_RESULT,
        PARTICIPANT_CHANGED,
        SESSION_STATUS_CHANGED,
    } <= kinds


async def test_event_stream_asks_its_token_source_again_after_expiry(env: SimEnv) -> None:
    client = env.client
    identity = unsigned_identity("customer-7")
    owner = await client.verified_token(identity)
    minted: list[AccessToken] = []

    async def token_source() -> str:
        token = await client.verified_token(identity)
        minted.append(token)
        return token.bearer

    async with collect(client, token_source, owner.last_event_id) as events:
        cid = await client.create_conversation(owner)
        await events.wait_for(match(MESSAGE, cid=cid, role="Chatbot"))

        expired = await env.control_ok("POST", "/tokens/expire")
        assert expired["expired"] >= 2
        with pytest.raises(ScrtAuthError):
            await client.routing_status(owner, cid)
        fresh = await client.verified_token(identity)
        sent = await client.send_message(fresh, cid, "still here after the expiry")
        await events.wait_for(match(MESSAGE, identifier=sent.message_id))
        collected = list(events.events)

    assert len(minted) == 2  # the first connect and the resume after the cut
    assert {t.subject for t in minted} == {owner.subject}
    assert owner.subject is not None and owner.last_event_id is not None
    simulated = env.org.events_after(owner.subject, int(owner.last_event_id))
    assert [e.id for e in collected] == [str(e.id) for e in simulated]


async def test_no_session_417_then_resend_with_new_session(make_env: EnvFactory) -> None:
    env = await make_env(prechat_display_context="Session")
    client = env.client
    async with guest_chat(env, routing_attributes={"Topic": "Orders"}) as chat:
        token, cid = chat.token, chat.cid
        assert token.embedded_service_config is not None
        assert token.embedded_service_config["forms"][0]["displayContext"] == "Session"
        await env.agent(cid, "join", {"name": "Jane Agent"})
        await env.agent(cid, "end")
        old_session = (await env.conversation(cid))["session"]
        assert (old_session["status"], old_session["endedByRole"]) == ("Ended", "Agent")
        message_id = new_id()

        before = await env.requests("POST", MESSAGE_ROUTE)
        with pytest.raises(ScrtNoSessionError) as no_session:
            await client.send_message(token, cid, "Hello again?", message_id=message_id)
        assert no_session.value.status == 417
        assert no_session.value.error_code == "NO_ACTIVE_SESSION"
        assert await env.requests("POST", MESSAGE_ROUTE) == before + 1  # 417 is not retried
        assert await env.end_user_messages(cid) == []

        sent = await client.send_message(
            token,
            cid,
            "Hello again?",
            message_id=message_id,
            new_session=True,
            routing_attributes={"Topic": "Billing"},
        )

        assert sent.message_id == message_id
        echo = await chat.events.wait_for(match(MESSAGE, identifier=message_id))
        routed = await chat.events.wait_for(
            match(ROUTING_RESULT, cid=cid, where=lambda e: int(e.id or 0) > int(echo.id or 0))
        )
        assert routed.entry is not None and routed.entry.routing is not None
        assert routed.entry.routing.routing_type == "Initial"
        await chat.events.wait_for(
            match(MESSAGE, role="Chatbot", where=lambda e: int(e.id or 0) > int(echo.id or 0))
        )
        conversation = await env.conversation(cid)
        assert conversation["routingAttributes"] == {"Topic": "Billing"}
        assert conversation["session"]["status"] == "Active"
        assert conversation["session"]["sessionId"] != old_session["sessionId"]
        [recorded] = await env.end_user_messages(cid)
        assert (recorded["identifier"], transcript_text(recorded)) == (message_id, "Hello again?")


# == 3. two guests, one shared httpx client ===================================================


async def test_two_guests_on_one_shared_http_client_never_see_each_other(env: SimEnv) -> None:
    client = env.client  # one ScrtClient over one httpx.AsyncClient, as in production
    assert "authorization" not in env.http.headers
    alpha, beta = await asyncio.gather(client.guest_token(), client.guest_token())
    tokens = {"alpha": alpha, "beta": beta}
    assert alpha.subject != beta.subject
    rounds = 10

    async with (
        collect(client, alpha.bearer, alpha.last_event_id) as alpha_events,
        collect(client, beta.bearer, beta.last_event_id) as beta_events,
    ):
        streams = {"alpha": alpha_events, "beta": beta_events}
        alpha_cid, beta_cid = await asyncio.gather(
            client.create_conversation(alpha), client.create_conversation(beta)
        )
        cids = {"alpha": alpha_cid, "beta": beta_cid}
        polled: dict[str, list[list[Entry]]] = {"alpha": [], "beta": []}

        async def talk(label: str) -> list[str]:
            sent_ids = []
            for number in range(rounds):
                await client.send_typing(tokens[label], cids[label], typing=True)
                sent = await client.send_message(
                    tokens[label], cids[label], f"{label} says {number}"
                )
                sent_ids.append(sent.message_id)
            return sent_ids

        async def poll(label: str) -> None:
            """Repeated list_entries until the guest's own messages and the bot's answers are in."""
            while True:
                page = await client.list_entries(tokens[label], cids[label], limit=50)
                polled[label].append(page)
                mine = [e for e in page if e.role == "EndUser"]
                bot = [e for e in page if e.role == "Chatbot" and e.entry_type == "Message"]
                if len(mine) == rounds and len(bot) == rounds + 1:
                    return

        async with asyncio.timeout(DEADLINE):
            alpha_ids, beta_ids, _, _ = await asyncio.gather(
                talk("alpha"), talk("beta"), poll("alpha"), poll("beta")
            )
            sent_ids = {"alpha": alpha_ids, "beta": beta_ids}
            for label, stream in streams.items():
                for message_id in sent_ids[label]:
                    await stream.wait_for(match(MESSAGE, identifier=message_id))

        with pytest.raises(ScrtNotFoundError):
            await client.list_entries(alpha, beta_cid)
        with pytest.raises(ScrtNotFoundError):
            await client.send_message(beta, alpha_cid, "let me in")

    for label, other in (("alpha", "beta"), ("beta", "alpha")):
        token, cid = tokens[label], cids[label]
        client_id = claims_of(token.bearer)["clientId"]
        foreign = set(sent_ids[other]) | {cids[other]}

        # What its event stream delivered: only its conversation, its echoes carry its subject.
        events = streams[label].events
        assert events and all(e.conversation_id == cid for e in events)
        echoes = [e.entry for e in events if e.entry is not None and e.entry.role == "EndUser"]
        assert all(e.sender_subject == token.subject for e in echoes)
        assert [e.identifier for e in echoes if e.entry_type == "Message"] == sent_ids[label]
        assert sum(e.entry_type == "TypingStartedIndicator" for e in echoes) == rounds
        assert not {e.entry.identifier for e in events if e.entry} & foreign

        # What its polls returned.
        assert polled[label]
        for page in polled[label]:
            assert not {e.identifier for e in page} & foreign
            for entry in page:
                if entry.role == "EndUser":
                    assert entry.sender_subject == token.subject
                    assert entry.text is not None and entry.text.startswith(f"{label} says ")

        # What the simulator recorded: each send carried this guest's own token (subject and
        # client id of the echo come from the bearer token of the request).
        conversation = await env.conversation(cid)
        assert conversation["subject"] == token.subject
        mine = await env.end_user_messages(cid)
        assert [transcript_text(e) for e in mine] == [f"{label} says {n}" for n in range(rounds)]
        assert [e["identifier"] for e in mine] == sent_ids[label]
        assert {e["sender"]["subject"] for e in mine} == {token.subject}
        assert {e["sender"]["clientIdentifier"] for e in mine} == {client_id}

    assert "authorization" not in env.http.headers  # nothing stuck to the shared client
    # The two guests really were concurrent: their echoes interleave in the org's event order.
    alpha_seq = [int(e.id or 0) for e in alpha_events.matching(match(MESSAGE, role="EndUser"))]
    beta_seq = [int(e.id or 0) for e in beta_events.matching(match(MESSAGE, role="EndUser"))]
    assert min(beta_seq) < max(alpha_seq) and min(alpha_seq) < max(beta_seq)


# == 4. retries with the simulator's fault injection ==========================================


@pytest.mark.parametrize("failures", [1, 2])
async def test_send_after_503s_succeeds_and_is_recorded_once(env: SimEnv, failures: int) -> None:
    client = env.client  # FAST_RETRY: up to 4 attempts
    token = await client.guest_token()
    cid = await client.create_conversation(token)
    await env.fault(path=MESSAGE_ROUTE, method="POST", status=503, count=failures)
    before = await env.requests("POST", MESSAGE_ROUTE)

    sent = await client.send_message(token, cid, "hello after a hiccup")

    assert await env.requests("POST", MESSAGE_ROUTE) == before + failures + 1
    assert await env.faults() == []
    recorded = await env.end_user_messages(cid)
    assert [(e["identifier"], transcript_text(e)) for e in recorded] == [
        (sent.message_id, "hello after a hiccup")
    ]
    assert sent.client_timestamp == recorded[0]["clientTimestamp"]


@pytest.mark.looptime
async def test_persistent_503_fails_within_the_total_timeout(make_env: EnvFactory) -> None:
    # In-process on a fake loop clock: attempts take no time, so the budget always runs out at a
    # pause (raising the last 503), never inside an attempt, however loaded the machine.
    env = await make_env(in_process=True)
    policy = RetryPolicy(max_attempts=100, base_delay=0.1, max_delay=0.4, total_timeout=1.5)
    client = env.scrt(retry=policy)
    token = await client.guest_token()
    cid = await client.create_conversation(token)
    await env.fault(path=MESSAGE_ROUTE, method="POST", status=503, count=1000)
    before = await env.requests("POST", MESSAGE_ROUTE)

    # The time bound itself is checked on a fake clock (test_retry.py); here, by what it leaves.
    async with asyncio.timeout(DEADLINE):
        with pytest.raises(ScrtServerError) as failed:
            await client.send_message(token, cid, "words that must not leak")

    error = failed.value
    assert (error.status, error.error_code, error.method, error.route) == (
        503,
        "SERVER_ERROR",
        "POST",
        MESSAGE_ROUTE,
    )
    assert error.message == "Injected fault from the simulator's control API."
    assert "503" in str(error)
    for secret in (token.bearer, cid, "words that must not leak"):
        assert secret not in str(error)
    attempts = await env.requests("POST", MESSAGE_ROUTE) - before
    assert 1 < attempts < policy.max_attempts  # retried, then stopped by the time budget
    assert await env.end_user_messages(cid) == []


async def test_hung_call_fails_within_the_total_timeout(env: SimEnv) -> None:
    policy = RetryPolicy(max_attempts=4, base_delay=0.01, max_delay=0.05, total_timeout=0.8)
    client = env.scrt(retry=policy)
    token = await client.guest_token()
    cid = await client.create_conversation(token)
    hold = env.gate.hold("GET", f"{V2}/conversation/{cid}")
    before = await env.requests("GET", CONVERSATION_ROUTE)

    # The safety deadline is shorter than the httpx client's own 10 s timeout, so the cut came from
    # the retry budget; that it comes at the budget exactly is checked on a fake clock
    # (test_retry.py).
    async with asyncio.timeout(DEADLINE):
        with pytest.raises(ScrtTimeoutError):
            await client.routing_status(token, cid)

    assert hold.handled.is_set()  # the simulator answered; the gate still holds the answer back
    assert await env.requests("GET", CONVERSATION_ROUTE) == before + 1  # no retry after the cut
    hold.release.set()
    await env.gate.idle()


async def test_send_whose_answer_was_lost_is_found_and_not_sent_again(env: SimEnv) -> None:
    token = await env.client.guest_token()
    cid = await env.client.create_conversation(token)
    # The simulator records the first attempt, but its answer never reaches the client, which
    # times out on it (and only on it: the look-up and any retry have time to spare).
    hold = env.gate.hold("POST", f"{V2}/conversation/{cid}/message")
    client = await env.gives_up_on(hold)
    before = await env.requests("POST", MESSAGE_ROUTE)
    looked = await env.requests("GET", ENTRIES_ROUTE)

    sent = await client.send_message(token, cid, "did this arrive?")

    assert hold.handled.is_set()
    # Reconciled: the entries show the message, so it is not posted a second time.
    assert await env.requests("POST", MESSAGE_ROUTE) == before + 1
    assert await env.requests("GET", ENTRIES_ROUTE) == looked + 1
    recorded = await env.end_user_messages(cid)
    assert [(e["identifier"], transcript_text(e)) for e in recorded] == [
        (sent.message_id, "did this arrive?")
    ]
    hold.release.set()
    await env.gate.idle()


async def test_create_conversation_whose_answer_was_lost_is_one_conversation(env: SimEnv) -> None:
    hold = env.gate.hold("POST", f"{V2}/conversation")
    client = await env.gives_up_on(hold)
    token = await client.guest_token()

    cid = await client.create_conversation(token)  # the retry's 409 counts as success

    assert hold.handled.is_set()
    assert await env.requests("POST", V2 + "/conversation") == 2
    listed = await client.list_conversations(token)
    assert [c.conversation_id for c in listed.conversations] == [cid]
    hold.release.set()
    await env.gate.idle()


async def test_send_delayed_beyond_the_client_timeout_is_retried_and_recorded_once(
    env: SimEnv,
) -> None:
    token = await env.client.guest_token()
    cid = await env.client.create_conversation(token)
    # The first attempt reaches the simulator only after the client gave up on it, looked for
    # it in vain and sent it again.
    late = env.gate.hold("POST", f"{V2}/conversation/{cid}/message", late=True)
    client = await env.gives_up_on(late)
    before = await env.requests("POST", MESSAGE_ROUTE)
    looked = await env.requests("GET", ENTRIES_ROUTE)

    sent = await client.send_message(token, cid, "slow but sure")
    assert not late.handled.is_set()
    assert await env.requests("GET", ENTRIES_ROUTE) == looked + 1
    late.release.set()
    await env.gate.idle()  # the late first attempt is over on the server too

    assert late.handled.is_set()
    assert await env.requests("POST", MESSAGE_ROUTE) == before + 2
    recorded = await env.end_user_messages(cid)
    assert [(e["identifier"], transcript_text(e)) for e in recorded] == [
        (sent.message_id, "slow but sure")
    ]


async def test_delayed_send_is_recorded_although_the_client_timed_out(env: SimEnv) -> None:
    token = await env.client.guest_token()
    cid = await env.client.create_conversation(token)
    late = env.gate.hold("POST", f"{V2}/conversation/{cid}/message", late=True)
    client = await env.gives_up_on(late, retry=RetryPolicy(max_attempts=1, total_timeout=20.0))
    message_id = new_id()

    with pytest.raises(ScrtTimeoutError):
        await client.send_message(token, cid, "slow but sure", message_id=message_id)
    assert await env.end_user_messages(cid) == []  # looked for in vain: not there yet
    late.release.set()
    await env.gate.idle()  # the late attempt has been handled by the simulator

    assert [e["identifier"] for e in await env.end_user_messages(cid)] == [message_id]
    await client.send_message(token, cid, "slow but sure", message_id=message_id)
    assert [e["identifier"] for e in await env.end_user_messages(cid)] == [message_id]


async def test_23rd_message_in_a_minute_is_rate_limited_after_retries(
    make_env: EnvFactory,
) -> None:
    env = await make_env(rate_limits=True)  # 22 messages per conversation per minute
    policy = RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=0.05, total_timeout=3.0)
    client = env.scrt(retry=policy)
    token = await client.guest_token()
    cid = await client.create_conversation(token)
    burst = [client.send_message(token, cid, f"message {n}") for n in range(22)]
    accepted = [sent.message_id for sent in await asyncio.gather(*burst)]
    before = await env.requests("POST", MESSAGE_ROUTE)

    with pytest.raises(ScrtRateLimitError) as limited:
        await client.send_message(token, cid, "message 22")

    # 429 is retried for sends (they carry their own id), up to max_attempts, then raised.
    assert limited.value.status == 429 and limited.value.error_code == "TOO_MANY_REQUESTS"
    assert await env.requests("POST", MESSAGE_ROUTE) == before + policy.max_attempts
    assert sorted(e["identifier"] for e in await env.end_user_messages(cid)) == sorted(accepted)
    # A retry of an already accepted message is still accepted, and still one message.
    again = await client.send_message(token, cid, "message 21", message_id=accepted[-1])
    assert again.message_id == accepted[-1]
    assert sorted(e["identifier"] for e in await env.end_user_messages(cid)) == sorted(accepted)


async def test_guest_token_429_is_not_retried(make_env: EnvFactory) -> None:
    env = await make_env(rate_limits=True, token_requests_per_minute=2)
    await env.client.guest_token()
    await env.client.guest_token()

    with pytest.raises(ScrtRateLimitError) as limited:
        await env.client.guest_token()

    assert limited.value.status == 429
    assert await env.requests("POST", GUEST_TOKEN_ROUTE) == 3  # the 429 was not repeated
