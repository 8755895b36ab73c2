"""A copy of the chat for the user: the whole conversation as Salesforce keeps it, as entries and
as plain text, fetched from the entries endpoint page by page (oldest first, by timestamp).

Only what Salesforce keeps in the transcript is in it (no typing indicators, receipts or queue
positions). It needs the session's Salesforce access, so it works until the user closes the
conversation with close_conversation (the agent ending it does not stop it).
"""

from __future__ import annotations

from datetime import UTC, datetime

from app.delivery import FETCH_PAGE, fetch_pages
from app.scrt import ScrtClient
from app.scrt.models import Entry
from app.transcript import ConversationLog, TranscriptEntry, visible

COPY_MAX_PAGES = 40
"""Entries-endpoint pages of a copy (50 entries each): a longer chat's copy says it stops."""
ROLE_LABELS = {"EndUser": "You", "Chatbot": "Bot", "Agent": "Agent", "System": "System"}


async def fetch_whole(
    client: ScrtClient, token: str, conversation_id: str
) -> tuple[list[Entry], bool]:
    """Every entry Salesforce keeps of the conversation, oldest first, each once; and whether
    the page limit stopped the fetch before the newest. Paged as a feed's log is caught up, into
    a log of its own that keeps them all."""
    copy = ConversationLog(conversation_id, keep=FETCH_PAGE * COPY_MAX_PAGES)
    gaps = await fetch_pages(client, token, copy, COPY_MAX_PAGES)
    return copy.entries, gaps is None


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
            lines.append(f"{when}  {who}: {content(entry)}")
        elif entry.kind == "form":
            lines.append(f"{when}  {who} sent a form: {entry.text or '(untitled)'}")
        elif entry.kind == "unsupported":
            lines.append(f"{when}  {who}: (something this copy cannot show: {entry.text})")
        elif entry.kind in ("joined", "left"):
            lines.append(f"{when}  {who} {entry.kind} the chat")
        elif entry.kind in ("session_ended", "conversation_closed"):
            lines.append(f"{when}  The chat ended")
    if cut:
        lines.append(f"(The copy stops after {FETCH_PAGE * COPY_MAX_PAGES} entries.)")
    return "\n".join(lines)


def content(entry: TranscriptEntry) -> str:
    """A message as one line: its text, then its link, files and choices."""
    parts = [entry.text] if entry.text else []
    if entry.link is not None:
        parts.append(" ".join(p for p in (entry.link.title, entry.link.url) if p) or "(link)")
    parts += [f"(file: {f.name or 'attachment'})" for f in entry.files or []]
    if entry.choices:
        parts.append("(choices: " + " / ".join(c.title or c.id for c in entry.choices) + ")")
    return " ".join(parts)


def shown(entries: list[Entry]) -> list[TranscriptEntry]:
    return visible(entries, include_live=False)
