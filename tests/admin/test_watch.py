"""ToolWatch, the MCP middleware, on results shaped as the SDK hands them over (dicts, or
CallToolResult models), and the audit endpoint's answer when Redis is down, without a server."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

import pytest
from mcp.server.context import ServerRequestContext
from mcp.types import CallToolResult, TextContent
from pydantic import ValidationError
from redis.exceptions import ConnectionError as RedisConnectionError
from starlette.datastructures import QueryParams

from app.admin import trail
from app.admin.board import OperationsBoard
from app.admin.watch import ToolWatch
from app.audit import Audit

CID = "0a1b2c3d-0000-4000-8000-000000000001"


async def through(watch: ToolWatch, method: str, params: dict[str, Any], result: Any) -> Any:
    ctx = cast(ServerRequestContext[Any, Any], SimpleNamespace(method=method, params=params))

    async def call_next(_: Any) -> Any:
        if isinstance(result, Exception):
            raise result
        return result

    return await watch(ctx, call_next)


async def test_a_created_and_a_closed_conversation_change_its_row() -> None:
    board = OperationsBoard()
    watch = ToolWatch(board)
    created = {"isError": False, "structuredContent": {"conversationId": CID, "status": "x"}}
    assert await through(watch, "tools/call", {"name": "create_conversation"}, created) is created
    assert [row["id"] for row in board.snapshot()["conversations"]] == [CID]

    closed = CallToolResult(content=[], structured_content={"closed": True}, is_error=False)
    args = {"name": "close_conversation", "arguments": {"sessionId": "h", "conversationId": CID}}
    await through(watch, "tools/call", args, closed)
    (row,) = board.snapshot()["conversations"]
    assert (row["state"], row["endedBy"]) == ("ended", "customer")
    assert board.snapshot()["calls"] == {"total": 2, "errors": 0}


async def test_errors_are_kept_with_the_tool_and_the_models_text() -> None:
    board = OperationsBoard()
    watch = ToolWatch(board)
    failed = CallToolResult(
        content=[TextContent(type="text", text="Error executing tool close_conversation: no")],
        is_error=True,
    )
    args = {"name": "close_conversation", "arguments": {"conversationId": CID}}
    await through(watch, "tools/call", args, failed)
    unknown = {"isError": True, "content": [{"type": "text", "text": "Unknown tool: <b>x"}]}
    await through(watch, "tools/call", {"name": "<b>x"}, unknown)
    with pytest.raises(ValidationError):
        await through(
            watch, "tools/call", {"name": 7}, ValidationError.from_exception_data("x", [])
        )
    errors = board.snapshot()["errors"]
    assert [(e["tool"], e["text"]) for e in errors] == [
        ("(unknown tool)", "Invalid request parameters (a malformed tools/call)"),
        ("(unknown tool)", "Unknown tool: <b>x"),
        ("close_conversation", "Error executing tool close_conversation: no"),
    ]
    assert board.snapshot()["conversations"] == []  # a failed close ends nothing


async def test_other_methods_pass_untouched() -> None:
    board = OperationsBoard()
    listed: dict[str, Any] = {"tools": []}
    assert await through(ToolWatch(board), "tools/list", {}, listed) is listed
    assert board.snapshot()["calls"]["total"] == 0 and board.version == 0


async def test_an_audit_trail_that_cannot_be_read_is_a_503_saying_so() -> None:
    class Unreadable:
        async def page(self, **_: Any) -> Any:
            raise RedisConnectionError("down")

    status, body = await trail.recent(cast(Audit, Unreadable()), QueryParams("outcome=error"))
    assert (status, body) == (
        503,
        {"error": "The audit trail (Redis) cannot be read now; try again shortly."},
    )
