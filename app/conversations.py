"""The handoff service: guest sessions behind opaque handles, conversations, sends, reads, close.

Knows nothing of MCP. Errors are `HandoffError`s whose messages are safe to show the model: they
name what went wrong and what to do, never a token, a handle or what anyone wrote.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass

import structlog
from pydantic import SecretStr

from app.delivery import DeliveryEngine, FeedBroken, GuestFeed, ReadResult
from app.scrt import (
    RoutingStatus,
    ScrtAuthError,
    ScrtClient,
    ScrtError,
    ScrtNoSessionError,
    ScrtNotFoundError,
    ScrtProtocolError,
    ScrtRateLimitError,
    ScrtStatusError,
    SentMessage,
    new_id,
)
from app.store import ConversationState, SessionRecord, SessionStore

log = structlog.get_logger(__name__)


class HandoffError(Exception):
    """A failure the model can act on; the message says what to do."""


class UnknownSession(HandoffError):
    pass


def describe(exc: ScrtError) -> str:
    """A model-safe sentence for a Salesforce failure."""
    if isinstance(exc, ScrtAuthError):
        return (
            "Salesforce no longer accepts this chat session (its access expired). "
            "Start over with generate_guest_access_token."
        )
    if isinstance(exc, ScrtNotFoundError):
        return "Salesforce does not know this conversation for this session."
    if isinstance(exc, ScrtRateLimitError):
        return "Salesforce is rate-limiting this chat; wait a little before trying again."
    if isinstance(exc, ScrtStatusError):
        detail = f": {exc.message}" if exc.message else ""
        return f"Salesforce answered HTTP {exc.status}{detail}"
    if isinstance(exc, ScrtProtocolError):
        return "Salesforce answered in a way this server does not understand; try again later."
    return f"Salesforce could not be reached ({type(exc).__name__}). Try again shortly."


@dataclass(frozen=True)
class CloseReport:
    session_ended: bool
    conversation_closed: bool
    problems: list[str]


class HandoffService:
    def __init__(
        self,
        client: ScrtClient,
        store: SessionStore,
        delivery: DeliveryEngine,
        *,
        session_ttl: float,
    ) -> None:
        self._client = client
        self._store = store
        self._delivery = delivery
        self._ttl = session_ttl

    # -- sessions -----------------------------------------------------------------------------

    async def start_session(self, owner: str | None) -> SessionRecord:
        try:
            token = await self._client.guest_token()
        except ScrtError as exc:
            raise HandoffError(describe(exc)) from exc
        now = time.time()
        expires = now + self._ttl
        token_exp = token.expires_at.timestamp() if token.expires_at else None
        if token_exp is not None:
            expires = min(expires, token_exp)
        record = SessionRecord(
            handle=secrets.token_urlsafe(32),
            owner=owner,
            access_token=SecretStr(token.bearer),
            token_expires_at=token_exp,
            subject=token.subject,
            last_event_id=token.last_event_id,
            created_at=now,
            expires_at=expires,
        )
        await self._store.put(record)
        log.info("session.started", expires_in=round(expires - now))
        return record

    async def _session(self, handle: str, owner: str | None) -> SessionRecord:
        record = await self._store.get(handle) if handle else None
        if record is None:
            raise UnknownSession(
                "Unknown or expired sessionId. Call generate_guest_access_token to start a new "
                "chat session."
            )
        if record.closed:
            raise HandoffError(
                "This chat was closed; nothing more can be read or sent in it. Start a new chat "
                "with generate_guest_access_token only if the user asks for one."
            )
        # Refused only when the request names a different ChatGPT user: a call that names
        # none (a client that sends no _meta) still needs the unguessable handle.
        if record.owner is not None and owner is not None and record.owner != owner:
            raise UnknownSession(
                "This sessionId belongs to another user. Call generate_guest_access_token to "
                "start your own chat session."
            )
        return record

    def _conversation(self, record: SessionRecord, conversation_id: str) -> ConversationState:
        state = record.conversations.get(conversation_id.lower())
        if state is None:
            raise HandoffError(
                "This conversationId was not created in this session. Use the conversationId "
                "returned by create_conversation."
            )
        return state

    async def _feed(self, record: SessionRecord) -> GuestFeed:
        return await self._delivery.feed(
            record.handle,
            record.access_token.get_secret_value(),
            record.last_event_id,
            record.expires_at,
        )

    # -- conversations ------------------------------------------------------------------------

    async def create_conversation(
        self, handle: str, owner: str | None, routing_attributes: dict[str, str]
    ) -> str:
        record = await self._session(handle, owner)
        # Subscribe before creating, so the routing events are seen as they happen.
        await self._feed(record)
        try:
            conversation_id = await self._client.create_conversation(
                record.access_token.get_secret_value(), routing_attributes=routing_attributes
            )
        except ScrtError as exc:
            raise HandoffError(describe(exc)) from exc
        # Re-read: a read may have moved a cursor while Salesforce answered.
        fresh = await self._store.get(handle) or record
        fresh.conversations[conversation_id] = ConversationState(
            conversation_id=conversation_id, routing_attributes=routing_attributes
        )
        await self._store.put(fresh)
        structlog.contextvars.bind_contextvars(conversation_id=conversation_id)
        log.info("conversation.created", routing_attributes=len(routing_attributes))
        return conversation_id

    async def send_message(
        self, handle: str, owner: str | None, conversation_id: str, text: str
    ) -> SentMessage:
        record = await self._session(handle, owner)
        state = self._conversation(record, conversation_id)
        token = record.access_token.get_secret_value()
        await self._feed(record)
        message_id = new_id()
        try:
            try:
                return await self._client.send_message(
                    token, state.conversation_id, text, message_id=message_id
                )
            except ScrtNoSessionError:
                # The messaging session ended (per-session pre-chat): start a new one with the
                # pre-chat values this conversation began with. Same message id, one message.
                log.info("message.new_session")
                return await self._client.send_message(
                    token,
                    state.conversation_id,
                    text,
                    message_id=message_id,
                    new_session=True,
                    routing_attributes=state.routing_attributes,
                )
        except ScrtError as exc:
            raise HandoffError(describe(exc)) from exc

    async def read(
        self,
        handle: str,
        owner: str | None,
        conversation_id: str,
        cursor: int | None,
        wait_seconds: float,
        *,
        include_typing: bool = False,
    ) -> ReadResult:
        record = await self._session(handle, owner)
        state = self._conversation(record, conversation_id)
        start = state.cursor if cursor is None else cursor
        try:
            result = await self._delivery.read(
                await self._feed(record),
                state.conversation_id,
                start,
                wait_seconds,
                include_typing=include_typing,
            )
        except FeedBroken as exc:
            cause = exc.__cause__
            raise HandoffError(
                describe(cause) if isinstance(cause, ScrtError) else str(exc)
            ) from exc
        if cursor is None and result.cursor != state.cursor:
            # Re-read: a concurrent call may have changed the record meanwhile.
            fresh = await self._store.get(handle)
            if fresh is not None and conversation_id.lower() in fresh.conversations:
                fresh.conversations[conversation_id.lower()].cursor = result.cursor
                await self._store.put(fresh)
        return result

    async def routing_status(
        self, handle: str, owner: str | None, conversation_id: str
    ) -> RoutingStatus:
        record = await self._session(handle, owner)
        state = self._conversation(record, conversation_id)
        try:
            return await self._client.routing_status(
                record.access_token.get_secret_value(), state.conversation_id
            )
        except ScrtError as exc:
            raise HandoffError(describe(exc)) from exc

    async def close(self, handle: str, owner: str | None, conversation_id: str) -> CloseReport:
        """End the session, then close the conversation; forget the handle once closed."""
        record = await self._session(handle, owner)
        state = self._conversation(record, conversation_id)
        token = record.access_token.get_secret_value()
        problems: list[str] = []
        session_ended = conversation_closed = False
        try:
            await self._client.end_session(token, state.conversation_id)
            session_ended = True
        except ScrtError as exc:
            problems.append(f"ending the messaging session failed: {describe(exc)}")
        try:
            await self._client.close_conversation(token, state.conversation_id)
            conversation_closed = True
        except ScrtError as exc:
            problems.append(f"closing the conversation failed: {describe(exc)}")
        if conversation_closed:
            # Tombstone first, so a read racing with the close cannot reopen a stream.
            record.closed = True
            record.access_token = SecretStr("")
            await self._store.put(record)
            await self._delivery.drop(handle)
        log.info(
            "conversation.close",
            session_ended=session_ended,
            conversation_closed=conversation_closed,
        )
        return CloseReport(session_ended, conversation_closed, problems)
