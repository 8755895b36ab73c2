"""The audit trail: one record per tool call of both toolsets, the handoff's and the CRM's.

A record says when the call ended (`at`), which tool, who called (`caller`: the verified
signed-in user, else the ChatGPT user the request names), the outcome (`ok`, `error`, `refused`
by an abuse limit or the staff scope, `rejected` by the SDK before any tool ran, `crash`), how
long it took, the objects and record ids it touched, and its arguments as a view that keeps names
and never what anyone wrote (`app.audit_view`). Records are kept in memory (`MemoryAuditStore`, a
ring) or in Redis (`app.state.audit`, shared by every process), at most AUDIT_MAX_RECORDS for
AUDIT_RETENTION_HOURS, and each is also one `audit` log line, whose caller is a hash (logs never
name a user). `Audit.recent` reads them back, newest first; `Audit.page` too, for the admin page,
only newer than a record it names and reading a bounded part of the trail.

The audit's MCP middleware (`app.audit_watch`) sees every tools/call arrive and opens a
`CallFrame` for it: the tool's declared parameters, the only arguments a record may show. The
tool wrappers (`tool_call` in `app.tools`, `call` in `app.crm_tools`) open `Audit.call` around
each call, which marks the frame; the code under them adds what it touched with `touch`. A call
whose frame no wrapper marked (the SDK refused it) gets its `rejected` record from the
middleware. Keeping a record never fails a call or makes it wait: the Redis write happens after
the call has answered.
"""

from __future__ import annotations

import contextlib
import contextvars
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import structlog
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError

from app.audit_records import (
    MAX_SCAN,
    AuditPage,
    AuditQuery,
    AuditRecord,
    AuditStore,
    MemoryAuditStore,
)
from app.audit_view import MAX_TEXT, NEVER, WITHHELD, arguments_view, touched
from app.signin import signed_in_user

__all__ = [
    "MAX_SCAN",
    "Audit",
    "AuditCall",
    "AuditPage",
    "AuditQuery",
    "AuditRecord",
    "AuditStore",
    "MemoryAuditStore",
    "call_arguments",
    "call_frame",
    "callers",
    "touch",
]

log = structlog.get_logger(__name__)

MAX_CALLER = 300
"""A caller (or a claimed subject) longer than this is cut: it comes from the request."""
MAX_TOUCHED = 100
MAX_RECENT = 1000
"""The most records one `recent` returns."""


@dataclass
class AuditCall:
    """A call under way: what it touched so far, and its outcome once known."""

    tool: str
    toolset: str
    caller: str | None
    arguments: dict[str, Any]
    subject: str | None = None
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


@dataclass
class CallFrame:
    """One tools/call as the audit's middleware saw it arrive."""

    parameters: frozenset[str]
    """The parameters its tool declares (none for a tool this server does not have)."""
    opened: bool = False
    """A tool's wrapper opened `Audit.call` for it: that record is the call's one."""


_CURRENT: contextvars.ContextVar[AuditCall | None] = contextvars.ContextVar(
    "audit_call", default=None
)
_FRAME: contextvars.ContextVar[CallFrame | None] = contextvars.ContextVar(
    "audit_frame", default=None
)


@contextlib.contextmanager
def call_frame(parameters: frozenset[str]) -> Iterator[CallFrame]:
    """Around one tools/call, from before the SDK reads its arguments to after it answered."""
    frame = CallFrame(parameters)
    token = _FRAME.set(frame)
    try:
        yield frame
    finally:
        _FRAME.reset(token)


def call_arguments(ctx: Context) -> dict[str, Any]:
    """The arguments of the call `ctx` serves that its tool declares, as the caller sent them
    (the SDK validated these before the tool ran; any other it ignored, and so does the audit).
    Nothing outside a call frame: without the middleware nothing says what the tool declares."""
    frame = _FRAME.get()
    params = ctx.request_context.params or {}
    arguments = params.get("arguments")
    if frame is None or not isinstance(arguments, dict):
        return {}
    return {name: value for name, value in arguments.items() if name in frame.parameters}


def touch(object_name: str | None, *record_ids: str | None) -> None:
    """Add an object (and records of it) to what the call under way touched; outside a call,
    nothing."""
    current = _CURRENT.get()
    if current is not None:
        current.touch(object_name, *record_ids)


def callers(request: Any, meta: Any, toolset: str) -> tuple[str | None, str | None]:
    """Whom a call's record names, as (caller, subject). The caller is the verified signed-in
    user when there is one; otherwise, for a handoff tool, the ChatGPT user the request names
    (`openai/subject` in `_meta`), and for a CRM tool nobody (over stdio, the local user). The
    subject: what a handoff call by a signed-in user claimed in `openai/subject`, which any
    client can write, so it is kept beside the caller, never as the caller."""
    claimed = meta.get("openai/subject") if isinstance(meta, Mapping) else None
    subject = claimed if isinstance(claimed, str) and claimed and toolset != "crm" else None
    user = signed_in_user(request)
    if user is not None:
        return user.principal, subject
    return subject, None


def _capped(caller: str | None) -> str | None:
    return caller[:MAX_CALLER] if caller is not None else None


class Audit:
    """The audit trail of a runtime: `call` records each tool call, `recent` reads them."""

    def __init__(self, store: AuditStore, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self._clock = clock
        self.toolsets: dict[str, str] = {}
        """Tool → toolset, for the records of calls no wrapper saw: the CRM tools, every tier's
        (a tool outside CRM_ACCESS is still a CRM call refused); any other tool the server has
        is the handoff's."""

    @contextlib.contextmanager
    def call(
        self,
        tool: str,
        toolset: str,
        caller: str | None,
        arguments: Mapping[str, Any],
        *,
        subject: str | None = None,
    ) -> Iterator[AuditCall]:
        """Around one tool call: its record is kept when it ends, however it ends. A ToolError
        is an `error`, anything else raised a `crash` (a cancelled call an `error`), unless
        the wrapper said `refused`. `arguments`: the tool's own (`call_arguments`)."""
        frame = _FRAME.get()
        if frame is not None:
            frame.opened = True
        current = AuditCall(
            tool, toolset, _capped(caller), arguments_view(arguments), _capped(subject)
        )
        objects, record_ids = touched(arguments)
        for name in objects:
            current.touch(name)
        current.touch(None, *record_ids)
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

    def rejected(
        self,
        tool: str,
        toolset: str,
        caller: str | None,
        given: Iterable[str],
        seconds: float,
        *,
        subject: str | None = None,
    ) -> None:
        """The record of a call the SDK refused before any tool ran: of its arguments, the
        names `given` (the tool's declared parameters it was given), each value withheld, and
        of handles, keys and file bytes not even the name (as for any call)."""
        arguments = {name: WITHHELD for name in given if name not in NEVER}
        current = AuditCall(tool, toolset, _capped(caller), arguments, _capped(subject))
        current.outcome = "rejected"
        self._keep(current, seconds)

    def _keep(self, current: AuditCall, seconds: float) -> None:
        try:
            record = AuditRecord(
                at=self._clock(),
                tool=current.tool,
                toolset=current.toolset,
                caller=current.caller,
                subject=current.subject,
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
                subject_hash=record.subject_hash,
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
        found = await self.page(tool=tool, caller=caller, outcome=outcome, since=since, limit=limit)
        return found.records

    async def page(
        self,
        *,
        tool: str | None = None,
        caller: str | None = None,
        outcome: str | None = None,
        since: float | None = None,
        after: str | None = None,
        limit: int = 100,
        scan: int = MAX_SCAN,
    ) -> AuditPage:
        """As `recent`, only newer than the record `after` (its id) when given, reading at
        most the newest `scan` records: the page says whether that bound stopped it."""
        query = AuditQuery(
            tool, caller, outcome, since, max(1, min(limit, MAX_RECENT)), after, max(1, scan)
        )
        return await self.store.recent(query, self._clock())

    async def flush(self) -> None:
        await self.store.flush()

    async def aclose(self) -> None:
        await self.store.aclose()
