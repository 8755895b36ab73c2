"""Values for a query's `:name` bind variables, written as SOQL literals: text quoted and escaped
(nothing in a value can end the string or add a condition), numbers in plain notation, dates and
date-times unquoted as Salesforce requires when the field compared is one (after checking their
form, so that nothing else goes in unquoted), lists for IN."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from app.salesforce.errors import SalesforceError
from app.salesforce.soql import literal
from app.salesforce.soql_syntax import SoqlSyntax, tokenize

BindValue = str | int | float | bool | None
Params = Mapping[str, BindValue | Sequence[BindValue]]

DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,3})?(Z|[+-]\d{2}:\d{2})$")
TEMPORAL = {
    "date": (DATE, "a date, e.g. 2026-01-31"),
    "datetime": (DATETIME, "a date-time with its zone, e.g. 2026-01-31T09:00:00Z"),
}


def check_names(used: Iterable[str], params: Params) -> None:
    """Every bind has a value and every value a bind, else an error naming the first that
    does not."""
    named = set(used)
    if missing := sorted(named - params.keys()):
        raise SalesforceError(f"soql uses :{missing[0]} but params has no {missing[0]!r}.")
    if unused := sorted(params.keys() - named):
        raise SalesforceError(f"params has {unused[0]!r}, which soql does not use as :{unused[0]}.")


def value_literal(name: str, value: Any, kind: str | None = None, field: str = "") -> str:
    """`value` as a literal for a field of type `kind` (None: not known)."""
    if isinstance(value, list | tuple):
        if not value:
            raise SalesforceError(f"params[{name!r}] is an empty list; IN needs one value or more.")
        return "(" + ", ".join(value_literal(name, v, kind, field) for v in value) + ")"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        if isinstance(value, float) and not math.isfinite(value):
            raise SalesforceError(f"params[{name!r}] must be a finite number.")
        return format(Decimal(repr(value)), "f")
    if isinstance(value, str):
        if kind in TEMPORAL:
            form, example = TEMPORAL[kind]
            if not form.match(value):
                raise SalesforceError(
                    f"params[{name!r}] is compared with {field}, a {kind}: give {example} "
                    "(or write a date literal such as LAST_N_DAYS:30 in soql)."
                )
            return value
        return literal(value)
    raise SalesforceError(
        f"params[{name!r}] must be text, a number, true/false, null or a list of them."
    )


def bind_text(soql: str, params: Params) -> str:
    """For a query whose shape is unknown: each `:name` (outside string literals) filled in
    with its value's literal, types of fields unknown."""
    try:
        tokens = [t for t in tokenize(soql) if t.kind == "bind"]
    except SoqlSyntax as exc:
        if params:
            raise SalesforceError(f"soql could not be read to fill in params: {exc}.") from None
        return soql
    check_names((t.text[1:] for t in tokens), params)
    for token in reversed(tokens):
        filled = value_literal(token.text[1:], params[token.text[1:]])
        soql = soql[: token.start] + filled + soql[token.end :]
    return soql
