"""The audit trail's records and where they are kept: `AuditRecord`, the `AuditQuery` that
`recent` answers, the `AuditStore` protocol and `MemoryAuditStore`, the trail of one process
(the Redis one, shared by every process, is `app.state.audit.RedisAuditStore`).
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from app.limits import digest

MAX_SCAN = 5_000
"""The most records one `recent` reads, newest first, to find its matches: a filter few records
match answers from the newest this many (saying so, `AuditPage.stopped_early`) rather than
reading, and in Redis opening, the whole trail on one request."""


@dataclass(frozen=True)
class AuditRecord:
    at: float
    """When the call ended (seconds since the epoch)."""
    tool: str
    toolset: str
    """handoff or crm; none for a tool this server does not have."""
    caller: str | None
    """The signed-in user (`signin:<issuer>|<subject>`), else for a handoff tool the ChatGPT
    user (`openai/subject`); None over stdio or for a call that names nobody."""
    outcome: str
    """ok, error, refused, rejected or crash."""
    duration_ms: float
    objects: tuple[str, ...] = ()
    record_ids: tuple[str, ...] = ()
    arguments: dict[str, Any] = field(default_factory=dict)
    id: str = ""
    """Its place in the trail (`<ms>-<n>`, growing); empty until kept."""
    subject: str | None = None
    """The ChatGPT user a handoff call by a signed-in user claimed (`openai/subject`, which a
    client can write anything into): the user its chat is bound to, not who called."""

    @property
    def caller_hash(self) -> str | None:
        """The caller as log lines name it: a hash, never the user id."""
        return digest("caller", self.caller) if self.caller is not None else None

    @property
    def subject_hash(self) -> str | None:
        return digest("caller", self.subject) if self.subject is not None else None

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "at": self.at,
            "tool": self.tool,
            "toolset": self.toolset,
            "caller": self.caller,
            "subject": self.subject,
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
            subject=data.get("subject"),
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
    after: str | None = None
    """Only the records kept after this one (its id, `<ms>-<n>`): what is new since."""
    scan: int = MAX_SCAN
    """Read at most this many records (newest first) to answer."""

    def newer(self, record_id: str) -> bool:
        """Whether a record with this id was kept after `after` (any, without `after`)."""
        return self.after is None or id_order(record_id) > id_order(self.after)

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


def id_order(record_id: str) -> tuple[int, int]:
    """A record id (`<ms>-<n>`) as what orders it."""
    ms, _, seq = record_id.partition("-")
    return int(ms), int(seq or 0)


@dataclass(frozen=True)
class AuditPage:
    """What `recent` found, newest first."""

    records: list[AuditRecord]
    stopped_early: bool = False
    """The scan bound ended the reading before `limit` matches or the oldest record asked for:
    older matches may exist."""


class AuditStore(Protocol):
    def add(self, record: AuditRecord) -> None:
        """Keep `record`: at once, or later in the background; never raises, never waits."""
        ...

    async def recent(self, query: AuditQuery, now: float) -> AuditPage:
        """Records matching `query`, newest first, at most `query.limit`, of the newest
        `query.scan` records (newer than `query.after`)."""
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

    async def recent(self, query: AuditQuery, now: float) -> AuditPage:
        floor = query.floor(now, self.retention)
        found: list[AuditRecord] = []
        for scanned, record in enumerate(reversed(self._records)):
            if len(found) >= query.limit or not query.newer(record.id):
                break
            if scanned >= query.scan:
                return AuditPage(found, stopped_early=record.at >= floor)
            if query.matches(record, floor):
                found.append(record)
        return AuditPage(found)

    async def flush(self) -> None:
        pass

    async def aclose(self) -> None:
        pass
