"""`miaw-mcp contract` against simulators served on 127.0.0.1 (tests/servers.py).

The command runs in a worker thread (it runs its own event loop, as from a shell) while the
target simulator is served by the test's loop; its output is read through capsys. What Ctrl+C does
is checked on a real process, since only a process's main thread gets SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import ssl
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.types import ASGIApp, Receive, Scope, Send

from app.cli import add_simulator_parser, main, simulator_options
from app.contract import (
    CLOSING_NOTICE,
    Answer,
    Created,
    Report,
    Walk,
    add_contract_parser,
    check_contract,
    resolve_target,
    run_contract,
    shape_differences,
    shape_of,
)
from app.scrt.config import org_id_18
from app.scrt.events import sse_headers
from app.simulator import SimulatorOptions, build_simulator
from app.simulator.faults import template_regex
from tests.certificates import self_signed, server_context
from tests.servers import free_port, serve, silent_listener

ORG_ID = "00D000000000042EAA"
DEPLOYMENT = "Contract_Check"
MESSAGE_ROUTE = "/iamessage/api/v2/conversation/{conversationId}/message"
CONVERSATION_ROUTE = "/iamessage/api/v2/conversation/{conversationId}"
DEADLINE = 30.0

ITEMS = [
    "guest-token",
    "continuation-token",
    "token-org-id-15",
    "token-unknown-deployment",
    "token-wrong-org-id",
    "embedded-service-config",
    "business-hours",
    "no-bearer",
    "invalid-bearer",
    "sse-no-bearer",
    "sse-no-org-id",
    "sse-org-id-18",
    "create-conversation",
    "sse-open",
    "create-bad-uuid",
    "routing-status",
    "list-conversations",
    "send-message",
    "list-entries",
    "typing-indicator",
    "acknowledge-entries",
    "unknown-conversation",
    "end-session",
    "close-conversation",
    "send-after-close",
]
RESULTS = ("same", "different", "skipped")


@pytest.fixture(autouse=True)
def no_salesforce_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """The developer's own settings (environment or .env) never stand in for a flag."""
    for name in ("MIAW_SCRT_URL", "MIAW_ORG_ID", "MIAW_ES_DEVELOPER_NAME"):
        monkeypatch.setenv(name, "")


@contextlib.asynccontextmanager
async def simulator(**options: Any) -> AsyncIterator[tuple[str, httpx.AsyncClient]]:
    """A target simulator on a loopback port, and a client for its control API."""
    app = build_simulator(SimulatorOptions(org_id=ORG_ID, es_developer_name=DEPLOYMENT, **options))
    async with serve(app) as url, httpx.AsyncClient(base_url=url, timeout=10.0) as control:
        yield url, control


def contract_args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="miaw-mcp")
    add_contract_parser(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(["contract", *argv])


async def run(
    capsys: pytest.CaptureFixture[str], url: str, *argv: str, org_id: str = ORG_ID
) -> tuple[int, str]:
    """`miaw-mcp contract` against `url` (in a thread, with its own loop): exit status, stdout."""
    args = contract_args("--scrt-url", url, "--org-id", org_id, "--deployment", DEPLOYMENT, *argv)
    status = await asyncio.to_thread(run_contract, args)
    return status, capsys.readouterr().out


def results(out: str) -> dict[str, str]:
    """Item name to result, from the human report."""
    found = {}
    for line in out.splitlines():
        words = line.split()
        if len(words) >= 2 and words[0] in RESULTS:
            found[words[1]] = words[0]
    return found


def block(out: str, name: str) -> str:
    """An item's lines in the human report: its own and the indented ones under it."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.split()[1:2] == [name])
    end = start + 1
    while end < len(lines) and lines[end].startswith(" "):
        end += 1
    return "\n".join(lines[start:end])


async def conversations(control: httpx.AsyncClient) -> list[dict[str, Any]]:
    response = await control.get("/control/conversations")
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()["conversations"]
    return found


async def arm(control: httpx.AsyncClient, **fault: Any) -> None:
    response = await control.post("/control/faults", json=fault)
    assert response.status_code == 201, response.text


async def test_a_healthy_simulator_is_the_same_on_every_item_and_keeps_no_conversation_open(
    capsys: pytest.CaptureFixture[str],
) -> None:
    async with simulator() as (url, control):
        status, out = await run(capsys, url, "--timeout", "5")
        left = await conversations(control)
    assert results(out) == dict.fromkeys(ITEMS, "same"), out
    assert status == 0
    assert "25 items: 25 same, 0 different, 0 skipped" in out
    assert "Conversations created on the target: 1, all closed." in out
    assert len(left) == 1
    assert [c["open"] for c in left] == [False]
    # No token, org id or conversation id is printed.
    assert "eyJ" not in out
    assert ORG_ID[:15] not in out
    assert left[0]["conversationId"] not in out


async def test_b_an_org_that_opens_the_stream_for_the_18_char_org_id_is_different_there(
    capsys: pytest.CaptureFixture[str],
) -> None:
    async with simulator(sse_accepts_org_id18=True) as (url, control):
        status, out = await run(capsys, url, "--timeout", "5")
        left = await conversations(control)
    assert status == 1
    assert results(out) == {**dict.fromkeys(ITEMS, "same"), "sse-org-id-18": "different"}, out
    shown = block(out, "sse-org-id-18")
    assert "request    GET /eventrouter/v1/sse" in shown
    assert "X-Org-Id: <org id, 18 characters>" in shown
    assert 'simulator  400 json "OrgId in the header and token must match"' in shown
    assert "target     200 event-stream" in shown
    assert "- status: 400 from the simulator, 200 from the target" in shown
    assert [c["open"] for c in left] == [False]


async def test_c_json_report_from_the_servers_settings_with_a_15_char_org_id(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    async with simulator(sse_accepts_org_id18=True) as (url, control):
        monkeypatch.setenv("MIAW_SCRT_URL", url)
        monkeypatch.setenv("MIAW_ORG_ID", ORG_ID[:15])
        monkeypatch.setenv("MIAW_ES_DEVELOPER_NAME", DEPLOYMENT)
        status = await asyncio.to_thread(main, ["contract", "--json", "--timeout", "5"])
        out = capsys.readouterr().out
        left = await conversations(control)
    report = json.loads(out)
    assert status == 1
    assert report["target"] == {
        "scrtUrl": url,
        "deployment": DEPLOYMENT,
        "orgIdCharacters": 15,
    }
    assert [item["name"] for item in report["items"]] == ITEMS
    assert report["summary"] == {"same": 24, "different": 1, "skipped": 0, "notRun": 0}
    different = next(item for item in report["items"] if item["result"] == "different")
    assert different["name"] == "sse-org-id-18"
    assert different["request"]["headers"]["X-Org-Id"] == "<org id, 18 characters>"
    assert different["request"]["headers"]["Authorization"] == "Bearer <guest token>"
    assert different["simulator"]["status"] == 400
    assert different["simulator"]["message"] == "OrgId in the header and token must match"
    assert different["target"] == {"status": 200, "contentType": "event-stream"}
    token = next(item for item in report["items"] if item["name"] == "guest-token")
    assert token["target"]["shape"]["accessToken"] == "string"
    assert token["request"]["body"]["orgId"] == "<org id, 18 characters>"
    assert [(c["side"], c["state"]) for c in report["conversations"]] == [
        ("simulator", "closed"),
        ("target", "closed"),
        ("simulator", "not created"),  # create-bad-uuid
        ("target", "not created"),
    ]
    assert [c["open"] for c in left] == [False]
    assert "eyJ" not in out
    assert ORG_ID[:15] not in out


def flags(**values: str | None) -> list[str]:
    """`contract` with the three flags, each overridden (None leaves the flag out)."""
    chosen: dict[str, str | None] = {
        "scrt_url": "http://127.0.0.1:9",
        "org_id": ORG_ID,
        "deployment": DEPLOYMENT,
        **values,
    }
    return ["contract"] + [
        word
        for name, value in chosen.items()
        if value is not None
        for word in ("--" + name.replace("_", "-"), value)
    ]


@pytest.mark.parametrize(
    ("argv", "environment", "message"),
    [
        (["contract"], {}, "--scrt-url is required (or set MIAW_SCRT_URL)"),
        (flags(scrt_url="ftp://sim.example"), {}, "--scrt-url must be an http(s) URL with a host"),
        (flags(scrt_url="http://"), {}, "--scrt-url must be an http(s) URL with a host"),
        (flags(org_id="001000000000042"), {}, "--org-id must be a 15- or 18-character org id"),
        (flags(org_id="00D0000000000"), {}, "--org-id must be a 15- or 18-character org id"),
        (flags(org_id=""), {}, "--org-id must be a 15- or 18-character org id"),
        (flags(deployment=" "), {}, "--deployment must not be empty"),
        (
            flags(org_id=None),
            {"MIAW_ORG_ID": "00Dbad"},
            "MIAW_ORG_ID (the fallback for --org-id) must be a 15- or 18-character org id",
        ),
        (flags(deployment=None), {}, "--deployment is required (or set MIAW_ES_DEVELOPER_NAME)"),
    ],
)
def test_d_bad_arguments_exit_2_naming_the_flag(
    argv: list[str],
    environment: dict[str, str],
    message: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert message in captured.err
    assert captured.out == ""


@pytest.mark.parametrize("value", ["0", "-1", "nan", "121", "soon"])
def test_d_a_bad_timeout_exits_2_naming_the_flag(
    value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["contract", "--timeout", value])
    assert exited.value.code == 2
    assert "argument --timeout: must be a number of seconds above 0" in capsys.readouterr().err


def test_d_a_bare_host_is_https_as_for_the_server() -> None:
    target = resolve_target(
        contract_args(*flags(scrt_url="acme.my.salesforce-scrt.com/", org_id=ORG_ID[:15])[1:])
    )
    assert target.scrt_url == "https://acme.my.salesforce-scrt.com"
    assert target.org_id18 == ORG_ID


def test_the_simulator_flag_reproduces_an_org_that_accepts_the_18_char_org_id_on_sse() -> None:
    parser = argparse.ArgumentParser(prog="miaw-mcp")
    add_simulator_parser(parser.add_subparsers(dest="command", required=True))
    plain = simulator_options(parser.parse_args(["simulator"]))
    lenient = simulator_options(parser.parse_args(["simulator", "--sse-accepts-18-char-org-id"]))
    assert (plain.sse_accepts_org_id18, lenient.sse_accepts_org_id18) == (False, True)


def test_org_id_18_appends_the_case_checksum() -> None:
    assert org_id_18("001A0000006Vm9r") == "001A0000006Vm9rIAC"
    assert org_id_18("00D000000000042") == "00D000000000042EAA"
    assert org_id_18("00Dxx0000001gPL") == "00Dxx0000001gPLEAY"


def test_shapes_compare_keys_and_types_lists_by_their_first_element_not_values() -> None:
    simulator: dict[str, Any] = {"accessToken": "a", "lastEventId": "1"}
    simulator["context"] = {"endUser": {"subject": "s"}}
    simulator["entries"] = [{"id": "x", "ts": 1}]
    same: dict[str, Any] = {"accessToken": "b", "lastEventId": "9"}
    same["context"] = {"endUser": {"subject": "t"}}
    same["entries"] = [{"id": "y", "ts": 2}, {"other": True}]
    assert shape_differences(shape_of(simulator), shape_of(same)) == []
    other: dict[str, Any] = {"accessToken": "b", "lastEventId": 9, "context": {"endUser": {}}}
    other["entries"] = [{"id": "y", "ts": "2", "extra": None}]
    assert shape_differences(shape_of(simulator), shape_of(other)) == [
        "context.endUser.subject: only in the simulator's answer (string)",
        "entries[0].extra: only in the target's answer (null)",
        "entries[0].ts: number from the simulator, string from the target",
        "lastEventId: string from the simulator, number from the target",
    ]
    assert shape_of(simulator, depth=1) == {
        "accessToken": "string",
        "context": "object",
        "entries": "array",
        "lastEventId": "string",
    }


async def test_e_a_close_that_fails_once_is_reported_and_retried_after_the_walk(
    capsys: pytest.CaptureFixture[str],
) -> None:
    async with simulator() as (url, control):
        await arm(control, path=CONVERSATION_ROUTE, method="DELETE", status=503, count=1)
        status, out = await run(capsys, url, "--timeout", "5")
        left = await conversations(control)
    assert status == 1
    found = results(out)
    assert found["close-conversation"] == "different"
    assert found["send-after-close"] == "skipped"
    assert "the conversation was not closed: the target answered 503 json SERVER_ERROR" in block(
        out, "send-after-close"
    )
    assert "Conversations created on the target: 1, all closed." in out
    assert [c["open"] for c in left] == [False]


async def test_e_a_close_that_keeps_failing_is_a_warning_with_the_conversation_id(
    capsys: pytest.CaptureFixture[str],
) -> None:
    async with simulator() as (url, control):
        await arm(control, path=CONVERSATION_ROUTE, method="DELETE", status=503, count=None)
        status, out = await run(capsys, url, "--timeout", "5", "--json")
        left = await conversations(control)
    assert status == 1
    report = json.loads(out)
    assert [c["open"] for c in left] == [True]  # the report is right: it is still open
    on_target = [
        c for c in report["conversations"] if c["side"] == "target" and c["state"] != "not created"
    ]
    assert on_target == [
        {
            "side": "target",
            "state": "open",
            "how": "the close got 503 json SERVER_ERROR \"Injected fault from the simulator's "
            'control API."',
            "conversationId": left[0]["conversationId"],
        }
    ]


async def test_e_a_probe_without_an_answer_is_reported_and_the_walk_goes_on(
    capsys: pytest.CaptureFixture[str],
) -> None:
    async with simulator() as (url, control):
        await arm(control, path=MESSAGE_ROUTE, method="POST", delay=5, count=1)
        status, out = await run(capsys, url, "--timeout", "1")
        left = await conversations(control)
    assert status == 1
    assert results(out) == {**dict.fromkeys(ITEMS, "same"), "send-message": "different"}, out
    assert "target     no answer within 1 s" in block(out, "send-message")
    assert [c["open"] for c in left] == [False]


class Arrivals:
    """The target simulator behind a door that notes each request as it arrives and can hold the
    requests of a route until the test lets them through: the test waits for a request to arrive
    instead of polling, and a held request keeps the walk where the test wants it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.seen: list[tuple[str, str]] = []
        self.came = asyncio.Condition()
        self.gates: list[tuple[str, str, asyncio.Event]] = []
        self.closing = False

    def hold(self, method: str, route: str) -> asyncio.Event:
        """Hold the requests for `route` until the returned event is set."""
        gate = asyncio.Event()
        self.gates.append((method, route, gate))
        return gate

    def release_all(self) -> None:
        """At the end: what is still held is answered 503 (its client is gone by now)."""
        self.closing = True
        for _, _, gate in self.gates:
            gate.set()

    async def arrived(self, method: str, route: str) -> None:
        """Until a request for `route` (a template) has arrived, within the deadline."""
        pattern = template_regex(route)
        async with asyncio.timeout(DEADLINE), self.came:
            await self.came.wait_for(
                lambda: any(m == method and pattern.match(path) for m, path in self.seen)
            )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            method, path = scope["method"], scope["path"]
            async with self.came:
                self.seen.append((method, path))
                self.came.notify_all()
            for held_method, route, gate in self.gates:
                if held_method == method and template_regex(route).match(path):
                    await gate.wait()
            if self.closing:
                await send({"type": "http.response.start", "status": 503, "headers": []})
                await send({"type": "http.response.body", "body": b""})
                return
        await self.app(scope, receive, send)


def target_simulator() -> Arrivals:
    return Arrivals(build_simulator(SimulatorOptions(org_id=ORG_ID, es_developer_name=DEPLOYMENT)))


async def test_e_a_cancelled_walk_closes_its_conversation_even_if_cancelled_again() -> None:
    """Cancelling the task (as code that embeds check_contract would); Ctrl+C is below."""
    app = target_simulator()
    app.hold("POST", MESSAGE_ROUTE)  # the walk waits for its send-message
    close = app.hold("DELETE", CONVERSATION_ROUTE)
    async with serve(app) as url, httpx.AsyncClient(base_url=url, timeout=10.0) as control:
        try:
            report = Report(resolve_target(contract_args(*flags(scrt_url=url)[1:])), 15.0)
            walk = asyncio.create_task(check_contract(report))
            await app.arrived("POST", MESSAGE_ROUTE)
            walk.cancel()
            await app.arrived("DELETE", CONVERSATION_ROUTE)  # the clean-up's close, held
            walk.cancel()
            close.set()
            with pytest.raises(asyncio.CancelledError):
                await walk
            left = await conversations(control)
        finally:
            app.release_all()
    assert [c["open"] for c in left] == [False]
    assert [item.name for item in report.items][-1] == "list-conversations"
    on_target = [c for c in report.conversations if c.side == "target" and c.how != "refused: 400"]
    assert [(c.state, c.how) for c in on_target] == [("closed", "closed after the walk")]


async def interrupt(presses: int) -> tuple[int | None, str, str, list[dict[str, Any]]]:
    """`miaw-mcp contract` as a process, Ctrl+C'd (SIGINT to its pid) `presses` times: once while
    it waits for its send-message, then while its clean-up closes the conversation (held there
    until the process said it goes on closing). Exit status, stdout, stderr, the conversations."""
    app = target_simulator()
    app.hold("POST", MESSAGE_ROUTE)
    close = app.hold("DELETE", CONVERSATION_ROUTE)
    async with serve(app) as url, httpx.AsyncClient(base_url=url, timeout=10.0) as control:
        # SIGINT as in a terminal, even if this test runs with SIGINT ignored (a background job).
        start = (
            "import signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
            "from app.cli import main; raise SystemExit(main())"
        )
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", start, "contract", "--scrt-url", url, "--org-id", ORG_ID,
            "--deployment", DEPLOYMENT, "--timeout", str(DEADLINE),
            env={"PATH": os.environ["PATH"]}, cwd="/",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        assert proc.stderr is not None
        told = b""
        try:
            await app.arrived("POST", MESSAGE_ROUTE)
            proc.send_signal(signal.SIGINT)
            await app.arrived("DELETE", CONVERSATION_ROUTE)
            for _ in range(presses - 1):
                proc.send_signal(signal.SIGINT)
                async with asyncio.timeout(DEADLINE):
                    while CLOSING_NOTICE.encode() not in told:
                        line = await proc.stderr.readline()
                        assert line, f"exited with {await proc.wait()}: {told!r}"
                        told += line
            if presses <= 2:
                close.set()
            async with asyncio.timeout(DEADLINE):
                out, err = await proc.communicate()
            left = await conversations(control)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            app.release_all()
    return proc.returncode, out.decode(), (told + err).decode(), left


async def test_f_ctrl_c_twice_still_closes_the_conversation_and_says_so() -> None:
    status, out, err, left = await interrupt(presses=2)
    assert status == 130, err
    assert [c["open"] for c in left] == [False]
    assert err.count(CLOSING_NOTICE) == 1
    assert "Conversations created on the target: 1, all closed." in out
    assert "Interrupted: the remaining items were not run." in out
    assert left[0]["conversationId"] not in out


async def test_f_ctrl_c_a_third_time_quits_and_names_the_conversation_left_open() -> None:
    status, out, err, left = await interrupt(presses=3)
    assert status == 130, err
    assert [c["open"] for c in left] == [True]
    assert (
        f"WARNING: conversation {left[0]['conversationId']} on the target could not be closed "
        "(the run was stopped before its close finished)"
    ) in out
    assert "Interrupted: the remaining items were not run." in out


def tls_context(tmp_path: Path) -> ssl.SSLContext:
    return server_context(*self_signed(tmp_path))


TOKEN_REQUEST = "POST /iamessage/api/v2/authorization/unauthenticated/access-token"


async def test_g_a_refused_certificate_is_named_and_the_walk_stops_at_the_first_request(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    async with silent_listener(tls_context(tmp_path)) as listener:
        status, out = await run(capsys, listener.url("https"), "--timeout", "5")
    assert status == 1
    assert results(out) == {"guest-token": "different"}, out
    refused = "no answer: the TLS certificate was not accepted (self-signed certificate)"
    assert f"target     {refused}" in block(out, "guest-token")
    assert "1 items: 0 same, 1 different, 0 skipped; 24 not run" in out
    assert f"Stopped: {TOKEN_REQUEST} got {refused}. The remaining items were not run" in out
    assert listener.connections == 1


async def test_g_a_refused_connection_is_named_and_stops_the_walk_in_the_json_report(
    capsys: pytest.CaptureFixture[str],
) -> None:
    status, out = await run(capsys, f"http://127.0.0.1:{free_port()}", "--timeout", "5", "--json")
    report = json.loads(out)
    assert status == 1
    assert [item["name"] for item in report["items"]] == ["guest-token"]
    assert report["items"][0]["target"] == {"problem": "no answer: the connection was refused"}
    assert report["stopped"] == f"{TOKEN_REQUEST} got no answer: the connection was refused"
    assert report["summary"]["notRun"] == 24
    assert report["conversations"] == []


def test_g_a_create_that_never_left_needs_no_close() -> None:
    target = resolve_target(contract_args(*flags()[1:]))
    walk = Walk(target, 5.0, Report(target, 5.0), [])
    created = Created("target", "c-1", "Bearer t")
    refused = Answer(problem="no answer: the connection was refused", sent=False)
    walk._created(created, refused)
    assert (created.state, created.ok) == ("not created", True)
    unknown = Created("target", "c-2", "Bearer t")
    walk._created(unknown, Answer(problem="no answer within 5 s"))
    assert (unknown.state, unknown.ok) == ("unknown", False)  # it may exist: closed after


def test_the_event_stream_probe_sends_the_headers_our_client_sends() -> None:
    target = resolve_target(contract_args(*flags()[1:]))
    walk = Walk(target, 5.0, Report(target, 5.0), [])
    values = {"bearer": "Bearer the-token", "lastEventId": "42", "org15": target.org_id15}
    call = walk.stream_call()
    request = call.build(httpx.AsyncClient(base_url=target.scrt_url), values)
    expected = sse_headers(walk.config, "the-token", "42")
    assert set(call.headers) == set(expected)
    assert {name: request.headers[name] for name in expected} == expected
    shown = call.as_json()["headers"]
    assert (shown["Authorization"], shown["X-Org-Id"], shown["Last-Event-Id"]) == (
        "Bearer <guest token>",
        "<org id, 15 characters>",
        "<the token's lastEventId>",
    )


async def test_error_messages_are_shown_with_tokens_redacted(
    capsys: pytest.CaptureFixture[str],
) -> None:
    secret = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"
    async with simulator() as (url, control):
        await arm(
            control,
            path="/iamessage/api/v2/conversation/list",
            status=401,
            count=1,
            body={"message": f"Invalid token {secret}; send Bearer abc", "errorCode": "X"},
        )
        status, out = await run(capsys, url, "--timeout", "5")
    assert status == 1
    assert 'target     401 json X "Invalid token <jwt>; send Bearer <redacted>"' in block(
        out, "no-bearer"
    )
    assert secret not in out
