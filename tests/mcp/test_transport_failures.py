"""When Salesforce cannot be reached, the tool error says why, and set-up mistakes are not retried.

A certificate that is not accepted and a host name that does not exist are permanent: the server
tries once and tells the model (and the operator's log) what is wrong. A refused connection and a
timeout may pass: they are retried within the call's budget.
"""

from __future__ import annotations

import json
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from mcp.client import Client

from app.logs import configure_logging
from app.main import build_app
from tests.certificates import self_signed
from tests.mcp.conftest import ToolFailed, call, settings_for
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
    cert, key = self_signed(tmp_path)
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)
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
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)
    async with silent_listener(tls) as listener:
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
