"""The CRM tools' audit records (in process, as over stdio, against the simulator): the objects and
record ids each call touched, its arguments without a value of a record (a redacted field's least
of all) and without any the tool does not take, a call outside the access tier as `rejected`, and a
call that answers while Redis cannot keep its record."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from mcp.client import Client
from redis.exceptions import RedisError
from structlog.testing import capture_logs

from app.audit import AuditRecord
from app.audit_view import KEPT, NAMES_ONLY, NEVER, SOQL, WITHHELD, WITHHELD_ARGUMENTS
from app.main import Runtime, build_runtime
from app.simulator import SimulatorOptions, build_simulator
from tests.mcp.conftest import ToolFailed, call, settings_for
from tests.mcp.test_logging import log_format
from tests.redis_support import TEST_KEY, PrivateRedis, private_redis
from tests.salesforce.test_crm_tools import crm_settings
from tests.servers import serve

__all__ = ["log_format", "private_redis"]

SSN = "078-05-1120"
EMAIL = "ana.lima.audit@example.com"


@contextlib.asynccontextmanager
async def crm_runtime(**overrides: Any) -> AsyncIterator[tuple[Runtime, Client]]:
    async with serve(build_simulator(SimulatorOptions(rate_limits=False))) as sim_url:
        settings = settings_for(
            sim_url, mcp_transport="stdio", **crm_settings(sim_url, **overrides)
        )
        runtime = build_runtime(settings)
        try:
            async with Client(runtime.mcp) as client:
                yield runtime, client
        finally:
            await runtime.aclose()


async def test_crm_records_name_objects_and_ids_and_never_a_redacted_value(
    log_format: str, capsys: pytest.CaptureFixture[str]
) -> None:
    async with crm_runtime() as (runtime, crm):
        ana = (await call(crm, "salesforce_create_contact", {"lastName": "Lima", "email": EMAIL}))[
            "id"
        ]
        await call(
            crm,
            "salesforce_update",
            {"objectName": "Contact", "recordId": ana, "values": {"SSN__c": SSN}},
        )
        results = [
            await call(crm, "salesforce_get", {"objectName": "Contact", "recordId": ana}),
            await call(
                crm,
                "salesforce_query",
                {"soql": f"SELECT LastName, SSN__c FROM Contact WHERE LastName = '{SSN}'"},
            ),
            await call(crm, "find_customer", {"email": EMAIL}),
        ]
        case = await call(
            crm,
            "log_chat_to_case",
            {
                "contactId": ana,
                "subject": "Chat about her SSN",
                "summary": f"She gave her SSN {SSN}",
                "transcript": f"Customer: my SSN is {SSN}",
            },
        )
        await call(crm, "salesforce_update_contact", {"contactId": ana, "phone": "+33 1 23"})
        with pytest.raises(ToolFailed, match="no field 'Emial'"):
            await call(
                crm,
                "salesforce_create",
                {"objectName": "Contact", "values": {"LastName": SSN, "Emial": SSN}},
            )
        await call(crm, "salesforce_get_contact", {"contactId": ana})
        await call(crm, "salesforce_delete_contact", {"contactId": ana})
        records: list[AuditRecord] = list(reversed(await runtime.audit.recent()))
    output = capsys.readouterr()
    logs = output.err + output.out

    by_tool = {r.tool: r for r in records}
    assert [r.tool for r in records] == [
        "salesforce_create_contact",
        "salesforce_update",
        "salesforce_get",
        "salesforce_query",
        "find_customer",
        "log_chat_to_case",
        "salesforce_update_contact",
        "salesforce_create",
        "salesforce_get_contact",
        "salesforce_delete_contact",
    ]
    assert {(r.caller, r.toolset) for r in records} == {(None, "crm")}  # stdio: the local user
    assert [r.outcome for r in records] == ["ok"] * 7 + ["error", "ok", "ok"]
    for name in ("salesforce_get_contact", "salesforce_delete_contact"):
        assert (by_tool[name].objects, by_tool[name].record_ids) == (("Contact",), (ana,))
    assert by_tool["salesforce_create_contact"].record_ids == (ana,)
    assert by_tool["salesforce_create_contact"].arguments == {
        "lastName": WITHHELD,
        "email": WITHHELD,
    }
    assert by_tool["salesforce_update"].arguments == {
        "objectName": "Contact",
        "recordId": ana,
        "values": {"SSN__c": WITHHELD},
    }
    assert (by_tool["salesforce_get"].objects, by_tool["salesforce_get"].record_ids) == (
        ("Contact",),
        (ana,),
    )
    query = by_tool["salesforce_query"]
    assert query.objects == ("Contact",) and query.record_ids == ()  # not every row it read
    assert query.arguments == {"soql": "SELECT LastName, SSN__c FROM Contact WHERE LastName = '…'"}
    assert by_tool["find_customer"].objects == ("Contact",)
    logged = by_tool["log_chat_to_case"]
    assert (logged.objects, logged.record_ids) == (("Case",), (ana, case["id"]))
    updated = by_tool["salesforce_update_contact"]
    assert (updated.objects, updated.record_ids) == (("Contact",), (ana,))
    assert updated.arguments == {"contactId": ana, "phone": WITHHELD}
    assert by_tool["salesforce_create"].objects == ("Contact",)
    shown = json.dumps([r.as_json() for r in records])
    assert SSN not in json.dumps(results)
    assert SSN not in shown and SSN not in logs
    assert EMAIL not in shown and EMAIL not in logs
    assert "Lima" not in shown


async def test_a_crm_call_answers_while_redis_is_down(private_redis: PrivateRedis) -> None:
    async with crm_runtime(redis_url=private_redis.url, state_encryption_key=TEST_KEY) as (
        runtime,
        crm,
    ):
        await call(crm, "salesforce_describe", {"objectName": "Contact"})
        await runtime.audit.flush()
        kept = [r.tool for r in await runtime.audit.recent()]
        await private_redis.stop()
        with capture_logs() as logs:
            described = await call(crm, "salesforce_describe", {"objectName": "Case"})
            await runtime.audit.flush()
        with pytest.raises(RedisError):
            await runtime.audit.recent()

    assert kept == ["salesforce_describe"]
    assert described["name"] == "Case"
    assert [line["outcome"] for line in logs if line["event"] == "audit"] == ["ok"]
    [unwritten] = [line for line in logs if line["event"] == "audit.unwritten"]
    assert (unwritten["records"], unwritten["error"]) == (1, "ConnectionError")


async def test_every_argument_of_every_tool_has_its_audit_rule() -> None:
    async with crm_runtime() as (_, client):
        tools = (await client.list_tools()).tools
    ruled = KEPT | NAMES_ONLY | WITHHELD_ARGUMENTS | NEVER | {SOQL}

    unruled = {
        f"{tool.name}.{name}"
        for tool in tools
        for name in tool.input_schema.get("properties", {})
        if name not in ruled
    }

    assert len(tools) > 25  # both toolsets, every CRM tier
    assert unruled == set(), "say in app/audit.py what the audit keeps of these"


async def test_only_the_tools_own_arguments_reach_the_record_and_what_it_touched() -> None:
    async with crm_runtime() as (runtime, crm):
        await call(
            crm,
            "salesforce_describe",
            {
                "objectName": "Contact",
                "recordId": "my secret text",
                "objects": [f"Ana Lima SSN {SSN}"],
                "soql": "SELECT Id FROM Secret_Project__c",
            },
        )
        await call(crm, "salesforce_search", {"text": "Lima"})
        records = list(reversed(await runtime.audit.recent()))

    described, searched = records
    assert described.arguments == {"objectName": "Contact"}
    assert (described.objects, described.record_ids) == (("Contact",), ())
    # The objects a search reads, the default ones too.
    assert (searched.objects, searched.arguments) == (
        ("Contact", "Account", "Case"),
        {"text": WITHHELD},
    )
    shown = json.dumps([r.as_json() for r in records])
    for secret in ("my secret text", "Ana Lima", SSN, "Secret_Project__c"):
        assert secret not in shown


async def test_a_crm_call_the_sdk_refuses_is_a_rejected_crm_record() -> None:
    claimed = {"openai/subject": "user-claimed-9c1"}  # a CRM record never names a claim
    async with crm_runtime(crm_access="read") as (runtime, crm):
        outside = await crm.call_tool(
            "salesforce_delete",
            {"objectName": "Contact", "recordId": "003000000000001AAA"},
            meta=claimed,  # type: ignore[arg-type]
        )
        malformed = await crm.call_tool(
            "salesforce_get",
            {"objectName": "Contact", "recordId": f"Ana Lima {SSN}"},
            meta=claimed,  # type: ignore[arg-type]
        )
        records = list(reversed(await runtime.audit.recent()))

    assert outside.is_error and malformed.is_error
    assert [(r.tool, r.toolset, r.outcome, r.caller, r.subject) for r in records] == [
        ("salesforce_delete", "crm", "rejected", None, None),  # outside CRM_ACCESS: no such tool
        ("salesforce_get", "crm", "rejected", None, None),
    ]
    assert records[0].arguments == {}
    assert records[1].arguments == {"objectName": WITHHELD, "recordId": WITHHELD}
    assert all((r.objects, r.record_ids) == ((), ()) for r in records)
    assert SSN not in json.dumps([r.as_json() for r in records])
