"""The command line as operators run it: `serve` over HTTP and stdio, `simulator` over HTTPS."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import ssl
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from mcp.client import Client
from mcp.client.stdio import StdioServerParameters

from app.cli import add_simulator_parser, simulator_options
from app.simulator import build_simulator
from app.simulator.options import DEFAULT_DEPLOYMENT, DEFAULT_ORG_ID, FaultSpec
from tests.certificates import self_signed
from tests.servers import free_port, serve

ROOT = Path(__file__).resolve().parents[1]


@contextlib.asynccontextmanager
async def command(*args: str, env: dict[str, str], ready: str) -> AsyncIterator[str]:
    """Run `python -m app ARGS`; yield its output up to the line containing `ready`."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "app", *args,
        cwd=ROOT, env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    assert proc.stdout is not None
    seen = ""
    try:
        async with asyncio.timeout(120):
            while ready not in seen:
                line = (await proc.stdout.readline()).decode()
                assert line, f"exited with {await proc.wait()}: {seen}"
                seen += line
        yield seen
    finally:
        if proc.returncode is None:
            proc.terminate()
        await proc.wait()


def salesforce_env(scrt_url: str) -> dict[str, str]:
    return {
        "MIAW_SCRT_URL": scrt_url,
        "MIAW_ORG_ID": DEFAULT_ORG_ID,
        "MIAW_ES_DEVELOPER_NAME": DEFAULT_DEPLOYMENT,
        "LOG_FORMAT": "json",
    }


async def test_serve_binds_port_from_the_environment_and_answers_tools_list() -> None:
    async with serve(build_simulator()) as sim_url:
        port = free_port()
        env = {**salesforce_env(sim_url), "PORT": str(port), "HOST": "127.0.0.1"}
        async with command("serve", env=env, ready="serving MCP"), httpx.AsyncClient() as http:
            health = await http.get(f"http://127.0.0.1:{port}/health")
            listed = await http.post(
                f"http://127.0.0.1:{port}/mcp",
                json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
            )
    assert health.json()["status"] == "ok"
    assert len(listed.json()["result"]["tools"]) == 11


async def test_serve_over_stdio_speaks_mcp() -> None:
    async with serve(build_simulator()) as sim_url:
        params = StdioServerParameters(
            command=sys.executable,
            args=["-m", "app", "serve"],
            env={**os.environ, **salesforce_env(sim_url), "MCP_TRANSPORT": "stdio"},
            cwd=str(ROOT),
        )
        async with Client(params) as client:
            result = await client.call_tool("generate_guest_access_token", {})
    assert result.is_error is False
    assert result.structured_content is not None
    assert result.structured_content["sessionId"]


async def test_serve_without_salesforce_settings_names_them_and_exits() -> None:
    env = {name: "" for name in ("MIAW_SCRT_URL", "MIAW_ORG_ID", "MIAW_ES_DEVELOPER_NAME")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "app", "serve",
        cwd=ROOT, env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 2
    assert "MIAW_SCRT_URL, MIAW_ORG_ID, MIAW_ES_DEVELOPER_NAME" in err.decode()


async def test_simulator_serves_https_with_a_certificate(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    port = free_port()
    args = (
        "simulator",
        "--port",
        str(port),
        "--ssl-certfile",
        str(cert),
        "--ssl-keyfile",
        str(key),
    )
    async with command(*args, env={}, ready="listening on") as banner:
        assert f"https://127.0.0.1:{port}" in banner
        async with httpx.AsyncClient(verify=ssl.create_default_context(cafile=str(cert))) as http:
            r = await http.post(
                f"https://127.0.0.1:{port}/iamessage/api/v2/authorization/unauthenticated/access-token",
                json={
                    "orgId": DEFAULT_ORG_ID,
                    "esDeveloperName": DEFAULT_DEPLOYMENT,
                    "capabilitiesVersion": "1",
                    "platform": "Web",
                },
            )
    assert r.status_code == 200 and r.json()["accessToken"]


# -- simulator fault flags ----------------------------------------------------------------------

TOKEN_PATH = "/iamessage/api/v2/authorization/unauthenticated/access-token"


def simulator_args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="miaw-mcp")
    add_simulator_parser(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(["simulator", *argv])


def test_simulator_fault_flags_reach_the_options() -> None:
    options = simulator_options(
        simulator_args(
            "--no-replay",
            "--fail-rate", "0.2",
            "--delay-sends-rate", "0.1",
            "--delay-sends-seconds", "9",
            "--cut-streams-every", "10",
            "--seed", "42",
        )
    )  # fmt: skip
    assert options.replay is False
    assert options.fault_seed == 42
    assert options.cut_streams_every == 10.0
    assert options.faults == (
        FaultSpec("/iamessage/*", status=503, probability=0.2),
        FaultSpec("/eventrouter/*", status=503, probability=0.2),
        FaultSpec(
            "/iamessage/api/v2/conversation/{conversationId}/message",
            method="POST",
            delay=9.0,
            probability=0.1,
        ),
    )


def test_simulator_misconfiguration_flags_reach_the_options() -> None:
    options = simulator_options(
        simulator_args(
            "--deployment-type", "Web",
            "--unpublished",
            "--routing-fails",
            "--prechat-required", "_firstName",
            "--prechat-required", "Topic",
        )
    )  # fmt: skip
    assert options.deployment_type == "Web"
    assert options.deployment_published is False
    assert options.routing_failure == "RoutingError"
    assert options.prechat_required == ("_firstName", "Topic")
    healthy = simulator_options(simulator_args())
    assert (healthy.deployment_type, healthy.deployment_published) == ("Api", True)
    assert (healthy.routing_failure, healthy.prechat_required) == (None, ())
    named = simulator_options(simulator_args("--routing-fails", "Cancelled"))
    assert named.routing_failure == "Cancelled"


def test_simulator_without_fault_flags_has_no_faults() -> None:
    options = simulator_options(simulator_args())
    assert (options.replay, options.faults, options.fault_seed, options.cut_streams_every) == (
        True,
        (),
        0,
        None,
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--fail-rate", "0"], "argument --fail-rate: must be a fraction above 0, at most 1"),
        (["--fail-rate", "1.5"], "argument --fail-rate: must be a fraction above 0, at most 1"),
        (["--fail-rate", "nan"], "argument --fail-rate: must be a fraction above 0, at most 1"),
        (["--delay-sends-rate", "x"], "argument --delay-sends-rate: must be a fraction"),
        (
            ["--delay-sends-rate", "0.1", "--delay-sends-seconds", "61"],
            "argument --delay-sends-seconds: must be a number of seconds above 0, at most 60",
        ),
        (["--cut-streams-every", "0"], "argument --cut-streams-every: must be a number of seconds"),
        (["--cut-streams-every", "inf"], "argument --cut-streams-every: must be a number"),
        (["--seed", "1.5"], "argument --seed: invalid int value"),
    ],
)
def test_simulator_bad_fault_flag_values_are_refused_naming_the_flag(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        simulator_args(*argv)
    assert exited.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["--delay-sends-rate", "0.1"], ["--delay-sends-seconds", "9"]])
def test_simulator_delay_sends_flags_go_together(argv: list[str]) -> None:
    with pytest.raises(
        ValueError, match="--delay-sends-rate and --delay-sends-seconds go together"
    ):
        simulator_options(simulator_args(*argv))


async def test_simulator_fail_rate_one_fails_salesforce_calls_but_not_the_control_api() -> None:
    port = free_port()
    args = ("simulator", "--port", str(port), "--fail-rate", "1", "--no-replay", "--seed", "3")
    async with command(*args, env={}, ready="faults (seed 3)") as banner:
        assert "no replay" in banner
        base = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(base_url=base) as http:
            token = await http.post(
                TOKEN_PATH,
                json={
                    "orgId": DEFAULT_ORG_ID,
                    "esDeveloperName": DEFAULT_DEPLOYMENT,
                    "capabilitiesVersion": "1",
                    "platform": "Web",
                },
            )
            stream = await http.get("/eventrouter/v1/sse")
            faults = await http.get("/control/faults")
    assert token.status_code == 503
    assert token.json()["errorCode"] == "SERVER_ERROR"
    assert stream.status_code == 503
    assert faults.status_code == 200
    listed = faults.json()
    assert listed["seed"] == 3
    assert [
        (f["path"], f["status"], f["probability"], f["remaining"]) for f in listed["faults"]
    ] == [
        ("/iamessage/*", 503, 1.0, None),
        ("/eventrouter/*", 503, 1.0, None),
    ]
