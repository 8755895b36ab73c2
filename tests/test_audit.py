"""The audit trail's parts: what it keeps of a call's arguments, how a call becomes a record, and
its stores, in memory and in Redis (bound, retention, sealing, a Redis that fails), on a clock the
test moves."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from mcp.server.mcpserver.exceptions import ToolError
from redis.asyncio import Redis
from structlog.testing import capture_logs

import app.state.audit
from app.audit import (
    WITHHELD,
    Audit,
    AuditQuery,
    AuditRecord,
    AuditStore,
    MemoryAuditStore,
    arguments_view,
    masked_soql,
    queried_object,
    touch,
)
from app.config import ConfigError, load_settings
from app.state.audit import RedisAuditStore
from app.state.sealing import Sealer
from tests.clock import Clock
from tests.redis_support import TEST_KEY, dump, redis_prefix
from tests.servers import free_port, silent_listener

__all__ = ["redis_prefix"]

T0 = 1_800_000_000.0
HOUR = 3600.0


def clock_at(now: float = T0) -> Clock:
    clock = Clock()
    clock.now = now
    return clock


def test_the_argument_view_keeps_names_and_ids_never_values_handles_or_text() -> None:
    arguments = {
        "sessionId": "proc.secret-handle",
        "widgetKey": "widget-key",
        "content": "aGVsbG8=",
        "conversationId": "6f0e1c9a-0000-4000-8000-000000000001",
        "text": "my card number is 4111 1111 1111 1111",
        "fileName": "passport-ana-lima.pdf",
        "mimeType": "application/pdf",
        "objectName": "Contact",
        "recordId": "003000000000001AAA",
        "values": {"LastName": "Lima", "SSN__c": "078-05-1120"},
        "routingAttributes": {"_email": "ana@example.com"},
        "params": {"email": "ana@example.com"},
        "fields": ["Id", "SSN__c"],
        "limit": 20,
        "email": "ana@example.com",
        "cursor": None,
        "password": "made up by the caller",
    }

    view = arguments_view(arguments)

    assert view == {
        "conversationId": "6f0e1c9a-0000-4000-8000-000000000001",
        "text": WITHHELD,
        "fileName": WITHHELD,
        "mimeType": "application/pdf",
        "objectName": "Contact",
        "recordId": "003000000000001AAA",
        "values": {"LastName": WITHHELD, "SSN__c": WITHHELD},
        "routingAttributes": {"_email": WITHHELD},
        "params": {"email": WITHHELD},
        "fields": ["Id", "SSN__c"],
        "limit": 20,
        "email": WITHHELD,
    }


def test_kept_arguments_are_bounded_and_a_map_where_a_name_belongs_is_withheld() -> None:
    view = arguments_view(
        {"objectName": "x" * 1000, "fields": ["F"] * 1000, "objects": {"Contact": "Ana Lima"}}
    )

    assert view["objectName"] == "x" * 200
    assert len(view["fields"]) == 100
    assert view["objects"] == WITHHELD


WHERE = "SELECT Id FROM Contact WHERE "


@pytest.mark.parametrize(
    ("soql", "kept"),
    [
        (
            WHERE + "Email = 'ana@example.com' AND Name LIKE '%Lima%'",
            WHERE + "Email = '…' AND Name LIKE '…'",
        ),
        (WHERE + r"LastName = 'O\'Neil'", WHERE + "LastName = '…'"),
        (WHERE + "SSN__c = '078-05-1120", WHERE + "SSN__c = '…'"),  # never closed
        (WHERE + "SSN__c = 'x\\", WHERE + "SSN__c = '…'"),  # ends in a backslash
        (
            "SELECT Name2__c FROM Account WHERE AnnualRevenue > 5000000 AND Rating__c = -1.5",
            "SELECT Name2__c FROM Account WHERE AnnualRevenue > … AND Rating__c = …",
        ),
        (
            "SELECT Id FROM Event WHERE StartDateTime >= 2026-12-04T09:00:00+01:00 "
            "AND CreatedDate = LAST_N_DAYS:30 AND ActivityDate = 2026-12-04 LIMIT 5",
            "SELECT Id FROM Event WHERE StartDateTime >= … "
            "AND CreatedDate = LAST_N_DAYS:30 AND ActivityDate = … LIMIT …",
        ),
        (WHERE + "Email = :email", WHERE + "Email = :email"),
    ],
)
def test_soql_is_kept_with_every_literal_masked(soql: str, kept: str) -> None:
    assert masked_soql(soql) == kept
    assert arguments_view({"soql": soql}) == {"soql": kept}


def test_a_long_query_is_cut_after_its_literals_are_masked() -> None:
    soql = "SELECT Id FROM Contact WHERE " + " OR ".join(["Email = 'ana@example.com'"] * 500)

    kept = masked_soql(soql)

    assert len(kept) == 2000 and kept.endswith("…")
    assert "ana@" not in kept


@pytest.mark.parametrize(
    ("soql", "sobject"),
    [
        ("SELECT Id, (SELECT Id FROM Cases) FROM Contact WHERE Name = 'x'", "Contact"),
        (
            WHERE.replace("Contact", "Lead")
            + "Name = ' FROM Case' AND Id IN (SELECT WhoId FROM Event)",
            "Lead",
        ),
        ("select id from support_visit__c", "support_visit__c"),
        ("SELECT COUNT() Contact", None),
        ("((((" * 5000 + "SELECT", None),
    ],
)
def test_a_query_touches_the_object_its_outer_from_names(soql: str, sobject: str | None) -> None:
    assert queried_object(soql) == sobject


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


async def test_in_redis_records_are_sealed_and_ids_grow_when_a_clock_is_behind(
    redis_prefix: tuple[Redis, str],
) -> None:
    redis, prefix = redis_prefix
    ahead, behind = clock_at(T0 + 5), clock_at(T0)
    first = Audit(redis_store(redis, prefix), ahead)
    second = Audit(redis_store(redis, prefix), behind)
    await record(first, "from the process ahead", caller="user-secret-subject")
    await first.flush()
    await record(second, "from the process behind")
    await second.flush()

    records = await first.recent()

    assert [r.tool for r in records] == ["from the process behind", "from the process ahead"]
    assert records[0].at == T0 and records[0].id > records[1].id
    assert records[1].caller == "user-secret-subject"
    assert b"user-secret-subject" not in await dump(redis, prefix)


async def test_a_redis_that_refuses_or_hangs_loses_records_but_no_call(
    redis_prefix: tuple[Redis, str],
) -> None:
    refusing = Redis.from_url(f"redis://127.0.0.1:{free_port()}/0")  # nothing listens there
    async with silent_listener() as silent:
        hanging = Redis.from_url(silent.url("redis"), socket_timeout=60)
        stores = [
            RedisAuditStore(refusing, Sealer(TEST_KEY), "x:", max_records=10, retention=HOUR),
            RedisAuditStore(
                hanging, Sealer(TEST_KEY), "x:", max_records=10, retention=HOUR, write_timeout=0.2
            ),
        ]
        errors = []
        for store in stores:
            audit = Audit(store)
            with capture_logs() as logs:
                await record(audit, "salesforce_get")  # returns at once: nothing awaited
                assert [line["event"] for line in logs] == ["audit"]
                async with asyncio.timeout(10):  # a safety deadline: the write gives up first
                    await audit.flush()
            [unwritten] = [line for line in logs if line["event"] == "audit.unwritten"]
            errors.append((unwritten["records"], unwritten["error"]))
            await audit.aclose()
        await hanging.aclose()
    await refusing.aclose()

    assert errors == [(1, "ConnectionError"), (1, "TimeoutError")]


async def test_a_write_cut_short_by_shutdown_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(app.state.audit, "CLOSE_SECONDS", 0.1)
    async with silent_listener() as silent:
        hanging = Redis.from_url(silent.url("redis"), socket_timeout=60)
        store = RedisAuditStore(
            hanging, Sealer(TEST_KEY), "x:", max_records=10, retention=HOUR, write_timeout=60
        )
        audit = Audit(store)
        await record(audit, "salesforce_get")
        with capture_logs() as logs:
            async with asyncio.timeout(10):  # a safety deadline: aclose gives up after 0.1 s
                await audit.aclose()
        await hanging.aclose()

    assert [(line["event"], line["records"], line["error"]) for line in logs] == [
        ("audit.unwritten", 1, "shutdown")
    ]


async def test_records_queued_at_shutdown_are_written_or_reported(
    redis_prefix: tuple[Redis, str],
) -> None:
    redis, prefix = redis_prefix
    audit = Audit(redis_store(redis, prefix))
    for n in range(3):
        await record(audit, f"tool{n}")

    await audit.aclose()  # without a flush first

    assert await redis.xlen(f"{prefix}audit") == 3


def test_a_record_reads_back_as_written() -> None:
    record = AuditRecord(
        at=T0,
        tool="salesforce_update",
        toolset="crm",
        caller="signin:https://idp|agent-7",
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
