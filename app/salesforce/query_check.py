"""A SOQL query checked against the org's describes before it is sent: every object, field,
relationship path (`Account.Name`, `Contact__r.Account.Owner.Name`), child subquery and semi-join
must exist, else an error naming the name and the closest the org has. Names written without their
package's namespace (`Loyalty_Card__c` for `acme__Loyalty_Card__c`) are completed when exactly one
match exists. Values come in as bind variables (`:email`) and go out as escaped literals.

Salesforce remains the judge of the rest (types, operators, functions): a query this module cannot
read is sent as written.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import structlog

from app.salesforce.errors import SalesforceError
from app.salesforce.schema import SchemaCache, UnknownField
from app.salesforce.soql import literal
from app.salesforce.soql_syntax import Name, Select, SoqlSyntax, parse, tokenize

log = structlog.get_logger(__name__)

MAX_PARENT_HOPS = 5
"""Salesforce follows at most five child-to-parent relationships in one path."""

BindValue = str | int | float | bool | None
Params = Mapping[str, BindValue | Sequence[BindValue]]


@dataclass(frozen=True)
class Checked:
    soql: str
    """The query as it will be sent: binds filled in, namespaces completed."""
    query: Select | None
    """Its shape; None when this module could not read it (sent unchecked)."""

    def count_query(self) -> str | None:
        """`SELECT COUNT() FROM …` with the same filter, for a query that reads rows with no
        LIMIT or OFFSET of its own; None for the others (aggregates, bounded, unread)."""
        query = self.query
        if query is None or query.aggregate or query.limit is not None or query.offset:
            return None
        rest = self.soql[query.from_start :]
        if query.order is not None:
            start, end = (at - query.from_start for at in query.order)
            rest = rest[:start] + (rest[end:] if end >= 0 else "")
        return f"SELECT COUNT() {rest.strip()}"


def bind(soql: str, params: Params | None) -> str:
    """`soql` with each `:name` replaced by `params[name]` as a literal: text quoted and escaped,
    so nothing in a value can end the string or add a condition."""
    given = dict(params or {})
    try:
        tokens = [t for t in tokenize(soql) if t.kind == "bind"]
    except SoqlSyntax as exc:
        if given:
            raise SalesforceError(f"soql could not be read to fill in params: {exc}.") from None
        return soql
    named = {t.text[1:] for t in tokens}
    if missing := sorted(named - given.keys()):
        raise SalesforceError(f"soql uses :{missing[0]} but params has no {missing[0]!r}.")
    if unused := sorted(given.keys() - named):
        raise SalesforceError(f"params has {unused[0]!r}, which soql does not use as :{unused[0]}.")
    out = soql
    for token in reversed(tokens):
        out = (
            out[: token.start] + _literal(token.text[1:], given[token.text[1:]]) + out[token.end :]
        )
    return out


def _literal(name: str, value: Any) -> str:
    if isinstance(value, list | tuple):
        if not value:
            raise SalesforceError(f"params[{name!r}] is an empty list; IN needs one value or more.")
        return "(" + ", ".join(_literal(name, v) for v in value) + ")"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        if isinstance(value, float) and not math.isfinite(value):
            raise SalesforceError(f"params[{name!r}] must be a finite number.")
        return repr(value)
    if isinstance(value, str):
        return literal(value)
    raise SalesforceError(
        f"params[{name!r}] must be text, a number, true/false, null or a list of them."
    )


async def check(schema: SchemaCache, soql: str) -> Checked:
    """`soql` with its names checked and completed; UnknownField naming the first wrong one."""
    try:
        query = parse(soql)
    except SoqlSyntax as exc:
        log.info("crm.query.unchecked", reason=str(exc)[:80])
        return Checked(soql, None)
    fixes: list[tuple[Name, str]] = []
    await _Checker(schema, fixes).select(query, None)
    for name, resolved in sorted(fixes, key=lambda f: f[0].start, reverse=True):
        soql = soql[: name.start] + resolved + soql[name.end :]
    if fixes:
        query = parse(soql)
    return Checked(soql, query)


def _closest(name: str, options: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, list(options), n=3, cutoff=0.6)
    if not close:
        close = [o for o in options if name.lower() in o.lower() or o.lower() in name.lower()][:3]
    return f" Did you mean {' or '.join(close)}?" if close else ""


def _namespaced(name: str, options: Sequence[str]) -> str | None:
    """The one option that is `name` with a package namespace in front (`acme__` + name)."""
    lowered = name.lower()
    found = [
        o
        for o in options
        if o.lower().endswith("__" + lowered) and o.count("__") == name.count("__") + 1
    ]
    return found[0] if len(found) == 1 else None


def _lookup(name: str, by_name: Mapping[str, Any]) -> tuple[str, Any] | None:
    """The entry for `name` (any case, or completed with its namespace): (its name, value)."""
    for key, value in by_name.items():
        if key.lower() == name.lower():
            return key, value
    resolved = _namespaced(name, list(by_name))
    return (resolved, by_name[resolved]) if resolved else None


class _Checker:
    def __init__(self, schema: SchemaCache, fixes: list[tuple[Name, str]]) -> None:
        self.schema = schema
        self.fixes = fixes

    def fix(self, name: Name, resolved: str) -> None:
        if resolved.lower() != name.text.lower():
            self.fixes.append((name, resolved))

    async def object(self, name: Name) -> dict[str, Any]:
        objects = {str(o.get("name")): o for o in await self.schema.objects()}
        found = _lookup(name.text, objects)
        if found is None:
            raise UnknownField(
                f"The org has no object {name.text!r}.{_closest(name.text, list(objects))}",
                code="INVALID_TYPE",
            )
        self.fix(name, found[0])
        return await self.schema.describe(found[0])

    async def select(self, query: Select, parent: dict[str, Any] | None) -> None:
        if parent is None:
            described = await self.object(query.sobject)
        else:
            described = await self.child(parent, query.sobject)
        for path in query.fields:
            if path.text.lower() not in query.aliases:
                await self.path(described, path, query.alias)
        for child in query.children:
            await self.select(child, described)
        for semijoin in query.semijoins:
            await self.select(semijoin, None)

    async def child(self, parent: dict[str, Any], name: Name) -> dict[str, Any]:
        children = {
            str(c["relationshipName"]): str(c.get("childSObject"))
            for c in parent.get("childRelationships", [])
            if c.get("relationshipName")
        }
        found = _lookup(name.text, children)
        if found is None:
            raise UnknownField(
                f"{parent.get('name')} has no child relationship {name.text!r} (a subquery's "
                f"FROM names one, e.g. Cases).{_closest(name.text, list(children))}",
                code="INVALID_TYPE",
            )
        self.fix(name, found[0])
        return await self.schema.describe(found[1])

    async def path(self, described: dict[str, Any], path: Name, alias: str | None) -> None:
        hops = path.text.split(".")
        at = path.start
        if alias and len(hops) > 1 and hops[0].lower() == alias.lower():
            at += len(hops[0]) + 1
            hops = hops[1:]
        if len(hops) - 1 > MAX_PARENT_HOPS:
            raise UnknownField(
                f"{path.text!r} follows {len(hops) - 1} relationships; Salesforce follows at "
                f"most {MAX_PARENT_HOPS}.",
                code="INVALID_FIELD",
            )
        *relationships, last = hops
        for hop in relationships:
            here = Name(hop, at, at + len(hop))
            at += len(hop) + 1
            target = self.relationship(described, here, path.text)
            if target is None:
                return  # polymorphic (Who, What, Owner): which object depends on the record
            described = await self.schema.describe(target)
        fields = {str(f.get("name")): f for f in described.get("fields", [])}
        found = _lookup(last, fields)
        if found is None:
            raise UnknownField(
                f"{described.get('name')} has no field {last!r}"
                + (f" (in {path.text})" if relationships else "")
                + f".{_closest(last, list(fields))}",
                code="INVALID_FIELD",
                fields=(last,),
            )
        self.fix(Name(last, at, at + len(last)), found[0])

    def relationship(self, described: dict[str, Any], hop: Name, path: str) -> str | None:
        lookups = {
            str(f["relationshipName"]): f
            for f in described.get("fields", [])
            if f.get("relationshipName")
        }
        found = _lookup(hop.text, lookups)
        if found is None:
            hint = _closest(hop.text, list(lookups))
            field = next(
                (f for f in described.get("fields", []) if f.get("name") == hop.text), None
            )
            if field is not None and field.get("relationshipName"):
                hint = (
                    f" A lookup is followed by its relationship name: {field['relationshipName']}."
                )
            raise UnknownField(
                f"{described.get('name')} has no relationship {hop.text!r} (in {path}).{hint}",
                code="INVALID_FIELD",
                fields=(hop.text,),
            )
        self.fix(hop, found[0])
        targets = list(found[1].get("referenceTo") or [])
        return targets[0] if len(targets) == 1 else None
