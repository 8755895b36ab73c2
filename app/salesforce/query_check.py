"""A SOQL query checked against the org's describes before it is sent: every object, field,
relationship path (`Account.Name`, `Contact__r.Account.Owner.Name`), child subquery and semi-join
must exist, else an error naming the name and the closest the org has. Names written without their
package's namespace (`Loyalty_Card__c` for `acme__Loyalty_Card__c`) are completed when exactly one
match exists. Bind variables (`:email`) are filled with literals of the compared field's type.

A name missing from a kept describe is looked up once more, fresh, before it is refused (the org
may have gained it since). Salesforce remains the judge of the rest (types, operators,
functions): a query this module cannot read is sent as written, its binds filled as text.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import structlog

from app.salesforce.binds import Params, bind_text, check_names, value_literal
from app.salesforce.errors import SalesforceError
from app.salesforce.schema import SchemaCache, UnknownField
from app.salesforce.soql import limited, without_strings
from app.salesforce.soql_syntax import Name, Select, SoqlSyntax, parse

log = structlog.get_logger(__name__)

MAX_PARENT_HOPS = 5
"""Salesforce follows at most five child-to-parent relationships in one path."""

Described = dict[str, Any]


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
        end = query.tail if query.tail is not None else len(self.soql)
        if query.order is not None:
            start, after = query.order
            kept = (
                self.soql[query.from_start : start] + self.soql[after if after >= 0 else end : end]
            )
        else:
            kept = self.soql[query.from_start : end]
        return f"SELECT COUNT() {kept.strip()}"

    def bounded(self, limit: int) -> str:
        """The query with a LIMIT of at most `limit`: added where SOQL puts it (before OFFSET
        and FOR VIEW) when it has none; a larger one is an error."""
        query = self.query
        if query is None:
            return limited(self.soql, limit)
        if query.limit is None:
            at = query.limit_at if query.limit_at is not None else len(self.soql)
            return f"{self.soql[:at].rstrip()} LIMIT {limit} {self.soql[at:]}".rstrip()
        if query.limit > limit:
            raise SalesforceError(
                f"soql's LIMIT {query.limit} is over {limit}, the most one call returns: lower "
                "it and page on with the cursor."
            )
        return self.soql


async def check(
    schema: SchemaCache,
    soql: str,
    params: Params | None = None,
    hides: Callable[[str], bool] = lambda name: False,
) -> Checked:
    """`soql` with its names checked and completed and its binds filled; UnknownField naming
    the first wrong name. `hides`: whether a field's values are masked (REDACT_FIELDS); such a
    field may be selected as itself only, so that its values come back under its own name, to be
    masked, and cannot be read through a function, an alias, a filter or an order."""
    given = dict(params or {})
    try:
        query = parse(soql)
    except SoqlSyntax:
        # Not why: the reason quotes the query, whose values may be a customer's data.
        log.info("crm.query.unchecked")
        hidden = [w for w in _WORD.findall(without_strings(soql)) if hides(w)]
        if hidden:
            raise SalesforceError(
                f"soql names {hidden[0]}, which REDACT_FIELDS masks, in a query this server "
                "cannot read to check how it is used: select it plainly, in a simpler query."
            ) from None
        return Checked(bind_text(soql, given), None)
    checker = _Checker(schema, hides)
    await checker.select(query, None)
    binds = [b for q in query.every() for b in q.binds]
    check_names((b.name for b in binds), given)
    edits = list(checker.fixes)
    for b in binds:
        kind, field = checker.types.get(b.subject.start, (None, "")) if b.subject else (None, "")
        edits.append((b.start, b.end, value_literal(b.name, given[b.name], kind, field)))
    for start, end, text in sorted(edits, reverse=True):
        soql = soql[:start] + text + soql[end:]
    try:
        return Checked(soql, parse(soql) if edits else query)
    except SoqlSyntax:
        return Checked(soql, None)


_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
MASKED_USE = (
    "{field} is masked by REDACT_FIELDS: select it as itself (its values come back as "
    "[redacted]), not inside a function, under an alias, or in WHERE, GROUP BY, HAVING or "
    "ORDER BY."
)


def _closest(name: str, options: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, list(options), n=3, cutoff=0.6)
    if not close:
        close = [o for o in options if name.lower() in o.lower() or o.lower() in name.lower()][:3]
    return f" Did you mean {' or '.join(close)}?" if close else ""


def _lookup(name: str, by_name: Mapping[str, Any]) -> tuple[str, Any] | None:
    """The entry for `name` in any letter case, or completed with a package namespace (the one
    key that is `ns__` + name): (its key, value)."""
    lowered = name.lower()
    for key, value in by_name.items():
        if key.lower() == lowered:
            return key, value
    found = [
        k
        for k in by_name
        if k.lower().endswith("__" + lowered) and k.count("__") == name.count("__") + 1
    ]
    return (found[0], by_name[found[0]]) if len(found) == 1 else None


def _fields(described: Described) -> dict[str, Any]:
    return {str(f.get("name")): f for f in described.get("fields", [])}


def _lookups(described: Described) -> dict[str, Any]:
    return {
        str(f["relationshipName"]): f
        for f in described.get("fields", [])
        if f.get("relationshipName")
    }


def _children(described: Described) -> dict[str, Any]:
    return {
        str(c["relationshipName"]): str(c.get("childSObject"))
        for c in described.get("childRelationships", [])
        if c.get("relationshipName")
    }


class _Checker:
    def __init__(self, schema: SchemaCache, hides: Callable[[str], bool]) -> None:
        self.schema = schema
        self.hides = hides
        self.fixes: list[tuple[int, int, str]] = []
        self.types: dict[int, tuple[str | None, str]] = {}
        """Where a field path starts → (its type, Object.Field), for the binds compared with it."""

    def fix(self, name: Name, resolved: str) -> None:
        if resolved.lower() != name.text.lower():
            self.fixes.append((name.start, name.end, resolved))

    async def find(
        self, described: Described, part: Any, name: str
    ) -> tuple[Described, tuple[str, Any] | None]:
        """`name` among `part(described)`; on a miss, once more in a fresh describe."""
        found = _lookup(name, part(described))
        if found is None:
            described = await self.schema.describe(str(described.get("name")), fresh=True)
            found = _lookup(name, part(described))
        return described, found

    async def object(self, name: Name) -> Described:
        objects = {str(o.get("name")): o for o in await self.schema.objects()}
        found = _lookup(name.text, objects)
        if found is None:
            objects = {str(o.get("name")): o for o in await self.schema.objects(fresh=True)}
            found = _lookup(name.text, objects)
        if found is None:
            raise UnknownField(
                f"The org has no object {name.text!r}.{_closest(name.text, list(objects))}",
                code="INVALID_TYPE",
            )
        self.fix(name, found[0])
        return await self.schema.describe(found[0])

    async def select(self, query: Select, parent: Described | None) -> None:
        if parent is None:
            described = await self.object(query.sobject)
        else:
            described = await self.child(parent, query.sobject)
        for path in query.fields:
            if path.text.lower() not in query.aliases:
                await self.path(described, query, path)
        for child in query.children:
            await self.select(child, described)
        for semijoin in query.semijoins:
            await self.select(semijoin, None)

    async def child(self, parent: Described, name: Name) -> Described:
        parent, found = await self.find(parent, _children, name.text)
        if found is None:
            raise UnknownField(
                f"{parent.get('name')} has no child relationship {name.text!r} (a subquery's "
                f"FROM names one, e.g. Cases).{_closest(name.text, list(_children(parent)))}",
                code="INVALID_TYPE",
            )
        self.fix(name, found[0])
        return await self.schema.describe(found[1])

    async def path(self, described: Described, query: Select, path: Name) -> None:
        """Check `path`, a field path of `query`, whose object `described` is. Before a field
        may stand the object itself: its name as written, or its alias (`Contact.FirstName`,
        `c.Email`)."""
        hops = path.text.split(".")
        at = path.start
        name = str(described.get("name"))
        alias = (query.alias or "").lower()
        itself = len(hops) > 1 and hops[0].lower() in {
            query.sobject.text.lower(),
            alias,
            name.lower(),
        }
        if itself and _lookup(hops[0], _lookups(described)) is None:
            if hops[0].lower() != alias:  # the object's name, completed as FROM's was
                self.fix(Name(hops[0], at, at + len(hops[0])), name)
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
            target = await self.relationship(described, Name(hop, at, at + len(hop)), path.text)
            at += len(hop) + 1
            if target is None:  # polymorphic (Who, What, Owner): the object depends on the record
                self.masked(hops[-1], path, query)
                return
            described = await self.schema.describe(target)
        described, found = await self.find(described, _fields, last)
        if found is None:
            raise UnknownField(
                f"{described.get('name')} has no field {last!r}"
                + (f" (in {path.text})" if relationships else "")
                + f".{_closest(last, list(_fields(described)))}",
                code="INVALID_FIELD",
                fields=(last,),
            )
        self.fix(Name(last, at, at + len(last)), found[0])
        self.masked(found[0], path, query)
        self.types[path.start] = (found[1].get("type"), f"{described.get('name')}.{found[0]}")

    def masked(self, field: str, path: Name, query: Select) -> None:
        """A masked field read other than as itself would come back unmasked (under an alias
        or `expr0`) or be guessed by filtering: refused."""
        if self.hides(field) and path.start not in query.plain:
            raise SalesforceError(MASKED_USE.format(field=field), code="REDACTED_FIELD")

    async def relationship(self, described: Described, hop: Name, path: str) -> str | None:
        described, found = await self.find(described, _lookups, hop.text)
        if found is None:
            hint = _closest(hop.text, list(_lookups(described)))
            lookup = _fields(described).get(hop.text)
            if lookup is not None and lookup.get("relationshipName"):
                hint = (
                    f" A lookup is followed by its relationship name: {lookup['relationshipName']}."
                )
            raise UnknownField(
                f"{described.get('name')} has no relationship {hop.text!r} (in {path}).{hint}",
                code="INVALID_FIELD",
                fields=(hop.text,),
            )
        self.fix(hop, found[0])
        targets = list(found[1].get("referenceTo") or [])
        return targets[0] if len(targets) == 1 else None
