"""SOQL through the client against the simulator: parent fields through relationships, child
subqueries, filters, order, COUNT(), paging with nextRecordsUrl, Salesforce's refusals."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from pydantic import SecretStr

from app.salesforce.client import SalesforceClient
from app.salesforce.errors import BadRequest, SalesforceError
from app.salesforce.oauth import OAuthSettings, TokenSource
from app.simulator import SimulatorOptions, build_simulator
from tests.servers import serve

OPTIONS = SimulatorOptions(rate_limits=False, crm_query_batch_size=4)


@pytest.fixture
async def sf() -> AsyncIterator[SalesforceClient]:
    async with serve(build_simulator(OPTIONS)) as url, httpx.AsyncClient() as http:
        settings = OAuthSettings(
            login_url=url,
            client_id=OPTIONS.crm_client_id,
            client_secret=SecretStr(OPTIONS.crm_client_secret),
            refresh_token=SecretStr(OPTIONS.crm_refresh_token),
        )
        yield SalesforceClient(http, TokenSource(http, settings), retry_delays=(0, 0))


async def seed(sf: SalesforceClient) -> dict[str, str]:
    acme = await sf.create("Account", {"Name": "Acme"})
    ana = await sf.create(
        "Contact", {"FirstName": "Ana", "LastName": "Lima", "Email": "ana@example.com",
                    "AccountId": acme}
    )  # fmt: skip
    bo = await sf.create("Contact", {"FirstName": "Bo", "LastName": "O'Neil", "AccountId": acme})
    await sf.create("Contact", {"FirstName": "Cy", "LastName": "Zed"})
    for subject, status in [("Parcel late", "New"), ("Refund", "Closed"), ("Broken", "Working")]:
        await sf.create("Case", {"Subject": subject, "Status": status, "ContactId": ana})
    await sf.create("Support_Visit__c", {"Name": "Visit 1", "Contact__c": bo})
    return {"acme": acme, "ana": ana, "bo": bo}


async def test_parent_fields_child_subqueries_filters_and_order(sf: SalesforceClient) -> None:
    ids = await seed(sf)

    page = await sf.query(
        "SELECT FirstName, Account.Name, (SELECT Subject FROM Cases WHERE Status != 'Closed' "
        "ORDER BY Subject) FROM Contact WHERE Account.Name = 'acme' AND "
        "(Email LIKE '%@example.com' OR LastName IN ('O\\'Neil', 'Nobody')) ORDER BY FirstName DESC"
    )

    assert page.total == 2 and page.next is None
    bo, ana = page.records
    assert (bo["FirstName"], bo["Account"]["Name"], bo["Cases"]) == ("Bo", "Acme", None)
    assert ana["FirstName"] == "Ana"
    assert [c["Subject"] for c in ana["Cases"]["records"]] == ["Broken", "Parcel late"]
    assert ana["attributes"]["url"].endswith(f"/sobjects/Contact/{ids['ana']}")


async def test_a_custom_relationship_and_count(sf: SalesforceClient) -> None:
    await seed(sf)

    visits = await sf.query("SELECT Name, Contact__r.LastName FROM Support_Visit__c")
    counted = await sf.query("SELECT COUNT() FROM Case WHERE Status IN ('New', 'Working')")

    assert [(v["Name"], v["Contact__r"]["LastName"]) for v in visits.records] == [
        ("Visit 1", "O'Neil")
    ]
    assert (counted.total, counted.records) == (2, [])


async def test_a_large_answer_comes_in_pages_each_record_once(sf: SalesforceClient) -> None:
    for n in range(10):
        await sf.create("Contact", {"LastName": f"Person {n:02d}"})

    pages = [await sf.query("SELECT LastName FROM Contact ORDER BY LastName")]
    while pages[-1].next:
        pages.append(await sf.query_more(pages[-1].next))

    assert [len(p.records) for p in pages] == [4, 4, 2]
    assert {p.total for p in pages} == {10}
    names = [r["LastName"] for p in pages for r in p.records]
    assert names == [f"Person {n:02d}" for n in range(10)]


@pytest.mark.parametrize(
    ("soql", "code", "says"),
    [
        (
            "SELECT Emial FROM Contact",
            "INVALID_FIELD",
            "No such column 'Emial' on entity 'Contact'",
        ),
        ("SELECT Name FROM Contakt", "INVALID_TYPE", "sObject type 'Contakt' is not supported"),
        (
            "SELECT Acount.Name FROM Contact",
            "INVALID_FIELD",
            "Didn't understand relationship 'Acount'",
        ),
        (
            "SELECT Id FROM Contact WHERE",
            "MALFORMED_QUERY",
            "unexpected token: the end of the query",
        ),
        ("SELECT Id, FROM Contact", "MALFORMED_QUERY", "unexpected token: 'FROM'"),
        ("SELECT Id FROM Contact LIMIT ten", "MALFORMED_QUERY", "unexpected token: 'ten'"),
    ],
)
async def test_a_query_salesforce_refuses_is_an_error_with_its_message(
    sf: SalesforceClient, soql: str, code: str, says: str
) -> None:
    with pytest.raises(BadRequest) as refused:
        await sf.query(soql)

    assert refused.value.code == code
    assert says in str(refused.value)


async def test_a_cursor_that_is_not_a_next_page_address_is_refused_before_any_call(
    sf: SalesforceClient,
) -> None:
    for cursor in ("https://evil.example/x", "/services/data/v62.0/sobjects/Contact", "../query"):
        with pytest.raises(SalesforceError, match="cursor must be a value a previous page"):
            await sf.query_more(cursor)


async def test_not_in_nulls_last_offset_and_limit(sf: SalesforceClient) -> None:
    await seed(sf)

    open_cases = await sf.query("SELECT COUNT() FROM Case WHERE Status NOT IN ('Closed')")
    ordered = await sf.query(
        "SELECT FirstName FROM Contact ORDER BY Email DESC NULLS LAST, FirstName LIMIT 2 OFFSET 1"
    )
    nulls_first = await sf.query("SELECT FirstName FROM Contact ORDER BY Email, FirstName")

    assert open_cases.total == 2
    # Ana has the only email: first when nulls go last; the rest by first name.
    assert [r["FirstName"] for r in ordered.records] == ["Bo", "Cy"]
    assert [r["FirstName"] for r in nulls_first.records] == ["Bo", "Cy", "Ana"]


async def test_aggregates_group_text_without_letter_case_under_api_names(
    sf: SalesforceClient,
) -> None:
    ids = await seed(sf)
    await sf.create("Case", {"Subject": "refund", "Status": "New", "ContactId": ids["bo"]})

    by_subject = await sf.query(
        "SELECT subject, COUNT(Id) n, MAX(CreatedDate) FROM Case GROUP BY subject "
        "ORDER BY subject DESC"
    )
    unselected = await sf.query("SELECT COUNT(Id) FROM Case GROUP BY Status ORDER BY Status")

    assert [(r["Subject"].lower(), r["n"]) for r in by_subject.records] == [
        ("refund", 2),
        ("parcel late", 1),
        ("broken", 1),
    ]
    assert all(set(r) == {"attributes", "Subject", "n", "expr0"} for r in by_subject.records)
    assert [r["expr0"] for r in unselected.records] == [1, 2, 1]  # Closed, New, Working
    assert all("Status" not in r for r in unselected.records)


@pytest.mark.parametrize(
    ("soql", "says"),
    [
        ("SELECT SUM(Subject) FROM Case", "does not support aggregate operator SUM"),
        (
            "SELECT Status, COUNT(Id) FROM Case GROUP BY Status ORDER BY Subject",
            "Ordered field must be grouped or aggregated: Subject",
        ),
        ("SELECT Subject, COUNT(Id) FROM Case GROUP BY Status", "must be grouped or aggregated"),
        (
            "SELECT Id FROM Case WHERE CreatedDate > '2026-01-01'",
            "must be of type dateTime and should not be enclosed in quotes",
        ),
    ],
)
async def test_what_salesforce_refuses_in_aggregates_and_date_filters(
    sf: SalesforceClient, soql: str, says: str
) -> None:
    with pytest.raises(BadRequest, match=says):
        await sf.query(soql)
