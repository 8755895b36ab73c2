"""The operator page's hooks into the delivery engine, the logs, the limits and the MCP
middleware: a board that raises is logged and never costs a chat anything (entries still arrive
live and wake their readers, a refusal is still the limit's, a call still answers)."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import httpx
import pytest
from mcp.types import CallToolResult, TextContent

from app.admin.board import OperationsBoard
from app.admin.watch import ToolWatch
from app.delivery import DeliveryOptions
from app.limits import LimitReached, Limits, LimitSettings, MemoryCounters, Rate
from app.transcript import ConversationLog
from tests.admin.test_watch import CID, through
from tests.mcp.test_delivery_engine import engine_on_simulator
from tests.test_transcript import entry


class BrokenPage(Exception):
    pass


class RaisingWatcher:
    """A watcher whose every report raises, counting them."""

    def __init__(self) -> None:
        self.told: Counter[str] = Counter()

    def _fail(self, report: str) -> None:
        self.told[report] += 1
        raise BrokenPage(report)

    def feed_opened(self, feed: Any) -> None:
        self._fail("feed_opened")

    def feed_closed(self, feed: Any) -> None:
        self._fail("feed_closed")

    def stream_opened(self, feed: Any, opens: int) -> None:
        self._fail("stream_opened")

    def stream_stopped(self, feed: Any, error: Any) -> None:
        self._fail("stream_stopped")

    def appended(self, log: Any) -> None:
        self._fail("appended")


async def test_a_raising_watcher_does_not_stop_a_chat_from_arriving_live() -> None:
    watcher = RaisingWatcher()

    async def nothing(_: httpx.Response) -> None:
        pass

    options = DeliveryOptions(watcher=watcher, burst_window=0)
    async with engine_on_simulator(nothing, options) as (engine, feed, conversation_id, control):
        first = await engine.read_feed(feed, conversation_id, 0, 0)  # the log, synced
        target = await feed.conversation(conversation_id)
        for n in range(2):
            said = f"still there? {n}"
            reader = asyncio.ensure_future(
                engine.read_feed(feed, conversation_id, target.position, 30)
            )
            bot = await control.post(
                f"/control/conversations/{conversation_id}/bot/message", json={"text": said}
            )
            assert bot.status_code == 200
            read = await asyncio.wait_for(reader, 30)
            assert [e.text for e in read.entries if e.kind == "message"] == [said]
            assert feed.stream_connected  # the stream is still the way entries come
        await engine.aclose()
    assert first.entries is not None
    assert watcher.told["feed_opened"] == 1 and watcher.told["stream_opened"] >= 1
    assert watcher.told["appended"] >= 2 and watcher.told["feed_closed"] == 1


async def test_a_raising_change_hook_still_wakes_the_logs_readers() -> None:
    log = ConversationLog(CID)
    log.on_change = RaisingWatcher().appended
    waiting = asyncio.ensure_future(log.wait_for_append(30))
    await asyncio.sleep(0)  # the reader is waiting
    assert log.append([entry("m", "Message", {})]) == 1
    assert await asyncio.wait_for(waiting, 5) is True


async def test_a_raising_refusal_hook_leaves_the_refusal_to_the_limit() -> None:
    def broken(limit: str, tool: str | None) -> None:
        raise BrokenPage(limit)

    settings = LimitSettings(Rate(1, 3600, "1 per hour"), None, 3, 100)
    limits = Limits(MemoryCounters(), settings, on_refused=broken)
    await limits.admit("create_conversation", "user-1", None)
    with pytest.raises(LimitReached, match="RATE_LIMIT_PER_USER"):
        await limits.admit("create_conversation", "user-1", None)


async def test_a_raising_board_leaves_the_calls_answer_alone() -> None:
    class BrokenBoard(OperationsBoard):
        def tool_called(self, tool: str, error: str | None) -> None:
            raise BrokenPage(tool)

        def opened(self, conversation_id: str) -> None:
            raise BrokenPage(conversation_id)

    watch = ToolWatch(BrokenBoard())
    created = {"isError": False, "structuredContent": {"conversationId": CID}}
    assert await through(watch, "tools/call", {"name": "create_conversation"}, created) is created
    failed = CallToolResult(content=[TextContent(type="text", text="no")], is_error=True)
    assert await through(watch, "tools/call", {"name": "send_message"}, failed) is failed
