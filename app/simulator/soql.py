"""The SOQL the simulator's REST surface answers: enough of the language for the CRM tools.

SELECT fields, a parent's fields through its relationship (`Account.Name`, `Contact__r.Email`),
child subqueries (`(SELECT Subject FROM Cases)`), `COUNT()`, aggregates (COUNT, COUNT_DISTINCT,
SUM, AVG, MIN, MAX of a field, with an alias or as expr0, expr1, …) with GROUP BY; FROM one
object; WHERE with AND, OR, NOT, parentheses, = != <> < <= > >=, LIKE (% and _), IN and NOT IN,
strings (with \\' escapes), numbers, true, false, null and date-times; ORDER BY fields (or,
grouped, an aggregate of the SELECT) ASC|DESC NULLS FIRST|LAST; LIMIT; OFFSET.
Anything else is a MALFORMED_QUERY naming where the parse stopped, as Salesforce's is.

No library: `python-soql-parser` (the one on PyPI) pins pyparsing < 3, has no subqueries and asks
for maintainers; this subset is one tokenizer and a recursive descent.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

Json = dict[str, Any]

TOKEN = re.compile(
    r"""\s*(?:
        (?P<string>'(?:[^'\\]|\\.)*')
      | (?P<number>-?\d+(?:\.\d+)?(?![\w-]))
      | (?P<datetime>\d{4}-\d{2}-\d{2}(?:T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2}))?)
      | (?P<op><=|>=|!=|<>|=|<|>|\(|\)|,)
      | (?P<word>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
    )""",
    re.VERBOSE,
)
KEYWORDS = frozenset(
    {
        *("SELECT", "FROM", "WHERE", "AND", "OR", "NOT", "LIKE", "IN", "ORDER", "BY"),
        *("ASC", "DESC", "NULLS", "FIRST", "LAST", "LIMIT", "OFFSET", "COUNT", "GROUP"),
        *("TRUE", "FALSE", "NULL"),
    }
)


AGGREGATES = frozenset({"COUNT", "COUNT_DISTINCT", "SUM", "AVG", "MIN", "MAX"})
NUMBERS = frozenset({"double", "int", "currency", "percent", "long"})


class SoqlError(ValueError):
    """A query Salesforce would refuse: `code` (MALFORMED_QUERY, INVALID_FIELD, INVALID_TYPE)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class Aggregate:
    function: str
    path: str
    label: str
    """The column's name in the result: the alias, else expr0, expr1, … in SELECT order."""
    read: Callable[[Json], Any] = lambda record: None


@dataclass
class Query:
    sobject: str
    """The FROM name: an object, or for a child subquery the relationship's name."""
    target: str = ""
    """The object the records are of (for a subquery, the one the relationship leads to)."""
    fields: list[str] = field(default_factory=list)
    children: list[Query] = field(default_factory=list)
    count: bool = False
    aggregates: list[Aggregate] = field(default_factory=list)
    group_by: list[tuple[str, Callable[[Json], Any]]] = field(default_factory=list)
    group_names: dict[str, str] = field(default_factory=dict)
    """A grouped path (lower case) → the API name its column has in the results."""
    where: Callable[[Json], bool] | None = None
    order: list[tuple[str, bool, bool]] = field(default_factory=list)  # field, desc, nulls first
    limit: int | None = None
    offset: int = 0


@dataclass
class Token:
    kind: str
    text: str
    at: int

    @property
    def upper(self) -> str:
        return self.text.upper() if self.kind == "word" else ""


def tokenize(text: str) -> list[Token]:
    tokens, at = [], 0
    while at < len(text):
        if text[at:].strip() == "":
            break
        match = TOKEN.match(text, at)
        if match is None or match.end() == at:
            shown = text[at:].strip()[:20]
            raise SoqlError("MALFORMED_QUERY", f"unexpected token: '{shown}'")
        kind = match.lastgroup or ""
        tokens.append(Token(kind, match.group(kind), match.start(kind)))
        at = match.end()
    return tokens


def _like(quoted: str) -> re.Pattern[str]:
    """A LIKE pattern from its quoted literal: % and _ are wildcards, \\% and \\_ themselves."""
    parts, chars, n = [], quoted[1:-1], 0
    while n < len(chars):
        c = chars[n]
        if c == "\\" and n + 1 < len(chars):
            n += 1
            parts.append(re.escape(ESCAPES.get(chars[n], chars[n])))
        else:
            parts.append("." if c == "_" else ".*" if c == "%" else re.escape(c))
        n += 1
    return re.compile("^" + "".join(parts) + "$", re.IGNORECASE | re.DOTALL)


ESCAPES = {"n": "\n", "t": "\t", "r": "\r"}


def _unquote(text: str) -> str:
    return re.sub(r"\\(.)", lambda m: ESCAPES.get(m.group(1), m.group(1)), text[1:-1])


ISO_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}(T|$)")


def _comparable(value: Any) -> Any:
    """Date-times compare as instants (records keep ISO strings in various zones)."""
    if isinstance(value, str) and ISO_TIME.match(value):
        with contextlib.suppress(ValueError):
            parsed = datetime.fromisoformat(value.replace("+0000", "+00:00"))
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return value


def _compare(op: str, left: Any, right: Any) -> bool:
    left, right = _comparable(left), _comparable(right)
    if op in ("=", "!=", "<>"):
        equal = (
            left.lower() == right.lower()
            if isinstance(left, str) and isinstance(right, str)
            else left == right
        )
        return equal if op == "=" else not equal
    if left is None or right is None:
        return False
    try:
        return bool(
            {"<": left < right, "<=": left <= right, ">": left > right, ">=": left >= right}[op]
        )
    except TypeError:
        return False


class Parser:
    def __init__(
        self,
        text: str,
        resolve: Callable[[str, str], Callable[[Json], Any]],
        child: Callable[[str, str], str],
        field_of: Callable[[str, str], tuple[str, str]] = lambda o, p: (p.split(".")[-1], ""),
    ) -> None:
        """`resolve(object, path)` returns a getter of `path` on a record of `object`, or raises
        SoqlError INVALID_FIELD; `child(object, relationship)` names the object a child
        relationship of `object` leads to, or raises SoqlError INVALID_TYPE; `field_of(object,
        path)` gives the API name and type of the field `path` ends at."""
        self.tokens = tokenize(text)
        self.pos = 0
        self.resolve = resolve
        self.child = child
        self.field_of = field_of
        self.qualifiers: dict[str, set[str]] = {}
        """An object (lower case) → what may stand before its own fields: its name, its alias
        (`SELECT c.Name FROM Contact c`)."""

    def peek(self, offset: int = 0) -> Token | None:
        index = self.pos + offset
        return self.tokens[index] if index < len(self.tokens) else None

    def fail(self, expected: str) -> SoqlError:
        token = self.peek()
        found = f"'{token.text}'" if token else "the end of the query"
        return SoqlError("MALFORMED_QUERY", f"unexpected token: {found} (expected {expected})")

    def take_word(self, *words: str) -> Token | None:
        token = self.peek()
        if token is not None and token.upper in words:
            self.pos += 1
            return token
        return None

    def expect_word(self, word: str) -> None:
        if self.take_word(word) is None:
            raise self.fail(word)

    def take_op(self, op: str) -> bool:
        token = self.peek()
        if token is not None and token.kind == "op" and token.text == op:
            self.pos += 1
            return True
        return False

    def name(self, what: str) -> str:
        token = self.peek()
        if token is None or token.kind != "word" or token.upper in KEYWORDS - {"FIRST", "LAST"}:
            raise self.fail(what)
        self.pos += 1
        return token.text

    def parse(self) -> Query:
        query = self.select()
        if self.peek() is not None:
            raise self.fail("the end of the query")
        return query

    def select(self, parent: str | None = None) -> Query:
        """A SELECT; `parent`: the object whose child relationship a subquery's FROM names."""
        self.expect_word("SELECT")
        fields: list[str] = []
        subqueries: list[int] = []
        aggregates: list[Aggregate] = []
        count = False
        while True:
            if self.aggregate_ahead():
                function = self.take_function()
                if function == "COUNT" and self.take_op(")"):
                    count = True
                else:
                    aggregates.append(self.aggregate(function))
            elif self.take_op("("):
                if parent is not None:
                    raise self.fail("a field")  # subqueries do not nest
                # Its FROM names a relationship of this query's object, not known yet: read on.
                subqueries.append(self.pos)
                self.skip_group()
            else:
                fields.append(self.name("a field"))
            if not self.take_op(","):
                break
        self.expect_word("FROM")
        name = self.name("an object")
        target = self.child(parent, name) if parent else name
        self.qualifiers[target.lower()] = {name.lower(), target.lower()}
        token = self.peek()
        if token is not None and token.kind == "word" and token.upper not in KEYWORDS:
            self.qualifiers[target.lower()].add(self.name("an alias").lower())
        query = Query(name, target, count=count, aggregates=aggregates)
        for path in fields:
            path = self.own(target, path)
            self.resolve(target, path)  # checks it exists
            query.fields.append(path)
        unnamed = 0
        for aggregate in aggregates:
            aggregate.path = self.own(target, aggregate.path)
            aggregate.read = self.resolve(target, aggregate.path)
            kind = self.field_of(target, aggregate.path)[1]
            if aggregate.function in ("SUM", "AVG") and kind not in NUMBERS:
                raise SoqlError(
                    "MALFORMED_QUERY",
                    f"field {aggregate.path} does not support aggregate operator "
                    f"{aggregate.function}",
                )
            if not aggregate.label:
                aggregate.label, unnamed = f"expr{unnamed}", unnamed + 1
        after_from = self.pos
        for start in subqueries:
            self.pos = start
            query.children.append(self.select(target))
            if not self.take_op(")"):
                raise self.fail(")")
        self.pos = after_from
        if self.take_word("WHERE"):
            query.where = self.condition(target)
        if self.take_word("GROUP"):
            self.expect_word("BY")
            while True:
                path = self.own(target, self.name("a field"))
                query.group_by.append((path, self.resolve(target, path)))
                query.group_names[path.lower()] = self.field_of(target, path)[0]
                if not self.take_op(","):
                    break
        if query.aggregates or query.group_by:
            grouped = {p.lower() for p, _ in query.group_by}
            for path in query.fields:
                if path.lower() not in grouped:
                    raise SoqlError(
                        "MALFORMED_QUERY", f"Field must be grouped or aggregated: {path}"
                    )
        if self.take_word("ORDER"):
            self.expect_word("BY")
            while True:
                if query.group_by and self.aggregate_ahead():
                    path = self.ordered_aggregate(query)
                else:
                    path = self.own(target, self.name("a field"))
                    self.resolve(target, path)
                    aggregating = bool(query.aggregates or query.group_by)
                    if aggregating and path.lower() not in query.group_names:
                        raise SoqlError(
                            "MALFORMED_QUERY",
                            f"Ordered field must be grouped or aggregated: {path}",
                        )
                desc = self.take_word("DESC") is not None
                if not desc:
                    self.take_word("ASC")
                nulls_first = not desc  # Salesforce's default: nulls first ascending
                if self.take_word("NULLS"):
                    which = self.take_word("FIRST", "LAST")
                    if which is None:
                        raise self.fail("FIRST or LAST")
                    nulls_first = which.upper == "FIRST"
                query.order.append((path, desc, nulls_first))
                if not self.take_op(","):
                    break
        if self.take_word("LIMIT"):
            query.limit = self.integer("LIMIT")
        if self.take_word("OFFSET"):
            query.offset = self.integer("OFFSET")
        return query

    def own(self, sobject: str, path: str) -> str:
        """`path` without the object's name or alias in front (`c.Name`, `Contact.Name`),
        unless that is also one of its relationships."""
        head, _, rest = path.partition(".")
        if rest and head.lower() in self.qualifiers.get(sobject.lower(), set()):
            try:
                self.resolve(sobject, path)
            except SoqlError:
                return rest
        return path

    def aggregate_ahead(self) -> bool:
        word, following = self.peek(), self.peek(1)
        return (
            word is not None
            and word.upper in AGGREGATES
            and following is not None
            and following.text == "("
        )

    def take_function(self) -> str:
        """An aggregate's name and its `(`."""
        token = self.peek()
        assert token is not None
        self.pos += 2
        return token.text.upper()

    def aggregate(self, function: str) -> Aggregate:
        """The rest of `SUM(Amount) total`, after `SUM(`."""
        path = self.name("a field")
        if not self.take_op(")"):
            raise self.fail(")")
        alias = ""
        token = self.peek()
        if token is not None and token.kind == "word" and token.upper not in KEYWORDS:
            alias = self.name("an alias")
        return Aggregate(function, path, alias)

    def ordered_aggregate(self, query: Query) -> str:
        """An ORDER BY aggregate, as the label of the same aggregate in SELECT."""
        function = self.take_function()
        path = self.own(query.target, self.name("a field"))
        if not self.take_op(")"):
            raise self.fail(")")
        for aggregate in query.aggregates:
            if aggregate.function == function and aggregate.path.lower() == path.lower():
                return aggregate.label
        raise SoqlError(
            "MALFORMED_QUERY",
            f"ORDER BY {function}({path}): the simulator orders only by an "
            "aggregate the SELECT has",
        )

    def skip_group(self) -> None:
        """Past the `)` that closes the `(` just taken."""
        depth = 1
        while depth:
            token = self.peek()
            if token is None:
                raise self.fail(")")
            if token.kind == "op" and token.text in "()":
                depth += 1 if token.text == "(" else -1
            self.pos += 1

    def integer(self, what: str) -> int:
        token = self.peek()
        if token is None or token.kind != "number" or not token.text.isdigit():
            raise self.fail(f"a whole number after {what}")
        self.pos += 1
        return int(token.text)

    def condition(self, sobject: str) -> Callable[[Json], bool]:
        left = self.conjunction(sobject)
        while self.take_word("OR"):
            right = self.conjunction(sobject)
            left = (lambda a, b: lambda r: a(r) or b(r))(left, right)
        return left

    def conjunction(self, sobject: str) -> Callable[[Json], bool]:
        left = self.negation(sobject)
        while self.take_word("AND"):
            right = self.negation(sobject)
            left = (lambda a, b: lambda r: a(r) and b(r))(left, right)
        return left

    def negation(self, sobject: str) -> Callable[[Json], bool]:
        if self.take_word("NOT"):
            inner = self.negation(sobject)
            return lambda r: not inner(r)
        if self.take_op("("):
            inner = self.condition(sobject)
            if not self.take_op(")"):
                raise self.fail(")")
            return inner
        return self.comparison(sobject)

    def comparison(self, sobject: str) -> Callable[[Json], bool]:
        path = self.own(sobject, self.name("a field"))
        get = self.resolve(sobject, path)
        self.unquoted_dates(sobject, path)
        if self.take_word("LIKE"):
            token = self.peek()
            if token is None or token.kind != "string":
                raise self.fail("a quoted pattern")
            self.pos += 1
            pattern = _like(token.text)
            return lambda r: isinstance(get(r), str) and bool(pattern.match(get(r)))
        negated = bool(self.take_word("NOT"))
        if self.take_word("IN"):
            if not self.take_op("("):
                raise self.fail("(")
            values = [self.value()]
            while self.take_op(","):
                values.append(self.value())
            if not self.take_op(")"):
                raise self.fail(")")
            return lambda r: any(_compare("=", get(r), v) for v in values) != negated
        if negated:
            raise self.fail("IN")
        token = self.peek()
        if token is None or token.kind != "op" or token.text in "(),":
            raise self.fail("an operator")
        self.pos += 1
        value = self.value()
        return lambda r: _compare(token.text, get(r), value)

    def unquoted_dates(self, sobject: str, path: str) -> None:
        """Salesforce refuses a date or date-time compared with a quoted value; the values
        after `path`'s operator are looked at without being read."""
        kind = self.field_of(sobject, path)[1]
        if kind not in ("date", "datetime"):
            return
        ahead = 0
        while (token := self.peek(ahead)) is not None and token.upper not in ("AND", "OR"):
            if token.kind == "string":
                raise SoqlError(
                    "INVALID_FIELD",
                    f"value of filter criterion for field '{path}' must be of type "
                    f"{'dateTime' if kind == 'datetime' else 'date'} and should not be "
                    "enclosed in quotes",
                )
            if token.text == ")" or token.kind in ("number", "datetime"):
                return
            ahead += 1

    def value(self) -> Any:
        token = self.peek()
        if token is None:
            raise self.fail("a value")
        self.pos += 1
        if token.kind == "string":
            return _unquote(token.text)
        if token.kind == "number":
            return float(token.text) if "." in token.text else int(token.text)
        if token.kind == "datetime":
            return token.text
        if token.upper in ("TRUE", "FALSE"):
            return token.upper == "TRUE"
        if token.upper == "NULL":
            return None
        self.pos -= 1
        raise self.fail("a value")


def aggregated(query: Query, rows: list[Json]) -> list[Json]:
    """`rows` (filtered) grouped and aggregated as `query` says, ordered, offset and limited:
    AggregateResult records, a grouped field of the SELECT under its API name, each aggregate
    under its label. Text groups without letter case, as Salesforce does."""
    groups: dict[tuple[Any, ...], list[Json]] = {}
    for row in rows:
        key = tuple(_folded(read(row)) for _, read in query.group_by)
        groups.setdefault(key, []).append(row)
    if not query.group_by:
        groups = {(): rows}  # one row, even for no records (COUNT(Id) is 0)
    selected = {p.lower() for p in query.fields}
    out: list[tuple[Json, dict[str, Any]]] = []
    for members in groups.values():
        result: Json = {"attributes": {"type": "AggregateResult"}}
        values = {path.lower(): read(members[0]) for path, read in query.group_by}
        for path, _ in query.group_by:
            if path.lower() in selected:
                result[query.group_names[path.lower()]] = values[path.lower()]
        for aggregate in query.aggregates:
            given = [v for v in map(aggregate.read, members) if v is not None]
            result[aggregate.label] = values[aggregate.label] = _aggregate(
                aggregate.function, given
            )
        out.append((result, values))
    for label, desc, nulls_first in reversed(query.order):
        column = label if label in {a.label for a in query.aggregates} else label.lower()
        present = [r for r in out if r[1].get(column) is not None]
        absent = [r for r in out if r[1].get(column) is None]
        present.sort(key=lambda r: _folded(_comparable(r[1][column])), reverse=desc)
        out = absent + present if nulls_first else present + absent
    results = [r for r, _ in out][query.offset :]
    return results[: query.limit] if query.limit is not None else results


def _folded(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


def _aggregate(function: str, values: list[Any]) -> Any:
    if function == "COUNT":
        return len(values)
    if function == "COUNT_DISTINCT":
        return len(set(values))
    if not values:
        return None
    if function == "SUM":
        return sum(values)
    if function == "AVG":
        return sum(values) / len(values)
    return min(values) if function == "MIN" else max(values)
