"""What the REST calls return, parsed leniently (unknown keys ignored, missing optional keys None).

The access token sits in a `SecretStr`: it must never reach a log line, a repr or a tool result.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import jwt
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from app.scrt import shapes
from app.scrt.errors import ScrtProtocolError


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class AccessToken(_Frozen):
    """A minted SCRT token. `access_token.get_secret_value()` gives the bearer string."""

    access_token: SecretStr
    last_event_id: str | None = None
    """Where a first SSE connection resumes (`Last-Event-Id`)."""
    subject: str | None = None
    """`context.endUser.subject`; verified users should check it (a bad identity token may
    silently yield a guest subject)."""
    expires_at: datetime | None = None
    """From the JWT `exp` claim (not verified); None when the token is not a JWT."""
    embedded_service_config: dict[str, Any] | None = Field(default=None, repr=False)
    """`context.configuration.embeddedServiceConfig` (pre-chat forms etc.) when present."""

    @property
    def bearer(self) -> str:
        return self.access_token.get_secret_value()

    @classmethod
    def from_response(cls, body: Any) -> AccessToken:
        data = shapes.obj(body)
        token = shapes.text(data.get("accessToken"))
        if not token:
            raise ScrtProtocolError("token response has no accessToken")
        context = shapes.obj(data, "context")
        config = shapes.obj(context, "configuration", "embeddedServiceConfig")
        return cls(
            access_token=SecretStr(token),
            last_event_id=shapes.text(data.get("lastEventId")),
            subject=shapes.text(shapes.obj(context, "endUser").get("subject")),
            expires_at=jwt_expiry(token),
            embedded_service_config=config or None,
        )


def jwt_expiry(token: str) -> datetime | None:
    """The `exp` of a JWT, read without checking the signature (we only schedule re-minting)."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return None
    exp = claims.get("exp")
    if isinstance(exp, bool) or not isinstance(exp, int | float):
        return None
    try:
        return datetime.fromtimestamp(exp, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None


class RoutingStatus(_Frozen):
    conversation_id: str | None = None
    routing_status: str | None = None
    """INITIAL, ROUTED, TRANSFER or NEEDS_ROUTING (others passed through)."""

    @classmethod
    def from_response(cls, conversation_id: str, body: Any) -> RoutingStatus:
        data = shapes.obj(body)
        return cls(
            conversation_id=shapes.text(data.get("conversationId")) or conversation_id,
            routing_status=shapes.text(data.get("routingStatus")),
        )


class ConversationSummary(_Frozen):
    conversation_id: str
    start_timestamp: int | None = None
    end_timestamp: int | None = None
    """0 while the conversation is open."""


class ConversationList(_Frozen):
    open_count: int | None = None
    closed_count: int | None = None
    conversations: list[ConversationSummary] = Field(default_factory=list)

    @classmethod
    def from_response(cls, body: Any) -> ConversationList:
        data = shapes.obj(body)
        conversations = [
            ConversationSummary(
                conversation_id=conversation_id,
                start_timestamp=shapes.integer(item.get("startTimestamp")),
                end_timestamp=shapes.integer(item.get("endTimestamp")),
            )
            for item in shapes.objs(data.get("conversations"))
            if (conversation_id := shapes.text(item.get("conversationId")))
        ]
        return cls(
            open_count=shapes.integer(data.get("openConversationsFound")),
            closed_count=shapes.integer(data.get("closedConversationsFound")),
            conversations=conversations,
        )


class SentMessage(_Frozen):
    """A send that Salesforce accepted; `message_id` is the id the SSE echo will carry."""

    message_id: str
    client_timestamp: int | None = None
    """From the optional 202 body `{conversationEntries:[{id, clientTimestamp}]}`."""

    @classmethod
    def from_response(cls, message_id: str, body: Any) -> SentMessage:
        entries = shapes.objs(shapes.obj(body).get("conversationEntries"))
        mine = next((e for e in entries if shapes.text(e.get("id")) == message_id), None)
        timestamp = shapes.integer(mine.get("clientTimestamp")) if mine else None
        return cls(message_id=message_id, client_timestamp=timestamp)


class BusinessHoursWindow(_Frozen):
    start: int
    end: int


class BusinessHours(_Frozen):
    windows: list[BusinessHoursWindow] = Field(default_factory=list)

    @classmethod
    def from_response(cls, body: Any) -> BusinessHours:
        windows = []
        for item in shapes.objs(shapes.obj(body, "businessHoursInfo").get("businessHours")):
            start = shapes.integer(item.get("startTime"))
            end = shapes.integer(item.get("endTime"))
            if start is not None and end is not None:
                windows.append(BusinessHoursWindow(start=start, end=end))
        return cls(windows=windows)

    def is_open(self, at_ms: int) -> bool:
        return any(window.start <= at_ms < window.end for window in self.windows)
