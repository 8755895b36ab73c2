"""The conversation view and the reader-facing entries, from structured signals only."""

from __future__ import annotations

from typing import Any

from app.scrt import Entry
from app.transcript import ConversationLog, present


def entry(identifier: str, entry_type: str, payload: dict[str, Any], role: str = "System") -> Entry:
    return Entry.from_rest(
        {
            "identifier": identifier,
            "entryType": entry_type,
            "entryPayload": {"entryType": entry_type, "id": identifier, **payload},
            "sender": {"role": role, "subject": "x"},
            "senderDisplayName": "Automated Process",
            "transcriptedTimestamp": 1000 + len(identifier),
        }
    )


def change(op: str, role: str, name: str, subject: str) -> dict[str, Any]:
    return {
        "operation": op,
        "displayName": name,
        "participant": {"role": role, "appType": "agent", "subject": subject},
    }


def session(status: str, ended_by: str | None = None) -> dict[str, Any]:
    payload: dict[str, Any] = {"sessionStatus": status, "sessionId": "0Mw1"}
    if ended_by:
        payload["sessionEndedByRole"] = ended_by
    return payload


def test_every_change_of_a_participant_entry_is_shown() -> None:
    swap = entry(
        "e1",
        "ParticipantChanged",
        {
            "entries": [
                change("remove", "Agent", "Ann", "005A"),
                change("add", "Agent", "Bob", "005B"),
            ]
        },
    )
    shown = present(swap)
    assert [(s.kind, s.name) for s in shown] == [("left", "Ann"), ("joined", "Bob")]
    assert len({s.id for s in shown}) == 2


def test_agent_to_agent_transfer_keeps_a_live_agent() -> None:
    log = ConversationLog("c")
    log.append(
        [entry("a", "ParticipantChanged", {"entries": [change("add", "Agent", "Ann", "005A")]})]
    )
    log.append([entry("t", "RoutingResult", {"routingType": "Transfer", "failureType": "None"})])
    log.append(
        [entry("r", "ParticipantChanged", {"entries": [change("remove", "Agent", "Ann", "005A")]})]
    )
    assert log.view.role_info().transferring and not log.view.role_info().isLiveAgent
    log.append(
        [entry("b", "ParticipantChanged", {"entries": [change("add", "Agent", "Bob", "005B")]})]
    )
    info = log.view.role_info()
    assert info.isLiveAgent and info.agentName == "Bob" and not info.transferring


def test_a_session_end_without_removals_still_clears_who_is_on() -> None:
    log = ConversationLog("c")
    log.append(
        [entry("a", "ParticipantChanged", {"entries": [change("add", "Agent", "Ann", "005A")]})]
    )
    log.append([entry("e", "SessionStatusChanged", session("Ended", "EndUser"))])
    assert log.view.role_info().conversationEnded
    log.append([entry("n", "SessionStatusChanged", session("Active"))])
    info = log.view.role_info()
    assert not info.isLiveAgent and info.agentName is None and not info.conversationEnded


def test_ended_by_agent_and_close_come_from_signals() -> None:
    log = ConversationLog("c")
    log.append([entry("e", "SessionStatusChanged", session("Ended", "Agent"))])
    assert log.view.role_info().endedByAgent
    log.append([entry("x", "CloseConversation", {"conversationIdentifier": "c"})])
    assert log.view.role_info().conversationClosed


def test_duplicates_are_appended_once() -> None:
    log = ConversationLog("c")
    e = entry("m", "SessionStatusChanged", session("Active"))
    assert log.append([e, e]) == 1
    assert log.append([e]) == 0
