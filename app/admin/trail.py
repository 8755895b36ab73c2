"""`GET /admin/api/audit`: the audit trail (`app.audit.Audit.page`) for the operator page.

Filters `tool`, `caller` and `outcome` (exact matches, all given must hold), `limit`, and
`after` (a record's id: only the records kept after it, which is how the page asks for what is
new since it last asked); a malformed one is a 400 naming it. Records come newest first as the
trail keeps them: arguments as its view (names, ids and flags; never what anyone wrote, nor
handles or file bytes). One request reads at most the newest `MAX_SCAN` records: a selective
filter over a long trail answers from those, and `stoppedEarly` says so. With REDIS_URL the
trail is shared by every process, so unlike the board it shows the whole deployment; a Redis
that does not answer is a 503 saying so.
"""

from __future__ import annotations

import re
from typing import Any

import structlog
from redis.exceptions import RedisError
from starlette.datastructures import QueryParams

from app.audit import MAX_SCAN, Audit, AuditRecord

log = structlog.get_logger(__name__)

OUTCOMES = ("ok", "error", "refused", "rejected", "crash")
DEFAULT_ROWS = 100
MAX_ROWS = 500
MAX_CALLER = 300
TOOL = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
NUMBER = re.compile(r"[0-9]{1,18}")
"""ASCII digits only: str.isdigit() also takes '²', which int() refuses."""
RECORD_ID = re.compile(r"[0-9]{1,15}-[0-9]{1,18}")


class BadFilter(ValueError):
    """A filter the trail cannot take; the message names it."""


def filters(params: QueryParams) -> dict[str, Any]:
    """The query's filters for `Audit.recent` (empty ones are no filter)."""
    chosen: dict[str, Any] = {"limit": DEFAULT_ROWS}
    tool = params.get("tool", "").strip()
    if tool:
        if not TOOL.match(tool):
            raise BadFilter("tool must be a tool's name (letters, digits, _ . -; at most 64).")
        chosen["tool"] = tool
    caller = params.get("caller", "").strip()
    if caller:
        if len(caller) > MAX_CALLER:
            raise BadFilter(f"caller must be at most {MAX_CALLER} characters.")
        chosen["caller"] = caller
    outcome = params.get("outcome", "").strip()
    if outcome:
        if outcome not in OUTCOMES:
            raise BadFilter(f"outcome must be one of {', '.join(OUTCOMES)}.")
        chosen["outcome"] = outcome
    limit = params.get("limit", "").strip()
    if limit:
        if not NUMBER.fullmatch(limit) or not 1 <= int(limit) <= MAX_ROWS:
            raise BadFilter(f"limit must be a whole number from 1 to {MAX_ROWS}.")
        chosen["limit"] = int(limit)
    after = params.get("after", "").strip()
    if after:
        if not RECORD_ID.fullmatch(after):
            raise BadFilter("after must be a record's id as the trail gave it (<ms>-<n>).")
        chosen["after"] = after
    return chosen


async def recent(audit: Audit, params: QueryParams) -> tuple[int, dict[str, Any]]:
    """The status and body of an audit request."""
    try:
        chosen = filters(params)
    except BadFilter as exc:
        return 400, {"error": str(exc)}
    try:
        found = await audit.page(**chosen)
    except RedisError as exc:
        log.warning("admin.audit_unavailable", error=type(exc).__name__)
        return 503, {"error": "The audit trail (Redis) cannot be read now; try again shortly."}
    return 200, {
        "records": [shown(record) for record in found.records],
        "stoppedEarly": found.stopped_early,
        "scanBound": MAX_SCAN,
    }


def shown(record: AuditRecord) -> dict[str, Any]:
    """A record as the page draws it."""
    return {
        "id": record.id,
        "at": record.at,
        "tool": record.tool,
        "toolset": record.toolset,
        "caller": record.caller,
        "outcome": record.outcome,
        "durationMs": record.duration_ms,
        "touched": [*record.objects, *record.record_ids],
        "arguments": record.arguments,
    }
