"""The operations board: a conversation's state from its log's structured signals, times on a clock
the test moves, the event streams' health, errors and refusals, and the page's long poll."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, cast

from app.admin.board import CONVERSATIONS_KEPT, OperationsBoard
from app.admin.watch import shown_error
from app.delivery import GuestFeed
from app.scrt import ScrtAuthError
from app.transcript import ConversationLog
from tests.test_transcript import change, entry, session

T0 = 1_800_000_000.0
CID = "0a1b2c3d-0000-4000-8000-000000000001"


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def joined(identifier: str, role: str, name: str) -> Any:
    return entry(identifier, "ParticipantChanged", {"entries": [change("add", role, name, name)]})


def board_and_log() -> tuple[OperationsBoard, ConversationLog, Clock]:
    clock = Clock()
    board = OperationsBoard(clock=clock)
    log = ConversationLog(CID.upper())  # Salesforce's ids come in either case
    log.on_change = board.appended
    return board, log, clock


def shown(board: OperationsBoard) -> dict[str, Any]:
    (row,) = board.snapshot()["conversations"]
    return cast(dict[str, Any], row)


def test_a_chat_goes_from_the_bot_through_the_queue_to_an_agent_and_ends_by_the_agent() -> None:
    board, log, clock = board_and_log()
    board.opened(CID)
    assert shown(board)["state"] == "routing" and shown(board)["openedAt"] == T0

    clock.now += 2
    log.append([joined("b", "Chatbot", "Agentforce")])
    assert shown(board)["state"] == "bot"

    clock.now += 3
    log.append([entry("t", "RoutingResult", {"routingType": "Transfer", "failureType": "None"})])
    log.append([entry("q", "QueuePosition", {"position": 2})])
    row = shown(board)
    assert (row["state"], row["queuePosition"], row["waitingSince"]) == ("waiting", 2, T0 + 5)
    assert row["waited"] is None and row["agent"] is None

    clock.now += 40
    log.append([joined("a", "Agent", "Jane Agent")])
    row = shown(board)
    assert (row["state"], row["agent"], row["waited"]) == ("agent", "Jane Agent", 40)
    assert row["queuePosition"] is None

    clock.now += 60
    log.append([entry("e", "SessionStatusChanged", session("Ended", "Agent"))])
    row = shown(board)
    assert (row["state"], row["endedBy"], row["endedAt"]) == ("ended", "agent", T0 + 105)
    assert row["id"] == CID and row["waited"] == 40


def test_who_ended_it_is_named_from_salesforces_role() -> None:
    for role, said in [("EndUser", "customer"), ("Chatbot", "bot"), ("System", "system")]:
        board, log, _ = board_and_log()
        log.append([entry("e", "SessionStatusChanged", session("Ended", role))])
        assert shown(board)["endedBy"] == said, role


def test_a_chat_the_customer_closed_stays_closed_by_the_customer() -> None:
    board, log, clock = board_and_log()
    log.append([joined("a", "Agent", "Jane Agent")])
    clock.now += 5
    board.closed_by_customer(CID)
    # Entries still arriving for it (the stream was open a moment longer) change nothing.
    log.append([entry("x", "SessionStatusChanged", session("Ended", "Agent"))])
    row = shown(board)
    assert (row["state"], row["endedBy"], row["endedAt"]) == ("ended", "customer", T0 + 5)
    assert row["followed"] is False


@dataclass
class FakeFeed:
    """What the board reads of a feed."""

    stream_connected: bool = True
    error: Exception | None = None
    logs: dict[str, ConversationLog] = field(default_factory=dict)

    def __hash__(self) -> int:
        return id(self)


def test_event_streams_are_counted_with_their_reconnects_and_last_failure() -> None:
    board, log, clock = board_and_log()
    up, down, broken = FakeFeed(), FakeFeed(stream_connected=False), FakeFeed(False)
    broken.error = ScrtAuthError(status=401, message="")
    for feed in (up, down, broken):
        board.feed_opened(cast(GuestFeed, feed))
        board.stream_opened(cast(GuestFeed, feed), 1)
    clock.now += 10
    board.stream_opened(cast(GuestFeed, down), 2)
    board.stream_stopped(cast(GuestFeed, broken), ScrtAuthError(status=401, message=""))
    health = board.snapshot()["salesforce"]
    assert (health["streams"], health["connected"], health["reconnecting"]) == (3, 1, 1)
    assert (health["stopped"], health["opens"], health["reconnects"]) == (1, 4, 1)
    assert health["lastReconnectAt"] == T0 + 10
    assert health["lastStop"] == {"at": T0 + 10, "error": "ScrtAuthError"}

    log.append([joined("a", "Agent", "Jane Agent")])
    up.logs[CID] = log
    board.feed_closed(cast(GuestFeed, up))
    assert board.snapshot()["salesforce"]["streams"] == 2
    assert shown(board)["followed"] is False  # its stream is no longer held here


def test_errors_and_refusals_are_kept_newest_first_and_bounded() -> None:
    board = OperationsBoard(clock=Clock())
    for n in range(60):
        board.tool_called("send_message", f"failure {n}")
        board.refused("RATE_LIMIT_PER_USER", "create_conversation")
    board.tool_called("list_conversation_entries", None)
    board.refused("MAX_SESSIONS", None)
    snapshot = board.snapshot()
    assert snapshot["calls"] == {"total": 61, "errors": 60}
    assert len(snapshot["errors"]) == 50 and snapshot["errors"][0]["text"] == "failure 59"
    assert snapshot["refusals"][0] == {"at": T0, "limit": "MAX_SESSIONS", "tool": None}
    assert snapshot["refusalCounts"] == {"RATE_LIMIT_PER_USER": 60, "MAX_SESSIONS": 1}


def test_old_and_ended_conversations_make_room_first() -> None:
    clock = Clock()
    board = OperationsBoard(forget_after=3600, clock=clock)
    board.opened("stale")
    clock.now += 3601
    for n in range(CONVERSATIONS_KEPT - 1):
        board.opened(f"open-{n}")
    board.closed_by_customer("open-0")
    board.opened("one-more")
    ids = {row["id"] for row in board.snapshot()["conversations"]}
    assert "stale" not in ids and "open-0" in ids and "one-more" in ids
    board.opened("and-another")
    ids = {row["id"] for row in board.snapshot()["conversations"]}
    assert len(ids) == CONVERSATIONS_KEPT
    assert "open-0" not in ids and "open-1" in ids  # the ended one went before any open one


async def test_the_long_poll_wakes_on_a_change_and_gives_up_after_its_time() -> None:
    board = OperationsBoard()
    version = board.version
    assert await board.changed(board.tag, version - 1, 0) is True  # already moved on: no wait
    waiter = asyncio.ensure_future(board.changed(board.tag, version, 30))
    await asyncio.sleep(0)  # the waiter is waiting
    assert not waiter.done()
    board.refused("MAX_SESSIONS", None)
    assert await asyncio.wait_for(waiter, 5) is True
    assert await board.changed(board.tag, board.version, 0.01) is False


def test_a_schema_refusal_is_shown_by_field_and_type_without_the_values() -> None:
    text = (
        "Error executing tool send_message: 2 validation errors for send_messageArguments\n"
        "text\n"
        "  String should have at most 8000 characters [type=string_too_long, "
        "input_value='my card number is 4111', input_type=str]\n"
        "    For further information visit https://errors.pydantic.dev/2.14/v/string_too_long\n"
        "clientMessageId\n"
        "  String should match pattern '^[A-Za-z0-9._:-]{1,100}$' [type=string_pattern_mismatch,"
        " input_value='secret handle', input_type=str]\n"
    )
    assert shown_error(text) == (
        "Error executing tool send_message: arguments refused by the input schema: "
        "text (string_too_long), clientMessageId (string_pattern_mismatch)"
    )
    plain = "Error executing tool send_message: This chat was closed."
    assert shown_error(plain) == plain
    assert len(shown_error("x" * 2000)) == 500


def test_after_a_transfer_the_row_waits_afresh_without_the_last_agent() -> None:
    board, log, clock = board_and_log()
    board.opened(CID)
    clock.now += 5
    log.append([entry("q", "QueuePosition", {"position": 1})])
    clock.now += 40
    log.append([joined("a", "Agent", "Jane Agent")])
    assert (shown(board)["agent"], shown(board)["waited"]) == ("Jane Agent", 40)

    # Jane transfers the chat: she leaves, and it waits in a queue again.
    clock.now += 100
    left = change("remove", "Agent", "Jane Agent", "Jane Agent")
    log.append([entry("l", "ParticipantChanged", {"entries": [left]})])
    log.append([entry("t", "RoutingResult", {"routingType": "Transfer", "failureType": "None"})])
    row = shown(board)
    assert (row["state"], row["agent"], row["waited"]) == ("waiting", None, None)
    assert row["waitingSince"] == T0 + 145

    clock.now += 7
    log.append([entry("q2", "QueuePosition", {"position": 3})])
    assert shown(board)["waitingSince"] == T0 + 145  # the same wait, further on
    clock.now += 13
    log.append([joined("b", "Agent", "Ravi Agent")])
    row = shown(board)
    assert (row["state"], row["agent"], row["waited"]) == ("agent", "Ravi Agent", 20)


async def test_a_version_of_another_process_waits_for_a_change_here() -> None:
    """Processes count their versions apart: a page whose last poll another process answered
    waits here too, rather than answering at once every time and polling in a loop."""
    here, elsewhere = OperationsBoard(), OperationsBoard()
    elsewhere.refused("MAX_SESSIONS", None)
    tag, version = elsewhere.version_token.split(".")
    assert (tag, int(version)) == (elsewhere.tag, 1) and tag != here.tag
    waiter = asyncio.ensure_future(here.changed(tag, int(version), 30))
    await asyncio.sleep(0)  # the waiter is waiting
    assert not waiter.done()
    here.refused("MAX_SESSIONS", None)
    assert await asyncio.wait_for(waiter, 5) is True
