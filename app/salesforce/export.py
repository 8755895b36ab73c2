"""salesforce_export's file: a SOQL query read across all its pages, one row per record, written
as CSV or XLSX, within a bound of rows and one of bytes.

Columns are the SELECT's fields in order, a parent's fields flattened to dotted names
(`Account.Name`) and spelled as Salesforce answers them; Salesforce's `attributes` are dropped,
nulls (and a parent that is null) are empty cells. A field list that is not plain fields (functions
such as `toLabel(Status)`, aliases, aggregates, `TYPEOF`) takes its columns from the records, in the
order first seen. A child subquery (`(SELECT … FROM Cases)`) is refused: a flat file has one row per
record and no place for a list of children (export the children with their parent's fields
instead).

Bounds: a query whose first page says it matches more records than `max_rows` is refused before
any other page is read; reading stops as soon as the cells' text passes `max_bytes`, and a file
over `max_bytes` is refused (an XLSX file is compressed, so both are checked). Nothing partial is
returned: past a bound the export is an error that says which bound and how to narrow the query.

Spreadsheet formulas: a CSV cell whose text starts with =, +, -, @, a tab or a carriage return is
prefixed with a single quote (the usual guard: a spreadsheet shows it as text and runs nothing;
numbers from Salesforce are never prefixed); an XLSX cell holding text is a string cell, never a
formula, so XLSX needs no prefix.

XLSX through openpyxl (the maintained standard): the format is a zip of XML parts with many rules
(content types, relationships, styles, inline or shared strings, the XML characters allowed), none
of which this module should get wrong by hand.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import re
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.styles import Font
from openpyxl.worksheet._write_only import WriteOnlyWorksheet

from app.salesforce.client import QueryPage
from app.salesforce.errors import SalesforceError
from app.salesforce.soql import one_select
from app.salesforce.soql_syntax import SoqlSyntax, parse

Format = Literal["csv", "xlsx"]
MIME_TYPES: dict[str, str] = {
    "csv": "text/csv",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}
MAX_ROWS = 10_000
MAX_BYTES = 4 * 1024 * 1024
XLSX_CELL_CHARS = 32_767
"""The most characters an XLSX cell holds (openpyxl would cut longer text silently)."""
FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\uff1d", "\uff0b", "\uff0d", "\uff20")
"""What makes a spreadsheet take text for a formula (also after spaces, and in full width)."""
MAX_CELLS = 1_000_000
"""The most cells (records times fields) an export holds: past it, the reading and writing would
take longer than a tool call has."""
SHEET_TITLE_BAD = re.compile(r"[\[\]:*?/\\]")


@dataclass(frozen=True)
class ExportBounds:
    max_rows: int = MAX_ROWS
    max_bytes: int = MAX_BYTES
    max_cells: int = MAX_CELLS


@dataclass(frozen=True)
class ExportFile:
    object: str
    """The object the query reads (as written in its FROM)."""
    format: Format
    columns: list[str]
    rows: int
    data: bytes
    name: str
    """A file name: the object, the time of the export (UTC) and the format's extension."""

    @property
    def mime_type(self) -> str:
        return MIME_TYPES[self.format]


class Pages(Protocol):
    async def query(self, soql: str) -> QueryPage: ...

    async def query_more(self, next_records_url: str) -> QueryPage: ...


def export_columns(soql: str) -> tuple[list[str] | None, str]:
    """The columns `soql`'s field list names (None: functions or aggregates, whose columns come
    from the records) and the object it reads; an error for what cannot go into a flat file."""
    one_select(soql)
    try:
        shape = parse(soql)
    except SoqlSyntax:
        raise SalesforceError(
            "soql's field list could not be read to name the file's columns: export fields and "
            "parent fields (SELECT Id, Name, Account.Name FROM Contact WHERE …)."
        ) from None
    if shape.children:
        raise SalesforceError(
            f"soql selects a child subquery (FROM {shape.children[0].sobject.text}): an export "
            "has one row per record and no place for a list of children. Leave it out, or "
            "export the children with their parent's fields (e.g. SELECT Subject, "
            "Contact.LastName FROM Case)."
        )
    if shape.count_only:
        raise SalesforceError(
            "soql is SELECT COUNT(), which counts records and returns none: select fields "
            "to export them."
        )
    itself = {shape.sobject.text.lower(), (shape.alias or "").lower()}
    # Grouped records name a parent's field by its own name (`Name` for Account.Name) and an
    # aliased field by its alias: their columns come from the records.
    columns = None if shape.aggregate else shape.columns
    if columns is not None:
        # `c.Name` and `Contact.Name` (FROM Contact c) are the record's own Name.
        columns = [
            c.split(".", 1)[1] if "." in c and c.split(".")[0].lower() in itself else c
            for c in columns
        ]
    return columns, shape.sobject.text


def flatten(
    record: dict[str, Any], whole: frozenset[str] = frozenset(), prefix: str = ""
) -> dict[str, Any]:
    """A record's fields by dotted name (`Account.Name`), without `attributes`; a value under a
    name in `whole` (lower case) stays one value even when it is a map: a compound field
    (`MailingAddress`, a geolocation) selected as itself is one cell, written as JSON."""
    out: dict[str, Any] = {}
    for key, value in record.items():
        name = f"{prefix}{key}"
        if key == "attributes":
            continue
        if isinstance(value, dict) and name.lower() not in whole:
            out.update(flatten(value, whole, f"{name}."))
        else:
            out[name] = _text(value) if isinstance(value, str) else value
    return out


_SURROGATE = re.compile("[\ud800-\udfff]")


def _text(value: str) -> str:
    """`value` writable as UTF-8: a lone surrogate (half an emoji cut in two) becomes U+FFFD."""
    return _SURROGATE.sub("\ufffd", value)


class Table:
    """The rows read so far, by column, with the size of their text."""

    def __init__(
        self, selected: list[str] | None, bounds: ExportBounds, cell_chars: int | None = None
    ) -> None:
        self._selected = selected
        self._bounds = bounds
        self._cell_chars = cell_chars
        self._spelling: dict[str, str] = {}
        """A column's name in lower case → as Salesforce spells it (the first seen)."""
        self._whole = frozenset(c.lower() for c in selected or ())
        self._rows: list[dict[str, Any]] = []
        self._text = 0
        self._cells = 0

    def __len__(self) -> int:
        return len(self._rows)

    def add(self, page: QueryPage, redact: Callable[[Any], Any]) -> None:
        """A page's records, masked by `redact` first."""
        total = page.total
        for record in redact(page.records):
            flat = flatten(record, self._whole)
            self._cells += len(flat)
            row: dict[str, Any] = {}
            for name, value in flat.items():
                key = name.lower()
                self._spelling.setdefault(key, name)
                row[key] = value
                if value is not None:
                    text = str(value)
                    self._text += len(text.encode())
                    if self._cell_chars is not None and len(text) > self._cell_chars:
                        raise SalesforceError(
                            f"A value of {name} has {len(text):,} characters, over the "
                            f"{self._cell_chars:,} an XLSX cell holds: export as CSV, or leave "
                            "the field out. Nothing was exported."
                        )
            self._rows.append(row)
        if len(self._rows) > self._bounds.max_rows:
            # More than the first page said: Salesforce's count was low (records added since).
            raise too_many(len(self._rows), self._bounds.max_rows, at_least=True)
        if self._text > self._bounds.max_bytes:
            raise too_big(
                self._bounds.max_bytes,
                f"its records' text passed it after {len(self._rows):,} of {total:,} records",
            )
        if self._cells > self._bounds.max_cells:
            raise SalesforceError(
                f"The export reached {self._bounds.max_cells:,} cells (records times fields, "
                f"empty ones too) after {len(self._rows):,} of {total:,} records: select fewer "
                "fields or fewer records and export in parts. Nothing was exported."
            )

    def columns(self) -> tuple[list[str], list[str]]:
        """The column names and the keys of their cells in each row."""
        if self._selected is not None:
            keys = [path.lower() for path in self._selected]
        else:
            seen = list(self._spelling)
            # A parent that was null on some record is one key there (Account: null): not a
            # column when its fields are (Account.Name).
            keys = [k for k in seen if not any(o.startswith(k + ".") for o in seen)]
        names = [
            self._spelling.get(k, path)
            for k, path in zip(keys, self._selected or keys, strict=True)
        ]
        return names, keys

    def cells(self, keys: list[str]) -> Iterable[list[Any]]:
        for row in self._rows:
            yield [row.get(k) for k in keys]


def too_many(count: int, bound: int, *, at_least: bool = False) -> SalesforceError:
    return SalesforceError(
        f"The query matches {'at least ' if at_least else ''}{count:,} records, over the "
        f"export's bound of {bound:,} "
        "(CRM_EXPORT_MAX_ROWS): narrow it (a WHERE, or a LIMIT) and export in parts. "
        "Nothing was exported."
    )


def too_big(bound: int, what: str) -> SalesforceError:
    return SalesforceError(
        f"The export's bound of {bound:,} bytes (CRM_EXPORT_MAX_BYTES) was passed: {what}. "
        "Select fewer fields or fewer records (a WHERE, or a LIMIT) and export in parts. "
        "Nothing was exported."
    )


async def export(
    client: Pages,
    soql: str,
    fmt: Format,
    bounds: ExportBounds,
    redact: Callable[[Any], Any] = lambda records: records,
    *,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> ExportFile:
    """`soql`'s records, every page of them, as a file of `fmt`; `redact` masks each page's
    records first."""
    selected, sobject = export_columns(soql)
    page = await client.query(soql)
    if page.total > bounds.max_rows:
        raise too_many(page.total, bounds.max_rows)
    table = Table(selected, bounds, XLSX_CELL_CHARS if fmt == "xlsx" else None)
    stop = threading.Event()
    try:
        # Masking, flattening and writing run off the event loop (a page of wide records takes
        # a second, an XLSX of ten thousand rows several): other chats go on meanwhile. A call
        # that runs out of time stops the thread at its next row.
        await asyncio.to_thread(table.add, page, redact)
        while page.next:
            page = await client.query_more(page.next)
            await asyncio.to_thread(table.add, page, redact)
        names, keys = table.columns()
        write = write_csv if fmt == "csv" else write_xlsx
        data = await asyncio.to_thread(write, sobject, names, _until(stop, table.cells(keys)))
    except asyncio.CancelledError:
        stop.set()
        raise
    if len(data) > bounds.max_bytes:
        raise too_big(bounds.max_bytes, f"the {fmt.upper()} file has {len(data):,} bytes")
    stamp = now().astimezone(UTC).strftime("%Y%m%d-%H%M%S")
    return ExportFile(sobject, fmt, names, len(table), data, f"{sobject}-{stamp}.{fmt}")


class Stopped(Exception):
    """The call the file was written for is over."""


def _until(stop: threading.Event, rows: Iterable[list[Any]]) -> Iterator[list[Any]]:
    for row in rows:
        if stop.is_set():
            raise Stopped
        yield row


def csv_cell(value: Any) -> str:
    """A cell's CSV text: nulls empty, booleans as Salesforce writes them, text that a
    spreadsheet would take for a formula prefixed with a single quote."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    text = value if isinstance(value, str) else json.dumps(value)
    return "'" + text if text.lstrip(" \u00a0\u3000").startswith(FORMULA_START) else text


def write_csv(sobject: str, names: list[str], rows: Iterable[list[Any]]) -> bytes:
    """UTF-8 (no byte order mark), comma-separated, CRLF line ends, quotes where needed (RFC
    4180, as Python's csv module writes it)."""
    out = io.StringIO(newline="")
    writer = csv.writer(out)
    writer.writerow([csv_cell(n) for n in names])
    for row in rows:
        writer.writerow([csv_cell(v) for v in row])
    return out.getvalue().encode()


def xlsx_cell(sheet: WriteOnlyWorksheet, value: Any) -> Any:
    """A cell's XLSX value: numbers and booleans as such, text as a string cell (never a
    formula); characters XML cannot hold become U+FFFD. (Text over an XLSX cell's length was
    refused when read.)"""
    if value is None or isinstance(value, bool | int | float):
        return value
    text = value if isinstance(value, str) else json.dumps(value)
    cell = WriteOnlyCell(sheet, ILLEGAL_CHARACTERS_RE.sub("\ufffd", text))
    cell.data_type = "s"  # openpyxl makes text starting with "=" a formula otherwise
    return cell


def write_xlsx(sobject: str, names: list[str], rows: Iterable[list[Any]]) -> bytes:
    """One sheet named after the object: a bold header row (frozen), then a row per record."""
    book = Workbook(write_only=True)
    sheet = book.create_sheet(title=SHEET_TITLE_BAD.sub("_", sobject)[:31] or "Export")
    sheet.freeze_panes = "A2"
    bold = Font(bold=True)
    header = []
    for name in names:
        cell = xlsx_cell(sheet, name)
        cell.font = bold
        header.append(cell)
    sheet.append(header)
    for row in rows:
        sheet.append([xlsx_cell(sheet, v) for v in row])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
