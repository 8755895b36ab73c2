"""salesforce_export in process against the simulator: 2,500 records over several pages to CSV and
XLSX, read back with the csv module and openpyxl; the row and byte bounds; formulas that stay
text; redaction; what a flat file refuses. Then the export module on its own (columns of
functions and aggregates, cells), and the simulator's sObject Collections the tests seed with."""

from __future__ import annotations

import base64
import contextlib
import csv
import io
import json
import threading
import zipfile
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import openpyxl
import pytest
from mcp.client import Client
from mcp.types import BlobResourceContents, EmbeddedResource, TextContent, TextResourceContents

from app.crm_tools import Redactor
from app.salesforce.client import QueryPage
from app.salesforce.errors import SalesforceError
from app.salesforce.export import ExportBounds, Stopped, _until, csv_cell, export
from app.simulator import SimulatorOptions, build_simulator
from tests.mcp.conftest import ToolFailed
from tests.salesforce.test_crm_tools import SIM
from tests.salesforce.test_crm_tools_inprocess import SHORT_DEADLINE, crm_on
from tests.servers import serve

OPTIONS = SimulatorOptions(rate_limits=False, crm_query_batch_size=1000)
DATA = "/services/data/v62.0"
CONTACTS = 2500
SOQL = "SELECT Id, LastName, Email, Account.Name FROM Contact ORDER BY LastName"


@contextlib.asynccontextmanager
async def simulator() -> AsyncIterator[str]:
    async with serve(build_simulator(OPTIONS)) as sim_url:
        yield sim_url


async def access_token(http: httpx.AsyncClient) -> str:
    """An access token of the simulator's connected app (the refresh-token flow)."""
    grant = {
        "grant_type": "refresh_token",
        "client_id": SIM.crm_client_id,
        "client_secret": SIM.crm_client_secret,
        "refresh_token": SIM.crm_refresh_token,
    }
    return str((await http.post("/services/oauth2/token", data=grant)).json()["access_token"])


async def seed(sim_url: str, records: list[dict[str, Any]]) -> list[str]:
    """Records created as a data loader would: sObject Collections, 200 a request (all or
    none). Their ids, in order."""
    async with httpx.AsyncClient(base_url=sim_url) as http:
        token = await access_token(http)
        ids = []
        for start in range(0, len(records), 200):
            answer = await http.post(
                f"{DATA}/composite/sobjects",
                json={"allOrNone": True, "records": records[start : start + 200]},
                headers={"Authorization": f"Bearer {token}"},
            )
            assert answer.status_code == 200, answer.text
            assert all(r["success"] for r in answer.json()), answer.text
            ids += [r["id"] for r in answer.json()]
        return ids


def contact(**values: Any) -> dict[str, Any]:
    return {"attributes": {"type": "Contact"}, **values}


async def seed_contacts(sim_url: str) -> tuple[list[str], dict[str, str | None]]:
    """2,500 contacts: every tenth without an account, the others at one of two. Their ids, and
    each one's account name."""
    accounts = await seed(
        sim_url, [{"attributes": {"type": "Account"}, "Name": n} for n in ("Acme", "Globex")]
    )
    names = {accounts[0]: "Acme", accounts[1]: "Globex"}
    chosen = [None if n % 10 == 0 else accounts[n % 2] for n in range(CONTACTS)]
    ids = await seed(
        sim_url,
        [
            contact(LastName=f"Person {n:04d}", Email=f"p{n}@example.com", AccountId=a)
            for n, a in enumerate(chosen)
        ],
    )
    return ids, {i: names[a] if a else None for i, a in zip(ids, chosen, strict=True)}


async def requests(sim_url: str) -> Counter[str]:
    """The simulator's count of query calls: the first page, and the pages after it."""
    async with httpx.AsyncClient(base_url=sim_url) as http:
        seen = (await http.get("/control/stats")).json()["requests"]
    pages: Counter[str] = Counter()
    for line, count in seen.items():
        if line == f"GET {DATA}/query":
            pages["first"] += count
        elif line.startswith(f"GET {DATA}/query/"):
            pages["more"] += count
    return pages


async def exported(
    crm: Client, soql: str, fmt: str, params: dict[str, Any] | None = None
) -> tuple[dict[str, Any], bytes]:
    """The export's structured result and its file."""
    arguments = {"soql": soql, "format": fmt, **({"params": params} if params else {})}
    result = await crm.call_tool("salesforce_export", arguments)
    if result.is_error:
        assert len(result.content) == 1  # the message only: nothing partial
        assert isinstance(result.content[0], TextContent)
        raise ToolFailed(result.content[0].text)
    summary, attached = result.content
    assert isinstance(summary, TextContent) and isinstance(attached, EmbeddedResource)
    assert attached.annotations is not None and attached.annotations.audience == ["user"]
    found = attached.resource
    meta = dict(result.structured_content or {})
    assert (found.uri, found.mime_type) == (meta["uri"], meta["mimeType"])
    if fmt == "csv":
        assert isinstance(found, TextResourceContents)
        data = found.text.encode()
    else:
        assert isinstance(found, BlobResourceContents)
        data = base64.b64decode(found.blob)
    assert meta["bytes"] == len(data)
    assert f"{meta['rows']:,} " in summary.text and meta["name"] in summary.text
    return meta, data


def csv_rows(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode(), newline="")))


def xlsx_rows(data: bytes) -> list[list[Any]]:
    sheet = openpyxl.load_workbook(io.BytesIO(data)).active
    return [list(row) for row in sheet.iter_rows(values_only=True)]  # type: ignore[union-attr]


async def test_2500_records_over_several_pages_export_to_csv_and_xlsx_each_once() -> None:
    async with simulator() as sim_url:
        ids, accounts = await seed_contacts(sim_url)
        async with crm_on(sim_url, crm_access="read") as crm:
            as_csv, csv_data = await exported(crm, SOQL, "csv")
            as_xlsx, xlsx_data = await exported(crm, SOQL, "xlsx")
        pages = await requests(sim_url)

    assert pages == {"first": 2, "more": 4}  # 1,000 + 1,000 + 500, twice
    header = ["Id", "LastName", "Email", "Account.Name"]
    for meta, rows, empty in [
        (as_csv, csv_rows(csv_data), ""),
        (as_xlsx, xlsx_rows(xlsx_data), None),
    ]:
        assert (meta["rows"], meta["columns"]) == (CONTACTS, header)
        assert rows[0] == header
        body = rows[1:]
        assert Counter(r[0] for r in body) == Counter(ids)  # every record exactly once
        assert [r[1] for r in body] == [f"Person {n:04d}" for n in range(CONTACTS)]
        assert {r[0]: r[3] for r in body} == {i: a or empty for i, a in accounts.items()}
    assert as_csv["name"].startswith("Contact-") and as_csv["name"].endswith(".csv")
    assert as_csv["uri"] == f"export://salesforce/{as_csv['name']}"
    assert as_xlsx["mimeType"] == (
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    )
    assert openpyxl.load_workbook(io.BytesIO(xlsx_data)).active.title == "Contact"  # type: ignore[union-attr]


async def test_a_query_over_the_row_bound_is_refused_after_its_first_page() -> None:
    async with simulator() as sim_url:
        await seed_contacts(sim_url)
        async with crm_on(sim_url, crm_access="read", crm_export_max_rows=2000) as crm:
            with pytest.raises(ToolFailed) as refused:
                await exported(crm, SOQL, "xlsx")
            pages = await requests(sim_url)
            limited, _ = await exported(crm, SOQL + " LIMIT 2000", "csv")

    assert str(refused.value).endswith(
        ": The query matches 2,500 records, over the export's bound of 2,000 "
        "(CRM_EXPORT_MAX_ROWS): narrow it (a WHERE, or a LIMIT) and export in parts. Nothing "
        "was exported."
    )
    assert pages == {"first": 1}  # refused on the first page's totalSize
    assert limited["rows"] == 2000  # an explicit LIMIT is honoured


async def test_a_file_over_the_byte_bound_is_refused() -> None:
    async with simulator() as sim_url:
        await seed_contacts(sim_url)
        async with crm_on(sim_url, crm_export_max_bytes=20_000) as crm:
            with pytest.raises(ToolFailed) as too_much_text:
                await exported(crm, SOQL, "csv")
            pages = await requests(sim_url)
            small, _ = await exported(crm, SOQL + " LIMIT 1", "csv")
        async with crm_on(sim_url, crm_export_max_bytes=1024) as crm:
            with pytest.raises(ToolFailed) as too_big_a_file:
                await exported(crm, SOQL + " LIMIT 1", "xlsx")

    assert (
        ": The export's bound of 20,000 bytes (CRM_EXPORT_MAX_BYTES) was passed: its records' "
        "text passed it after 1,000 of 2,500 records. Select fewer fields or fewer records"
    ) in str(too_much_text.value)
    assert pages == {"first": 1}  # stopped reading at the first page over the bound
    assert small["rows"] == 1
    # One row, but an XLSX file is a zip of several parts: over 1 KiB.
    assert "bound of 1,024 bytes (CRM_EXPORT_MAX_BYTES) was passed: the XLSX file has " in str(
        too_big_a_file.value
    )
    assert "Nothing was exported." in str(too_big_a_file.value)


FORMULAS = ["=1+2", '=HYPERLINK("https://evil.example","x")', "+33 1 23", "-2+3", "@SUM(A1)"]


async def test_text_a_spreadsheet_would_run_stays_text() -> None:
    names = [*FORMULAS, "\t=1", "plain", "O'Neil = fine"]
    async with simulator() as sim_url:
        await seed(sim_url, [contact(LastName=n) for n in names])
        async with crm_on(sim_url) as crm:
            soql = "SELECT LastName FROM Contact"
            _, csv_data = await exported(crm, soql, "csv")
            _, xlsx_data = await exported(crm, soql, "xlsx")

    in_csv = [r[0] for r in csv_rows(csv_data)[1:]]
    assert in_csv == [*(f"'{n}" for n in FORMULAS), "'\t=1", "plain", "O'Neil = fine"]
    sheet = openpyxl.load_workbook(io.BytesIO(xlsx_data)).active
    cells = [row[0] for row in sheet.iter_rows(min_row=2)]  # type: ignore[union-attr]
    assert [c.value for c in cells] == names  # as written: no quote needed
    assert {c.data_type for c in cells} == {"s"}  # strings, never formulas
    part = zipfile.ZipFile(io.BytesIO(xlsx_data)).read("xl/worksheets/sheet1.xml")
    assert b"<f>" not in part and b"<f " not in part


async def test_redacted_fields_are_masked_in_the_file() -> None:
    ssn = "078-05-1120"
    async with simulator() as sim_url:
        await seed(sim_url, [contact(LastName="Lima", SSN__c=ssn)])
        async with crm_on(sim_url) as crm:
            soql = "SELECT LastName, SSN__c FROM Contact"
            _, csv_data = await exported(crm, soql, "csv")
            _, xlsx_data = await exported(crm, soql, "xlsx")

    assert csv_rows(csv_data) == [["LastName", "SSN__c"], ["Lima", "[redacted]"]]
    assert xlsx_rows(xlsx_data) == [["LastName", "SSN__c"], ["Lima", "[redacted]"]]
    with zipfile.ZipFile(io.BytesIO(xlsx_data)) as parts:
        assert all(ssn.encode() not in parts.read(n) for n in parts.namelist())
    assert ssn.encode() not in csv_data


@pytest.mark.parametrize(
    ("soql", "says"),
    [
        (
            "SELECT Id, (SELECT Subject FROM Cases) FROM Contact",
            r"soql selects a child subquery \(FROM Cases\): an export has one row per record",
        ),
        ("SELECT COUNT() FROM Contact", "counts records and returns none"),
        ("DELETE FROM Contact", "soql must be a SELECT query"),
        ("SELECT Id FROM Contact LIMIT 5 ORDER BY Id", "LIMIT must come last"),
        ("SELECT Id FROM Contact; SELECT Id FROM Case", "one query, without ';'"),
        ("SELECT Emial FROM Contact", r"Contact has no field 'Emial'\. Did you mean Email\?"),
    ],
)
async def test_an_export_the_tool_would_not_run_says_why(soql: str, says: str) -> None:
    async with simulator() as sim_url, crm_on(sim_url) as crm:
        with pytest.raises(ToolFailed, match=says):
            await exported(crm, soql, "csv")


async def test_a_semi_join_and_a_parent_of_any_spelling_are_columns_as_salesforce_names_them() -> (
    None
):
    async with simulator() as sim_url:
        [acme] = await seed(sim_url, [{"attributes": {"type": "Account"}, "Name": "Acme"}])
        await seed(sim_url, [contact(LastName="Lima", AccountId=acme), contact(LastName="Bo")])
        async with crm_on(sim_url) as crm:
            meta, data = await exported(
                crm,
                "select lastname, account.name from contact where LastName != 'x, FROM y' "
                "order by lastname",
                "csv",
            )

    assert meta["columns"] == ["LastName", "Account.Name"]
    assert csv_rows(data) == [["LastName", "Account.Name"], ["Bo", ""], ["Lima", "Acme"]]


async def test_the_export_is_listed_as_a_read_tool_with_its_output_schema() -> None:
    async with simulator() as sim_url, crm_on(sim_url, crm_access="read") as crm:
        tools = {t.name: t for t in (await crm.list_tools()).tools}

    export_tool = tools["salesforce_export"]
    assert export_tool.annotations is not None and export_tool.annotations.read_only_hint
    assert export_tool.output_schema is not None
    assert {"rows", "columns", "bytes", "format", "uri"} <= set(
        export_tool.output_schema["properties"]
    )
    assert export_tool.input_schema["properties"]["format"]["enum"] == ["csv", "xlsx"]


async def test_an_export_answers_within_the_tool_deadline() -> None:
    async with (
        simulator() as sim_url,
        crm_on(sim_url, **SHORT_DEADLINE) as crm,
        httpx.AsyncClient(base_url=sim_url) as control,
    ):
        await seed_contacts(sim_url)
        fault = {"path": f"{DATA}/query/*", "delay": 20, "count": 1}  # the second page
        assert (await control.post("/control/faults", json=fault)).status_code == 201
        with pytest.raises(ToolFailed, match=r"did not answer in time .*nothing was changed"):
            await exported(crm, SOQL, "csv")


# -- the export module on its own ------------------------------------------------------------


class Pages:
    """Query pages as Salesforce would answer them, two records a page."""

    def __init__(self, records: list[dict[str, Any]]) -> None:
        self.records = records

    async def query(self, soql: str) -> QueryPage:
        return self.page(0)

    async def query_more(self, next_records_url: str) -> QueryPage:
        return self.page(int(next_records_url.rsplit("-", 1)[1]))

    def page(self, start: int) -> QueryPage:
        rest = len(self.records) - start - 2
        return QueryPage(
            self.records[start : start + 2],
            len(self.records),
            f"/services/data/v62.0/query/01gX-{start + 2}" if rest > 0 else None,
        )


def at_noon() -> datetime:
    return datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


async def test_functions_and_aggregates_take_their_columns_from_the_records() -> None:
    records: list[dict[str, Any]] = [
        {"attributes": {"type": "AggregateResult"}, "Status": "New", "n": 3, "expr0": 1.5},
        {"attributes": {"type": "AggregateResult"}, "Status": "Closed", "n": 1, "expr0": None},
        {"Status": "Working", "Owner": None, "n": 2, "expr0": 0},
        {"Status": "Escalated", "Owner": {"Name": "Jo"}, "n": 4, "expr0": 2},
    ]
    made = await export(
        Pages(records),
        "SELECT toLabel(Status), COUNT(Id) n, AVG(Age__c), Owner.Name FROM Case GROUP BY Status",
        "csv",
        ExportBounds(),
        now=at_noon,
    )

    assert made.name == "Case-20261204-120000.csv"
    assert made.columns == ["Status", "n", "expr0", "Owner.Name"]  # no "Owner" of the null one
    assert csv_rows(made.data)[1:] == [
        ["New", "3", "1.5", ""],
        ["Closed", "1", "", ""],
        ["Working", "2", "0", ""],
        ["Escalated", "4", "2", "Jo"],
    ]


async def test_cells_keep_their_types_and_what_xml_cannot_hold_is_replaced() -> None:
    records = [
        {"Name": "a\x0bb", "Amount": -2.5, "Active": True, "Note": None},
        {"Name": "-3", "Amount": 7, "Active": False, "Note": "x"},
    ]
    soql = "SELECT Name, Amount, Active, Note FROM Thing__c"
    as_csv = await export(Pages(records), soql, "csv", ExportBounds())
    as_xlsx = await export(Pages(records), soql, "xlsx", ExportBounds())

    assert csv_rows(as_csv.data)[1:] == [["a\x0bb", "-2.5", "true", ""], ["'-3", "7", "false", "x"]]
    assert xlsx_rows(as_xlsx.data)[1:] == [["a\ufffdb", -2.5, True, None], ["-3", 7, False, "x"]]
    assert [csv_cell(v) for v in ("\r=1", "=", "a=b", 0, None)] == ["'\r=1", "'=", "a=b", "0", ""]


async def test_text_longer_than_an_xlsx_cell_is_refused_for_xlsx_only() -> None:
    records = [{"Description": "x" * 32_768}]
    soql = "SELECT Description FROM Case"

    with pytest.raises(SalesforceError, match="32,768 characters, over the 32,767 an XLSX cell"):
        await export(Pages(records), soql, "xlsx", ExportBounds())
    assert (await export(Pages(records), soql, "csv", ExportBounds())).rows == 1


async def test_more_records_than_the_first_page_said_still_hit_the_row_bound() -> None:
    class Understated(Pages):
        def page(self, start: int) -> QueryPage:
            found = super().page(start)
            return QueryPage(found.records, 1, found.next)

    with pytest.raises(
        SalesforceError, match="matches at least 4 records, over the export's bound of 2"
    ):
        await export(
            Understated([{"Id": str(n)} for n in range(5)]),
            "SELECT Id FROM Contact",
            "csv",
            ExportBounds(max_rows=2),
        )


# -- the simulator's sObject Collections (how the tests above seed) ------------------------------


async def test_sobject_collections_create_in_order_all_or_none_or_each_on_its_own() -> None:
    async with simulator() as sim_url:
        async with httpx.AsyncClient(base_url=sim_url) as http:
            token = await access_token(http)
            headers = {"Authorization": f"Bearer {token}"}
            mixed = [
                contact(LastName="Lima"),
                contact(FirstName="No last name"),
                {"attributes": {"type": "Contakt"}, "LastName": "x"},
            ]
            url = f"{DATA}/composite/sobjects"
            undone = await http.post(
                url, json={"allOrNone": True, "records": mixed}, headers=headers
            )
            each = await http.post(url, json={"records": mixed}, headers=headers)
            too_many = await http.post(
                url, json={"records": [contact(LastName="x")] * 201}, headers=headers
            )
            anonymous = await http.post(url, json={"records": mixed})
        async with crm_on(sim_url) as crm:
            result = await crm.call_tool(
                "salesforce_query", {"soql": "SELECT LastName FROM Contact"}
            )

    assert undone.status_code == 200
    assert [r["success"] for r in undone.json()] == [False, False, False]
    assert undone.json()[0]["errors"][0]["statusCode"] == "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    assert undone.json()[1]["errors"][0] == {
        "statusCode": "REQUIRED_FIELD_MISSING",
        "message": "Required fields are missing: [LastName]",
        "fields": ["LastName"],
    }
    assert undone.json()[2]["errors"][0]["statusCode"] == "INVALID_TYPE"
    assert [r["success"] for r in each.json()] == [True, False, False]
    assert each.json()[0]["id"].startswith("003")
    assert (too_many.status_code, too_many.json()[0]["errorCode"]) == (400, "EXCEEDED_ID_LIMIT")
    assert anonymous.status_code == 401
    assert result.structured_content is not None
    assert [r["LastName"] for r in result.structured_content["records"]] == ["Lima"]


async def test_an_export_checks_names_fills_binds_and_names_columns_without_the_alias() -> None:
    async with simulator() as sim_url, crm_on(sim_url) as crm:
        acme = await seed(sim_url, [{"attributes": {"type": "Account"}, "Name": "Acme"}])
        await seed(
            sim_url,
            [contact(LastName=n, AccountId=acme[0]) for n in ("O'Neil", "Lima", "Zed")],
        )
        soql = "SELECT c.LastName, c.Account.Name FROM Contact c WHERE LastName IN :names"

        meta, data = await exported(crm, soql, "csv", {"names": ["O'Neil", "x') OR (Id != '"]})
        with pytest.raises(ToolFailed, match=r"Contact has no relationship 'Acount'"):
            await exported(crm, "SELECT Acount.Name FROM Contact", "csv")

    assert meta["columns"] == ["LastName", "Account.Name"]
    assert csv_rows(data) == [["LastName", "Account.Name"], ["O'Neil", "Acme"]]


async def test_a_masked_field_is_masked_on_every_page_in_both_formats() -> None:
    ssns = [f"078-05-11{n:02d}" for n in range(5)]
    records = [{"Id": f"003{n}", "SSN__c": ssn} for n, ssn in enumerate(ssns)]
    for fmt in ("csv", "xlsx"):
        made = await export(
            Pages(records), "SELECT Id, SSN__c FROM Contact", fmt, ExportBounds(),
            Redactor(["*SSN*"]),
        )  # fmt: skip
        rows = csv_rows(made.data) if fmt == "csv" else xlsx_rows(made.data)
        assert [r[1] for r in rows[1:]] == ["[redacted]"] * 5  # three pages of two
        assert not any(ssn.encode() in made.data for ssn in ssns)


async def test_a_compound_field_is_one_cell_and_masked_whole() -> None:
    address = {"street": "1 rue de la Paix", "city": "Paris", "country": "FR"}
    records = [{"Id": "0031", "MailingAddress": address}]

    made = await export(
        Pages(records), "SELECT Id, MailingAddress FROM Contact", "csv", ExportBounds()
    )
    masked = await export(
        Pages(records), "SELECT FIELDS(STANDARD) FROM Contact LIMIT 200", "csv", ExportBounds(),
        Redactor(["Mailing*"]),
    )  # fmt: skip

    assert csv_rows(made.data)[1][0] == "0031"
    assert json.loads(csv_rows(made.data)[1][1]) == address
    assert csv_rows(masked.data) == [["Id", "MailingAddress"], ["0031", "[redacted]"]]


async def test_half_an_emoji_becomes_a_replacement_character_not_a_crash() -> None:
    records = [{"Id": "0031", "LastName": "Lima \ud83d"}]
    for fmt in ("csv", "xlsx"):
        made = await export(Pages(records), "SELECT Id, LastName FROM Contact", fmt, ExportBounds())
        rows = csv_rows(made.data) if fmt == "csv" else xlsx_rows(made.data)
        assert rows[1][1] == "Lima \ufffd"


async def test_an_export_past_its_cells_is_refused() -> None:
    records = [{"Id": f"003{n}", "LastName": "x", "Email": None} for n in range(6)]
    with pytest.raises(SalesforceError, match=r"reached 10 cells .* after 4 of 6 records"):
        await export(
            Pages(records), "SELECT Id, LastName, Email FROM Contact", "csv",
            ExportBounds(max_cells=10),
        )  # fmt: skip


@pytest.mark.parametrize("text", [" =1+1", "\u00a0=1+1", "\uff1d1+1", "\u3000@SUM(A1)"])
def test_a_formula_behind_spaces_or_in_full_width_is_still_prefixed(text: str) -> None:
    assert csv_cell(text) == "'" + text


async def test_grouped_parent_fields_take_their_columns_from_the_records() -> None:
    async with simulator() as sim_url, crm_on(sim_url) as crm:
        acme = await seed(sim_url, [{"attributes": {"type": "Account"}, "Name": "Acme"}])
        await seed(sim_url, [contact(LastName=n, AccountId=acme[0]) for n in ("A", "B")])

        _, data = await exported(
            crm, "SELECT Account.Name, COUNT(Id) n FROM Contact GROUP BY Account.Name", "csv"
        )

    assert csv_rows(data) == [["Name", "n"], ["Acme", "2"]]


async def test_a_masked_field_cannot_be_exported_through_an_aggregate_or_an_alias() -> None:
    async with simulator() as sim_url, crm_on(sim_url) as crm:
        for soql in (
            "SELECT Id, MAX(SSN__c) FROM Contact GROUP BY Id",
            "SELECT LastName, MAX(SSN__c) s FROM Contact GROUP BY LastName",
        ):
            with pytest.raises(ToolFailed, match="SSN__c is masked by REDACT_FIELDS"):
                await exported(crm, soql, "csv")


def test_a_writer_stops_at_its_next_row_once_its_call_is_over() -> None:
    stop = threading.Event()
    rows = _until(stop, iter([["a"], ["b"], ["c"]]))
    assert next(rows) == ["a"]
    stop.set()
    with pytest.raises(Stopped):
        next(rows)
