"""The audit trail: one record per tool call of both toolsets, the handoff's and the CRM's.

A record says when the call ended (`at`), which tool, who called (`caller`: the ChatGPT user,
`openai/subject`, or the signed-in user), the outcome (`ok`, `error`, `refused` by an abuse limit
or the staff scope, `crash`), how long it took, the objects and record ids it touched, and its
arguments as a view that keeps names and never what anyone wrote (`arguments_view`). Records are
kept in memory (`MemoryAuditStore`, a ring) or in Redis (`app.state.audit`, shared by every
process), at most AUDIT_MAX_RECORDS for AUDIT_RETENTION_HOURS, and each is also one `audit` log
line, whose caller is a hash (logs never name a user). `Audit.recent` reads them back, newest
first, for the admin page.

The tool wrappers (`tool_call` in `app.tools`, `call` in `app.crm_tools`) open `Audit.call`
around each call; the code under them adds what it touched with `touch`. Keeping a record never
fails a call or makes it wait: the Redis write happens after the call has answered.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import re
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import structlog
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError

from app.limits import digest

log = structlog.get_logger(__name__)

WITHHELD = "[redacted]"
"""An argument given whose value the audit does not keep (the CRM results' mark)."""

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
"""Arguments kept as given (strings cut to `MAX_TEXT`, lists to `MAX_ITEMS`)."""
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
these sets (one a caller made up) is left out too."""
RECORD_IDS = ("recordId", "contactId", "eventId", "accountId", "whoId", "whatId")
"""Arguments naming a record the call touches."""

MAX_TEXT = 200
MAX_ITEMS = 100
MAX_SOQL = 2000
MAX_TOUCHED = 100
MAX_RECENT = 1000
"""The most records one `recent` returns."""

_SOQL_STRING = re.compile(r"'(?:[^'\\]|\\.?)*(?:'|\Z)", re.DOTALL)
"""A string literal, or an unterminated one up to the end."""
_SOQL_NUMBER = re.compile(r"(?<![\w.:])[+-]?\d[\w.:+-]*")
"""A number, date or date-time literal (not a digit inside a name, nor `LAST_N_DAYS:30`)."""
_SOQL_FROM = re.compile(r"[()]|\bFROM\s+([A-Za-z][A-Za-z0-9_]*)", re.IGNORECASE)


def masked_soql(soql: str) -> str:
    """The query with every literal masked: strings as `'…'`, numbers and dates as `…`."""
    masked = _SOQL_NUMBER.sub("…", _SOQL_STRING.sub("'…'", soql))
    return masked if len(masked) <= MAX_SOQL else masked[: MAX_SOQL - 1] + "…"


def queried_object(soql: str) -> str | None:
    """The object a query's outer FROM names (not a subquery's), or None."""
    depth = 0
    for found in _SOQL_FROM.finditer(_SOQL_STRING.sub("''", soql)):
        if found.group() == "(":
            depth += 1
        elif found.group() == ")":
            depth = max(0, depth - 1)
        elif depth == 0:
            return found.group(1)
    return None


def _bounded(value: Any) -> Any:
    if isinstance(value, str):
        return value[:MAX_TEXT]
    if isinstance(value, list | tuple):
        return [_bounded(item) for item in value[:MAX_ITEMS]]
    if value is None or isinstance(value, bool | int | float):
        return value
    return WITHHELD  # a map where a name or a number belongs: nothing of it is kept


def arguments_view(arguments: Mapping[str, Any]) -> dict[str, Any]:
    """What the audit keeps of a call's arguments: names, ids, flags and counts as given; SOQL
    with its literals masked; of maps (`values`, pre-chat values, binds) the names; of text
    and values, only that they were given; of handles, keys and file bytes, nothing."""
    view: dict[str, Any] = {}
    for name, value in arguments.items():
        if value is None:
            continue
        if name in KEPT:
            view[name] = _bounded(value)
        elif name in NAMES_ONLY and isinstance(value, dict):
            view[name] = {str(key)[:MAX_TEXT]: WITHHELD for key in list(value)[:MAX_ITEMS]}
        elif name == SOQL and isinstance(value, str):
            view[name] = masked_soql(value)
        elif name in WITHHELD_ARGUMENTS or name in NAMES_ONLY or name == SOQL:
            view[name] = WITHHELD
    return view


def call_arguments(ctx: Context) -> Mapping[str, Any]:
    """The arguments of the call `ctx` serves, as the caller sent them."""
    params = ctx.request_context.params or {}
    arguments = params.get("arguments")
    return arguments if isinstance(arguments, dict) else {}


@dataclass(frozen=True)
class AuditRecord:
    at: float
    """When the call ended (seconds since the epoch)."""
    tool: str
    toolset: str
    """handoff or crm."""
    caller: str | None
    """The ChatGPT user (`openai/subject`) or the signed-in user (`signin:<issuer>|<subject>`);
    None over stdio or for a call that names nobody."""
    outcome: str
    """ok, error, refused or crash."""
    duration_ms: float
    objects: tuple[str, ...] = ()
    record_ids: tuple[str, ...] = ()
    arguments: dict[str, Any] = field(default_factory=dict)
    id: str = ""
    """Its place in the trail (`<ms>-<n>`, growing); empty until kept."""

    @property
    def caller_hash(self) -> str | None:
        """The caller as log lines name it: a hash, never the user id."""
        return digest("caller", self.caller) if self.caller is not None else None

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "at": self.at,
            "tool": self.tool,
            "toolset": self.toolset,
            "caller": self.caller,
            "outcome": self.outcome,
            "durationMs": self.duration_ms,
            "objects": list(self.objects),
            "recordIds": list(self.record_ids),
            "arguments": self.arguments,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any], record_id: str = "") -> AuditRecord:
        return cls(
            at=float(data["at"]),
            tool=str(data["tool"]),
            toolset=str(data["toolset"]),
            caller=data.get("caller"),
            outcome=str(data["outcome"]),
            duration_ms=float(data["durationMs"]),
            objects=tuple(data.get("objects", ())),
            record_ids=tuple(data.get("recordIds", ())),
            arguments=dict(data.get("arguments", {})),
            id=record_id or str(data.get("id", "")),
        )


@dataclass(frozen=True)
class AuditQuery:
    """Which records `recent` returns: all filters given must hold."""

    tool: str | None = None
    caller: str | None = None
    outcome: str | None = None
    since: float | None = None
    """Records of calls that ended at or after this time (seconds since the epoch)."""
    limit: int = 100

    def matches(self, record: AuditRecord, floor: float) -> bool:
        return (
            record.at >= floor
            and (self.tool is None or record.tool == self.tool)
            and (self.caller is None or record.caller == self.caller)
            and (self.outcome is None or record.outcome == self.outcome)
        )

    def floor(self, now: float, retention: float) -> float:
        """The oldest time a record returned may have: `since`, and within the retention."""
        return max(self.since if self.since is not None else 0.0, now - retention)


class AuditStore(Protocol):
    def add(self, record: AuditRecord) -> None:
        """Keep `record`: at once, or later in the background; never raises, never waits."""
        ...

    async def recent(self, query: AuditQuery, now: float) -> list[AuditRecord]:
        """Records matching `query`, newest first, at most `query.limit`."""
        ...

    async def flush(self) -> None:
        """Returns once every record added so far is kept (or given up on)."""
        ...

    async def aclose(self) -> None: ...


def next_id(last: tuple[int, int], ms: int) -> tuple[int, int]:
    """The id after `last` for a record at `ms`: ids grow even if the clock steps back."""
    return (ms, 0) if ms > last[0] else (last[0], last[1] + 1)


class MemoryAuditStore:
    """The trail of one process: the newest `max_records` records; those past the retention
    are never returned (the ring's bound is what bounds memory)."""

    def __init__(self, max_records: int, retention: float) -> None:
        self.retention = retention
        self._records: deque[AuditRecord] = deque(maxlen=max_records)
        self._last = (-1, 0)

    def add(self, record: AuditRecord) -> None:
        self._last = next_id(self._last, int(record.at * 1000))
        self._records.append(dataclasses.replace(record, id=f"{self._last[0]}-{self._last[1]}"))

    async def recent(self, query: AuditQuery, now: float) -> list[AuditRecord]:
        floor = query.floor(now, self.retention)
        found: list[AuditRecord] = []
        for record in reversed(self._records):
            if len(found) >= query.limit:
                break
            if query.matches(record, floor):
                found.append(record)
        return found

    async def flush(self) -> None:
        pass

    async def aclose(self) -> None:
        pass


@dataclass
class AuditCall:
    """A call under way: what it touched so far, and its outcome once known."""

    tool: str
    toolset: str
    caller: str | None
    arguments: dict[str, Any]
    objects: list[str] = field(default_factory=list)
    record_ids: list[str] = field(default_factory=list)
    outcome: str = "ok"

    def touch(self, object_name: str | None, *record_ids: str | None) -> None:
        if object_name and object_name not in self.objects and len(self.objects) < MAX_TOUCHED:
            self.objects.append(object_name[:MAX_TEXT])
        for record_id in record_ids:
            if (
                record_id
                and record_id not in self.record_ids
                and len(self.record_ids) < MAX_TOUCHED
            ):
                self.record_ids.append(record_id[:MAX_TEXT])

    def refused(self) -> None:
        """The call was refused (an abuse limit, the staff scope) rather than failed."""
        self.outcome = "refused"

    def _failed(self, outcome: str) -> None:
        if self.outcome == "ok":
            self.outcome = outcome


_CURRENT: contextvars.ContextVar[AuditCall | None] = contextvars.ContextVar(
    "audit_call", default=None
)


def touch(object_name: str | None, *record_ids: str | None) -> None:
    """Add an object (and records of it) to what the call under way touched; outside a call,
    nothing."""
    current = _CURRENT.get()
    if current is not None:
        current.touch(object_name, *record_ids)


class Audit:
    """The audit trail of a runtime: `call` records each tool call, `recent` reads them."""

    def __init__(self, store: AuditStore, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self._clock = clock

    @contextlib.contextmanager
    def call(
        self, tool: str, toolset: str, caller: str | None, arguments: Mapping[str, Any]
    ) -> Iterator[AuditCall]:
        """Around one tool call: its record is kept when it ends, however it ends. A ToolError
        is an `error`, anything else raised a `crash` (a cancelled call an `error`), unless
        the wrapper said `refused`."""
        current = AuditCall(tool, toolset, caller, arguments_view(arguments))
        for name in RECORD_IDS:
            value = arguments.get(name)
            current.touch(None, value if isinstance(value, str) else None)
        objects = arguments.get("objects")
        for name in [arguments.get("objectName"), *(objects if isinstance(objects, list) else [])]:
            current.touch(name if isinstance(name, str) else None)
        soql = arguments.get(SOQL)
        current.touch(queried_object(soql) if isinstance(soql, str) else None)
        started = time.perf_counter()
        token = _CURRENT.set(current)
        try:
            yield current
        except ToolError:
            current._failed("error")
            raise
        except Exception:
            current._failed("crash")
            raise
        except BaseException:
            current._failed("error")
            raise
        finally:
            _CURRENT.reset(token)
            self._keep(current, time.perf_counter() - started)

    def _keep(self, current: AuditCall, seconds: float) -> None:
        try:
            record = AuditRecord(
                at=self._clock(),
                tool=current.tool,
                toolset=current.toolset,
                caller=current.caller,
                outcome=current.outcome,
                duration_ms=round(seconds * 1000, 1),
                objects=tuple(current.objects),
                record_ids=tuple(current.record_ids),
                arguments=current.arguments,
            )
            log.info(
                "audit",
                tool=record.tool,
                toolset=record.toolset,
                caller_hash=record.caller_hash,
                outcome=record.outcome,
                duration_ms=record.duration_ms,
                objects=list(record.objects),
                record_ids=list(record.record_ids),
                arguments=record.arguments,
            )
            self.store.add(record)
        except Exception as exc:  # the call has its answer; the audit must not take it away
            log.error("audit.failed", tool=current.tool, error=type(exc).__name__)

    async def recent(
        self,
        *,
        tool: str | None = None,
        caller: str | None = None,
        outcome: str | None = None,
        since: float | None = None,
        limit: int = 100,
    ) -> list[AuditRecord]:
        """The newest records first, at most `limit` (up to MAX_RECENT), of those matching
        every filter given; never older than the retention. With Redis, a RedisError when it
        cannot be read."""
        query = AuditQuery(tool, caller, outcome, since, max(1, min(limit, MAX_RECENT)))
        return await self.store.recent(query, self._clock())

    async def flush(self) -> None:
        await self.store.flush()

    async def aclose(self) -> None:
        await self.store.aclose()
