"""`miaw-mcp doctor` against the simulator set up right and set up wrong, one way at a time.

Each misconfiguration the simulator can reproduce gets the step that finds it, the problem named
and the fix. A healthy org passes every step; doctor never leaves a conversation open.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import ssl
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.config import Settings
from app.doctor import Check, Doctor
from app.scrt.config import org_id_18
from app.simulator import SimulatorOptions, build_simulator
from app.simulator.options import DEFAULT_DEPLOYMENT, DEFAULT_ORG_ID
from tests.certificates import self_signed
from tests.resolver import FailingLookups
from tests.servers import serve

PUBLIC = "https://support-bot.herokuapp.com"
OTHER_ORG = org_id_18("00D000000000002")
ALL_STEPS = [
    "settings",
    "url",
    "org_id",
    "dns",
    "tls",
    "deployment",
    "prechat",
    "token",
    "event_stream",
    "public_url",
]


def settings(scrt_url: str, **values: Any) -> Settings:
    base: dict[str, Any] = {
        "miaw_scrt_url": scrt_url,
        "miaw_org_id": DEFAULT_ORG_ID,
        "miaw_es_developer_name": DEFAULT_DEPLOYMENT,
        "public_url": PUBLIC,
        **values,
    }
    return Settings(_env_file=None, **base)  # type: ignore[call-arg]


SIMULATORS: dict[Any, None] = {}
"""The simulators the running test started, oldest first."""


@pytest.fixture
async def sim() -> AsyncIterator[Callable[..., Any]]:
    """Start a simulator with the given options; yields its URL. Pings every 0.1 s, so the
    event-stream step never waits long."""
    apps: list[Any] = []
    servers: list[Any] = []

    async def start(tls: tuple[Path, Path] | None = None, **options: Any) -> str:
        options.setdefault("ping_interval", 0.1)
        options.setdefault("rate_limits", False)
        app = build_simulator(SimulatorOptions(**options))
        server = serve(app, tls=tls)
        apps.append(app)
        SIMULATORS[app] = None
        servers.append(server)
        url: str = await server.__aenter__()
        return url

    yield start
    for server in reversed(servers):
        await server.__aexit__(None, None, None)
    SIMULATORS.clear()
    for app in apps:
        assert not [c for c in app.state.simulator.conversations.values() if c.open], (
            "doctor left a conversation open"
        )


async def run(s: Settings, *, create: bool = False, seconds: float = 10.0) -> list[Check]:
    async with httpx.AsyncClient(timeout=seconds) as http:
        return await Doctor(s, http=http, timeout=seconds, create_conversation=create).run()


def failure(checks: list[Check]) -> Check:
    failed = [c for c in checks if c.status == "fail"]
    assert len(failed) == 1 and failed[0] is checks[-1], checks
    return failed[0]


# -- a healthy org ---------------------------------------------------------------------------------


async def test_a_healthy_simulator_passes_every_step_and_the_conversation_is_closed(
    sim: Callable[..., Any],
) -> None:
    url = await sim()
    checks = await run(settings(url), create=True)

    assert [c.name for c in checks] == [*ALL_STEPS, "conversation"]
    assert {c.name: c.status for c in checks} == {
        **{name: "pass" for name in ALL_STEPS},
        "tls": "skip",
        "conversation": "pass",
    }
    by_name = {c.name: c for c in checks}
    assert "Routed to the bot Agentforce" in by_name["conversation"].detail
    assert "X-Org-Id 00D000000000001;" in by_name["event_stream"].detail
    assert f"{PUBLIC}/mcp" in by_name["public_url"].detail


async def test_over_https_with_a_trusted_certificate_the_tls_step_passes(
    sim: Callable[..., Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cert, key = self_signed(tmp_path)
    url = await sim(tls=(cert, key))
    trusted = ssl.create_default_context(cafile=str(cert))
    async with httpx.AsyncClient(verify=trusted, timeout=10) as http:
        checks = await Doctor(settings(url), http=http, timeout=10).run()
    assert {c.name: c.status for c in checks}["tls"] == "pass"
    assert all(c.status in ("pass", "warn") for c in checks)


# -- misconfigurations the simulator reproduces ----------------------------------------------------


async def test_an_unpublished_deployment_is_named_with_the_fix(sim: Callable[..., Any]) -> None:
    url = await sim(deployment_published=False)
    found = failure(await run(settings(url)))
    assert found.name == "deployment"
    assert "not published" in found.detail and "412" in found.detail
    assert "click Publish" in found.fix


async def test_a_deployment_of_the_wrong_type_is_named_with_the_fix(
    sim: Callable[..., Any],
) -> None:
    url = await sim(deployment_type="Web")
    found = failure(await run(settings(url)))
    assert found.name == "deployment"
    assert 'type "Web"' in found.detail and "Custom Client" in found.detail
    assert "create a new deployment of type Custom Client" in found.fix


async def test_an_org_id_the_org_does_not_know_is_named_with_the_fix(
    sim: Callable[..., Any],
) -> None:
    url = await sim()
    found = failure(await run(settings(url, miaw_org_id=OTHER_ORG)))
    assert found.name == "deployment"
    assert f"does not know the org id {OTHER_ORG}" in found.detail
    assert "Company Information" in found.fix


async def test_an_unknown_deployment_name_is_named_with_the_fix(sim: Callable[..., Any]) -> None:
    url = await sim()
    found = failure(await run(settings(url, miaw_es_developer_name="Support_Chat")))
    assert found.name == "deployment"
    assert "No deployment is named Support_Chat" in found.detail
    assert "API Name" in found.fix


async def test_routing_that_goes_nowhere_is_found_by_the_conversation_step(
    sim: Callable[..., Any],
) -> None:
    url = await sim(routing_failure="RoutingError")
    checks = await run(settings(url), create=True)
    found = failure(checks)
    assert found.name == "conversation"
    assert "Routing failed (RoutingError)" in found.detail
    assert "Omni-Channel flow" in found.fix
    # The sim fixture checks the conversation was closed all the same.


async def test_a_certificate_for_another_host_is_named_with_the_fix(
    sim: Callable[..., Any], tmp_path: Path
) -> None:
    url = await sim(tls=self_signed(tmp_path, "acme.my.salesforce-scrt.com"))
    cert = tmp_path / "acme.my.salesforce-scrt.com.cert.pem"
    trusted = ssl.create_default_context(cafile=str(cert))
    async with httpx.AsyncClient(verify=trusted, timeout=10) as http:
        found = failure(await Doctor(settings(url), http=http, timeout=10).run())
    assert found.name == "tls"
    assert "certificate is for another host" in found.detail and "127.0.0.1" in found.detail
    assert "exactly as the deployment's code snippet" in found.fix


async def test_an_untrusted_certificate_is_named_with_the_fix(
    sim: Callable[..., Any], tmp_path: Path
) -> None:
    url = await sim(tls=self_signed(tmp_path))
    found = failure(await run(settings(url)))
    assert found.name == "tls"
    assert "certificate was not accepted: self-signed certificate" in found.detail
    assert "proxy or firewall inspecting TLS" in found.fix


async def test_required_pre_chat_fields_are_listed_without_stopping(
    sim: Callable[..., Any],
) -> None:
    url = await sim(prechat_required=("_firstName",))
    checks = await run(settings(url))
    prechat = next(c for c in checks if c.name == "prechat")
    assert prechat.status == "warn"
    assert "Required: _firstName." in prechat.detail and "routingAttributes" in prechat.fix
    assert checks[-1].name == "public_url" and checks[-1].status == "pass"


async def test_a_rate_limited_token_request_is_named(sim: Callable[..., Any]) -> None:
    url = await sim(rate_limits=True, token_requests_per_minute=1)
    async with httpx.AsyncClient() as http:  # the one token this minute allows
        await http.post(
            url + "/iamessage/api/v2/authorization/unauthenticated/access-token",
            json={
                "orgId": DEFAULT_ORG_ID,
                "esDeveloperName": DEFAULT_DEPLOYMENT,
                "capabilitiesVersion": "1",
                "platform": "Web",
            },
        )
    found = failure(await run(settings(url)))
    assert found.name == "token"
    assert "rate-limiting token requests" in found.detail and "Wait a minute" in found.fix


async def test_a_stream_without_pings_fails_the_event_stream_step(
    sim: Callable[..., Any],
) -> None:
    url = await sim(ping_interval=3600)
    found = failure(await run(settings(url), seconds=0.5))
    assert found.name == "event_stream"
    assert "sent nothing within 0.5 s" in found.detail and "--timeout 60" in found.fix


async def until_a_conversation_exists(url: str) -> str:
    """Long-poll the simulator's control API until a conversation exists; its id."""
    version = 0
    async with httpx.AsyncClient(base_url=url, timeout=30) as control, asyncio.timeout(30):
        while True:
            listing = (
                await control.get(
                    "/control/conversations", params={"since": version, "waitSeconds": 10}
                )
            ).json()
            if listing["conversations"]:
                return str(listing["conversations"][0]["conversationId"])
            version = listing["version"]


async def test_a_stream_cut_while_routing_is_named_as_such_and_the_conversation_closed(
    sim: Callable[..., Any],
) -> None:
    url = await sim(actor_delay=3600)  # routing never happens while doctor watches
    doctor = asyncio.create_task(run(settings(url), create=True))
    await until_a_conversation_exists(url)
    server = next(iter(SIMULATORS))
    server.state.simulator.cut_streams()
    found = failure(await doctor)
    assert found.name == "conversation"
    assert "event stream closed before the conversation was routed" in found.detail
    assert "cuts streaming responses" in found.fix


async def test_a_create_whose_outcome_is_unknown_is_closed_or_reported(
    sim: Callable[..., Any],
) -> None:
    url = await sim()
    async with httpx.AsyncClient(base_url=url) as control:
        fault = {"path": "/iamessage/api/v2/conversation", "method": "POST", "status": 502}
        assert (await control.post("/control/faults", json=fault)).status_code == 201
    found = failure(await run(settings(url), create=True))
    assert found.name == "conversation"
    # The 502 came before Salesforce acted, so the close finds nothing and says so.
    assert "502" in found.detail and "Closing the test conversation failed" in found.detail


async def test_required_pre_chat_fields_skip_the_conversation_step_with_the_reason(
    sim: Callable[..., Any],
) -> None:
    url = await sim(prechat_required=("Topic",))
    checks = await run(settings(url), create=True)
    assert (checks[-1].name, checks[-1].status) == ("conversation", "skip")
    assert "requires pre-chat fields (Topic)" in checks[-1].detail


# -- settings and the network, before Salesforce answers -------------------------------------------


@pytest.mark.parametrize(
    ("scrt_url", "detail", "fix"),
    [
        (
            "https://acme.my.salesforce.com",
            "your org's site, not its messaging (SCRT) host",
            "https://acme.my.salesforce-scrt.com",
        ),
        ("http://acme.my.salesforce-scrt.com", "plain HTTP", "https://acme.my.salesforce-scrt.com"),
        ("https://acme.my.salesforce-scrt.com/chat", "has a path", "(no path)"),
        (
            "https://acme--uat.sandbox.my.salesforce.com",
            "your org's site",
            "https://acme--uat.sandbox.my.salesforce-scrt.com",
        ),
        ("https://acme.my.salesforce-scrt.com:99999", "invalid port", "needs no port"),
    ],
)
async def test_a_wrong_url_form_is_found_before_any_request(
    scrt_url: str, detail: str, fix: str
) -> None:
    found = failure(await run(settings(scrt_url)))
    assert found.name == "url"
    assert detail in found.detail and fix in found.fix


async def test_an_18_character_org_id_with_a_wrong_checksum_is_found() -> None:
    typo = DEFAULT_ORG_ID[:15] + "AAA"
    found = failure(await run(settings("https://acme.my.salesforce-scrt.com", miaw_org_id=typo)))
    assert found.name == "org_id"
    assert "do not match its first fifteen" in found.detail
    assert "first 15 characters" in found.fix


async def test_missing_settings_are_named() -> None:
    found = failure(await run(Settings(_env_file=None)))  # type: ignore[call-arg]
    assert found.name == "settings"
    assert "MIAW_SCRT_URL, MIAW_ORG_ID, MIAW_ES_DEVELOPER_NAME" in found.detail
    assert "Code Snippet" in found.fix


async def test_an_unknown_host_is_found_by_the_dns_step(monkeypatch: pytest.MonkeyPatch) -> None:
    FailingLookups(monkeypatch, "acme.my.salesforce-scrt.com", socket.EAI_NONAME)
    found = failure(await run(settings("https://acme.my.salesforce-scrt.com")))
    assert found.name == "dns"
    assert "could not be resolved: Name or service not known" in found.detail
    assert "sandbox" in found.fix


async def test_no_public_url_warns_on_a_laptop_and_fails_on_a_dyno(
    sim: Callable[..., Any],
) -> None:
    url = await sim()
    local = settings(url, public_url=None)
    async with httpx.AsyncClient(timeout=10) as http:
        laptop = await Doctor(local, http=http, timeout=10).run()
        dyno = await Doctor(local, http=http, timeout=10, on_heroku=True).run()
    assert (laptop[-1].name, laptop[-1].status) == ("public_url", "warn")
    found = failure(dyno)
    assert found.name == "public_url" and "421" in found.detail and "PUBLIC_URL=" in found.fix


async def test_a_plain_http_public_url_fails(sim: Callable[..., Any]) -> None:
    url = await sim()
    found = failure(await run(settings(url, public_url="http://support-bot.herokuapp.com")))
    assert found.name == "public_url"
    assert "ChatGPT connects over HTTPS only" in found.detail


# -- the command -----------------------------------------------------------------------------------


async def doctor_command(*args: str, env: dict[str, str]) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "app",
        "doctor",
        *args,
        env={"PATH": os.environ["PATH"], **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd="/",  # no .env file
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return proc.returncode, out.decode() + err.decode()


async def test_the_command_prints_json_and_exits_0_when_nothing_fails(
    sim: Callable[..., Any],
) -> None:
    url = await sim()
    code, out = await doctor_command(
        "--json",
        "--create-conversation",
        "--scrt-url",
        url,
        "--org-id",
        DEFAULT_ORG_ID,
        "--deployment",
        DEFAULT_DEPLOYMENT,
        env={"PUBLIC_URL": PUBLIC},
    )
    report = json.loads(out)
    assert code == 0 and report["ok"] is True
    assert [c["name"] for c in report["checks"]] == [*ALL_STEPS, "conversation"]


async def test_the_command_exits_1_and_prints_the_fix_when_a_step_fails(
    sim: Callable[..., Any],
) -> None:
    url = await sim(deployment_published=False)
    code, out = await doctor_command(
        env={
            "MIAW_SCRT_URL": url,
            "MIAW_ORG_ID": DEFAULT_ORG_ID,
            "MIAW_ES_DEVELOPER_NAME": DEFAULT_DEPLOYMENT,
        }
    )
    assert code == 1
    assert "FAIL  Deployment" in out and "fix: In Setup → Embedded Service Deployments" in out
    assert 'Stopped at "Deployment"' in out


async def test_the_command_names_a_malformed_setting(sim: Callable[..., Any]) -> None:
    code, out = await doctor_command("--json", env={"MIAW_ORG_ID": "12345"})
    report = json.loads(out)
    assert code == 1 and report["ok"] is False
    assert report["checks"][0]["name"] == "settings"
    assert "MIAW_ORG_ID" in report["checks"][0]["detail"]


async def test_an_interrupted_run_reports_what_it_found_closes_its_conversation_and_exits_130(
    sim: Callable[..., Any],
) -> None:
    url = await sim(actor_delay=3600)  # routing never happens: doctor is still watching
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "app",
        "doctor",
        "--create-conversation",
        env={
            "PATH": os.environ["PATH"],
            "MIAW_SCRT_URL": url,
            "MIAW_ORG_ID": DEFAULT_ORG_ID,
            "MIAW_ES_DEVELOPER_NAME": DEFAULT_DEPLOYMENT,
            "PUBLIC_URL": PUBLIC,
        },
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd="/",
    )
    conversation_id = await until_a_conversation_exists(url)
    proc.send_signal(signal.SIGINT)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    text = out.decode()
    assert proc.returncode == 130, err.decode()
    assert "ok    Event stream" in text and "Interrupted." in text
    assert conversation_id not in text  # closed, so not reported as possibly open
    # The sim fixture checks that no conversation was left open.


@pytest.mark.parametrize("value", ["0", "-1", "nan", "1e9", "soon"])
async def test_a_bad_timeout_exits_2_naming_the_flag(value: str) -> None:
    code, out = await doctor_command("--timeout", value, env={})
    assert code == 2 and "--timeout" in out and "seconds above 0" in out
