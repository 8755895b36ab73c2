"""Entries are kept compactly: every conversation's log holds its entries for the conversation's
whole life, thousands of conversations per process (issue 14: ≤ 100 KiB per waiting conversation).
A pydantic model that kept the decoded `raw` envelope and `payload` dicts took about 6,000 bytes per
entry; the slotted dataclass of tuples and shared strings about 730."""

from __future__ import annotations

import gc
import json
import tracemalloc
import uuid
from typing import Any

from app.scrt.events import parse_event
from app.scrt.models import ENTRY_JSON, Entry
from app.scrt.sse import SseFrame
from app.simulator import entries as wire

CONVERSATION = str(uuid.uuid4())
AGENT = wire.sender("Agent", "agent", "005000000000001")


def envelope(i: int) -> str:
    """The SSE data of the entries a conversation mostly holds, as the simulator sends them."""
    entry_id = wire.new_id()
    kind = i % 3
    if kind == 0:
        entry_type, sender = "Message", AGENT
        payload = wire.text_message_payload(entry_id, f"Let me look into that for you ({i}).")
    elif kind == 1:
        entry_type, sender = "ParticipantChanged", wire.system_sender()
        payload = wire.participant_changed_payload(entry_id, "add", AGENT, "Jane Agent")
    else:
        entry_type, sender = "RoutingResult", wire.system_sender()
        payload = wire.routing_result_payload(entry_id, "0Mw000000000001", "Transfer")
    entry = {
        "identifier": entry_id,
        "entryType": entry_type,
        "sender": sender,
        "senderDisplayName": "Jane Agent",
        "transcriptedTimestamp": 1741300000000 + i,
        "clientTimestamp": 1741300000000 + i,
        "relatedRecords": ["0Mw000000000001"],
        "entryPayload": payload,
    }
    return wire.to_sse_data(entry, conversation_id=CONVERSATION, channel_address="cai")


def test_an_entry_keeps_under_1500_bytes_of_what_it_was_parsed_from() -> None:
    data = [envelope(i) for i in range(3000)]
    kept: list[Entry | None] = []
    gc.collect()
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        for item in data:
            kept.append(parse_event(SseFrame(event="CONVERSATION_MESSAGE", data=item)).entry)
        gc.collect()
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert all(entry is not None for entry in kept)
    per_entry = (after - before) / len(kept)
    assert per_entry < 1500, f"{per_entry:.0f} bytes per entry"


def test_entries_of_one_conversation_share_its_id_and_their_vocabulary() -> None:
    first, second = (
        parse_event(SseFrame(event="CONVERSATION_MESSAGE", data=envelope(i))).entry for i in (0, 3)
    )

    assert first is not None and second is not None
    assert first.identifier != second.identifier
    assert first.conversation_id == CONVERSATION
    assert first.conversation_id is second.conversation_id
    assert first.entry_type is second.entry_type
    assert first.role is second.role


def test_an_entry_stored_by_the_previous_release_still_reads() -> None:
    """A rolling deploy: the shared journal holds entries a process of the previous release wrote
    (a pydantic model dump, lists, and the `payload` it kept); the new process reads them."""
    stored: dict[str, Any] = {
        "identifier": "m1",
        "entry_type": "Message",
        "conversation_id": CONVERSATION,
        "role": "Agent",
        "sender_name": "Jane Agent",
        "transcripted_timestamp": 1741300000000,
        "related_records": ["0Mw000000000001"],
        "text": "Which order?",
        "choices": [{"option_identifier": "o1", "title": "The last one"}],
        "attachments": [],
        "participant_changes": [],
        "payload": {"entryType": "Message", "id": "m1"},
    }

    entry = ENTRY_JSON.validate_json(json.dumps(stored))

    assert (entry.identifier, entry.role, entry.text) == ("m1", "Agent", "Which order?")
    assert entry.related_records == ("0Mw000000000001",)
    assert [(c.option_identifier, c.title) for c in entry.choices] == [("o1", "The last one")]
    assert ENTRY_JSON.validate_json(ENTRY_JSON.dump_json(entry)) == entry
