"""Memory of one long conversation's log: every entry kept, or the newest HISTORY_ENTRIES.

For each length M of --lengths, a conversation's log is filled with M entries as they arrive on
the event stream (agent and user messages taking turns, each text --text-bytes long, parsed from
the SSE envelope the simulator sends, with their ids, timestamps and senders), and the memory the
log holds is measured with tracemalloc: everything allocated while filling it that is still alive
(the entries, their strings, the dedup set, the retired ids and times). "all kept" is the log with
no bound (what main did before bounded history); "kept K" keeps the newest K (--keep, default the
HISTORY_ENTRIES default). Bytes per entry are the total over M.

Not part of the pytest suite; takes seconds. Usage:
    .venv/bin/python bench/history.py [--lengths 50,200,1000,5000] [--keep 200] [--text-bytes 120]
"""

from __future__ import annotations

import argparse
import gc
import json
import tracemalloc

from app.history import HISTORY_ENTRIES
from app.scrt.events import parse_event
from app.scrt.models import Entry
from app.scrt.sse import SseFrame
from app.simulator import entries as E
from app.transcript import ConversationLog

CONVERSATION = "0f8e2c1a-8d3b-4c55-b0a9-3c2f1e0d9a77"


def arriving(count: int, text_bytes: int) -> list[str]:
    """The SSE data lines of `count` messages, agent and user in turn, as the simulator sends."""
    agent = E.sender("Agent", "agent", "005xx000001AbCdE")
    user = E.sender("EndUser", "iamessage", "v2/iamessage/UNAUTH/NA/uid:0f8e2c1a")
    lines = []
    for n in range(count):
        entry_id = E.new_id()
        text = (f"message {n}: " + "lorem ipsum dolor sit amet " * 20)[:text_bytes]
        entry = {
            "entryType": "Message",
            "identifier": entry_id,
            "entryPayload": E.text_message_payload(entry_id, text),
            "sender": agent if n % 2 else user,
            "senderDisplayName": "Jane Agent" if n % 2 else "Guest",
            "transcriptedTimestamp": 1_760_000_000_000 + n * 1000,
            "clientTimestamp": 1_760_000_000_000 + n * 1000,
            "clientDuration": 0,
            "relatedRecords": ["0MwXX0000000001"],
        }
        lines.append(
            E.to_sse_data(entry, conversation_id=CONVERSATION, channel_address="ch-address")
        )
    return lines


def held(lines: list[str], keep: int) -> tuple[int, int]:
    """Bytes the log holds after every line arrived, and the entries it keeps in memory."""
    gc.collect()
    tracemalloc.start()
    log = ConversationLog(CONVERSATION, keep)
    for data in lines:
        event = parse_event(SseFrame(event="CONVERSATION_MESSAGE", data=data))
        assert isinstance(event.entry, Entry)
        log.live(event.entry)
        if not log.synced:  # as after the first fetch: live entries go straight in
            log.fetched_all(log.gaps)
            with log.fetching():
                pass
        del event
    gc.collect()
    size, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    kept = len(log.entries)
    assert log.position == len(lines)
    del log
    return size, kept


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lengths", default="50,200,1000,5000")
    parser.add_argument("--keep", type=int, default=HISTORY_ENTRIES)
    parser.add_argument("--text-bytes", type=int, default=120)
    args = parser.parse_args()
    lengths = [int(x) for x in args.lengths.split(",")]
    print(
        f"one conversation's log, messages of {args.text_bytes} characters "
        f"(tracemalloc, bytes still held after the last arrived)\n"
    )
    print(
        f"| entries | all kept | kept {args.keep} | in memory | per entry, all / kept {args.keep} |"
    )
    print("|---|---|---|---|---|")
    for count in lengths:
        lines = arriving(count, args.text_bytes)
        everything, _ = held(lines, 10**9)
        bounded, kept = held(lines, args.keep)
        print(
            f"| {count:,} | {everything / 1024:,.0f} KiB | {bounded / 1024:,.0f} KiB | {kept} "
            f"| {everything / count:,.0f} B / {bounded / count:,.0f} B |"
        )
    print(f"\n(an SSE line is {len(json.dumps(lines[0])):,} bytes on the wire)")


if __name__ == "__main__":
    main()
