"""What the audit keeps of a call's arguments: names and ids, never values, handles or text; every
part bounded and the whole too; SOQL with only its structure (as the CRM's SOQL reader reads it)
and everything else masked, or withheld whole when the reader cannot read it."""

from __future__ import annotations

import json

import pytest

from app.audit_view import (
    MAX_ARGUMENTS,
    TOO_LARGE,
    WITHHELD,
    arguments_view,
    masked_soql,
    queried_object,
)


def test_the_argument_view_keeps_names_and_ids_never_values_handles_or_text() -> None:
    arguments = {
        "sessionId": "proc.secret-handle",
        "widgetKey": "widget-key",
        "content": "aGVsbG8=",
        "conversationId": "6f0e1c9a-0000-4000-8000-000000000001",
        "text": "my card number is 4111 1111 1111 1111",
        "fileName": "passport-ana-lima.pdf",
        "mimeType": "application/pdf",
        "objectName": "Contact",
        "recordId": "003000000000001AAA",
        "values": {"LastName": "Lima", "SSN__c": "078-05-1120"},
        "routingAttributes": {"_email": "ana@example.com"},
        "params": {"email": "ana@example.com"},
        "fields": ["Id", "SSN__c"],
        "limit": 20,
        "email": "ana@example.com",
        "cursor": None,
        "password": "made up by the caller",
    }

    view = arguments_view(arguments)

    assert view == {
        "conversationId": "6f0e1c9a-0000-4000-8000-000000000001",
        "text": WITHHELD,
        "fileName": WITHHELD,
        "mimeType": "application/pdf",
        "objectName": "Contact",
        "recordId": "003000000000001AAA",
        "values": {"LastName": WITHHELD, "SSN__c": WITHHELD},
        "routingAttributes": {"_email": WITHHELD},
        "params": {"email": WITHHELD},
        "fields": ["Id", "SSN__c"],
        "limit": 20,
        "email": WITHHELD,
    }


def test_kept_arguments_are_bounded_and_a_map_where_a_name_belongs_is_withheld() -> None:
    view = arguments_view(
        {"objectName": "x" * 1000, "fields": ["F"] * 1000, "objects": {"Contact": "Ana Lima"}}
    )

    assert view["objectName"] == "x" * 200
    assert len(view["fields"]) == 100
    assert view["objects"] == WITHHELD


def test_a_kept_list_keeps_plain_values_only_so_nesting_cannot_grow_a_record() -> None:
    nested = [["Ana Lima SSN 078-05-1120"] * 100] * 100  # 10,000 strings, were it walked

    view = arguments_view(
        {"fields": ["Id", 7, True, None, nested, {"SSN__c": "078-05-1120"}], "objects": nested}
    )

    assert view == {
        "fields": ["Id", 7, True, None, WITHHELD, WITHHELD],
        "objects": [WITHHELD] * 100,
    }


def test_the_whole_view_is_bounded_an_argument_past_the_bound_is_too_large() -> None:
    names = {f"Field{n:03}__c_{'x' * 180}": "078-05-1120" for n in range(100)}
    view = arguments_view(
        {
            "objectName": "Contact",
            "fields": [f"Field{n:03}__c_{'x' * 180}" for n in range(100)],  # ~20,000 characters
            "values": names,
            "limit": 5,
        }
    )

    assert view["objectName"] == "Contact" and view["limit"] == 5
    assert view["fields"] == view["values"] == TOO_LARGE
    assert len(json.dumps(view)) <= MAX_ARGUMENTS


WHERE = "SELECT Id FROM Contact WHERE "


@pytest.mark.parametrize(
    ("soql", "kept"),
    [
        (
            WHERE + "Email = 'ana@example.com' AND Name LIKE '%Lima%'",
            WHERE + "Email = '…' AND Name LIKE '…'",
        ),
        (WHERE + r"LastName = 'O\'Neil'", WHERE + "LastName = '…'"),
        (
            "SELECT Name2__c FROM Account WHERE AnnualRevenue > 5000000 AND Rating__c = -1.5",
            "SELECT Name2__c FROM Account WHERE AnnualRevenue > … AND Rating__c = …",
        ),
        (
            "SELECT Id FROM Event WHERE StartDateTime >= 2026-12-04T09:00:00+01:00 "
            "AND CreatedDate = LAST_N_DAYS:30 AND ActivityDate = 2026-12-04 LIMIT 5",
            "SELECT Id FROM Event WHERE StartDateTime >= … "
            "AND CreatedDate = … AND ActivityDate = … LIMIT …",
        ),
        (WHERE + "Email = :email", WHERE + "Email = :email"),
        # A word where a value goes is a value: a name, a currency amount, a field's name.
        (WHERE + "Name = Ana_Lima", WHERE + "Name = …"),
        (
            "SELECT Id FROM Opportunity WHERE Amount > USD5000 AND Name = Email",
            "SELECT Id FROM Opportunity WHERE Amount > … AND Name = …",
        ),
        # Functions, aliases, relationship paths, subqueries and semi-joins stay.
        (
            "SELECT COUNT(Id) total, MAX(Amount) FROM Opportunity o "
            "WHERE o.StageName IN ('Won', 'Lost') GROUP BY o.Account.Name",
            "SELECT COUNT(Id) total, MAX(Amount) FROM Opportunity o "
            "WHERE o.StageName IN ('…', '…') GROUP BY o.Account.Name",
        ),
        (
            "SELECT Id, (SELECT Subject FROM Cases WHERE Subject LIKE 'Ana%') FROM Contact "
            "WHERE Id IN (SELECT WhoId FROM Event WHERE Location = Ana_Lima) AND Email != null",
            "SELECT Id, (SELECT Subject FROM Cases WHERE Subject LIKE '…') FROM Contact "
            "WHERE Id IN (SELECT WhoId FROM Event WHERE Location = …) AND Email != null",
        ),
        ("SELECT FIELDS(ALL) FROM Account LIMIT 200", "SELECT FIELDS(ALL) FROM Account LIMIT …"),
    ],
)
def test_soql_keeps_its_structure_and_masks_every_value(soql: str, kept: str) -> None:
    assert masked_soql(soql) == kept
    assert arguments_view({"soql": soql}) == {"soql": kept}


NESTED = "SELECT Id, " + "(SELECT Id, " * 1100 + "Id FROM X" + ") FROM X" * 1100 + " FROM Contact"


@pytest.mark.parametrize(
    "soql",
    [
        WHERE + "SSN__c = '078-05-1120",  # never closed
        WHERE + "SSN__c = 'x\\",  # ends in a backslash
        WHERE + 'Name = "Ana Lima"',
        WHERE + "Name = \u2018Ana Lima\u2019",
        "FIND {Ana Lima} IN ALL FIELDS RETURNING Contact(Id)",
        "SELECT Id FROM Account WHERE Rating__c > .5",
        WHERE + "Name = 'Ana' Lima",
        NESTED,  # subqueries nested deeper than the reader's stack
    ],
)
def test_a_query_the_reader_cannot_read_is_withheld_whole(soql: str) -> None:
    assert masked_soql(soql) == WITHHELD


def test_a_long_query_is_cut_after_its_literals_are_masked() -> None:
    soql = "SELECT Id FROM Contact WHERE " + " OR ".join(["Email = 'ana@example.com'"] * 500)

    kept = masked_soql(soql)

    assert len(kept) == 2000 and kept.endswith("…")
    assert "ana@" not in kept


@pytest.mark.parametrize(
    ("soql", "sobject"),
    [
        ("SELECT Id, (SELECT Id FROM Cases) FROM Contact WHERE Name = 'x'", "Contact"),
        (
            WHERE.replace("Contact", "Lead")
            + "Name = ' FROM Case' AND Id IN (SELECT WhoId FROM Event)",
            "Lead",
        ),
        ("select id from support_visit__c", "support_visit__c"),
        ("SELECT COUNT() Contact", None),
        ("((((" * 5000 + "SELECT", None),
        ('SELECT Id FROM Contact WHERE Name = "x" AND Id IN (SELECT Id FROM Case)', None),
        (NESTED, None),
    ],
)
def test_a_query_touches_the_object_its_outer_from_names(soql: str, sobject: str | None) -> None:
    assert queried_object(soql) == sobject
