"""The conversation log under every interleaving of live events, drops, reconnects and fetches:
readers never see an entry twice or a later one before an earlier one, and nothing is lost."""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from app.scrt import Entry
from app.transcript import ConversationLog


def message(n: int) -> Entry:
    return Entry.from_rest(
        {
            "identifier": f"e{n}",
            "entryType": "Message",
            "entryPayload": {
                "entryType": "Message",
                "id": f"e{n}",
                "abstractMessage": {
                    "messageType": "StaticContentMessage",
                    "id": f"e{n}",
                    "staticContent": {"formatType": "Text", "text": f"message {n}"},
                },
            },
            "sender": {"role": "Agent", "subject": "005"},
            "senderDisplayName": "Jane",
            "transcriptedTimestamp": 1_000 + n,
        }
    )


def ids(log: ConversationLog) -> list[str]:
    return [e.identifier or "" for e in log.entries]


@dataclass
class Salesforce:
    """What Salesforce has, and an event stream that may be up or down."""

    entries: list[Entry] = field(default_factory=list)
    stream_up: bool = True

    def since(self, timestamp: int) -> list[Entry]:
        # The entries endpoint: from a timestamp on, inclusive, oldest first.
        return [e for e in self.entries if (e.transcripted_timestamp or 0) >= timestamp]


OPS = st.lists(
    st.sampled_from(
        ["say", "say", "say", "drop", "reopen", "fetch", "slow_fetch", "fetch_across_a_reconnect"]
    ),
    max_size=60,
)


@settings(max_examples=400, deadline=None)
@given(OPS)
def test_entries_stay_in_order_once_each_and_complete_whatever_happens(ops: list[str]) -> None:
    sf = Salesforce()
    log = ConversationLog("c")

    def say() -> None:
        entry = message(len(sf.entries))
        sf.entries.append(entry)
        if sf.stream_up:
            log.live(entry)

    def reopen() -> None:
        sf.stream_up = True
        log.gap()

    def fetch(interleaved: int, reconnect: bool = False) -> None:
        # The page is asked for now; entries are said (and the stream may drop and come back)
        # before its answer lands.
        with log.fetching():
            gaps = log.gaps
            page = sf.since(log.last_timestamp)
            if reconnect:
                sf.stream_up = False
                say()
                reopen()
            for _ in range(interleaved):
                say()
            log.append(page)
            log.fetched_all(gaps)

    for op in ops:
        if op == "say":
            say()
        elif op == "drop":
            sf.stream_up = False
        elif op == "reopen":
            reopen()
        elif op == "fetch":
            fetch(0)
        elif op == "slow_fetch":
            fetch(2)
        else:
            fetch(1, reconnect=True)
        # Never twice, never out of order.
        assert len(set(ids(log))) == len(log.entries)
        stamps = [e.transcripted_timestamp or 0 for e in log.entries]
        assert stamps == sorted(stamps)
        # Nothing is missing from a log that says it is complete.
        if log.synced and sf.stream_up:
            assert ids(log) == [e.identifier for e in sf.entries]

    reopen()
    fetch(0)
    assert ids(log) == [e.identifier for e in sf.entries]


def test_live_entries_wait_for_the_fetch_that_fills_the_gap_before_them() -> None:
    log = ConversationLog("c")
    log.gap()
    log.live(message(3))
    log.live(message(2))
    assert log.entries == [] and log.has("e3")
    with log.fetching():
        log.append([message(0), message(1), message(2)])
        log.fetched_all(log.gaps)
        assert ids(log) == ["e0", "e1", "e2"]  # held until the fetch is over
    assert ids(log) == ["e0", "e1", "e2", "e3"]


def test_a_reconnect_during_a_fetch_leaves_the_gap_open() -> None:
    log = ConversationLog("c")
    with log.fetching():
        asked = log.gaps
        log.gap()  # the stream reopened while the page was on its way
        log.live(message(5))
        log.append([message(0)])
        log.fetched_all(asked)
    assert not log.synced and ids(log) == ["e0"]
    with log.fetching():
        log.append([message(0), message(4), message(5)])
        log.fetched_all(log.gaps)
    assert ids(log) == ["e0", "e4", "e5"]
