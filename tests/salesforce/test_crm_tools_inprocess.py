"""The CRM tools in process (the MCP SDK client on the runtime's server, as over stdio) against the
simulator: queries and their guard rails, lists, find_customer, describe, event times, and what
the client does when Salesforce's answer is lost."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from mcp.client import Client
from pydantic import SecretStr

from app.main import build_runtime
from app.salesforce.client import SalesforceClient
from app.salesforce.errors import SalesforceError, Unavailable
from app.salesforce.oauth import OAuthSettings, TokenSource
from app.simulator import SimulatorOptions, build_simulator
from tests.mcp.conftest import ToolFailed, call, settings_for
from tests.salesforce.test_crm_tools import crm_settings
from tests.servers import serve

OPTIONS = SimulatorOptions(rate_limits=False, crm_query_batch_size=3)
SHORT_DEADLINE = {
    "tool_deadline_seconds": 5,
    "wait_max_seconds": 4,
    "wait_default_seconds": 1,
    "scrt_retry_total_seconds": 4,
}
"""Settings for a call that must give up within 5 s (the deadline tests)."""


@contextlib.asynccontextmanager
async def crm_on(sim_url: str, **overrides: Any) -> AsyncIterator[Client]:
    """The CRM tools (as over stdio) against the simulator at `sim_url`."""
    settings = settings_for(sim_url, mcp_transport="stdio", **crm_settings(sim_url, **overrides))
    runtime = build_runtime(settings)
    try:
        async with Client(runtime.mcp) as client:
            yield client
    finally:
        await runtime.aclose()


@contextlib.asynccontextmanager
async def crm_client() -> AsyncIterator[Client]:
    async with serve(build_simulator(OPTIONS)) as sim_url, crm_on(sim_url) as client:
        yield client


async def contact(client: Client, last: str, **more: Any) -> str:
    created = await call(client, "salesforce_create_contact", {"lastName": last, **more})
    return str(created["id"])


async def test_a_query_pages_on_with_its_cursor_and_a_limit_is_added() -> None:
    async with crm_client() as crm:
        for n in range(10):
            await contact(crm, f"Person {n}")

        pages = [
            await call(
                crm,
                "salesforce_query",
                {"soql": "SELECT LastName FROM Contact ORDER BY LastName", "limit": 8},
            )
        ]
        while pages[-1]["nextCursor"]:
            pages.append(await call(crm, "salesforce_query", {"cursor": pages[-1]["nextCursor"]}))

        assert [len(p["records"]) for p in pages] == [3, 3, 2]  # pages of 3; the LIMIT added
        assert {p["totalSize"] for p in pages} == {8}
        assert [r["LastName"] for p in pages for r in p["records"]] == [
            f"Person {n}" for n in range(8)
        ]
        assert "attributes" not in pages[0]["records"][0]


@pytest.mark.parametrize(
    ("soql", "says"),
    [
        ("DELETE FROM Contact", "soql must be a SELECT query"),
        ("SELECT Id FROM Contact LIMIT 5000", "LIMIT 5000 is over 200"),
        ("SELECT Id FROM Contact; SELECT Id FROM Case", "one query, without ';'"),
        ("SELECT Emial FROM Contact", r"Contact has no field 'Emial'. Did you mean Email\?"),
        ("SELECT Id FROM Contact WHERE", "MALFORMED_QUERY: unexpected token: 'LIMIT'"),
    ],
)
async def test_a_query_the_tool_would_not_run_says_why(soql: str, says: str) -> None:
    async with crm_client() as crm:
        with pytest.raises(ToolFailed, match=says):
            await call(crm, "salesforce_query", {"soql": soql})


async def test_search_text_cannot_change_the_query() -> None:
    async with crm_client() as crm:
        await contact(crm, "Lima", email="ana@example.com")
        await contact(crm, "O'Neil")
        await contact(crm, "100% Real")

        injected = await call(crm, "salesforce_list_contacts", {"search": "x' OR LastName != 'y"})
        quote = await call(crm, "salesforce_list_contacts", {"search": "o'ne"})
        percent = await call(crm, "salesforce_list_contacts", {"search": "%"})
        found = await call(crm, "find_customer", {"email": "ana@example.com"})

        assert injected["records"] == []
        assert [r["LastName"] for r in quote["records"]] == ["O'Neil"]
        assert [r["LastName"] for r in percent["records"]] == ["100% Real"]
        assert [r["LastName"] for r in found["records"]] == ["Lima"]


async def test_find_customer_shows_the_open_cases() -> None:
    async with crm_client() as crm:
        ana = await contact(crm, "Lima", email="ana@example.com")
        for subject, status in [("Parcel late", "New"), ("Old", "Closed")]:
            await call(
                crm,
                "salesforce_create",
                {
                    "objectName": "Case",
                    "values": {"Subject": subject, "Status": status, "ContactId": ana},
                },
            )

        [found] = (await call(crm, "find_customer", {"email": "ANA@example.com"}))["records"]
        with pytest.raises(ToolFailed, match="Give email, phone or name"):
            await call(crm, "find_customer", {})

        assert [c["Subject"] for c in found["Cases"]["records"]] == ["Parcel late"]


async def test_describe_marks_defaulted_fields_not_required() -> None:
    async with crm_client() as crm:
        described = await call(crm, "salesforce_describe", {"objectName": "Contact"})

        required = {f["name"] for f in described["fields"] if f["required"]}
        assert required == {"LastName"}  # DoNotCall is not nillable but defaulted


async def test_events_of_a_contact_and_a_new_start_checked_against_the_end() -> None:
    async with crm_client() as crm:
        ana = await contact(crm, "Lima")
        times = [
            ("2026-12-04T09:00:00Z", "2026-12-04T09:30:00Z"),
            ("2026-12-05T09:00:00+01:00", "2026-12-05T10:00:00+01:00"),
        ]
        ids = [
            (
                await call(
                    crm,
                    "salesforce_create_event",
                    {"subject": f"Call {n}", "start": s, "end": e, "whoId": ana},
                )
            )["id"]
            for n, (s, e) in enumerate(times)
        ]
        await call(
            crm,
            "salesforce_create_event",
            {"subject": "Other", "start": times[0][0], "end": times[0][1]},
        )

        listed = await call(
            crm, "salesforce_list_events", {"contactId": ana, "startsAfter": "2026-12-05T00:00:00Z"}
        )
        with pytest.raises(ToolFailed, match="end must be after start"):
            await call(
                crm, "salesforce_update_event", {"eventId": ids[0], "start": "2026-12-04T10:00:00Z"}
            )
        moved = await call(
            crm, "salesforce_update_event", {"eventId": ids[0], "start": "2026-12-04T09:10:00Z"}
        )

        assert [e["Subject"] for e in listed["records"]] == ["Call 1"]
        assert listed["records"][0]["StartDateTime"] == "2026-12-05T08:00:00.000+0000"
        assert moved["status"] == "updated"


def recording(handler: Any) -> tuple[httpx.AsyncClient, list[str]]:
    seen: list[str] = []

    def respond(request: httpx.Request) -> httpx.Response:
        seen.append(f"{request.method} {request.url.path}")
        if request.url.path == "/services/oauth2/token":
            return httpx.Response(
                200, json={"access_token": "t", "instance_url": "https://sf.test"}
            )
        return handler(request)

    return httpx.AsyncClient(transport=httpx.MockTransport(respond)), seen


def client_on(http: httpx.AsyncClient) -> SalesforceClient:
    settings = OAuthSettings("https://sf.test", "id", SecretStr("secret"), SecretStr("refresh"))
    return SalesforceClient(http, TokenSource(http, settings), retry_delays=(0, 0))


async def test_a_create_whose_answer_is_lost_is_not_sent_again() -> None:
    def lost(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("no answer", request=request)

    http, seen = recording(lost)
    async with http:
        with pytest.raises(Unavailable, match="may or may not have been made"):
            await client_on(http).create("Contact", {"LastName": "Lima"})

    assert seen.count("POST /services/data/v62.0/sobjects/Contact") == 1


async def test_a_delete_whose_first_answer_was_lost_is_done() -> None:
    answers = iter(
        [
            httpx.ReadTimeout("lost"),
            httpx.Response(404, json=[{"errorCode": "NOT_FOUND", "message": "gone"}]),
        ]
    )

    def flaky(request: httpx.Request) -> httpx.Response:
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    http, seen = recording(flaky)
    async with http:
        await client_on(http).delete("Contact", "003000000000001AAA")

    assert seen.count("DELETE /services/data/v62.0/sobjects/Contact/003000000000001AAA") == 2


async def test_a_redirect_is_an_error_naming_the_instance_url_setting() -> None:
    http, _ = recording(lambda _: httpx.Response(302, headers={"Location": "https://login"}))
    async with http:
        with pytest.raises(SalesforceError, match="SALESFORCE_INSTANCE_URL"):
            await client_on(http).update("Contact", "003000000000001AAA", {"LastName": "X"})


async def test_a_finished_chat_is_logged_on_a_case_for_the_contact() -> None:
    async with crm_client() as crm:
        ana = await contact(crm, "Lima")
        long_chat = "Agent: hello\n" * 3000  # 39,000 characters: over a description's 32,000
        logged = await call(
            crm,
            "log_chat_to_case",
            {
                "contactId": ana,
                "subject": "Chat: parcel late",
                "summary": "Parcel 1234 late; agent re-sent it.",
                "transcript": long_chat,
            },
        )
        case = await call(
            crm,
            "salesforce_get",
            {
                "objectName": "Case",
                "recordId": logged["id"],
                "fields": ["Description", "Status", "ContactId"],
            },
        )

    description = case["fields"]["Description"]
    assert (case["fields"]["Status"], case["fields"]["ContactId"]) == ("Closed", ana)
    assert description.startswith(
        "Parcel 1234 late; agent re-sent it.\n\n--- Chat transcript ---\nAgent: hello\n"
    )
    assert description.endswith("(transcript cut to fit the case)")
    assert len(description) <= 32000


async def test_the_schema_is_browsable_as_resources() -> None:
    async with crm_client() as crm:
        listed = await crm.read_resource("salesforce://sobjects")
        contact_schema = await crm.read_resource("salesforce://sobjects/Contact")

    objects = json.loads(listed.contents[0].text)  # type: ignore[union-attr]
    assert {"name": "Support_Visit__c", "label": "Support Visit", "custom": True} in objects
    fields = json.loads(contact_schema.contents[0].text)["fields"]  # type: ignore[union-attr]
    account = next(f for f in fields if f["name"] == "AccountId")
    assert (account["referenceTo"], account["relationshipName"]) == (["Account"], "Account")


async def test_search_finds_records_of_several_objects_by_their_text() -> None:
    async with crm_client() as crm:
        ana = await contact(crm, "Lima", email="ana.parcel@example.com")
        await call(
            crm,
            "salesforce_create",
            {
                "objectName": "Case",
                "values": {"Subject": "Parcel late", "Status": "New", "ContactId": ana},
            },
        )
        await contact(crm, "Other", email="bo@example.com")

        found = await call(crm, "salesforce_search", {"text": "PARCEL"})
        braces = await call(crm, "salesforce_search", {"text": "x} RETURNING User(Id"})
        with pytest.raises(ToolFailed, match="Not found in Salesforce"):
            await call(crm, "salesforce_search", {"text": "parcel", "objects": ["Contakt"]})

    assert sorted((r["type"], r["Id"][:3]) for r in found["records"]) == [
        ("Case", "500"),
        ("Contact", "003"),
    ]
    contact_row = next(r for r in found["records"] if r["type"] == "Contact")
    assert contact_row["Email"] == "ana.parcel@example.com"
    assert braces["records"] == []


async def test_every_record_tool_does_what_it_says() -> None:
    async with crm_client() as crm:
        listed = (await crm.list_tools()).tools
        tools = {t.name for t in listed if t.name.startswith(("salesforce", "find", "log"))}
        ana = await contact(crm, "Lima", email="ana@example.com")
        await call(crm, "salesforce_update_contact", {"contactId": ana, "phone": "+33 1 23"})
        got = await call(crm, "salesforce_get_contact", {"contactId": ana})
        visit = await call(
            crm,
            "salesforce_create",
            {"objectName": "Support_Visit__c", "values": {"Name": "V1", "Contact__c": ana}},
        )
        await call(
            crm,
            "salesforce_update",
            {"objectName": "Support_Visit__c", "recordId": visit["id"], "values": {"Name": "V2"}},
        )
        renamed = await call(
            crm, "salesforce_get", {"objectName": "Support_Visit__c", "recordId": visit["id"]}
        )
        event = await call(
            crm,
            "salesforce_create_event",
            {"subject": "Call", "start": "2026-12-04T09:00:00Z", "end": "2026-12-04T09:30:00Z"},
        )
        await call(crm, "salesforce_update_event", {"eventId": event["id"], "subject": "Call back"})
        called = await call(crm, "salesforce_get_event", {"eventId": event["id"]})
        deleted = [
            await call(crm, "salesforce_delete_event", {"eventId": event["id"]}),
            await call(
                crm,
                "salesforce_delete",
                {"objectName": "Support_Visit__c", "recordId": visit["id"]},
            ),
            await call(crm, "salesforce_delete_contact", {"contactId": ana}),
        ]
        with pytest.raises(ToolFailed, match="Not found in Salesforce"):
            await call(crm, "salesforce_get_contact", {"contactId": ana})
        with pytest.raises(
            ToolFailed, match=r"Support_Visit__c has no field 'Nmae'\. Did you mean Name"
        ):
            await call(
                crm,
                "salesforce_update",
                {
                    "objectName": "Support_Visit__c",
                    "recordId": visit["id"],
                    "values": {"Nmae": "x"},
                },
            )

    assert len(tools) == 21
    assert all(t.meta and t.meta["securitySchemes"] for t in listed if t.name in tools)
    assert (got["fields"]["Phone"], got["fields"]["Email"]) == ("+33 1 23", "ana@example.com")
    assert renamed["fields"]["Name"] == "V2"
    assert called["fields"]["Subject"] == "Call back"
    assert [d["status"] for d in deleted] == ["deleted"] * 3


async def test_a_crm_call_answers_within_the_tool_deadline() -> None:
    async with (
        serve(build_simulator(OPTIONS)) as sim_url,
        crm_on(sim_url, **SHORT_DEADLINE) as crm,
        httpx.AsyncClient(base_url=sim_url) as control,
    ):
        await call(crm, "salesforce_describe", {"objectName": "Case"})  # logged in
        fault = {"path": "/services/data/*", "delay": 20, "count": 1}
        assert (await control.post("/control/faults", json=fault)).status_code == 201
        with pytest.raises(ToolFailed, match="did not answer in time"):
            await call(crm, "salesforce_describe", {"objectName": "Contact"})


READ_TOOLS = {
    "salesforce_describe",
    "salesforce_explain_object",
    "salesforce_query",
    "salesforce_export",
    "salesforce_search",
    "salesforce_get",
    "salesforce_list_contacts",
    "salesforce_get_contact",
    "find_customer",
    "salesforce_list_events",
    "salesforce_get_event",
}
WRITE_TOOLS = {
    "salesforce_create",
    "salesforce_update",
    "salesforce_create_contact",
    "salesforce_update_contact",
    "salesforce_create_event",
    "salesforce_update_event",
    "log_chat_to_case",
}
ADMIN_TOOLS = {"salesforce_delete", "salesforce_delete_contact", "salesforce_delete_event"}


@pytest.mark.parametrize(
    ("access", "expected"),
    [
        ("read", READ_TOOLS),
        ("write", READ_TOOLS | WRITE_TOOLS),
        ("admin", READ_TOOLS | WRITE_TOOLS | ADMIN_TOOLS),
    ],
)
async def test_each_access_tier_lists_and_allows_exactly_its_tools(
    access: str, expected: set[str]
) -> None:
    async with (
        serve(build_simulator(OPTIONS)) as sim_url,
        crm_on(sim_url, crm_access=access) as crm,
    ):
        listed = {t.name for t in (await crm.list_tools()).tools}
        crm_tools = {n for n in listed if n.startswith(("salesforce_", "find_", "log_"))}
        refused = []
        for name in sorted((READ_TOOLS | WRITE_TOOLS | ADMIN_TOOLS) - expected):
            with pytest.raises(ToolFailed, match="Unknown tool"):
                await call(crm, name, {})
            refused.append(name)

    assert crm_tools == expected
    assert set(refused) == (READ_TOOLS | WRITE_TOOLS | ADMIN_TOOLS) - expected


async def test_redacted_fields_never_appear_in_a_result_or_a_log_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    ssn = "078-05-1120"
    async with crm_client() as crm:
        ana = await contact(crm, "Lima", email="ana@example.com")
        await call(
            crm,
            "salesforce_update",
            {"objectName": "Contact", "recordId": ana, "values": {"SSN__c": ssn}},
        )
        results = [
            await call(crm, "salesforce_get", {"objectName": "Contact", "recordId": ana}),
            await call(crm, "salesforce_query", {"soql": "SELECT LastName, SSN__c FROM Contact"}),
            await call(crm, "find_customer", {"email": "ana@example.com"}),
        ]
        described = await call(crm, "salesforce_describe", {"objectName": "Contact"})

    shown = json.dumps(results)
    assert ssn not in shown
    assert results[0]["fields"]["SSN__c"] == "[redacted]"
    assert results[1]["records"][0] == {"LastName": "Lima", "SSN__c": "[redacted]"}
    assert "SSN__c" in {f["name"] for f in described["fields"]}  # the name is not a secret
    assert ssn not in capsys.readouterr().out
