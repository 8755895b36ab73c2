"""Bounded history (app/history.py): a log keeps its newest entries, and a reader at a retired
position gets the entries from there on fetched again, each once, in log order, page by page."""

from __future__ import annotations

from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from app.history import Retired, fetch_retired
from app.scrt import Entry
from app.transcript import ConversationLog


def message(identifier: str, timestamp: int) -> Entry:
    content = {"formatType": "Text", "text": f"text of {identifier}"}
    payload = {"abstractMessage": {"messageType": "StaticContentMessage", "staticContent": content}}
    return Entry.from_rest(
        {
            "entryType": "Message",
            "entryPayload": {"entryType": "Message", **payload},
            "sender": {"role": "Agent", "subject": "agent"},
            "senderDisplayName": "Ann",
            "identifier": identifier,
            "transcriptedTimestamp": timestamp,
        }
    )


class Transcript:
    """The entries endpoint over a conversation's stored entries: FromStart, `limit` entries,
    `startTimestamp` inclusive as the simulator has it, or exclusive (Salesforce does not say)."""

    def __init__(self, entries: list[Entry], *, inclusive: bool = True) -> None:
        self.entries = sorted(entries, key=lambda e: e.transcripted_timestamp or 0)
        self.inclusive = inclusive
        self.calls = 0

    async def list_entries(
        self, token: str, conversation_id: str, *, limit: int, start_timestamp: int, **_: Any
    ) -> list[Entry]:
        self.calls += 1
        assert self.calls < 1000, "paging does not end"
        first = start_timestamp if self.inclusive else start_timestamp + 1
        selected = [e for e in self.entries if (e.transcripted_timestamp or 0) >= first]
        return selected[:limit]


def log_of(entries: list[Entry], keep: int) -> ConversationLog:
    log = ConversationLog("c", keep)
    for entry in entries:
        log.append([entry])
    return log


def texts(entries: list[Entry]) -> list[str | None]:
    return [e.text for e in entries]


def test_a_log_keeps_its_newest_entries_and_the_positions_of_the_rest() -> None:
    entries = [message(f"m{n}", 1000 + n) for n in range(5)]
    log = log_of(entries, keep=3)
    assert [e.identifier for e in log.entries] == ["m2", "m3", "m4"]
    assert log.retired.ids == ["m0", "m1"]
    assert log.position == 5
    # A reader past the retired ones reads from memory, at the same positions as before.
    assert [e.text for e in log.after(3, include_live=False)] == ["text of m3", "text of m4"]
    # A retired entry coming again (a replay, a fetch) is still a duplicate.
    assert log.append([message("m0", 1000)]) == 0
    assert log.has("m0")
    assert log.position == 5


async def test_a_reader_at_a_retired_position_gets_the_rest_in_order_page_by_page() -> None:
    entries = [message(f"m{n}", 1000 + n) for n in range(12)]
    log = log_of(entries, keep=2)
    assert len(log.retired) == 10
    transcript = Transcript(entries)
    cursor, reads, got = 3, [], []
    while cursor < len(log.retired):
        transcript.calls = 0
        older, cursor = await fetch_retired(
            transcript,  # type: ignore[arg-type]
            "tok",
            "c",
            log.retired,
            cursor,
            page_size=3,
            max_pages=2,
        )
        assert transcript.calls <= 2  # the page limit holds for each read
        reads.append(cursor)
        got += texts(older)
    assert got == [f"text of m{n}" for n in range(3, 10)]
    assert len(reads) > 1 and reads[-1] == 10  # it took several reads, and ended at the last


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.integers(min_value=0, max_value=40), min_size=1, max_size=60),
    st.integers(min_value=1, max_value=20),
    st.integers(min_value=2, max_value=8),
    st.integers(min_value=1, max_value=4),
    st.booleans(),
    st.integers(min_value=0, max_value=60),
)
# Entries sharing the last millisecond of a full page, some on the next page: with an exclusive
# start the next page must begin a millisecond early; when the page limit stops a read, the
# millisecond of its last entry is not covered yet.
@example(stamps=[0, 1, 2, 2, 9], keep=1, page_size=3, max_pages=4, inclusive=False, start=0)
@example(stamps=[0, 1, 2, 2, 9], keep=1, page_size=3, max_pages=1, inclusive=True, start=0)
async def test_reading_retired_history_to_the_end_gives_each_entry_once_in_log_order(
    stamps: list[int],
    keep: int,
    page_size: int,
    max_pages: int,
    inclusive: bool,
    start: int,
) -> None:
    # Entries arrive in any timestamp order (live entries come as they come); no more share a
    # millisecond than a page holds, or paging by timestamp could not get past them.
    stamps = [1000 + s for s in stamps]
    if max(stamps.count(s) for s in stamps) >= page_size:
        return
    entries = [message(f"m{n}", stamp) for n, stamp in enumerate(stamps)]
    log = log_of(entries, keep=keep)
    transcript = Transcript(entries, inclusive=inclusive)
    start = min(start, len(log.retired))
    cursor = start
    got: list[Entry] = []
    while cursor < len(log.retired):
        older, reached = await fetch_retired(
            transcript,  # type: ignore[arg-type]
            "tok",
            "c",
            log.retired,
            cursor,
            page_size=page_size,
            max_pages=max_pages,
        )
        assert reached > cursor  # every read moves on
        got += older
        cursor = reached
    assert [e.identifier for e in got] == log.retired.ids[start:]


async def test_a_full_page_within_one_millisecond_ends_the_read_instead_of_paging_forever() -> None:
    # Paging by timestamp cannot get past more entries in one millisecond than a page holds:
    # the read returns what it found and ends (the rest of the range is skipped, not retried).
    entries = [message(f"m{n}", 1000) for n in range(4)]
    log = log_of(entries, keep=1)
    transcript = Transcript(entries)
    older, reached = await fetch_retired(
        transcript,  # type: ignore[arg-type]
        "tok",
        "c",
        log.retired,
        0,
        page_size=2,
        max_pages=10,
    )
    assert [e.identifier for e in older] == ["m0", "m1"]
    assert reached == len(log.retired) == 3


def test_retired_keeps_ids_and_times_in_log_order_and_no_id_for_event_only_entries() -> None:
    typing = Entry.from_rest(
        {
            "entryType": "TypingStartedIndicator",
            "entryPayload": {"entryType": "TypingStartedIndicator"},
            "sender": {"role": "Agent", "subject": "agent"},
            "identifier": "t",
            "transcriptedTimestamp": 4,
        }
    )
    retired = Retired()
    retired.add([message("a", 5), typing, message("b", 3)])
    # The typing indicator keeps its place, but is not looked for in the transcript.
    assert retired.ids == ["a", None, "b"]
    assert list(retired.times) == [5, 4, 3]
    assert len(retired) == 3
