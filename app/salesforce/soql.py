"""Writing SOQL safely: user input as quoted literals (nothing in a value can end the string or
add a clause), LIKE patterns with their wildcards escaped, and the read-only query tool's checks
(a SELECT, a LIMIT of at most the cap)."""

from __future__ import annotations

import re

from app.salesforce.errors import SalesforceError

QUERY_CAP = 2000
"""The most records salesforce_query returns per call (Salesforce's largest page)."""


def literal(value: str) -> str:
    """`value` as a SOQL string literal."""
    escaped = value.replace("\\", "\\\\").replace("'", "\\'")
    escaped = escaped.replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")
    return f"'{escaped}'"


def contains(value: str) -> str:
    """A LIKE pattern matching text that contains `value` (its own % and _ taken literally)."""
    escaped = value.replace("\\", "\\\\").replace("'", "\\'")
    escaped = escaped.replace("%", "\\%").replace("_", "\\_")
    escaped = escaped.replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")
    return f"'%{escaped}%'"


_STRINGS = re.compile(r"'(?:[^'\\]|\\.)*'")
_SELECT = re.compile(r"^\s*SELECT\s", re.IGNORECASE)
_TAIL_LIMIT = re.compile(r"\bLIMIT\s+(\d+)(\s+OFFSET\s+\d+)?\s*$", re.IGNORECASE)


def without_strings(soql: str) -> str:
    """The query with every string literal blanked (`''`): what is left is names and syntax."""
    return _STRINGS.sub("''", soql)


def _outer(soql: str) -> str:
    """The query with string literals blanked and subqueries removed: its top level."""
    text = without_strings(soql)
    while True:
        shorter = re.sub(r"\([^()]*\)", "", text)
        if shorter == text:
            return text
        text = shorter


def one_select(soql: str) -> re.Match[str] | None:
    """Checks that `soql` is one read-only SELECT whose LIMIT, if any, comes last (otherwise an
    error saying what to change); returns that LIMIT's match (group 1: the number), or None."""
    if not _SELECT.match(soql):
        raise SalesforceError("soql must be a SELECT query: this tool only reads.")
    outer = _outer(soql)
    if ";" in outer:
        raise SalesforceError("soql must be one query, without ';'.")
    found = _TAIL_LIMIT.search(outer)
    if found is None and re.search(r"\bLIMIT\b", outer, re.IGNORECASE):
        raise SalesforceError("soql's LIMIT must come last (before OFFSET only).")
    return found


def limited(soql: str, limit: int) -> str:
    """`soql` read-only and bounded: a SELECT, with a LIMIT of at most `limit` (added when it
    has none); otherwise an error saying what to change."""
    found = one_select(soql)
    if found is None:
        return f"{soql.rstrip()} LIMIT {limit}"
    if int(found.group(1)) > limit:
        raise SalesforceError(
            f"soql's LIMIT {found.group(1)} is over {limit}, the most one call returns: lower it "
            "and page on with the cursor."
        )
    return soql


SOSL_RESERVED = frozenset("?&|!{}[]()^~*:\\\"'+-")


def sosl_term(text: str) -> str:
    """`text` as a SOSL search term: its reserved characters escaped, so it is searched for as
    written and cannot end the braces."""
    return "".join("\\" + c if c in SOSL_RESERVED else c for c in text)
