"""The audit trail through the tools: one record per handoff call naming the ChatGPT user, per call
over HTTP naming the signed-in user (whatever subject the request claims), with its outcome (a
limit's or the staff scope's refusal as `refused`, the SDK's as `rejected`) and what it touched;
never a handle, a token or what anyone wrote, neither in the records nor in the log; with Redis,
one trail for every process; at shutdown the trail is written first."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

import httpx
import pytest
from mcp.client import Client
from redis.asyncio import Redis
from structlog.testing import capture_logs

from app.audit import Audit
from app.audit_view import WITHHELD
from app.main import build_app, build_runtime
from app.simulator import SimulatorOptions, build_simulator
from app.store import SessionStore
from tests.identity_provider import identity_provider
from tests.mcp.conftest import StackFactory, ToolFailed, call, raw_call, settings_for
from tests.mcp.test_logging import log_format
from tests.redis_support import REDIS_URL, TEST_KEY, dump, redis_prefix
from tests.salesforce.test_crm_tools import AUDIENCE, staff_settings
from tests.servers import serve

__all__ = ["log_format", "redis_prefix"]

SUBJECT = "openai/subject"
USER = "user-audit-7f3a"
SECRET_TEXT = "my card number is 4111 1111 1111 1111"
SECRET_SUMMARY = "Customer Ana Lima, born 1984-02-29, wants a refund"
FORGED = "user-someone-else-0b1d"


async def test_every_handoff_call_is_one_record_of_its_user_and_nothing_secret(
    stack_factory: StackFactory, log_format: str, capsys: pytest.CaptureFixture[str]
) -> None:
    stack = await stack_factory(rate_limit_per_user="2/h")
    user = {SUBJECT: USER}
    async with Client(stack.mcp_url) as client:
        session = await call(client, "generate_guest_access_token", {}, **user)
        created = await call(
            client,
            "create_conversation",
            {"sessionId": session["sessionId"], "summary": SECRET_SUMMARY},
            **user,
        )
        ids = {"sessionId": session["sessionId"], "conversationId": created["conversationId"]}
        await call(client, "send_message", {**ids, "text": SECRET_TEXT}, **user)
        failed = await client.call_tool(
            "send_message", {**ids, "sessionId": "wrong-handle", "text": SECRET_TEXT}, meta=user
        )
        await call(client, "generate_guest_access_token", {}, **user)
        with pytest.raises(ToolFailed, match="limited to 2 per hour"):
            await call(client, "generate_guest_access_token", {}, **user)
        store: SessionStore = stack.app.state.runtime.store
        kept = await store.get(session["sessionId"])
        assert kept is not None
        bearer = kept.access_token.get_secret_value()
    audit: Audit = stack.app.state.runtime.audit
    records = list(reversed(await audit.recent()))
    output = capsys.readouterr()
    logs = output.err + output.out

    conversation = ids["conversationId"]
    assert failed.is_error
    assert [(r.tool, r.outcome) for r in records] == [
        ("generate_guest_access_token", "ok"),
        ("create_conversation", "ok"),
        ("send_message", "ok"),
        ("send_message", "error"),
        ("generate_guest_access_token", "ok"),
        ("generate_guest_access_token", "refused"),
    ]
    assert {(r.caller, r.toolset) for r in records} == {(USER, "handoff")}
    assert all(r.duration_ms >= 0 for r in records)
    touched = [(r.objects, r.record_ids) for r in records]
    assert touched[0] == touched[4] == touched[5] == ((), ())
    assert touched[1:4] == [(("Conversation",), (conversation,))] * 3
    assert records[1].arguments == {"summary": WITHHELD}
    assert records[2].arguments == {"conversationId": conversation, "text": WITHHELD}
    shown = json.dumps([r.as_json() for r in records])
    for secret in (SECRET_TEXT, "4111 1111", SECRET_SUMMARY, "1984-02-29", bearer):
        assert secret not in shown and secret not in logs
    for handle in (session["sessionId"], "wrong-handle"):
        assert handle not in shown and handle not in logs
    for segment in bearer.split("."):  # a JWT's parts
        assert segment not in logs
    assert USER not in logs  # the log names the caller by a hash only
    if log_format == "json":
        lines = [json.loads(line) for line in logs.splitlines() if line.startswith("{")]
        audited = [line for line in lines if line["event"] == "audit"]
        assert [line["outcome"] for line in audited] == [r.outcome for r in records]
        assert {line["caller_hash"] for line in audited} == {records[0].caller_hash}
        assert audited[2]["record_ids"] == [conversation]


async def test_calls_over_http_name_the_signed_in_user_whatever_subject_they_claim() -> None:
    async with (
        identity_provider() as idp,
        serve(build_simulator(SimulatorOptions(rate_limits=False))) as sim_url,
    ):
        app = build_app(staff_settings(sim_url, idp.issuer))
        async with serve(app, lifespan="on") as base:
            staff = {
                "Authorization": f"Bearer {idp.token(AUDIENCE, subject='agent-7', scope='crm')}"
            }
            customer = {"Authorization": f"Bearer {idp.token(AUDIENCE, subject='customer-9')}"}
            mcp_url = base + "/mcp"
            with pytest.raises(ToolFailed, match="for support staff"):
                await raw_call(
                    mcp_url, "salesforce_describe", {"objectName": "Case"}, headers=customer
                )
            created = await raw_call(
                mcp_url,
                "salesforce_create",
                {"objectName": "Case", "values": {"Subject": "Parcel late", "Status": "New"}},
                headers=staff,
            )
            await raw_call(
                mcp_url,
                "salesforce_get",
                {"objectName": "Case", "recordId": created["id"]},
                headers=staff,
            )
            with pytest.raises(ToolFailed, match="Not found"):
                await raw_call(
                    mcp_url,
                    "salesforce_get",
                    {"objectName": "Case", "recordId": "500000000000999AAA"},
                    headers=staff,
                )
            # `openai/subject` is the client's word: the record names who signed in.
            await raw_call(mcp_url, "generate_guest_access_token", user=FORGED, headers=staff)
            with pytest.raises(ToolFailed, match="validation error"):
                await raw_call(
                    mcp_url, "send_message", {"text": SECRET_TEXT}, user=FORGED, headers=staff
                )
        records = list(reversed(await app.state.runtime.audit.recent()))

    agent, someone = f"signin:{idp.issuer}|agent-7", f"signin:{idp.issuer}|customer-9"
    assert [(r.tool, r.caller, r.outcome, r.toolset) for r in records] == [
        ("salesforce_describe", someone, "refused", "crm"),
        ("salesforce_create", agent, "ok", "crm"),
        ("salesforce_get", agent, "ok", "crm"),
        ("salesforce_get", agent, "error", "crm"),
        ("generate_guest_access_token", agent, "ok", "handoff"),
        ("send_message", agent, "rejected", "handoff"),
    ]
    assert [r.subject for r in records] == [None] * 4 + [FORGED] * 2
    assert [(r.objects, r.record_ids) for r in records] == [
        (("Case",), ()),
        (("Case",), (created["id"],)),
        (("Case",), (created["id"],)),
        (("Case",), ("500000000000999AAA",)),
        ((), ()),
        ((), ()),
    ]
    assert records[1].arguments == {
        "objectName": "Case",
        "values": {"Subject": WITHHELD, "Status": WITHHELD},
    }
    assert "Parcel late" not in json.dumps([r.as_json() for r in records])
    assert all(r.duration_ms >= 0 for r in records)


async def test_with_redis_every_process_reads_one_trail(
    stack_factory: StackFactory, redis_prefix: tuple[Redis, str]
) -> None:
    redis, prefix = redis_prefix
    shared = {
        "redis_url": REDIS_URL,
        "state_encryption_key": TEST_KEY,
        "redis_key_prefix": prefix,
    }
    first, second = [await stack_factory(**shared) for _ in range(2)]
    for stack, user in ((first, "user-first-41c"), (second, "user-second-9d2")):
        async with Client(stack.mcp_url) as client:
            await call(client, "generate_guest_access_token", {}, **{SUBJECT: user})
        await stack.app.state.runtime.audit.flush()

    seen = [
        [(r.tool, r.caller) for r in await stack.app.state.runtime.audit.recent()]
        for stack in (first, second)
    ]

    expected = [
        ("generate_guest_access_token", "user-second-9d2"),
        ("generate_guest_access_token", "user-first-41c"),
    ]
    assert seen == [expected, expected]
    raw = await dump(redis, prefix)
    assert f"{prefix}audit".encode() in raw
    assert b"user-first-41c" not in raw and b"user-second-9d2" not in raw  # sealed


async def test_a_call_answers_although_redis_cannot_keep_its_record(
    stack_factory: StackFactory, redis_prefix: tuple[Redis, str]
) -> None:
    _, prefix = redis_prefix
    stack = await stack_factory(
        redis_url=REDIS_URL, state_encryption_key=TEST_KEY, redis_key_prefix=prefix
    )
    audit: Audit = stack.app.state.runtime.audit
    # The audit's own stream made unwritable: any other key of the chat still works.
    redis = Redis.from_url(REDIS_URL)
    await redis.set(f"{prefix}audit", "not a stream")
    await redis.aclose()
    async with Client(stack.mcp_url) as client, httpx.AsyncClient() as http:
        with capture_logs() as logs:
            session = await call(client, "generate_guest_access_token", {}, **{SUBJECT: USER})
            await audit.flush()
        health = await http.get(stack.mcp_url.removesuffix("/mcp") + "/health")

    assert session["sessionId"]
    assert health.status_code == 200
    [unwritten] = [line for line in logs if line["event"] == "audit.unwritten"]
    assert (unwritten["records"], unwritten["error"]) == (1, "ResponseError")
    assert [line["outcome"] for line in logs if line["event"] == "audit"] == ["ok"]


async def test_a_call_the_sdk_refuses_is_one_rejected_record_of_names_only(
    stack_factory: StackFactory,
) -> None:
    stack = await stack_factory()
    user = {SUBJECT: USER}
    async with Client(stack.mcp_url) as client:
        session = await call(client, "generate_guest_access_token", {}, **user)
        refused = await client.call_tool(
            "send_message",
            {
                "sessionId": session["sessionId"],
                "conversationId": ["not", "an", "id"],
                "text": SECRET_TEXT,
                "madeUp": SECRET_SUMMARY,
            },
            meta=user,
        )
        unknown = await client.call_tool("drop_every_chat", {"text": SECRET_TEXT}, meta=user)
    async with httpx.AsyncClient() as http:  # not even a tool's name: the SDK refuses it whole
        malformed = await http.post(
            stack.mcp_url,
            json={"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": 7}},
            headers={"Accept": "application/json, text/event-stream"},
        )
    records = list(reversed(await stack.app.state.runtime.audit.recent()))

    assert refused.is_error and unknown.is_error and "error" in malformed.json()
    assert [(r.tool, r.toolset, r.outcome, r.caller) for r in records] == [
        ("generate_guest_access_token", "handoff", "ok", USER),
        ("send_message", "handoff", "rejected", USER),
        ("drop_every_chat", "none", "rejected", USER),
        ("(unknown tool)", "none", "rejected", None),
    ]
    # Of the tool's own parameters, the names; never a value, a handle or a made-up argument.
    assert records[1].arguments == {"conversationId": WITHHELD, "text": WITHHELD}
    assert records[2].arguments == records[3].arguments == {}
    shown = json.dumps([r.as_json() for r in records])
    for secret in (SECRET_TEXT, SECRET_SUMMARY, "madeUp", session["sessionId"]):
        assert secret not in shown


async def test_at_shutdown_the_audit_is_written_before_the_chats_and_the_state_close(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with serve(build_simulator(SimulatorOptions(rate_limits=False))) as sim_url:
        runtime = build_runtime(settings_for(sim_url, mcp_transport="stdio"))
        closed: list[str] = []

        def noted(name: str, close: Callable[[], Awaitable[None]]) -> Callable[[], Awaitable[None]]:
            async def closing() -> None:
                closed.append(name)
                await close()

            return closing

        monkeypatch.setattr(runtime.audit, "aclose", noted("audit", runtime.audit.aclose))
        monkeypatch.setattr(runtime.delivery, "aclose", noted("delivery", runtime.delivery.aclose))
        monkeypatch.setattr(runtime.store, "close", noted("store", runtime.store.close))

        await runtime.aclose()

    assert closed == ["audit", "delivery", "store"]
