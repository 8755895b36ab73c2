"""What a reader (the model, the widget) gets from a conversation's log: the shape of every kind
of entry, the state folded from structured signals, reads after a cursor, live entries held until
a fetch has filled the gap before them, and the wait for something new."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from app.scrt import Entry
from app.transcript import ConversationLog, present


def entry(
    entry_type: str,
    payload: dict[str, Any] | None = None,
    *,
    identifier: str | None = "e1",
    role: str = "System",
    name: str = "Automated Process",
    timestamp: int | None = 1000,
) -> Entry:
    raw: dict[str, Any] = {
        "entryType": entry_type,
        "entryPayload": {"entryType": entry_type, **(payload or {})},
        "sender": {"role": role, "subject": f"{role}-subject"},
        "senderDisplayName": name,
    }
    if identifier is not None:
        raw["identifier"] = identifier
    if timestamp is not None:
        raw["transcriptedTimestamp"] = timestamp
    return Entry.from_rest(raw)


def message(
    text: str | None,
    *,
    identifier: str = "m1",
    role: str = "Agent",
    name: str = "Ann",
    timestamp: int | None = 1000,
    attachments: list[dict[str, Any]] | None = None,
) -> Entry:
    content: dict[str, Any] = {"formatType": "Text"}
    if text is not None:
        content["text"] = text
    if attachments is not None:
        content["attachments"] = attachments
    payload = {"abstractMessage": {"messageType": "StaticContentMessage", "staticContent": content}}
    return entry(
        "Message", payload, identifier=identifier, role=role, name=name, timestamp=timestamp
    )


def choices_message(options: list[dict[str, Any]]) -> Entry:
    payload = {
        "abstractMessage": {
            "messageType": "ChoicesMessage",
            "choices": {"formatType": "Buttons", "text": "Pick one", "optionItems": options},
        }
    }
    return entry("Message", payload, identifier="c1", role="Chatbot", name="Bot")


def option(identifier: str, title: str | None) -> dict[str, Any]:
    item: dict[str, Any] = {"optionIdentifier": identifier}
    if title is not None:
        item["titleItem"] = {"title": title}
    return item


def participants(
    *changes: tuple[str, str, str, str | None], identifier: str = "p1", timestamp: int = 1000
) -> Entry:
    """`changes`: (operation, role, display name, subject or None)."""
    items = []
    for operation, role, name, subject in changes:
        participant = {"role": role, "appType": "agent"}
        if subject is not None:
            participant["subject"] = subject
        items.append({"operation": operation, "displayName": name, "participant": participant})
    return entry(
        "ParticipantChanged", {"entries": items}, identifier=identifier, timestamp=timestamp
    )


def routing(
    routing_type: str,
    failure_type: str | None = None,
    reason: str | None = None,
    identifier: str = "r1",
) -> Entry:
    payload: dict[str, Any] = {"routingType": routing_type}
    if failure_type is not None:
        payload["failureType"] = failure_type
    if reason is not None:
        payload["failureReason"] = reason
    return entry("RoutingResult", payload, identifier=identifier)


def session(status: str, ended_by: str | None = None, identifier: str = "s1") -> Entry:
    payload: dict[str, Any] = {"sessionStatus": status, "sessionId": "0Mw1"}
    if ended_by is not None:
        payload["sessionEndedByRole"] = ended_by
    return entry("SessionStatusChanged", payload, identifier=identifier)


def typing(kind: str, role: str = "Agent", identifier: str | None = "t1") -> Entry:
    return entry(f"Typing{kind}Indicator", {}, identifier=identifier, role=role, name="Ann")


def queue(position: int) -> Entry:
    return entry("QueuePosition", {"position": position}, identifier=f"q{position}")


def close() -> Entry:
    return entry("CloseConversation", {}, identifier="close")


def receipt(identifier: str = "ack") -> Entry:
    return entry(
        "DeliveryAcknowledgement",
        {"acknowledgedConversationEntryIdentifier": "m1"},
        identifier=identifier,
    )


def texts(log: ConversationLog, cursor: int = 0) -> list[str | None]:
    return [shown.text for shown in log.after(cursor, include_live=False)]


def synced_log() -> ConversationLog:
    """A log whose gap has been filled: live entries are appended at once."""
    log = ConversationLog("c")
    with log.fetching():
        log.fetched_all(log.gaps)
    return log


# The reader-facing shape of each entry.


def test_a_message_shows_who_sent_it_what_they_said_and_when() -> None:
    [shown] = present(message("Hello", identifier="m7", role="Agent", name="Ann", timestamp=1234))

    assert shown.model_dump(exclude_none=True) == {
        "id": "m7",
        "kind": "message",
        "role": "Agent",
        "name": "Ann",
        "text": "Hello",
        "timestamp": 1234,
    }


def test_an_entry_without_an_identifier_is_shown_with_an_empty_id() -> None:
    [shown] = present(message("Hi", identifier="", timestamp=None))
    [closed] = present(entry("CloseConversation", {}, identifier=None))

    assert (shown.id, shown.timestamp) == ("", None)
    assert closed.id == ""


def test_a_choices_message_offers_its_titled_options_by_id_and_title() -> None:
    [shown] = present(
        choices_message([option("o1", "Yes"), option("o2", None), option("o3", "No")])
    )

    assert shown.text == "Pick one"
    assert [(c.id, c.title) for c in shown.choices or []] == [("o1", "Yes"), ("o3", "No")]


def test_a_choices_message_without_titled_options_offers_no_choices() -> None:
    [shown] = present(choices_message([option("o1", None)]))

    assert shown.choices is None
    assert present(message("plain"))[0].choices is None


def test_a_message_with_only_attachments_is_shown_as_its_files() -> None:
    files = [
        {"id": "f1", "name": "invoice.pdf", "mimeType": "application/pdf", "url": "https://x/f1"},
        {"id": "f2", "url": "javascript:alert(1)"},
    ]

    [shown] = present(message(None, attachments=files))

    assert shown.kind == "message" and shown.text is None
    assert [f.model_dump() for f in shown.files or []] == [
        {"name": "invoice.pdf", "mimeType": "application/pdf", "url": "https://x/f1"},
        # Only http(s) addresses are offered to open.
        {"name": None, "mimeType": None, "url": None},
    ]


def test_a_message_with_text_and_attachments_shows_both() -> None:
    [shown] = present(message("See attached", attachments=[{"id": "f1", "name": "a.pdf"}]))

    assert shown.text == "See attached"
    assert [f.name for f in shown.files or []] == ["a.pdf"]


def test_a_message_with_nothing_this_server_can_show_is_a_neutral_line() -> None:
    [shown] = present(message(None))

    assert (shown.kind, shown.role, shown.text) == (
        "unsupported",
        "Agent",
        "StaticContentMessage (Text)",
    )


def test_each_change_of_a_participant_entry_gets_its_own_id_role_and_name() -> None:
    swap = participants(
        ("remove", "Agent", "Ann", "005A"),
        ("add", "Agent", "Bob", "005B"),
        ("add", "Chatbot", "Bot", None),
        identifier="p9",
        timestamp=2000,
    )

    shown = present(swap)

    assert [(s.id, s.kind, s.role, s.name, s.timestamp) for s in shown] == [
        ("p9", "left", "Agent", "Ann", 2000),
        ("p9#1", "joined", "Agent", "Bob", 2000),
        ("p9#2", "joined", "Chatbot", "Bot", 2000),
    ]


def test_a_participant_entry_without_changes_shows_nothing() -> None:
    assert present(entry("ParticipantChanged", {"entries": []})) == []


def test_a_failed_routing_is_shown_with_its_reason() -> None:
    [shown] = present(routing("Transfer", "NoAgentAvailable", "Nobody is online"))

    assert (shown.kind, shown.role, shown.text) == ("routing_failed", "System", "Nobody is online")


def test_a_routing_is_shown_as_a_transfer_only_when_it_is_one() -> None:
    [transfer] = present(routing("Transfer", "None"))
    [initial] = present(routing("Initial"))

    assert (transfer.kind, transfer.role, transfer.text) == ("transfer", "System", None)
    assert (initial.kind, initial.role) == ("routed", "System")


def test_a_queue_position_is_shown_with_the_position() -> None:
    [shown] = present(queue(3))

    assert (shown.kind, shown.role, shown.position) == ("queue_position", "System", 3)


def test_session_changes_show_a_start_and_an_end_with_who_ended_it() -> None:
    [ended] = present(session("Ended", "Agent"))
    [started] = present(session("Active"))

    assert (ended.kind, ended.role, ended.endedBy) == ("session_ended", "System", "Agent")
    assert (started.kind, started.role) == ("session_started", "System")
    assert present(session("Waiting")) == []


def test_a_closed_conversation_is_shown() -> None:
    [shown] = present(close())

    assert (shown.kind, shown.role) == ("conversation_closed", "System")


def test_typing_is_shown_with_who_is_typing() -> None:
    [started] = present(typing("Started"))
    [stopped] = present(typing("Stopped"))

    assert (started.kind, started.role, started.name) == ("typing_started", "Agent", "Ann")
    assert (stopped.kind, stopped.role, stopped.name) == ("typing_stopped", "Agent", "Ann")


# Who is on the other side, from structured signals.


def test_the_most_recent_sender_is_the_bot_or_agent_not_the_user() -> None:
    log = ConversationLog("c")
    log.append([message("Hi, I am the bot", identifier="b", role="Chatbot", name="Bot")])
    log.append([message("I need help", identifier="u", role="EndUser", name="Guest")])

    info = log.view.role_info()
    assert (info.mostRecentSenderRole, info.mostRecentSenderName) == ("Chatbot", "Bot")

    log.append([message("Ann here", identifier="a", role="Agent", name="Ann")])

    info = log.view.role_info()
    assert (info.mostRecentSenderRole, info.mostRecentSenderName) == ("Agent", "Ann")


def test_agent_typing_shows_until_the_agent_sends_or_stops() -> None:
    log = ConversationLog("c")
    log.append([typing("Started", identifier="t1")])
    assert log.view.role_info().agentTyping

    log.append([message("bot aside", identifier="b", role="Chatbot")])
    assert log.view.role_info().agentTyping

    log.append([message("Here is the answer", identifier="a", role="Agent")])
    assert not log.view.role_info().agentTyping

    log.append([typing("Started", identifier="t2"), typing("Stopped", identifier="t3")])
    assert not log.view.role_info().agentTyping


def test_only_the_agent_typing_counts_as_agent_typing() -> None:
    log = ConversationLog("c")
    log.append(
        [typing("Started", role="Chatbot"), typing("Started", role="EndUser", identifier="u")]
    )

    assert not log.view.role_info().agentTyping


def test_an_agent_who_leaves_stops_typing() -> None:
    log = ConversationLog("c")
    log.append([participants(("add", "Agent", "Ann", "005A"), identifier="j")])
    log.append([typing("Started")])
    log.append([participants(("remove", "Chatbot", "Bot", "bot"), identifier="b")])
    assert log.view.role_info().agentTyping

    log.append([participants(("remove", "Agent", "Ann", "005A"), identifier="l")])

    info = log.view.role_info()
    assert not info.agentTyping and not info.isLiveAgent and info.agentName is None


def test_participants_without_a_subject_are_told_apart_by_role_and_name() -> None:
    log = ConversationLog("c")
    log.append([participants(("add", "Agent", "Ann", None), ("add", "Agent", "Bob", None))])
    log.append([participants(("remove", "Agent", "Ann", None), identifier="p2")])

    info = log.view.role_info()
    assert info.isLiveAgent and info.agentName == "Bob"

    log.append([participants(("remove", "Agent", "Bob", None), identifier="p3")])
    assert not log.view.role_info().isLiveAgent


def test_an_agent_without_a_display_name_is_live_but_unnamed() -> None:
    log = ConversationLog("c")
    log.append([participants(("add", "Agent", "", "005A"))])

    info = log.view.role_info()
    assert info.isLiveAgent and not info.agentName


def test_the_agent_name_is_the_agents_even_with_the_bot_still_on() -> None:
    log = ConversationLog("c")
    log.append([participants(("add", "Chatbot", "Bot", "bot"), ("add", "Agent", "Ann", "005A"))])

    info = log.view.role_info()
    assert info.isLiveAgent and info.agentName == "Ann"


def test_a_transfer_waits_in_the_queue_until_an_agent_joins() -> None:
    log = ConversationLog("c")
    log.append([routing("Transfer", "None"), queue(2)])
    info = log.view.role_info()
    assert info.transferring and info.queuePosition == 2 and not info.isLiveAgent

    log.append([participants(("add", "Chatbot", "Helper bot", "bot2"), identifier="bot")])
    info = log.view.role_info()
    assert info.transferring and info.queuePosition == 2

    log.append([participants(("add", "Agent", "Ann", "005A"), identifier="agent")])
    info = log.view.role_info()
    assert not info.transferring and info.queuePosition is None and info.agentName == "Ann"


def test_a_transfer_without_a_failure_type_is_under_way() -> None:
    log = ConversationLog("c")
    log.append([routing("Transfer")])

    assert log.view.role_info().transferring


def test_a_failed_or_initial_routing_is_no_transfer() -> None:
    log = ConversationLog("c")
    log.append([routing("Transfer", "None", identifier="r1")])
    log.append([routing("Transfer", "NoAgentAvailable", "nobody", identifier="r2")])
    assert not log.view.role_info().transferring

    log.append([routing("Transfer", "None", identifier="r3")])
    assert log.view.role_info().transferring
    log.append([routing("Initial", "None", identifier="r4")])
    assert not log.view.role_info().transferring


def test_a_session_end_clears_the_agent_the_queue_and_typing() -> None:
    log = ConversationLog("c")
    log.append([routing("Transfer", "None"), queue(1)])
    log.append([participants(("add", "Agent", "Ann", "005A")), typing("Started")])
    log.append([routing("Transfer", "None", identifier="r2"), queue(4)])  # a second transfer

    log.append([session("Ended", "Agent")])

    info = log.view.role_info()
    assert info.conversationEnded and info.endedByAgent and not info.conversationClosed
    assert not info.isLiveAgent and info.agentName is None
    assert not info.transferring and info.queuePosition is None and not info.agentTyping


def test_a_session_ended_by_the_user_is_not_ended_by_the_agent() -> None:
    log = ConversationLog("c")
    log.append([session("Ended", "EndUser")])

    info = log.view.role_info()
    assert info.conversationEnded and not info.endedByAgent


@pytest.mark.parametrize("status", ["Active", "Waiting", "New"])
def test_a_session_that_starts_again_is_no_longer_ended(status: str) -> None:
    log = ConversationLog("c")
    log.append([session("Ended", "Agent", identifier="end")])
    log.append([session(status, identifier="again")])

    info = log.view.role_info()
    assert not info.conversationEnded and not info.endedByAgent


def test_a_session_status_other_than_start_or_end_changes_nothing() -> None:
    log = ConversationLog("c")
    log.append([session("Ended", "Agent", identifier="end")])
    log.append([session("Inactive", identifier="other")])

    info = log.view.role_info()
    assert info.conversationEnded and info.endedByAgent


def test_closing_ends_the_conversation_and_keeps_who_ended_the_session() -> None:
    by_user = ConversationLog("c")
    by_user.append([close()])
    info = by_user.view.role_info()
    assert info.conversationClosed and info.conversationEnded and not info.endedByAgent

    by_agent = ConversationLog("c")
    by_agent.append([session("Ended", "Agent"), close()])
    info = by_agent.view.role_info()
    assert info.conversationClosed and info.endedByAgent


# The log: appends, reads after a cursor, waiting.


def test_append_counts_what_was_new() -> None:
    log = ConversationLog("c")

    assert log.append([message("a", identifier="1"), message("b", identifier="2")]) == 2
    assert log.append([message("a", identifier="1"), message("c", identifier="3")]) == 1
    assert log.append([message("a", identifier="1")]) == 0
    assert log.position == 3


def test_entries_without_an_identifier_are_all_kept() -> None:
    log = ConversationLog("c")

    assert log.append([typing("Started", identifier=None), typing("Stopped", identifier=None)]) == 2
    assert log.append([typing("Started", identifier=None)]) == 1
    assert log.position == 3


def test_the_last_timestamp_is_the_newest_non_typing_entry() -> None:
    log = ConversationLog("c")
    log.append([message("new", identifier="n", timestamp=3000)])
    log.append([message("old", identifier="o", timestamp=2000)])
    log.append([message("undated", identifier="u", timestamp=None)])
    log.append([entry("TypingStartedIndicator", {}, identifier="t", role="Agent", timestamp=9000)])

    assert log.last_timestamp == 3000


def test_a_read_skips_receipts_but_not_what_follows_them() -> None:
    log = ConversationLog("c")
    log.append([message("one", identifier="1"), receipt("r1"), message("two", identifier="2")])

    assert texts(log) == ["one", "two"]
    assert texts(log, 1) == ["two"]
    assert texts(log, 3) == []


def test_typing_is_read_only_when_asked_for_and_never_hides_what_follows() -> None:
    log = ConversationLog("c")
    log.append([message("one", identifier="1"), typing("Started"), message("two", identifier="2")])

    assert texts(log) == ["one", "two"]
    assert [s.kind for s in log.after(0, include_live=True)] == [
        "message",
        "typing_started",
        "message",
    ]


async def test_a_waiting_reader_is_woken_by_an_append() -> None:
    log = ConversationLog("c")
    waiters = [asyncio.create_task(log.wait_for_append(30)) for _ in range(2)]
    await asyncio.sleep(0)

    log.append([message("hi")])

    assert await asyncio.gather(*waiters) == [True, True]


@pytest.mark.looptime
async def test_a_wait_with_nothing_appended_ends_false_at_its_deadline() -> None:
    log = ConversationLog("c")
    log.append([message("hi")])
    loop = asyncio.get_running_loop()
    started = loop.time()

    waiter = asyncio.create_task(log.wait_for_append(5))
    await asyncio.sleep(1)
    log.append([message("hi")])  # a duplicate: nothing new

    async with asyncio.timeout(60):  # virtual seconds: a wait without its deadline fails here
        assert await waiter is False
    assert loop.time() - started == pytest.approx(5)


@pytest.mark.looptime
async def test_a_short_wait_still_sees_an_append() -> None:
    log = ConversationLog("c")
    waiter = asyncio.create_task(log.wait_for_append(0.5))
    await asyncio.sleep(0.2)

    log.append([message("hi")])

    assert await waiter is True


async def test_a_wait_of_no_time_returns_at_once() -> None:
    log = ConversationLog("c")

    assert await log.wait_for_append(0) is False
    assert await log.wait_for_append(-1) is False


# Live entries held until the gap before them is filled.


def test_live_entries_wait_for_the_first_fetch_and_follow_it_in_order() -> None:
    log = ConversationLog("c")
    log.live(message("live later", identifier="l2", timestamp=4000))
    log.live(message("live", identifier="l1", timestamp=3000))

    assert log.has("l1") and log.has("l2") and not log.has("f1")
    assert texts(log) == []

    with log.fetching():
        log.append([message("fetched", identifier="f1", timestamp=2000)])
        log.fetched_all(log.gaps)
        assert texts(log) == ["fetched"]

    assert texts(log) == ["fetched", "live", "live later"]
    assert log.has("f1")


def test_held_entries_without_a_timestamp_come_first_in_arrival_order() -> None:
    log = ConversationLog("c")
    log.live(message("dated", identifier="d", timestamp=5000))
    log.live(message("first undated", identifier="u1", timestamp=None))
    log.live(message("second undated", identifier="u2", timestamp=None))

    with log.fetching():
        log.fetched_all(log.gaps)

    assert texts(log) == ["first undated", "second undated", "dated"]


def test_live_entries_are_held_while_a_fetch_runs_and_released_when_the_last_ends() -> None:
    log = synced_log()
    log.live(message("now", identifier="n", timestamp=1000))
    assert texts(log) == ["now"]

    with log.fetching():
        with log.fetching():
            log.live(message("during", identifier="d", timestamp=3000))
        assert texts(log) == ["now"]
        log.append([message("fetched", identifier="f", timestamp=2000)])
        log.fetched_all(log.gaps)

    assert texts(log) == ["now", "fetched", "during"]


def test_a_fetch_that_stops_short_of_the_newest_entry_keeps_live_entries_held() -> None:
    log = ConversationLog("c")
    log.live(message("live", identifier="l", timestamp=9000))

    with log.fetching():
        log.append([message("page one", identifier="p", timestamp=1000)])

    assert texts(log) == ["page one"]
    assert log.has("l")

    with log.fetching():
        log.fetched_all(log.gaps)
    assert texts(log) == ["page one", "live"]


def test_a_reopened_stream_holds_live_entries_until_the_next_fetch() -> None:
    log = synced_log()
    log.gap()
    log.live(message("after the drop", identifier="a", timestamp=5000))
    assert texts(log) == []

    with log.fetching():
        log.append([message("missed in the drop", identifier="m", timestamp=4000)])
        log.fetched_all(log.gaps)

    assert texts(log) == ["missed in the drop", "after the drop"]


def test_a_fetch_asked_for_before_a_reopen_leaves_live_entries_held() -> None:
    log = ConversationLog("c")
    log.live(message("live", identifier="l", timestamp=5000))

    with log.fetching():
        asked_at = log.gaps  # the last page is asked for, then the stream reopens
        log.gap()
        log.append([message("fetched", identifier="f", timestamp=1000)])
        log.fetched_all(asked_at)

    assert texts(log) == ["fetched"]
    assert not log.synced

    with log.fetching():
        log.fetched_all(log.gaps)
    assert texts(log) == ["fetched", "live"]


async def test_releasing_held_entries_wakes_a_waiting_reader() -> None:
    log = ConversationLog("c")
    log.live(message("live", identifier="l", timestamp=2000))
    waiter = asyncio.create_task(log.wait_for_append(30))
    await asyncio.sleep(0)

    with log.fetching():
        log.fetched_all(log.gaps)

    assert await waiter is True
