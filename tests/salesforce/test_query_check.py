"""salesforce_query checks a query against the org's describes before sending it, completes
namespaces, fills binds with escaped literals, counts before a large read, and passes aggregates;
salesforce_explain_object sums an object up. Through the tools, against the simulator."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from mcp.client import Client
from starlette.types import ASGIApp, Receive, Scope, Send

from app.salesforce.binds import value_literal
from app.salesforce.query_check import Checked, check
from app.salesforce.schema import SchemaCache
from app.salesforce.soql_syntax import parse
from app.simulator import build_simulator
from app.simulator.crm import SCHEMA, describe_json
from tests.mcp.conftest import ToolFailed, call
from tests.salesforce.test_crm_tools_inprocess import OPTIONS, contact, crm_on
from tests.servers import serve


class Recorder:
    """The simulator, noting each request's path (to see that a refused query was never sent)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.paths: list[str] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.paths.append(scope["path"])
        await self.app(scope, receive, send)

    def queries(self) -> list[str]:
        return [p for p in self.paths if p.rstrip("/").endswith("/query")]


@contextlib.asynccontextmanager
async def recorded_crm(**overrides: Any) -> AsyncIterator[tuple[Client, Recorder]]:
    recorder = Recorder(build_simulator(OPTIONS))
    async with serve(recorder) as sim_url, crm_on(sim_url, **overrides) as crm:
        yield crm, recorder


async def query(crm: Client, soql: str, **more: Any) -> dict[str, Any]:
    return await call(crm, "salesforce_query", {"soql": soql, **more})


@pytest.mark.parametrize(
    ("soql", "says"),
    [
        (
            "SELECT Name, Contat__r.Email FROM Support_Visit__c",
            r"Support_Visit__c has no relationship 'Contat__r' \(in Contat__r.Email\)\. "
            r"Did you mean Contact__r\?",
        ),
        (
            "SELECT Name, Contact__c.Email FROM Support_Visit__c",
            "A lookup is followed by its relationship name: Contact__r",
        ),
        (
            "SELECT Name, Contact__r.Account.Nme FROM Support_Visit__c",
            r"Account has no field 'Nme' \(in Contact__r.Account.Nme\)\. Did you mean Name\?",
        ),
        (
            "SELECT LastName, (SELECT Subject FROM Case) FROM Contact",
            r"Contact has no child relationship 'Case'.*Did you mean Cases\?",
        ),
        (
            "SELECT Id FROM Contact WHERE AccountId IN (SELECT Id FROM Acount)",
            r"The org has no object 'Acount'\. Did you mean Account\?",
        ),
        (
            "SELECT Status, SUM(Pionts__c) FROM acme__Loyalty_Card__c GROUP BY Status",
            r"acme__Loyalty_Card__c has no field 'Status'",
        ),
        (
            "SELECT acme__Tier__c, SUM(Pionts__c) FROM acme__Loyalty_Card__c "
            "GROUP BY acme__Tier__c",
            r"has no field 'Pionts__c'\. Did you mean acme__Points__c\?",
        ),
        (
            "SELECT Id FROM Contact ORDER BY LastNam",
            r"Contact has no field 'LastNam'\. Did you mean LastName or FirstName\?",
        ),
    ],
)
async def test_a_wrong_name_is_refused_before_the_query_is_sent_naming_the_closest(
    soql: str, says: str
) -> None:
    async with recorded_crm() as (crm, simulator):
        with pytest.raises(ToolFailed, match=says):
            await query(crm, soql)

        assert simulator.queries() == []


async def test_a_relationship_path_over_several_hops_reads_through_to_the_account() -> None:
    async with recorded_crm() as (crm, _):
        account = await call(
            crm, "salesforce_create", {"objectName": "Account", "values": {"Name": "Acme"}}
        )
        ana = await contact(crm, "Lima", accountId=account["id"])
        await call(
            crm,
            "salesforce_create",
            {"objectName": "Support_Visit__c", "values": {"Name": "V1", "Contact__c": ana}},
        )

        found = await query(
            crm, "SELECT Name, Contact__r.Account.Name FROM Support_Visit__c LIMIT 5"
        )

        assert found["records"] == [{"Name": "V1", "Contact__r": {"Account": {"Name": "Acme"}}}]


async def test_names_without_their_namespace_are_completed() -> None:
    async with recorded_crm() as (crm, simulator):
        ana = await contact(crm, "Lima")
        for name, tier, points in [("C-1", "Gold", 120), ("C-2", "Bronze", 5)]:
            values = {
                "Name": name,
                "acme__Tier__c": tier,
                "acme__Points__c": points,
                "acme__Contact__c": ana,
            }
            await call(
                crm,
                "salesforce_create",
                {"objectName": "acme__Loyalty_Card__c", "values": values},
            )

        found = await query(
            crm,
            "SELECT Name, Points__c, Contact__r.LastName FROM Loyalty_Card__c "
            "WHERE Tier__c = 'Gold' LIMIT 10",
        )
        cards = await query(crm, "SELECT LastName, (SELECT Name FROM Cards__r) FROM Contact")

    assert found["records"] == [
        {"Name": "C-1", "acme__Points__c": 120, "acme__Contact__r": {"LastName": "Lima"}}
    ]
    assert [c["Name"] for c in cards["records"][0]["acme__Cards__r"]["records"]] == ["C-1", "C-2"]
    sent = simulator.queries()
    assert sent  # the completed query reached the org


async def test_values_go_in_as_binds_and_cannot_change_the_query() -> None:
    async with recorded_crm() as (crm, _):
        for last in ("Lima", "O'Neil", "Zed"):
            await contact(crm, last)
        soql = "SELECT LastName FROM Contact WHERE LastName = :name ORDER BY LastName"

        injected = await query(crm, soql, params={"name": "x' OR LastName != 'y"})
        quoted = await query(crm, soql, params={"name": "O'Neil"})
        listed = await query(
            crm,
            "SELECT LastName FROM Contact WHERE LastName IN :names ORDER BY LastName",
            params={"names": ["Zed", "Lima') OR (LastName != '"]},
        )
        with pytest.raises(ToolFailed, match="soql uses :nam but params has no 'nam'"):
            await query(crm, soql.replace(":name", ":nam"), params={"name": "Lima"})
        with pytest.raises(ToolFailed, match="params has 'extra', which soql does not use"):
            await query(crm, soql, params={"name": "Lima", "extra": "x"})

    assert injected["records"] == []
    assert [r["LastName"] for r in quoted["records"]] == ["O'Neil"]
    assert [r["LastName"] for r in listed["records"]] == ["Zed"]


async def test_a_read_of_more_than_the_threshold_answers_with_the_count_and_what_to_do() -> None:
    async with recorded_crm(crm_query_count_threshold=5) as (crm, simulator):
        for n in range(7):
            await contact(crm, f"Person {n}", email=f"p{n}@example.com" if n < 3 else None)

        everyone = await query(crm, "SELECT LastName FROM Contact ORDER BY LastName")
        reads_after_count = len(simulator.queries())
        narrowed = await query(crm, "SELECT LastName FROM Contact WHERE Email != null")
        first = await query(crm, "SELECT LastName FROM Contact ORDER BY LastName LIMIT 2")

    assert everyone["records"] == [] and everyone["totalSize"] == 7
    assert everyone["note"].startswith("7 Contact records match, more than 5: none were read.")
    assert reads_after_count == 1  # the count only
    assert len(narrowed["records"]) == 3 and narrowed["note"] is None
    assert [r["LastName"] for r in first["records"]] == ["Person 0", "Person 1"]


async def test_aggregate_queries_pass_through_uncounted() -> None:
    async with recorded_crm(crm_query_count_threshold=1) as (crm, simulator):
        ana = await contact(crm, "Lima")
        for subject, status in [("A", "New"), ("B", "New"), ("C", "Closed")]:
            values = {"Subject": subject, "Status": status, "ContactId": ana}
            await call(crm, "salesforce_create", {"objectName": "Case", "values": values})

        grouped = await query(
            crm,
            "SELECT Status, COUNT(Id) cases FROM Case GROUP BY Status ORDER BY COUNT(Id) DESC",
        )

    assert grouped["records"] == [{"Status": "New", "cases": 2}, {"Status": "Closed", "cases": 1}]
    assert len(simulator.queries()) == 1  # no COUNT() first


def test_the_count_query_keeps_the_filter_and_drops_the_order() -> None:
    soql = "SELECT Id, (SELECT Id FROM Cases) FROM Contact WHERE Name = 'a' ORDER BY Name DESC"
    counted = Checked(soql, parse(soql)).count_query()
    assert counted == "SELECT COUNT() FROM Contact WHERE Name = 'a'"
    for bounded in (
        "SELECT Id FROM Contact LIMIT 5",
        "SELECT Id FROM Contact LIMIT 5 OFFSET 5",
        "SELECT COUNT() FROM Contact",
        "SELECT AccountId, COUNT(Id) FROM Contact GROUP BY AccountId",
    ):
        assert Checked(bounded, parse(bounded)).count_query() is None


async def test_a_query_this_server_cannot_read_is_left_to_salesforce() -> None:
    class Unused:
        async def objects(self) -> list[dict[str, Any]]:
            raise AssertionError("an unreadable query is not checked")

    checked = await check(Unused(), "SELECT Id FROM Contact WHERE")  # type: ignore[arg-type]

    assert checked == Checked("SELECT Id FROM Contact WHERE", None)


async def test_explain_object_names_relationships_both_ways_and_picklists() -> None:
    async with recorded_crm() as (crm, _):
        contact_summary = await call(crm, "salesforce_explain_object", {"objectName": "Contact"})
        card = await call(crm, "salesforce_explain_object", {"objectName": "acme__Loyalty_Card__c"})
        example = await query(crm, contact_summary["exampleQuery"])

    assert {"field": "AccountId", "relationshipName": "Account", "objects": ["Account"]} in (
        contact_summary["parents"]
    )
    assert {"object": "Case", "field": "ContactId", "relationshipName": "Cases"} in (
        contact_summary["children"]
    )
    assert contact_summary["requiredOnCreate"] == ["LastName"]
    assert card["picklists"] == {"acme__Tier__c": ["Bronze", "Silver", "Gold"]}
    assert card["fields"]["acme__Points__c"] == "double"
    assert example["records"] == []


class OneObject:
    """A schema of one object with two fields, for checks that need no org."""

    async def objects(self) -> list[dict[str, Any]]:
        return [{"name": "Case"}]

    async def describe(self, name: str) -> dict[str, Any]:
        return {"name": "Case", "fields": [{"name": "Id"}, {"name": "Status"}]}


async def test_an_aggregate_alias_is_not_taken_for_a_field() -> None:
    soql = "SELECT Status, COUNT(Id) cases FROM Case GROUP BY Status ORDER BY cases DESC"

    checked = await check(OneObject(), soql)  # type: ignore[arg-type]

    assert checked.soql == soql and checked.query is not None


class SimulatedSchema:
    """The simulator's describes without a server, for checks that send nothing."""

    async def objects(self, *, fresh: bool = False) -> list[dict[str, Any]]:
        return [{"name": o.name} for o in SCHEMA]

    async def describe(self, name: str, *, fresh: bool = False) -> dict[str, Any]:
        return describe_json(next(o for o in SCHEMA if o.name.lower() == name.lower()))


@pytest.mark.parametrize(
    "soql",
    [
        "SELECT Contact.FirstName, Contact.Account.Name FROM Contact WHERE Contact.Email != null",
        "SELECT c.FirstName, c.Account.Name FROM Contact c ORDER BY c.LastName",
        "SELECT FIELDS(ALL) FROM Account LIMIT 200",
        "SELECT Name, FIELDS(CUSTOM), (SELECT FIELDS(STANDARD) FROM Contacts) FROM Account",
        "SELECT LastName l, COUNT(Id) n FROM Contact GROUP BY LastName",
        "SELECT Id FROM Case WHERE CALENDAR_YEAR(CreatedDate) = 2026 WITH SECURITY_ENFORCED",
    ],
)
async def test_valid_queries_pass_the_check_unchanged(soql: str) -> None:
    checked = await check(SimulatedSchema(), soql)  # type: ignore[arg-type]

    assert checked.soql == soql and checked.query is not None


async def test_an_alias_does_not_hide_a_wrong_field() -> None:
    with pytest.raises(Exception, match=r"Contact has no field 'Emial'\. Did you mean Email\?"):
        await check(SimulatedSchema(), "SELECT c.Emial FROM Contact c")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "soql",
    [
        "SELECT Id FROM Contact LIMIT 1.5",
        "SELECT Id FROM Contact WHERE " + "(" * 400 + "Email = 'a'" + ")" * 400,
        "SELECT Id FROM Contact WHERE " + "NOT " * 2000 + "Email = 'a'",
    ],
)
async def test_a_query_too_odd_to_read_is_sent_as_written_not_crashed_on(soql: str) -> None:
    checked = await check(SimulatedSchema(), soql)  # type: ignore[arg-type]

    assert checked == Checked(soql, None)


async def test_a_date_bind_goes_in_unquoted_and_must_be_a_date() -> None:
    async with recorded_crm() as (crm, _):
        await contact(crm, "Lima")
        soql = "SELECT LastName FROM Contact WHERE CreatedDate >= :since"

        found = await query(crm, soql, params={"since": "2000-01-31T09:00:00Z"}, limit=5)
        with pytest.raises(
            ToolFailed,
            match=r"params\['since'\] is compared with "
            r"Contact.CreatedDate, a datetime: give a date-time with its zone",
        ):
            await query(crm, soql, params={"since": "2000-01-31' OR Name != '"})
        with pytest.raises(
            ToolFailed, match="must be of type dateTime and should not be enclosed in quotes"
        ):
            await query(crm, "SELECT Id FROM Contact WHERE CreatedDate > '2000-01-01T00:00:00Z'")

    assert [r["LastName"] for r in found["records"]] == ["Lima"]


def test_numbers_go_in_plain_never_in_exponent_form() -> None:
    assert [value_literal("n", v) for v in (0.00001, 1e16, 12, -3.5)] == [
        "0.00001",
        "10000000000000000",
        "12",
        "-3.5",
    ]


class GrowingOrg:
    """A client whose Contact gains a field after the first describe."""

    def __init__(self) -> None:
        self.describes = 0

    async def objects(self) -> list[dict[str, Any]]:
        return [{"name": "Contact"}]

    async def describe(self, name: str) -> dict[str, Any]:
        self.describes += 1
        fields = [{"name": "Id"}, {"name": "LastName"}]
        if self.describes > 1:
            fields.append({"name": "Loyalty_Tier__c"})
        return {"name": "Contact", "fields": fields}


async def test_a_name_the_kept_describe_lacks_is_looked_up_fresh_before_refusing() -> None:
    org = GrowingOrg()
    schema = SchemaCache(org)  # type: ignore[arg-type]
    await check(schema, "SELECT LastName FROM Contact")

    checked = await check(schema, "SELECT Loyalty_Tier__c FROM Contact")
    with pytest.raises(Exception, match="Contact has no field 'Nothing__c'"):
        await check(schema, "SELECT Nothing__c FROM Contact")

    assert checked.query is not None and org.describes == 3


def test_a_limit_goes_before_offset_and_for_view_and_a_count_drops_for_view() -> None:
    def shaped(soql: str) -> Checked:
        return Checked(soql, parse(soql))

    assert shaped("SELECT Id FROM Contact OFFSET 10").bounded(50) == (
        "SELECT Id FROM Contact LIMIT 50 OFFSET 10"
    )
    assert shaped("SELECT Id FROM Contact ORDER BY Name FOR VIEW").bounded(50) == (
        "SELECT Id FROM Contact ORDER BY Name LIMIT 50 FOR VIEW"
    )
    assert shaped("SELECT Id FROM Contact WHERE Name = 'a' FOR VIEW").count_query() == (
        "SELECT COUNT() FROM Contact WHERE Name = 'a'"
    )
    assert shaped("SELECT Id FROM Contact ORDER BY Name UPDATE VIEWSTAT").count_query() == (
        "SELECT COUNT() FROM Contact"
    )
    with pytest.raises(Exception, match="LIMIT 5000 is over 2000"):
        shaped("SELECT Id FROM Contact LIMIT 5000").bounded(2000)


async def test_an_explicit_page_size_reads_without_counting_first() -> None:
    async with recorded_crm(crm_query_count_threshold=2) as (crm, simulator):
        for n in range(4):
            await contact(crm, f"Person {n}")

        page = await query(crm, "SELECT LastName FROM Contact ORDER BY LastName", limit=3)

    assert [r["LastName"] for r in page["records"]] == ["Person 0", "Person 1", "Person 2"]
    assert len(simulator.queries()) == 1


class Polymorphic:
    """Event whose Who is a Contact or a Lead, as in a real org."""

    async def objects(self, *, fresh: bool = False) -> list[dict[str, Any]]:
        return [{"name": "Event"}]

    async def describe(self, name: str, *, fresh: bool = False) -> dict[str, Any]:
        who = {"name": "WhoId", "relationshipName": "Who", "referenceTo": ["Contact", "Lead"]}
        return {"name": "Event", "fields": [{"name": "Id"}, who]}


async def test_a_polymorphic_lookup_is_left_to_salesforce() -> None:
    soql = "SELECT Id, Who.Name FROM Event WHERE Who.Type = 'Lead' FOR VIEW"

    checked = await check(Polymorphic(), soql)  # type: ignore[arg-type]

    assert checked.soql == soql and checked.query is not None


def hides_ssn(name: str) -> bool:
    return "ssn" in name.lower()


@pytest.mark.parametrize(
    "soql",
    [
        "SELECT Id, MAX(SSN__c) FROM Contact GROUP BY Id",
        "SELECT SSN__c s FROM Contact",
        "SELECT Id FROM Contact WHERE SSN__c = '078-05-1120'",
        "SELECT Id FROM Contact ORDER BY SSN__c",
        "SELECT Id FROM Account WHERE Id IN (SELECT AccountId FROM Contact WHERE SSN__c != null)",
        "SELECT Id, (SELECT Id FROM Contacts WHERE SSN__c LIKE '078%') FROM Account",
        "SELECT Id FROM Contact WHERE SSN__c = '1' FOO BAR",  # unreadable: refused, not sent
    ],
)
async def test_a_masked_field_is_read_as_itself_only(soql: str) -> None:
    with pytest.raises(Exception, match="SSN__c"):
        await check(SimulatedSchema(), soql, hides=hides_ssn)  # type: ignore[arg-type]


async def test_a_masked_field_selected_as_itself_comes_back_masked() -> None:
    async with recorded_crm() as (crm, _):
        await contact(crm, "Lima")
        ana = await query(crm, "SELECT LastName FROM Contact LIMIT 1")
        assert ana["records"]
        rows = await query(crm, "SELECT LastName, SSN__c, (SELECT Id FROM Cases) FROM Contact")

    assert rows["records"][0]["SSN__c"] == "[redacted]"


async def test_an_objects_own_name_before_a_field_is_completed_with_its_namespace() -> None:
    checked = await check(SimulatedSchema(), "SELECT Loyalty_Card__c.Name FROM Loyalty_Card__c")  # type: ignore[arg-type]

    assert checked.soql == "SELECT acme__Loyalty_Card__c.Name FROM acme__Loyalty_Card__c"


async def test_subqueries_nested_past_reason_are_left_to_salesforce_not_crashed_on() -> None:
    soql = "SELECT Id FROM Cases"
    for _ in range(1000):
        soql = f"SELECT Id, ({soql}) FROM Contacts"

    checked = await check(SimulatedSchema(), soql)  # type: ignore[arg-type]

    assert checked == Checked(soql, None)
