"""Sends that reach the agent once, however often a caller retries them.

A tool call can fail after Salesforce took the message (its answer came too late), and the model or
the widget then sends it again. Three things keep that from putting a second copy in front of the
agent:

- An idempotency key: a send with a `clientMessageId` gets a Salesforce message id derived from the
  session, the conversation and the key, so every retry of it is the same message to Salesforce,
  from any process, with nothing stored.
- Reconciliation: a message whose echo is already in the conversation's log was delivered, so it is
  reported sent without another request; the SCRT client also looks for a message among the
  conversation's entries before it repeats a request whose outcome it does not know.
- One send at a time per key: a retry that arrives while the first attempt is still under way waits
  for that attempt's outcome instead of racing it.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

T = TypeVar("T")

CLIENT_MESSAGE_ID_PATTERN = r"^[A-Za-z0-9._:-]{1,100}$"


def message_id_for(handle: str, conversation_id: str, client_message_id: str) -> str:
    """The Salesforce message id of a keyed send: a lowercase UUID in version 4 form (the only form
    SCRT accepts), derived from the secret handle, so unguessable and the same on every retry."""
    digest = hashlib.sha256(
        b"\0".join(part.encode() for part in ("send", handle, conversation_id, client_message_id))
    ).digest()
    return str(uuid.UUID(bytes=digest[:16], version=4))


def unconfirmed_message(keyed: bool, tool: str = "send_message") -> str:
    """What the model is told when Salesforce did not answer a send (made with `tool`) in time."""
    if keyed:
        return (
            f"Salesforce has not confirmed this message yet (it may still arrive). Call {tool} "
            "again with the same clientMessageId to find out: it is never sent twice."
        )
    return (
        "Salesforce has not confirmed this message yet (it may still arrive). Check "
        "list_conversation_entries for it before sending it again, or pass a clientMessageId so "
        "that a retry is never sent twice."
    )


class SharedCalls(Generic[T]):
    """Concurrent calls with the same key share one run and its outcome."""

    def __init__(self) -> None:
        self._running: dict[Hashable, asyncio.Future[T]] = {}

    async def run(self, key: Hashable, call: Callable[[], Awaitable[T]]) -> T:
        task = self._running.get(key)
        if task is None or task.done():
            task = asyncio.ensure_future(call())
            self._running[key] = task
            task.add_done_callback(lambda done: self._forget(key, done))
        # Shielded: a caller that gives up does not cancel the send the others wait on.
        return await asyncio.shield(task)

    def _forget(self, key: Hashable, done: asyncio.Future[T]) -> None:
        if self._running.get(key) is done:
            del self._running[key]

    def __len__(self) -> int:
        return len(self._running)
