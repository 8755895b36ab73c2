"""The operator page's audit table: it asks only for what is newer than what it shows, and one
request reads a bounded part of the trail (saying so when that stopped it), in memory and in
Redis, where it opens no more sealed records than it needs."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from app.audit import MAX_SCAN, Audit, AuditRecord, AuditStore, MemoryAuditStore
from app.state.audit import RedisAuditStore
from app.state.sealing import Sealer
from tests.admin.conftest import sign_in
from tests.redis_support import TEST_KEY, redis_prefix

__all__ = ["redis_prefix"]

T0 = 1_800_000_000.0
HOUR = 3600.0


def call(n: int, tool: str = "send_message") -> AuditRecord:
    return AuditRecord(
        at=T0 + n, tool=tool, toolset="handoff", caller=None, outcome="ok", duration_ms=1.0
    )


class CountingSealer(Sealer):
    """Counts the records it opens."""

    opened = 0

    def open(self, sealed: bytes) -> bytes:
        self.opened += 1
        return super().open(sealed)


def memory_store() -> AuditStore:
    return MemoryAuditStore(max_records=20_000, retention=HOUR)


async def test_the_page_asks_only_for_the_calls_newer_than_its_newest(
    local: httpx.AsyncClient, app: Any
) -> None:
    await sign_in(local)
    store = app.state.runtime.audit.store
    for n in range(3):
        store.add(call(n))
    shown = (await local.get("/admin/api/audit")).json()["records"]
    assert [r["at"] - T0 for r in shown] == [2, 1, 0]
    store.add(call(3, "create_conversation"))
    store.add(call(4))

    newer = await local.get("/admin/api/audit", params={"after": shown[0]["id"]})
    assert [r["at"] - T0 for r in newer.json()["records"]] == [4, 3]
    filtered = await local.get(
        "/admin/api/audit", params={"after": shown[0]["id"], "tool": "send_message"}
    )
    assert [r["at"] - T0 for r in filtered.json()["records"]] == [4]
    nothing = await local.get(
        "/admin/api/audit", params={"after": newer.json()["records"][0]["id"]}
    )
    assert nothing.json()["records"] == [] and nothing.json()["stoppedEarly"] is False
    for bad in ("4", "1-2-3", "²-1"):
        refused = await local.get("/admin/api/audit", params={"after": bad})
        assert refused.status_code == 400 and "after must be" in refused.json()["error"], bad


async def test_a_filter_few_calls_match_reads_a_bounded_part_of_the_trail_and_says_so(
    local: httpx.AsyncClient, app: Any
) -> None:
    await sign_in(local)
    store = app.state.runtime.audit.store
    store.add(call(0, "the_oldest"))
    for n in range(1, MAX_SCAN + 1):
        store.add(call(n))
    rare = (await local.get("/admin/api/audit", params={"tool": "the_oldest"})).json()
    assert rare == {"records": [], "stoppedEarly": True, "scanBound": MAX_SCAN}
    common = (await local.get("/admin/api/audit", params={"limit": "3"})).json()
    assert len(common["records"]) == 3 and common["stoppedEarly"] is False


@pytest.mark.parametrize("where", ["memory", "redis"])
async def test_a_scan_stops_at_its_bound_and_at_the_records_asked_for(
    where: str, redis_prefix: tuple[Redis, str]
) -> None:
    redis, prefix = redis_prefix
    sealer = CountingSealer(TEST_KEY)
    store: AuditStore = (
        memory_store()
        if where == "memory"
        else RedisAuditStore(redis, sealer, prefix, max_records=20_000, retention=HOUR)
    )
    store.add(call(0, "the_oldest"))
    for n in range(1, 1200):
        store.add(call(n))
    await store.flush()
    audit = Audit(store, lambda: T0 + 1200)

    bounded = await audit.page(tool="the_oldest", scan=1000)
    assert (bounded.records, bounded.stopped_early) == ([], True)
    whole = await audit.page(tool="the_oldest", scan=1200)
    assert ([r.tool for r in whole.records], whole.stopped_early) == (["the_oldest"], False)
    sealer.opened = 0
    newest = await audit.page(limit=1)
    assert [r.at - T0 for r in newest.records] == [1199] and not newest.stopped_early
    if where == "redis":
        assert sealer.opened == 1  # no record opened past the one asked for
    newer = await audit.page(after=whole.records[0].id, tool="the_oldest")
    assert newer.records == [] and not newer.stopped_early
    assert [r.at - T0 for r in (await audit.page(after=newest.records[0].id)).records] == []
