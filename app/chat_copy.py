"""A copy of the chat for the user: the whole conversation as Salesforce keeps it, as entries and
as plain text, fetched from the entries endpoint page by page (oldest first, by timestamp).

Only what Salesforce keeps in the transcript is in it (no typing indicators, receipts or queue
positions). It needs the session's Salesforce access, so it works until the user closes the
conversation with close_conversation (the agent ending it does not stop it).
"""

from __future__ import annotations

from datetime import UTC, datetime

from app.scrt import ScrtClient, chronological
from app.scrt.models import Entry
from app.transcript import TranscriptEntry, visible

COPY_PAGE = 50
COPY_MAX_PAGES = 40
"""At most 2,000 entries; a longer chat's copy says it stops there."""
ROLE_LABELS = {"EndUser": "You", "Chatbot": "Bot", "Agent": "Agent", "System": "System"}


async def fetch_whole(
    client: ScrtClient, token: str, conversation_id: str
) -> tuple[list[Entry], bool]:
    """Every entry Salesforce keeps of the conversation, oldest first, each once; and whether
    the page limit stopped the fetch before the newest."""
    seen: set[str] = set()
    entries: list[Entry] = []
    since: int | None = None
    for _ in range(COPY_MAX_PAGES):
        page = chronological(
            await client.list_entries(
                token,
                conversation_id,
                limit=COPY_PAGE,
                start_timestamp=since,
                direction="FromStart",
            )
        )
        new = [e for e in page if e.identifier is None or e.identifier not in seen]
        seen.update(e.identifier for e in new if e.identifier is not None)
        entries += new
        if len(page) < COPY_PAGE or not new:
            return entries, False
        # The next page starts at this one's last timestamp (entries seen twice are skipped).
        since = page[-1].transcripted_timestamp or since
    return entries, True


def as_text(entries: list[TranscriptEntry], *, cut: bool) -> str:
    """One line per message or event: time (UTC), who, what."""
    lines = []
    for entry in entries:
        when = (
            datetime.fromtimestamp(entry.timestamp / 1000, UTC).strftime("%Y-%m-%d %H:%M UTC")
            if entry.timestamp
            else "-"
        )
        who = entry.name or ROLE_LABELS.get(entry.role or "", entry.role or "")
        if entry.kind == "message":
            lines.append(f"{when}  {who}: {entry.text or ''}")
        elif entry.kind in ("joined", "left"):
            lines.append(f"{when}  {who} {entry.kind} the chat")
        elif entry.kind in ("session_ended", "conversation_closed"):
            lines.append(f"{when}  The chat ended")
    if cut:
        lines.append(f"(The copy stops after {COPY_PAGE * COPY_MAX_PAGES} entries.)")
    return "\n".join(lines)


def shown(entries: list[Entry]) -> list[TranscriptEntry]:
    return visible(entries, include_typing=False)
