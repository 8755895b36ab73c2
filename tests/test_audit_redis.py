"""The audit trail in Redis alone: sealed records, ids that grow past the last the stream gave,
a Redis that refuses or hangs, the bound on records waiting, shutdown (what is written, what is
reported, a record that comes after), reading past a page, and records no key opens."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis
from structlog.testing import capture_logs

import app.state.audit
from app.audit import Audit, AuditRecord
from app.state.audit import RedisAuditStore
from app.state.sealing import Sealer
from tests.redis_support import TEST_KEY, dump, redis_prefix
from tests.servers import free_port, silent_listener
from tests.test_audit import HOUR, T0, clock_at, record, redis_store

__all__ = ["redis_prefix"]


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


async def test_a_write_cut_short_by_shutdown_and_the_records_still_queued_are_reported(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(app.state.audit, "CLOSE_SECONDS", 0.1)
    monkeypatch.setattr(app.state.audit, "BATCH", 1)
    async with silent_listener() as silent:
        hanging = Redis.from_url(silent.url("redis"), socket_timeout=60)
        store = RedisAuditStore(
            hanging, Sealer(TEST_KEY), "x:", max_records=10, retention=HOUR, write_timeout=60
        )
        audit = Audit(store)
        for n in range(3):
            await record(audit, f"tool{n}")
        with capture_logs() as logs:
            async with asyncio.timeout(10):  # a safety deadline: aclose gives up after 0.1 s
                await audit.aclose()
        await hanging.aclose()

    assert [(line["event"], line["records"], line["error"]) for line in logs] == [
        ("audit.unwritten", 1, "shutdown"),  # the batch Redis was given
        ("audit.unwritten", 2, "shutdown"),  # those still waiting
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


@pytest.mark.parametrize("gone", ["trimmed", "deleted"])
async def test_ids_grow_past_the_last_the_stream_gave_though_its_newest_entry_is_gone(
    redis_prefix: tuple[Redis, str], gone: str
) -> None:
    redis, prefix = redis_prefix
    key = f"{prefix}audit"
    ahead = Audit(redis_store(redis, prefix), clock_at(T0 + 5))
    await record(ahead, "from the process ahead")
    await ahead.flush()
    if gone == "trimmed":
        await redis.xtrim(key, maxlen=0)
    else:
        [(newest, _)] = await redis.xrange(key)
        await redis.xdel(key, newest)
    behind = Audit(redis_store(redis, prefix), clock_at(T0))

    with capture_logs() as logs:
        await record(behind, "from the process behind")
        await behind.flush()

    assert [line["event"] for line in logs] == ["audit"]  # nothing unwritten
    assert [r.id for r in await behind.recent()] == [f"{int((T0 + 5) * 1000)}-1"]


async def test_past_the_bound_on_waiting_records_new_ones_are_dropped_and_counted(
    redis_prefix: tuple[Redis, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(app.state.audit, "MAX_PENDING", 3)
    redis, prefix = redis_prefix
    audit = Audit(redis_store(redis, prefix), clock_at())

    with capture_logs() as logs:
        for n in range(5):  # nothing awaited: the writer has not run yet
            await record(audit, f"tool{n}")
        await audit.flush()

    assert [r.tool for r in await audit.recent()] == ["tool2", "tool1", "tool0"]
    assert [line["records"] for line in logs if line["event"] == "audit.dropped"] == [2]


async def test_a_record_after_the_trail_closed_is_reported_not_written(
    redis_prefix: tuple[Redis, str],
) -> None:
    redis, prefix = redis_prefix
    audit = Audit(redis_store(redis, prefix), clock_at())
    await audit.aclose()

    with capture_logs() as logs:
        await record(audit, "a call that ended during shutdown")
        await audit.flush()

    assert [(line["event"], line.get("records"), line.get("error")) for line in logs] == [
        ("audit", None, None),
        ("audit.unwritten", 1, "closed"),
    ]
    assert await redis.exists(f"{prefix}audit") == 0


async def test_recent_reads_on_past_a_page_of_the_stream(redis_prefix: tuple[Redis, str]) -> None:
    redis, prefix = redis_prefix
    store = redis_store(redis, prefix, max_records=2000)
    for n in range(1200):  # more than one page (500) of the stream, and more than two
        store.add(
            AuditRecord(
                at=T0 + n,
                tool="the oldest" if n == 0 else "send_message",
                toolset="handoff",
                caller=None,
                outcome="ok",
                duration_ms=1.0,
            )
        )
    await store.flush()
    audit = Audit(store, clock_at(T0 + 1200))

    newest = await audit.recent(limit=1000)
    oldest = await audit.recent(tool="the oldest")

    assert [r.at - T0 for r in newest] == list(range(1199, 199, -1))
    assert [r.at for r in oldest] == [T0]


async def test_records_no_configured_key_opens_are_skipped_and_counted(
    redis_prefix: tuple[Redis, str],
) -> None:
    redis, prefix = redis_prefix
    retired = "a-key-retired-since-and-no-longer-configured-0123"
    sealed_before = RedisAuditStore(redis, Sealer(retired), prefix, max_records=10, retention=HOUR)
    before = Audit(sealed_before, clock_at(T0))
    await record(before, "sealed with the retired key")
    await before.flush()
    now = Audit(redis_store(redis, prefix), clock_at(T0 + 1))
    await record(now, "sealed with the current key")
    await now.flush()

    with capture_logs() as logs:
        records = await now.recent()

    assert [r.tool for r in records] == ["sealed with the current key"]
    assert [line["records"] for line in logs if line["event"] == "audit.unreadable"] == [1]
