"""Bounded history: a conversation's log keeps its newest entries in memory; older ones are
fetched again from Salesforce when a reader asks for them.

A log (`app.transcript.ConversationLog`) lets go of its oldest entries past `HISTORY_ENTRIES`,
keeping of each only what places it: its Salesforce id and timestamp (`Retired`), so that
deduplication still knows it and a reader's cursor (a log position) keeps its meaning. A reader
whose cursor lies among retired positions (a widget opened on a long chat reads from the start)
gets those entries from the entries endpoint, matched by id to their positions, in log order, a
bounded number of pages per read: the cursor it is given then points past what was fetched, and
its next read goes on from there. Entries Salesforce does not keep in the transcript (typing
indicators, receipts, queue positions: `STREAM_ONLY_TYPES`) are not looked for again.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable
from dataclasses import dataclass, field

import structlog

from app.failures import HandoffError, describe
from app.scrt import ScrtClient, ScrtError, chronological
from app.scrt.models import STREAM_ONLY_TYPES, Entry

log = structlog.get_logger(__name__)

HISTORY_ENTRIES = 200
"""Entries a conversation's log keeps in memory unless configured (`HISTORY_ENTRIES`)."""
HISTORY_PAGE = 50
HISTORY_MAX_PAGES = 10
"""Entries-endpoint pages one read fetches of retired history (then it returns, and goes on at
the next read)."""
"""Entries that come on the event stream only: not looked for in the transcript again."""


@dataclass(slots=True)
class Retired:
    """The entries a log let go, in log order (the first is position 0): ids and timestamps only
    (about 16 bytes each, besides the id string that deduplication keeps anyway)."""

    ids: list[str | None] = field(default_factory=list)
    times: array[int] = field(default_factory=lambda: array("q"))

    def add(self, entries: Iterable[Entry]) -> None:
        for entry in entries:
            # An event-only entry keeps its place but is not looked for (None).
            self.ids.append(None if entry.entry_type in STREAM_ONLY_TYPES else entry.identifier)
            self.times.append(entry.transcripted_timestamp or 0)

    def __len__(self) -> int:
        return len(self.ids)


class HistoryUnavailable(HandoffError):
    """Salesforce did not give back retired entries a reader asked for; its cursor stays."""

    def __init__(self, cause: ScrtError | TimeoutError) -> None:
        reason = describe(cause) if isinstance(cause, ScrtError) else "Salesforce did not answer."
        super().__init__(
            "Earlier entries of this chat must be fetched again from Salesforce, and that failed: "
            f"{reason} Read again with the same cursor."
        )


async def fetch_retired(
    client: ScrtClient,
    token: str,
    conversation_id: str,
    retired: Retired,
    start: int,
    *,
    page_size: int = HISTORY_PAGE,
    max_pages: int = HISTORY_MAX_PAGES,
) -> tuple[list[Entry], int]:
    """The retired entries from position `start` on, as Salesforce still has them, in log order;
    and the position the search reached (`len(retired)` unless the page limit stopped it first:
    positions from there on are for the next read)."""
    end = len(retired)
    wanted = {
        identifier: position
        for position in range(start, end)
        if (identifier := retired.ids[position]) is not None
    }
    dated = [t for t in retired.times[start:end] if t]
    if not wanted or not dated:
        if wanted:
            log.warning("history.skipped", reason="undated", skipped=len(wanted))
        return [], end
    newest = max(dated)
    # One millisecond early: whether startTimestamp is inclusive is not documented, and entries
    # seen twice are matched once.
    since = min(dated) - 1
    found: dict[int, Entry] = {}
    pages = 0
    while True:
        page = chronological(
            await client.list_entries(
                token,
                conversation_id,
                limit=page_size,
                start_timestamp=since,
                direction="FromStart",
            )
        )
        pages += 1
        for entry in page:
            position = wanted.get(entry.identifier) if entry.identifier is not None else None
            if position is not None and position not in found:
                found[position] = entry
        last = (page[-1].transcripted_timestamp or 0) if page else 0
        if len(page) < page_size or len(found) == len(wanted) or last > newest:
            if len(found) < len(wanted):
                log.info("history.not_returned", missing=len(wanted) - len(found))
            return _in_order(found, end), end
        # The next page starts a millisecond before this one's last entry (in case more share
        # it and the start is exclusive), or at it when that would not move on.
        following = last - 1 if last - 1 > since else last
        if following <= since:
            # A full page within one millisecond: paging by timestamp cannot get past it. What
            # was found is returned; the rest of the range is skipped.
            log.warning(
                "history.skipped", reason="one_millisecond", skipped=len(wanted) - len(found)
            )
            return _in_order(found, end), end
        since = following
        if pages >= max_pages:
            # Everything dated before `last` was on the pages fetched: the read returns the
            # positions up to the first that may be on a later page (if that leaves none, it
            # pages on).
            reached = start
            while reached < end and (reached in found or retired.times[reached] < last):
                reached += 1
            if reached > start:
                return _in_order(found, reached), reached


def _in_order(found: dict[int, Entry], before: int) -> list[Entry]:
    return [found[position] for position in sorted(found) if position < before]
