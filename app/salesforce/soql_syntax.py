"""The shape of a SOQL query, without knowing the org: which object each SELECT reads, every field
path it names (in SELECT, WHERE, GROUP BY, HAVING and ORDER BY) with where it is written, its child
subqueries and semi-joins, whether it aggregates, and where its clauses start. The CRM tools check
these names against the org's describes before sending anything (`app.salesforce.query_check`).

This reads the language broadly (functions, aliases, TYPEOF, date literals, WITH, FOR VIEW) but
is not Salesforce's grammar: a query it cannot read raises `SoqlSyntax`, and the caller sends it
unchecked, so that Salesforce, not this module, is the judge of what is valid.

Separate from the simulator's parser on purpose: that one executes queries for the tests, this one
guards the product; one shared parser would hide a misreading from both.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

TOKEN = re.compile(
    r"""\s*(?:
        (?P<string>'(?:[^'\\]|\\.)*')
      | (?P<bind>:[A-Za-z_][A-Za-z0-9_]*)
      | (?P<datetime>\d{4}-\d{2}-\d{2}(?:T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2}))?(?!\w))
      | (?P<number>[+-]?\d+(?:\.\d+)?(?!\w))
      | (?P<op><=|>=|!=|<>|=|<|>|\(|\)|,)
      | (?P<word>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*(?::\d+)?)
    )""",
    re.VERBOSE,
)
CLAUSES = frozenset(
    {"FROM", "WHERE", "WITH", "GROUP", "HAVING", "ORDER", "LIMIT", "OFFSET", "FOR", "UPDATE"}
)
KEYWORDS = CLAUSES | {
    *("SELECT", "AND", "OR", "NOT", "LIKE", "IN", "INCLUDES", "EXCLUDES", "BY", "ASC", "DESC"),
    *("NULLS", "FIRST", "LAST", "TRUE", "FALSE", "NULL", "USING", "SCOPE", "TYPEOF", "END"),
}
AGGREGATES = frozenset({"COUNT", "COUNT_DISTINCT", "SUM", "AVG", "MIN", "MAX"})
FIELD_SETS = frozenset({"ALL", "STANDARD", "CUSTOM"})
"""FIELDS(ALL) and the like: sets of fields, not names."""
MAX_DEPTH = 50
"""Deeper nesting of conditions or functions than this is left to Salesforce."""
COMPARISONS = frozenset({"=", "!=", "<>", "<", "<=", ">", ">="})


class SoqlSyntax(ValueError):
    """A query this module cannot read (Salesforce may still; it is then sent unchecked)."""


@dataclass(frozen=True)
class Token:
    kind: str
    text: str
    start: int
    end: int

    @property
    def upper(self) -> str:
        return self.text.upper() if self.kind == "word" else ""


@dataclass(frozen=True)
class Name:
    """A name as written in the query and where (so a resolved name can replace it)."""

    text: str
    start: int
    end: int


@dataclass(frozen=True)
class Bind:
    """A `:name` bind variable and the field it is compared with (None: a LIMIT, a function)."""

    name: str
    start: int
    end: int
    subject: Name | None


@dataclass
class Select:
    sobject: Name
    """The FROM name: an object; for a child subquery, the parent's child relationship."""
    alias: str | None = None
    columns: list[str] | None = None
    """The SELECT's fields as written, in order; None when it also computes (functions,
    aggregates, TYPEOF) and its columns are known from the records only."""
    fields: list[Name] = field(default_factory=list)
    children: list[Select] = field(default_factory=list)
    semijoins: list[Select] = field(default_factory=list)
    aggregate: bool = False
    count_only: bool = False
    """SELECT COUNT(): Salesforce answers with the number only."""
    aliases: set[str] = field(default_factory=set)
    """Names given to SELECT columns (`COUNT(Id) total`): not fields."""
    plain: set[int] = field(default_factory=set)
    """Where the SELECT's plain fields start: a field read as itself, under its own name (not
    inside a function, not under an alias, not in a condition or an order)."""
    binds: list[Bind] = field(default_factory=list)
    limit: int | None = None
    offset: bool = False
    from_start: int = 0
    order: tuple[int, int] | None = None
    """Where ORDER BY starts and ends (a COUNT() query must not have one)."""
    limit_at: int | None = None
    """Where a LIMIT clause would go (before OFFSET, FOR VIEW, UPDATE …); None: at the end."""
    tail: int | None = None
    """Where FOR VIEW / FOR UPDATE / UPDATE TRACKING start: what a count must not repeat."""

    def every(self) -> list[Select]:
        """This query and those inside it."""
        return [self] + [q for inner in self.children + self.semijoins for q in inner.every()]


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    at = 0
    while text[at:].strip():
        found = TOKEN.match(text, at)
        if found is None or found.end() == at:
            raise SoqlSyntax(f"cannot read the query from {text[at:].strip()[:20]!r}")
        kind = found.lastgroup or ""
        tokens.append(Token(kind, found.group(kind), found.start(kind), found.end(kind)))
        at = found.end()
    return tokens


def parse(text: str) -> Select:
    """The query's shape; SoqlSyntax when this module cannot read it."""
    reader = _Reader(tokenize(text))
    query = reader.select()
    if reader.peek() is not None:
        raise reader.fail("the end of the query")
    return query


class _Reader:
    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.pos = 0
        self.depth = 0

    def peek(self, ahead: int = 0) -> Token | None:
        at = self.pos + ahead
        return self.tokens[at] if at < len(self.tokens) else None

    def fail(self, expected: str) -> SoqlSyntax:
        token = self.peek()
        found = repr(token.text) if token else "the end"
        return SoqlSyntax(f"expected {expected}, found {found}")

    def nested(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise SoqlSyntax("nested too deeply")

    def take(self) -> Token:
        token = self.peek()
        if token is None:
            raise self.fail("more")
        self.pos += 1
        return token

    def word(self, *words: str) -> Token | None:
        token = self.peek()
        if token is not None and token.upper in words:
            self.pos += 1
            return token
        return None

    def expect(self, word: str) -> Token:
        token = self.word(word)
        if token is None:
            raise self.fail(word)
        return token

    def op(self, text: str) -> bool:
        token = self.peek()
        if token is not None and token.kind == "op" and token.text == text:
            self.pos += 1
            return True
        return False

    def close(self) -> None:
        if not self.op(")"):
            raise self.fail("')'")

    def is_name(self, token: Token | None) -> bool:
        return token is not None and token.kind == "word" and token.upper not in KEYWORDS

    def name(self, what: str) -> Name:
        token = self.peek()
        if not self.is_name(token):
            raise self.fail(what)
        assert token is not None
        self.pos += 1
        return Name(token.text, token.start, token.end)

    def select(self) -> Select:
        self.nested()  # subqueries in subqueries, as deep as conditions may go
        self.expect("SELECT")
        query = Select(Name("", 0, 0))
        fields: list[Name] = []
        columns: list[str] | None = []
        pending: list[int] = []  # where child subqueries start: read once FROM is known
        while True:
            if self.op("("):
                pending.append(self.pos)
                self.skip_group()
            elif self.word("TYPEOF"):
                self.skip_until("END")
                columns = None
            else:
                path = self.item(query, fields, in_select=True)
                if path is None:
                    columns = None
                elif columns is not None:
                    columns.append(path.text)
            if not self.op(","):
                break
        query.from_start = self.expect("FROM").start
        query.sobject = self.name("an object after FROM")
        if self.is_name(self.peek()):
            query.alias = self.take().text
        query.fields = fields
        query.columns = columns
        after_from = self.pos
        for start in pending:
            self.pos = start
            query.children.append(self.select())
            self.close()
        self.pos = after_from
        self.clauses(query)
        self.depth -= 1
        return query

    def clauses(self, query: Select) -> None:
        if self.word("USING"):
            self.expect("SCOPE")
            self.take()
        if self.word("WHERE"):
            self.condition(query)
        if self.word("WITH"):
            self.skip_clause()
        if self.word("GROUP"):
            self.expect("BY")
            query.aggregate = True
            self.items(query, grouping=True)
        if self.word("HAVING"):
            self.condition(query)
        order = self.word("ORDER")
        if order is not None:
            self.expect("BY")
            self.items(query, ordering=True)
            token = self.peek()
            query.order = (order.start, token.start if token else -1)
        if self.word("LIMIT"):
            number = self.take()
            if number.kind == "bind":
                query.binds.append(Bind(number.text[1:], number.start, number.end, None))
                query.limit = -1  # a LIMIT whose number comes with the binds
            elif number.kind == "number" and number.text.isdigit():
                query.limit = int(number.text)
            else:
                raise SoqlSyntax("expected a whole number after LIMIT")
        following = self.peek()
        query.limit_at = following.start if following is not None else None
        if self.word("OFFSET"):
            self.take()
            query.offset = True
        tail = self.word("FOR", "UPDATE")
        if tail is not None:
            query.tail = tail.start
            self.skip_clause()

    def items(self, query: Select, *, grouping: bool = False, ordering: bool = False) -> None:
        while True:
            if grouping and self.word("ROLLUP", "CUBE"):
                self.arguments(query, query.fields)
            else:
                self.item(query, query.fields)
            if ordering:
                self.word("ASC", "DESC")
                if self.word("NULLS") and not self.word("FIRST", "LAST"):
                    raise self.fail("FIRST or LAST")
            if not self.op(","):
                return

    def item(self, query: Select, fields: list[Name], *, in_select: bool = False) -> Name | None:
        """A field path (returned), or a function of fields; in SELECT either may have an
        alias."""
        token = self.peek()
        following = self.peek(1)
        if (
            token is not None
            and token.kind == "word"
            and following is not None
            and following.text == "("
        ):
            self.pos += 1
            if token.upper in AGGREGATES:
                query.aggregate = True
                inside = self.peek(1)
                if in_select and token.upper == "COUNT" and inside and inside.text == ")":
                    query.count_only = True
            self.arguments(query, fields, sets=token.upper == "FIELDS")
            path = None
        else:
            path = self.name("a field")
            fields.append(path)
        if in_select and self.is_name(self.peek()):
            query.aliases.add(self.take().text.lower())
        elif in_select and path is not None:
            query.plain.add(path.start)
        return path

    def arguments(self, query: Select, fields: list[Name], *, sets: bool = False) -> None:
        if not self.op("("):
            raise self.fail("'('")
        if self.op(")"):
            return
        self.nested()
        while True:
            token = self.peek()
            if token is not None and token.kind in ("string", "number", "bind"):
                self.pos += 1
                if token.kind == "bind":
                    query.binds.append(Bind(token.text[1:], token.start, token.end, None))
            elif sets and token is not None and token.upper in FIELD_SETS:
                self.pos += 1
            else:
                self.item(query, fields)
            if not self.op(","):
                break
        self.close()
        self.depth -= 1

    def condition(self, query: Select) -> None:
        while True:
            self.term(query)
            if not self.word("AND", "OR"):
                return

    def term(self, query: Select) -> None:
        self.nested()
        if self.word("NOT"):
            self.term(query)
        elif self.op("("):
            self.condition(query)
            self.close()
        else:
            subject = self.item(query, query.fields)
            self.operator(query, subject)
        self.depth -= 1

    def operator(self, query: Select, subject: Name | None) -> None:
        token = self.peek()
        if token is not None and token.kind == "op" and token.text in COMPARISONS:
            self.pos += 1
            self.value(query, subject)
        elif self.word("LIKE"):
            self.value(query, subject)
        elif self.word("INCLUDES", "EXCLUDES"):
            self.values(query, subject)
        else:
            self.word("NOT")
            self.expect("IN")
            self.values(query, subject)

    def values(self, query: Select, subject: Name | None) -> None:
        """A list in parentheses, or a semi-join `(SELECT …)`, or a bind."""
        token = self.peek()
        if token is not None and token.kind == "bind":
            self.value(query, subject)
            return
        if not self.op("("):
            raise self.fail("'('")
        following = self.peek()
        if following is not None and following.upper == "SELECT":
            query.semijoins.append(self.select())
        else:
            while True:
                self.value(query, subject)
                if not self.op(","):
                    break
        self.close()

    def value(self, query: Select, subject: Name | None) -> None:
        token = self.take()
        if token.kind == "op":
            raise SoqlSyntax(f"expected a value, found {token.text!r}")
        if token.kind == "bind":
            query.binds.append(Bind(token.text[1:], token.start, token.end, subject))

    def skip_group(self) -> None:
        depth = 1
        while depth:
            token = self.take()
            if token.kind == "op" and token.text in "()":
                depth += 1 if token.text == "(" else -1

    def skip_until(self, word: str) -> None:
        while self.take().upper != word:
            pass

    def skip_clause(self) -> None:
        """Past a clause this module does not look into (WITH …, FOR VIEW, …)."""
        while True:
            token = self.peek()
            if token is None or token.text == ")" or token.upper in CLAUSES - {"UPDATE"}:
                return
            self.pos += 1
