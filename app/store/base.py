"""The session store contract and the record it keeps."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from pydantic import BaseModel, Field, SecretStr, SerializationInfo, field_serializer


class ConversationState(BaseModel):
    conversation_id: str
    routing_attributes: dict[str, str] = Field(default_factory=dict)
    cursor: str = ""
    """Where the model's last read ended (opaque; "" is the start). The widget passes its own."""
    widget_key: str = ""
    """The live-chat widget's capability for this conversation (given to the widget only, in
    show_salesforce_chat's `_meta`): lets its calls in without a ChatGPT subject."""


class SessionRecord(BaseModel):
    """One guest session behind an opaque handle. The Salesforce token never leaves the server."""

    handle: str
    owner: str | None = None
    """The ChatGPT user (`openai/subject`) the handle is bound to, when the request said."""
    access_token: SecretStr
    token_expires_at: float | None = None
    """Unix seconds, from the JWT `exp`."""
    subject: str | None = None
    verified: bool = False
    """Minted for a verified customer (the agent sees who they are), not a guest."""
    last_event_id: str | None = None
    created_at: float
    expires_at: float
    conversations: dict[str, ConversationState] = Field(default_factory=dict)
    closed: bool = False
    """Closed by close_conversation: the token is forgotten; the handle stays (until it expires)
    only to answer "this chat was closed" instead of "unknown session"."""

    @field_serializer("access_token", when_used="json")
    def _token(self, value: SecretStr, info: SerializationInfo) -> str:
        # Stores that seal what they keep ask for the token with context={"reveal": True};
        # any other dump (a log, a repr, an error) gets the mask.
        reveal = isinstance(info.context, dict) and info.context.get("reveal") is True
        return value.get_secret_value() if reveal else str(value)


class SessionStore(Protocol):
    async def put(self, record: SessionRecord) -> None:
        """Insert or replace the record (its `expires_at` decides when it is forgotten)."""
        ...

    async def get(self, handle: str) -> SessionRecord | None:
        """The record, or None when unknown or expired."""
        ...

    async def update(
        self, handle: str, change: Callable[[SessionRecord], bool]
    ) -> SessionRecord | None:
        """Apply `change` to the stored record atomically (no concurrent write is lost, even
        from another process) and store it if `change` returns True. Returns the record as
        it is now, or None when unknown or expired."""
        ...

    async def delete(self, handle: str) -> None: ...

    async def close(self) -> None: ...
