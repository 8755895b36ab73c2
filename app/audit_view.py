"""What the audit trail keeps of a call's arguments (`arguments_view`): names, ids, flags and
counts as given; SOQL with its literals masked (`masked_soql`); of maps, the names; of text and
values, only that they were given; of handles, keys and file bytes, nothing. Every part is
bounded, and so is the whole (`MAX_ARGUMENTS`), so that a record stays small whatever a request
holds.

SOQL is read with the CRM toolset's own reader (`app.salesforce.soql_syntax`): what it reads as
the query's structure stays, every other token is masked, and a query it cannot read is withheld
whole, since no rule can tell its values from its names.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from app.salesforce.soql_syntax import FIELD_SETS, KEYWORDS, SoqlSyntax, Token, parse, tokenize

WITHHELD = "[redacted]"
"""An argument given whose value the audit does not keep (the CRM results' mark)."""
TOO_LARGE = "[too large]"
"""An argument whose view would take the record past `MAX_ARGUMENTS`: only its name is kept."""

# The one rule for arguments: names are kept, values people wrote or records hold are not.
KEPT = frozenset(
    {
        # Which object and records: names and ids.
        *("objectName", "objects", "fields", "recordId", "contactId", "eventId", "accountId"),
        *("whoId", "whatId", "conversationId", "messageId", "choiceId", "readEntryIds"),
        # How the call was made: flags, counts, formats, the caller's own idempotency key.
        *("limit", "waitSeconds", "includeTyping", "typing", "outsideBusinessHours", "format"),
        *("mimeType", "clientMessageId"),
    }
)
"""Arguments kept as given (strings cut to `MAX_TEXT`, lists to `MAX_ITEMS` of plain values)."""
NAMES_ONLY = frozenset({"values", "routingAttributes", "params"})
"""Field name → value maps (a record's values, pre-chat values, SOQL binds): the names are
kept, every value is WITHHELD."""
SOQL = "soql"
"""Kept with its literals masked (`masked_soql`)."""
WITHHELD_ARGUMENTS = frozenset(
    {
        # What people wrote or a record holds: messages, files, context for the agent, search
        # text, a contact's or an event's values, the case's text.
        *("text", "caption", "fileName", "summary", "customerName", "customerEmail"),
        *("customerDetails", "agentName", "search", "email", "phone", "name", "firstName"),
        *("lastName", "subject", "transcript", "status", "start", "end", "startsAfter"),
        *("startsBefore", "cursor"),
    }
)
"""Arguments recorded as given, their value WITHHELD."""
NEVER = frozenset({"sessionId", "widgetKey", "content"})
"""Handles, keys and file bytes: not even their presence is recorded. Any argument in none of
these sets is left out too."""
RECORD_IDS = ("recordId", "contactId", "eventId", "accountId", "whoId", "whatId")
"""Arguments naming a record the call touches."""

MAX_TEXT = 200
MAX_ITEMS = 100
MAX_SOQL = 2000
MAX_ARGUMENTS = 10_000
"""The most characters (as JSON) of one record's arguments; past it, arguments are TOO_LARGE."""

_MASKED = {"string": "'…'", "number": "…", "datetime": "…"}


def masked_soql(soql: str) -> str:
    """The query with only its structure kept: keywords, operators, field paths, object names
    and aliases, function names and `:binds`; strings masked as `'…'`, every other token (a
    number, a date, a word where a value goes) as `…`. WITHHELD when the reader cannot read it
    (double or curly quotes, SOSL, `.5`): then nothing tells a name from a value."""
    try:
        query = parse(soql)
        tokens = tokenize(soql)
    except (SoqlSyntax, RecursionError):  # RecursionError: subqueries nested past the stack
        return WITHHELD
    every = query.every()
    structure = {name.start for q in every for name in q.fields}
    structure |= {q.sobject.start for q in every}
    aliases = {a.lower() for q in every for a in (*q.aliases, q.alias or "") if a}
    shown: list[str] = []
    at = 0
    for i, token in enumerate(tokens):
        kept = token.kind in ("op", "bind") or (
            token.kind == "word"
            and (
                token.start in structure
                or token.upper in KEYWORDS
                or token.text.lower() in aliases
                or _called(tokens, i)
                or _field_set(tokens, i)
            )
        )
        shown += [soql[at : token.start], token.text if kept else _MASKED.get(token.kind, "…")]
        at = token.end
    masked = "".join(shown) + soql[at:]
    return masked if len(masked) <= MAX_SOQL else masked[: MAX_SOQL - 1] + "…"


def _called(tokens: list[Token], i: int) -> bool:
    """A function's name: a word before `(`."""
    return i + 1 < len(tokens) and tokens[i + 1].text == "("


def _field_set(tokens: list[Token], i: int) -> bool:
    """`ALL` in `FIELDS(ALL)`: a set of fields, not a value."""
    return (
        tokens[i].upper in FIELD_SETS
        and i >= 2
        and tokens[i - 1].text == "("
        and tokens[i - 2].upper == "FIELDS"
    )


def queried_object(soql: str) -> str | None:
    """The object a query's outer FROM names (not a subquery's); None when unreadable."""
    try:
        return parse(soql).sobject.text
    except (SoqlSyntax, RecursionError):
        return None


def _plain(value: Any) -> Any:
    if isinstance(value, str):
        return value[:MAX_TEXT]
    if value is None or isinstance(value, bool | int | float):
        return value
    return WITHHELD  # a map or a list where a name or a number belongs: nothing of it is kept


def _kept(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value[:MAX_ITEMS]]
    return _plain(value)


def _view(name: str, value: Any) -> Any:
    """One argument's view, or None to leave it out."""
    if name in KEPT:
        return _kept(value)
    if name in NAMES_ONLY and isinstance(value, dict):
        return {str(key)[:MAX_TEXT]: WITHHELD for key in list(value)[:MAX_ITEMS]}
    if name == SOQL and isinstance(value, str):
        return masked_soql(value)
    if name in WITHHELD_ARGUMENTS or name in NAMES_ONLY or name == SOQL:
        return WITHHELD
    return None


def arguments_view(arguments: Mapping[str, Any]) -> dict[str, Any]:
    """What the audit keeps of a call's arguments (see the module), at most `MAX_ARGUMENTS`
    characters: an argument that would go past it is kept as TOO_LARGE."""
    view: dict[str, Any] = {}
    size = 0
    for name, value in arguments.items():
        shown = _view(name, value) if value is not None else None
        if shown is None:
            continue
        cost = len(name) + len(json.dumps(shown))
        if size + cost > MAX_ARGUMENTS:
            shown, cost = TOO_LARGE, len(name) + len(TOO_LARGE)
        view[name] = shown
        size += cost
    return view


def touched(arguments: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """The objects and record ids a call's arguments name: `objectName`, `objects`, a query's
    outer FROM; the record id arguments."""
    objects = arguments.get("objectName"), *_listed(arguments.get("objects"))
    soql = arguments.get(SOQL)
    found = [*objects, queried_object(soql) if isinstance(soql, str) else None]
    ids = [arguments.get(name) for name in RECORD_IDS]
    return [o for o in found if isinstance(o, str)], [i for i in ids if isinstance(i, str)]


def _listed(value: Any) -> list[Any]:
    return list(value[:MAX_ITEMS]) if isinstance(value, list) else []
