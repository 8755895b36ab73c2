"""The audit trail's parts: how a call becomes a record (outcome, touches, a caller cut to a bound,
a cancelled call), and what both stores, in memory and in Redis, share (bound, retention, ids that
grow), on a clock the test moves. Redis alone: test_audit_redis.py; arguments:
test_audit_view.py."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from mcp.server.mcpserver.exceptions import ToolError
from redis.asyncio import Redis
from structlog.testing import capture_logs

from app.audit import (
    MAX_CALLER,
    Audit,
    AuditQuery,
    AuditRecord,
    AuditStore,
    MemoryAuditStore,
    touch,
)
from app.audit_view import WITHHELD
from app.config import ConfigError, load_settings
from app.state.audit import RedisAuditStore
from app.state.sealing import Sealer
from tests.clock import Clock
from tests.redis_support import TEST_KEY, redis_prefix

__all__ = ["redis_prefix"]

T0 = 1_800_000_000.0
HOUR = 3600.0


def clock_at(now: float = T0) -> Clock:
    clock = Clock()
    clock.now = now
    return clock


class Refused(Exception):
    pass


async def calls_into(audit: Audit) -> None:
    """Four calls: one that touches records, an error, a refusal and a crash."""
    with audit.call(
        "salesforce_get", "crm", "signin:https://idp|agent-7", {"objectName": "Contact"}
    ):
        touch("Contact", "003000000000001AAA", None, "003000000000001AAA")
    with pytest.raises(ToolError), audit.call("send_message", "handoff", "user-1", {}):
        raise ToolError("Salesforce answered HTTP 400")
    with pytest.raises(ToolError), audit.call("create_conversation", "handoff", "user-1", {}) as c:
        c.refused()
        raise ToolError("limited")
    with pytest.raises(Refused), audit.call("close_conversation", "handoff", None, {}):
        raise Refused


async def test_each_call_is_one_record_with_its_outcome_touches_and_duration() -> None:
    audit = Audit(MemoryAuditStore(100, 168 * HOUR), clock_at())

    with capture_logs() as logs:
        await calls_into(audit)
    records = await audit.recent()

    assert [(r.tool, r.outcome) for r in records] == [
        ("close_conversation", "crash"),
        ("create_conversation", "refused"),
        ("send_message", "error"),
        ("salesforce_get", "ok"),
    ]
    got = records[-1]
    assert (got.caller, got.toolset, got.at) == ("signin:https://idp|agent-7", "crm", T0)
    assert (got.objects, got.record_ids) == (("Contact",), ("003000000000001AAA",))
    assert all(r.duration_ms >= 0 for r in records)
    lines = [line for line in logs if line["event"] == "audit"]
    assert [line["outcome"] for line in lines] == ["ok", "error", "refused", "crash"]
    # Log lines never name the user: a hash stands in for the caller.
    assert lines[1]["caller_hash"] == records[2].caller_hash
    assert "user-1" not in json.dumps(logs)
    assert lines[3]["caller_hash"] is None


async def test_recent_filters_by_tool_caller_outcome_and_time() -> None:
    clock = clock_at()
    audit = Audit(MemoryAuditStore(100, 168 * HOUR), clock)
    for n, (tool, caller) in enumerate([("a", "u1"), ("b", "u1"), ("a", "u2"), ("a", "u1")]):
        clock.now = T0 + n
        with audit.call(tool, "handoff", caller, {}):
            pass

    def shown(records: list[AuditRecord]) -> list[float]:
        return [r.at - T0 for r in records]

    assert shown(await audit.recent(tool="a")) == [3, 2, 0]
    assert shown(await audit.recent(caller="u1")) == [3, 1, 0]
    assert shown(await audit.recent(tool="a", caller="u1", since=T0 + 1)) == [3]
    assert shown(await audit.recent(outcome="error")) == []
    assert shown(await audit.recent(limit=2)) == [3, 2]


async def test_keeping_a_record_never_fails_the_call() -> None:
    class Broken(MemoryAuditStore):
        def add(self, record: AuditRecord) -> None:
            raise RuntimeError("the store is broken")

    audit = Audit(Broken(10, HOUR))

    with capture_logs() as logs, audit.call("salesforce_get", "crm", None, {}):
        pass

    assert any(line["event"] == "audit.failed" for line in logs)


async def test_a_cancelled_call_is_an_error_not_a_crash() -> None:
    audit = Audit(MemoryAuditStore(10, HOUR), clock_at())

    with (
        pytest.raises(asyncio.CancelledError),
        audit.call("wait_for_messages", "handoff", None, {}),
    ):
        raise asyncio.CancelledError  # the client went away, or the server is stopping

    assert [r.outcome for r in await audit.recent()] == ["error"]


async def test_a_caller_and_a_claimed_subject_are_cut_to_a_bound() -> None:
    audit = Audit(MemoryAuditStore(10, HOUR), clock_at())

    with audit.call("send_message", "handoff", "c" * 100_000, {}, subject="s" * 100_000):
        pass
    audit.rejected("send_message", "handoff", "c" * 100_000, ["text"], 0.0, subject="s" * 100_000)

    for got in await audit.recent():
        assert (got.caller, got.subject) == ("c" * MAX_CALLER, "s" * MAX_CALLER)


async def test_a_rejected_call_keeps_the_names_it_was_given_never_a_value_nor_a_handle() -> None:
    audit = Audit(MemoryAuditStore(10, HOUR), clock_at())

    audit.rejected("send_message", "handoff", "user-1", ["sessionId", "text", "waitSeconds"], 0.25)

    [got] = await audit.recent()
    assert (got.tool, got.outcome, got.duration_ms) == ("send_message", "rejected", 250.0)
    assert got.arguments == {"text": WITHHELD, "waitSeconds": WITHHELD}
    assert (got.objects, got.record_ids) == ((), ())


async def record(audit: Audit, tool: str, caller: str | None = "user-1") -> None:
    with audit.call(tool, "handoff", caller, {"conversationId": "c1"}):
        pass


def redis_store(
    redis: Redis, prefix: str, *, max_records: int = 100, retention: float = 168 * HOUR
) -> RedisAuditStore:
    return RedisAuditStore(
        redis, Sealer(TEST_KEY), prefix, max_records=max_records, retention=retention
    )


@pytest.fixture(params=["memory", "redis"])
def store_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def new_store(
    kind: str, shared: tuple[Redis, str], *, max_records: int, retention: float
) -> AuditStore:
    if kind == "memory":
        return MemoryAuditStore(max_records, retention)
    return redis_store(*shared, max_records=max_records, retention=retention)


async def test_the_trail_keeps_the_newest_records_up_to_its_bound(
    store_kind: str, redis_prefix: tuple[Redis, str]
) -> None:
    clock = clock_at()
    audit = Audit(new_store(store_kind, redis_prefix, max_records=3, retention=HOUR), clock)
    for n in range(5):
        clock.now = T0 + n
        await record(audit, f"tool{n}")
    await audit.flush()

    records = await audit.recent(limit=10)

    assert [r.tool for r in records] == ["tool4", "tool3", "tool2"]
    assert records[0].id > records[1].id > records[2].id
    if store_kind == "redis":
        redis, prefix = redis_prefix
        assert await redis.xlen(f"{prefix}audit") == 3


async def test_ids_grow_within_a_millisecond_and_when_the_clock_steps_back(
    store_kind: str, redis_prefix: tuple[Redis, str]
) -> None:
    clock = clock_at()
    audit = Audit(new_store(store_kind, redis_prefix, max_records=10, retention=HOUR), clock)
    for at in (T0, T0, T0 + 0.0004, T0 - 1):
        clock.now = at
        await record(audit, "send_message")
    await audit.flush()

    ids = [r.id for r in reversed(await audit.recent())]

    assert ids == [f"{int(T0 * 1000)}-{n}" for n in range(4)]


async def test_records_older_than_the_retention_are_dropped(
    store_kind: str, redis_prefix: tuple[Redis, str]
) -> None:
    clock = clock_at()
    audit = Audit(new_store(store_kind, redis_prefix, max_records=100, retention=HOUR), clock)
    await record(audit, "old")
    clock.now = T0 + HOUR - 1
    await record(audit, "older than an hour soon")
    await audit.flush()

    clock.now = T0 + HOUR + 1
    before_next = [r.tool for r in await audit.recent()]
    await record(audit, "new")
    await audit.flush()

    assert before_next == ["older than an hour soon"]  # not shown, even before it is trimmed
    assert [r.tool for r in await audit.recent()] == ["new", "older than an hour soon"]
    if store_kind == "redis":
        redis, prefix = redis_prefix
        assert await redis.xlen(f"{prefix}audit") == 2  # "old" trimmed from the stream
        assert 0 < await redis.pttl(f"{prefix}audit") <= HOUR * 1000  # an idle trail expires


def test_a_record_reads_back_as_written() -> None:
    record = AuditRecord(
        at=T0,
        tool="salesforce_update",
        toolset="crm",
        caller="signin:https://idp|agent-7",
        subject="user-claimed-by-the-client",
        outcome="ok",
        duration_ms=12.5,
        objects=("Contact",),
        record_ids=("003000000000001AAA",),
        arguments={"values": {"SSN__c": WITHHELD}},
        id="1800000000000-0",
    )

    shown: dict[str, Any] = json.loads(json.dumps(record.as_json()))

    assert AuditRecord.from_json(shown) == record
    assert shown["durationMs"] == 12.5 and shown["recordIds"] == ["003000000000001AAA"]
    assert shown["subject"] == "user-claimed-by-the-client"
    assert AuditQuery(tool="salesforce_update").matches(record, floor=T0)
    assert not AuditQuery(outcome="error").matches(record, floor=T0)
    assert not AuditQuery().matches(record, floor=T0 + 1)


def test_the_bound_and_the_retention_are_settings_checked_at_start() -> None:
    defaults = load_settings(_env_file=None)
    assert (defaults.audit_max_records, defaults.audit_retention_hours) == (10_000, 168)
    with pytest.raises(ConfigError, match="AUDIT_MAX_RECORDS"):
        load_settings(_env_file=None, audit_max_records=5)
    with pytest.raises(ConfigError, match="AUDIT_RETENTION_HOURS"):
        load_settings(_env_file=None, audit_retention_hours=0)
