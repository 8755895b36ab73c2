"""The CRM toolset (MCP_TOOLSETS=crm) as its users run it: over stdio with the MCP SDK client
(`miaw-mcp serve` spawned), over HTTP only behind sign-in, against the simulator's Salesforce REST
surface."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp.client import Client
from mcp.client.stdio import StdioServerParameters

from app.config import ConfigError, Settings, load_settings
from app.main import build_app
from app.simulator import SimulatorOptions, build_simulator
from app.simulator.options import DEFAULT_DEPLOYMENT, DEFAULT_ORG_ID
from tests.identity_provider import identity_provider
from tests.mcp.conftest import ToolFailed, call, raw_call, settings_for
from tests.servers import serve

ROOT = Path(__file__).resolve().parents[2]
SIM = SimulatorOptions()
AUDIENCE = "https://staff.example.com/mcp"


def crm_env(sim_url: str) -> dict[str, str]:
    return {
        "MIAW_SCRT_URL": sim_url,
        "MIAW_ORG_ID": DEFAULT_ORG_ID,
        "MIAW_ES_DEVELOPER_NAME": DEFAULT_DEPLOYMENT,
        "LOG_FORMAT": "json",
        "MCP_TOOLSETS": "handoff,crm",
        "CRM_ACCESS": "admin",
        "SALESFORCE_INSTANCE_URL": sim_url,
        "SALESFORCE_CLIENT_ID": SIM.crm_client_id,
        "SALESFORCE_CLIENT_SECRET": SIM.crm_client_secret,
        "SALESFORCE_REFRESH_TOKEN": SIM.crm_refresh_token,
    }


def crm_settings(sim_url: str, **overrides: Any) -> dict[str, Any]:
    return {
        "mcp_toolsets": "handoff,crm",
        "crm_access": "admin",
        "salesforce_instance_url": sim_url,
        "salesforce_client_id": SIM.crm_client_id,
        "salesforce_client_secret": SIM.crm_client_secret,
        "salesforce_refresh_token": SIM.crm_refresh_token,
        **overrides,
    }


def staff_settings(sim_url: str, issuer: str) -> Settings:
    """Over HTTP, sign-in required, the CRM tools for tokens of `issuer` with the scope crm."""
    return settings_for(
        sim_url,
        auth_mode="required",
        auth_issuer=issuer,
        auth_audience=AUDIENCE,
        **crm_settings(sim_url, crm_required_scope="crm"),
    )


async def test_over_stdio_a_contact_gets_a_follow_up_event(tmp_path: Path) -> None:
    async with serve(build_simulator(SimulatorOptions(rate_limits=False))) as sim_url:
        params = StdioServerParameters(
            command=sys.executable,
            args=["-m", "app", "serve", "--transport", "stdio"],
            env={**os.environ, **crm_env(sim_url)},
            cwd=str(ROOT),
        )
        async with Client(params) as client:
            tools = {t.name: t for t in (await client.list_tools()).tools}
            created = await call(
                client,
                "salesforce_create_contact",
                {"lastName": "Lima", "firstName": "Ana", "email": "ana@example.com"},
            )
            await call(
                client,
                "salesforce_create",
                {
                    "objectName": "Case",
                    "values": {
                        "Subject": "Parcel late",
                        "Status": "New",
                        "ContactId": created["id"],
                    },
                },
            )
            # The flow: who is the customer, what are their cases, then book a follow-up.
            [contact] = (await call(client, "find_customer", {"email": "ana@example.com"}))[
                "records"
            ]
            cases = await call(
                client,
                "salesforce_query",
                {"soql": f"SELECT Subject, Status FROM Case WHERE ContactId = '{contact['Id']}'"},
            )
            contact["id"] = contact["Id"]
            event = await call(
                client,
                "salesforce_create_event",
                {
                    "subject": "Follow-up call about order 1234",
                    "start": "2026-12-04T10:00:00+01:00",
                    "end": "2026-12-04T10:30:00+01:00",
                    "whoId": contact["id"],
                },
            )
            got = await call(client, "salesforce_get_event", {"eventId": event["id"]})
            with pytest.raises(ToolFailed, match="end must be after start"):
                await call(
                    client,
                    "salesforce_create_event",
                    {
                        "subject": "x",
                        "start": "2026-12-04T10:00:00Z",
                        "end": "2026-12-04T09:00:00Z",
                    },
                )
            with pytest.raises(
                ToolFailed, match=re.escape("Contact has no field 'Emial'. Did you mean Email?")
            ):
                await call(
                    client,
                    "salesforce_create",
                    {"objectName": "Contact", "values": {"LastName": "X", "Emial": "x@y.z"}},
                )
            handoff = await call(client, "generate_guest_access_token", {})

    assert created["status"] == "created" and contact["id"] == created["id"]
    assert [(c["Subject"], c["Status"]) for c in cases["records"]] == [("Parcel late", "New")]
    assert got["fields"]["WhoId"] == contact["id"]
    assert got["fields"]["Subject"] == "Follow-up call about order 1234"
    assert handoff["sessionId"]  # the handoff tools are there too, unchanged
    assert tools["salesforce_delete_contact"].annotations.destructive_hint is True
    assert tools["salesforce_get_contact"].annotations.read_only_hint is True
    assert tools["salesforce_create_contact"].annotations.destructive_hint is False


async def test_over_http_without_a_staff_sign_in_the_crm_toolset_is_refused() -> None:
    async with identity_provider() as idp, serve(build_simulator()) as sim_url:
        without = settings_for(sim_url, **crm_settings(sim_url))
        signin = {"auth_mode": "required", "auth_issuer": idp.issuer, "auth_audience": AUDIENCE}
        no_scope = settings_for(sim_url, **signin, **crm_settings(sim_url))
        for settings in (without, no_scope):
            with pytest.raises(ConfigError, match="AUTH_MODE=required and CRM_REQUIRED_SCOPE"):
                build_app(settings)


async def test_over_http_with_sign_in_required_a_signed_in_user_uses_the_tools() -> None:
    async with (
        identity_provider() as idp,
        serve(build_simulator(SimulatorOptions(rate_limits=False))) as sim_url,
    ):
        settings = staff_settings(sim_url, idp.issuer)
        async with serve(build_app(settings), lifespan="on") as base:
            token = idp.token(AUDIENCE, subject="agent-7", scope="crm")
            customer = idp.token(AUDIENCE, subject="customer-9")
            with pytest.raises(ToolFailed, match=r"for support staff.*scope crm"):
                await raw_call(
                    base + "/mcp",
                    "salesforce_describe",
                    {"objectName": "Case"},
                    headers={"Authorization": f"Bearer {customer}"},
                )
            created = await raw_call(
                base + "/mcp",
                "salesforce_create",
                {"objectName": "Case", "values": {"Subject": "Parcel late", "Status": "New"}},
                headers={"Authorization": f"Bearer {token}"},
            )
            async with httpx.AsyncClient() as http:
                anonymous = await http.post(
                    base + "/mcp",
                    json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
                    headers={"Accept": "application/json, text/event-stream"},
                )

    assert created["status"] == "created" and created["id"].startswith("500")
    assert anonymous.status_code == 401


def test_the_crm_toolset_is_off_by_default_and_its_settings_are_checked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    defaults = load_settings(_env_file=None)
    assert defaults.mcp_toolsets == ["handoff"]
    assert defaults.crm_access == "read"  # reading only, unless the operator says more
    assert "*SSN*" in defaults.redact_fields
    with pytest.raises(ConfigError, match=r"MCP_TOOLSETS takes handoff, crm .*not billing"):
        load_settings(_env_file=None, mcp_toolsets="crm,billing")
    with pytest.raises(
        ConfigError, match="needs SALESFORCE_INSTANCE_URL, SALESFORCE_CLIENT_SECRET"
    ):
        load_settings(_env_file=None, mcp_toolsets="crm", salesforce_client_id="id")
    # The earlier contacts-and-events server's variable names configure it.
    for name, value in crm_env("https://acme.my.salesforce.com").items():
        monkeypatch.setenv(name, value)
    settings = load_settings(_env_file=None)
    assert settings.mcp_toolsets == ["handoff", "crm"]
    assert settings.salesforce_instance_url == "https://acme.my.salesforce.com"
    assert settings.crm_refusal("stdio") is None
    assert "AUTH_MODE=required" in (settings.crm_refusal("http") or "")
    with pytest.raises(ConfigError, match="SALESFORCE_INSTANCE_URL must be an https:// URL"):
        load_settings(_env_file=None, salesforce_instance_url="http://acme.my.salesforce.com")
