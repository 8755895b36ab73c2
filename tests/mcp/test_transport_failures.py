"""When Salesforce cannot be reached, the tool error says why, and set-up mistakes are not retried.

A certificate that is not accepted and a host name that does not exist are permanent: the server
tries once and tells the model (and the operator's log) what is wrong. A refused connection and a
timeout may pass: they are retried within the call's budget.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog
from mcp.client import Client

from app.failures import describe
from app.logs import configure_logging
from app.main import build_app
from app.scrt import RetryPolicy, ScrtClient, ScrtConfig, ScrtPoolTimeoutError
from app.simulator.options import DEFAULT_ORG_ID
from tests.certificates import self_signed, server_context
from tests.mcp.conftest import StackFactory, ToolFailed, call, read_until, settings_for
from tests.resolver import FailingLookups
from tests.servers import free_port, serve, silent_listener

UNKNOWN_HOST = "org.unknown-host.invalid"


@pytest.fixture
def json_logs(capsys: pytest.CaptureFixture[str]) -> Iterator[pytest.CaptureFixture[str]]:
    configure_logging("DEBUG", "json")
    yield capsys
    structlog.reset_defaults()


def log_lines(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    output = capsys.readouterr()
    return [
        json.loads(line) for line in (output.err + output.out).splitlines() if line.startswith("{")
    ]


async def mint_fails(scrt_url: str, **settings: Any) -> str:
    """generate_guest_access_token against `scrt_url`; the tool error's text."""
    app = build_app(settings_for(scrt_url, **settings))
    async with serve(app, lifespan="on") as base, Client(base + "/mcp") as client:
        with pytest.raises(ToolFailed) as failed:
            await call(client, "generate_guest_access_token", {})
    return str(failed.value)


def failure_line(lines: list[dict[str, Any]]) -> dict[str, Any]:
    return next(
        line
        for line in lines
        if line.get("event") == "tool.call" and line.get("tool") == "generate_guest_access_token"
    )


async def test_a_self_signed_certificate_is_named_and_tried_once(
    tmp_path: Path, json_logs: pytest.CaptureFixture[str]
) -> None:
    tls = server_context(*self_signed(tmp_path))
    async with silent_listener(tls) as listener:
        text = await mint_fails(listener.url("https"))
    assert "TLS certificate was not accepted" in text and "will not help" in text
    assert listener.connections == 1
    lines = log_lines(json_logs)
    assert not [line for line in lines if line.get("event") == "scrt.retry"]
    logged = failure_line(lines)
    assert logged["error"] == "ScrtCertificateError"
    assert "self-signed certificate" in logged["cause"]


async def test_a_trusted_certificate_for_another_host_is_named(
    tmp_path: Path, json_logs: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    cert, key = self_signed(tmp_path, "login.example.com")
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # trusted: only the host name is wrong
    async with silent_listener(server_context(cert, key)) as listener:
        text = await mint_fails(listener.url("https"))
    assert "TLS certificate was not accepted" in text
    assert listener.connections == 1
    logged = failure_line(log_lines(json_logs))
    assert logged["error"] == "ScrtCertificateError"
    assert "certificate is not valid for '127.0.0.1'" in logged["cause"]


@pytest.fixture
def unknown_host(monkeypatch: pytest.MonkeyPatch) -> FailingLookups:
    return FailingLookups(monkeypatch, UNKNOWN_HOST, socket.EAI_NONAME)


async def test_an_unknown_host_is_named_and_looked_up_once(
    unknown_host: FailingLookups, json_logs: pytest.CaptureFixture[str]
) -> None:
    text = await mint_fails(f"https://{UNKNOWN_HOST}")
    assert "host name could not be found" in text and "MIAW_SCRT_URL" in text
    assert unknown_host.count == 1
    lines = log_lines(json_logs)
    assert not [line for line in lines if line.get("event") == "scrt.retry"]
    logged = failure_line(lines)
    assert logged["error"] == "ScrtHostNotFoundError"
    assert logged["cause"] == "Name or service not known"


async def test_a_temporary_dns_failure_is_retried(
    monkeypatch: pytest.MonkeyPatch, json_logs: pytest.CaptureFixture[str]
) -> None:
    """A resolver that did not answer (EAI_AGAIN) may answer next time."""
    lookups = FailingLookups(monkeypatch, UNKNOWN_HOST, socket.EAI_AGAIN)
    text = await mint_fails(f"https://{UNKNOWN_HOST}")
    assert "could not be reached. Try again shortly" in text
    assert lookups.count > 1


async def test_a_refused_connection_is_named_and_retried(
    json_logs: pytest.CaptureFixture[str],
) -> None:
    text = await mint_fails(f"http://127.0.0.1:{free_port()}")
    assert text.endswith(": Salesforce refused the connection. Try again shortly.")
    lines = log_lines(json_logs)
    assert [line for line in lines if line.get("event") == "scrt.retry"]
    logged = failure_line(lines)
    assert (logged["error"], logged["cause"]) == ("ScrtRefusedError", "connection refused")


async def test_a_server_that_never_answers_times_out_and_is_retried(
    json_logs: pytest.CaptureFixture[str],
) -> None:
    async with silent_listener() as listener:
        text = await mint_fails(
            listener.url("http"), scrt_timeout_seconds=0.3, scrt_retry_total_seconds=2
        )
    assert text.endswith(": Salesforce did not answer in time. Try again shortly.")
    assert listener.connections > 1
    assert failure_line(log_lines(json_logs))["error"] == "ScrtTimeoutError"


async def test_event_streams_do_not_take_the_places_of_rest_calls(
    stack_factory: StackFactory,
) -> None:
    """Each guest session's event stream keeps a connection for its whole life. With a REST
    pool of 2, four open streams must not leave token minting and sends waiting for a place."""
    stack = await stack_factory(scrt_max_connections=2, scrt_pool_wait_seconds=0.5)
    async with Client(stack.mcp_url) as client:
        for _ in range(4):
            session = await call(client, "generate_guest_access_token", {})
            created = await call(client, "create_conversation", session)
            ids = {**session, "conversationId": created["conversationId"]}
            await read_until(client, ids, lambda entries, _: bool(entries))
        stats = (await stack.control.get("/control/stats")).json()
        assert stats["openSseStreams"] == 4
        sent = await call(client, "send_message", {**ids, "text": "still here"})
    assert sent["conversationId"] == ids["conversationId"]


async def test_a_request_that_finds_no_free_connection_says_so() -> None:
    async with silent_listener() as listener:
        http = httpx.AsyncClient(
            timeout=httpx.Timeout(30, pool=0.2), limits=httpx.Limits(max_connections=1)
        )
        config = ScrtConfig(
            scrt_url=listener.url("http"), org_id=DEFAULT_ORG_ID, es_developer_name="D"
        )
        scrt = ScrtClient(http, config, retry=RetryPolicy(max_attempts=1, total_timeout=5))
        hanging = asyncio.create_task(scrt.guest_token())
        async with asyncio.timeout(10):  # the first request holds the only connection
            await listener.connected.wait()
        with pytest.raises(ScrtPoolTimeoutError) as caught:
            await scrt.guest_token()
        hanging.cancel()
        await http.aclose()
    assert caught.value.request_sent is False
    assert describe(caught.value) == (
        "This server has as many Salesforce requests under way as it allows "
        "(SCRT_MAX_CONNECTIONS); try again shortly."
    )
