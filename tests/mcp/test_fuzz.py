"""Fuzzing the HTTP surface: generated JSON-RPC requests against the app (with the
simulator behind it): malformed JSON-RPC, batches, unknown methods and tools, arguments of every
wrong type and size, odd unicode, bogus handles and cursors. Nothing may answer 5xx, no tool call
may crash (a `tool.call` log line with outcome "crash"), and a refused argument is named."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import structlog
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.logs import configure_logging
from app.main import build_app
from app.simulator import SimulatorOptions, build_simulator
from tests.mcp.conftest import settings_for

SIM_URL = "http://sim.test"
TOOLS = [
    "generate_guest_access_token",
    "create_conversation",
    "send_message",
    "list_conversation_entries",
    "get_conversation_routing_status",
    "close_conversation",
    "show_salesforce_chat",
    "get_conversation_transcript",
]
ARGUMENTS = [
    "sessionId",
    "conversationId",
    "text",
    "cursor",
    "waitSeconds",
    "includeTyping",
    "clientMessageId",
    "routingAttributes",
    "widgetKey",
    "agentName",
    "outsideBusinessHours",
    "summary",
    "customerName",
    "customerEmail",
    "customerDetails",
]
ODD_TEXT = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=300
) | st.sampled_from(["", "\x00", "\n{}\n", "0", "-1", "1e309", "‮", "🙂" * 50, "a" * 9000])
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | ODD_TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(ODD_TEXT, inner, max_size=4),
    max_leaves=8,
)


@st.composite
def tool_call(draw: st.DrawFn) -> dict[str, Any]:
    arguments = draw(
        st.dictionaries(st.sampled_from(ARGUMENTS) | ODD_TEXT, JSON_VALUES, max_size=6)
    )
    if draw(st.booleans()):
        # Plausible ids, so the calls get past the schema to the service.
        arguments["sessionId"] = draw(st.sampled_from(["x" * 43, "0badcafe." + "y" * 43]))
        arguments["conversationId"] = "00000000-0000-4000-8000-000000000000"
    return {
        "jsonrpc": "2.0",
        "id": draw(st.integers(min_value=0, max_value=10**6)),
        "method": "tools/call",
        "params": {"name": draw(st.sampled_from(TOOLS) | ODD_TEXT), "arguments": arguments},
    }


GARBAGE = st.one_of(
    JSON_VALUES,
    st.fixed_dictionaries(
        {"jsonrpc": st.sampled_from(["2.0", "1.0", 2]), "method": ODD_TEXT},
        optional={"id": JSON_VALUES, "params": JSON_VALUES},
    ),
    st.fixed_dictionaries(
        {
            "jsonrpc": st.just("2.0"),
            "id": st.integers(0, 100),
            "method": st.sampled_from(
                ["prompts/get", "resources/read", "tools/list", "initialize", "ping"]
            ),
            "params": JSON_VALUES,
        }
    ),
)
REQUESTS = st.one_of(tool_call(), tool_call(), GARBAGE, st.lists(tool_call(), max_size=3))

# 10,000 requests, derandomized: the same ones every run, so CI never fails on chance (about 45 s
# on 2 cores; `-s` shows the figures; FUZZ_EXAMPLES=10 for a quick look). Examples stay small:
# with ~100 requests in one, most drawn examples overrun hypothesis's buffer and are thrown away,
# and the few left are trivial.
CALLS_PER_EXAMPLE = int(os.environ.get("FUZZ_CALLS", "20"))
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "500"))
FIGURES: Counter[str] = Counter()
MESSAGES: set[str] = set()


@pytest.fixture(scope="module", autouse=True)
def print_figures() -> Iterator[None]:
    yield
    print(
        f"\nfuzz: {FIGURES['requests']} requests, {FIGURES['5xx']} answered 5xx, "
        f"{FIGURES['crash']} tool calls crashed, {FIGURES['tool errors']} tool errors with "
        f"{len(MESSAGES)} distinct messages, {FIGURES['json-rpc errors']} JSON-RPC errors"
    )


async def send_all(bodies: list[Any]) -> list[tuple[int, Any, Any]]:
    """Every body to a fresh app (the simulator behind it); (status, request, response)."""
    sim = build_simulator(SimulatorOptions(rate_limits=False))
    sim_transport = httpx.ASGITransport(app=sim)
    out: list[tuple[int, Any, Any]] = []
    async with (
        sim.router.lifespan_context(sim),
        httpx.AsyncClient(transport=sim_transport) as sim_http,
    ):
        settings = settings_for(
            SIM_URL,
            tool_deadline_seconds=5,
            scrt_retry_total_seconds=4,
            wait_default_seconds=0.1,
            wait_max_seconds=1,
        )
        app = build_app(settings, http=sim_http)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1"
            ) as http,
        ):
            for body in bodies:
                response = await http.post(
                    "/mcp",
                    content=json.dumps(body),
                    headers={
                        "Accept": "application/json, text/event-stream",
                        "Content-Type": "application/json",
                    },
                )
                try:
                    parsed = response.json()
                except ValueError:
                    parsed = response.text
                out.append((response.status_code, body, parsed))
    return out


@settings(
    max_examples=EXAMPLES,
    derandomize=True,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
    ],
)
@given(bodies=st.lists(REQUESTS, min_size=CALLS_PER_EXAMPLE, max_size=CALLS_PER_EXAMPLE))
def test_no_generated_request_crashes_the_server(
    bodies: list[Any], capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("INFO", "json")
    try:
        results = asyncio.run(send_all(bodies))
    finally:
        structlog.reset_defaults()
        root = logging.getLogger()
        root.handlers[:] = [h for h in root.handlers if not getattr(h, "_miaw", False)]
    for status, body, answer in results:
        FIGURES["requests"] += 1
        FIGURES["5xx"] += status >= 500
        assert status < 500, (status, body, answer)
        result = answer.get("result") if isinstance(answer, dict) else None
        if isinstance(answer, dict) and "error" in answer:
            FIGURES["json-rpc errors"] += 1
        if isinstance(result, dict) and result.get("isError"):
            text = " ".join(c.get("text", "") for c in result.get("content", []))
            FIGURES["tool errors"] += 1
            # The message without the values in it: its first line, digits folded.
            MESSAGES.add(re.sub(r"[0-9]+", "N", text.splitlines()[0] if text else "")[:120])
            assert text and "Traceback" not in text, text
            if "validation error" in text:
                # A refused argument is named (or the missing one it needed).
                named = set(body["params"]["arguments"]) | {"sessionId", "conversationId", "text"}
                assert any(name and name in text for name in named), text
    lines = capsys.readouterr().err.splitlines()
    outcomes = [json.loads(line).get("outcome") for line in lines if '"tool.call"' in line]
    FIGURES["crash"] += outcomes.count("crash")
    assert "crash" not in outcomes
