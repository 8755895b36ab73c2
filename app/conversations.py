"""The handoff service: guest sessions behind opaque handles, conversations, sends, reads, close.

Knows nothing of MCP. Errors are `HandoffError`s whose messages are safe to show the model: they
name what went wrong and what to do, never a token, a handle or what anyone wrote.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import math
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Literal

import structlog
from pydantic import SecretStr

from app.chat_copy import fetch_whole, shown
from app.choices import offered_option
from app.delivery import BadCursor, Delivery, FeedBroken, ReadResult
from app.failures import HandoffError, SendUnconfirmed, UnknownSession, describe
from app.handles import HandleMaker
from app.hours import HoursNow, SupportClosed, SupportHours
from app.identity import is_verified
from app.limits import Limits
from app.prechat import AgentContext, PrechatForm, PrechatForms, place
from app.scrt import (
    RoutingStatus,
    ScrtClient,
    ScrtError,
    ScrtNoSessionError,
    ScrtStatusError,
    SentMessage,
    new_id,
)
from app.scrt.deadline import call_deadline, remaining
from app.scrt.errors import outcome_unknown
from app.sends import SharedCalls, message_id_for, unconfirmed_message
from app.store import ConversationState, SessionRecord, SessionStore
from app.transcript import TranscriptEntry

__all__ = ["CloseReport", "HandoffError", "HandoffService", "UnknownSession"]

log = structlog.get_logger(__name__)

SERVER_RESTARTED = (
    "The server restarted and this chat could not be kept; start a new chat with "
    "generate_guest_access_token if the user wants to go on."
)
IDENTITY_REFUSED = (
    "Salesforce did not accept the signed-in customer's identity, so no chat was started (the "
    "user would have been an anonymous guest). The operator should check the org's User "
    "Verification settings: a key set pointing at this server's /.well-known/jwks.json."
)
BAD_CURSOR = (
    "cursor must be a value returned by a previous list_conversation_entries call in this chat "
    "(or omitted to continue where this session's last read stopped)."
)


@dataclass(frozen=True)
class Upload:
    """A file the user attached: its name, MIME type, bytes and an optional caption."""

    name: str
    mime_type: str
    content: bytes
    caption: str | None = None


Post = Callable[[str, bool], Awaitable[SentMessage]]
"""Sends one message under a given id; True: as the first of a new messaging session."""


def cursor_order(cursor: str) -> tuple[int, ...]:
    """Cursors of one engine compare in delivery order: "12" (a log position) or "1733-4" (a
    stream id)."""
    return tuple(int(part) for part in cursor.split("-"))


@dataclass(frozen=True)
class ConversationOpened:
    conversation_id: str
    context_message: Literal["sent", "failed", "unconfirmed"] | None
    """How the first message with the assistant's context went (None: there was none)."""


def new_conversation(
    conversation_id: str, routing_attributes: dict[str, str] | None = None
) -> ConversationState:
    """A conversation joining a session, with its own widget key."""
    return ConversationState(
        conversation_id=conversation_id,
        routing_attributes=routing_attributes or {},
        widget_key=secrets.token_urlsafe(24),
    )


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
        delivery: Delivery,
        limits: Limits,
        *,
        session_ttl: float,
        shared_state: bool = False,
        hours: SupportHours,
        prechat: PrechatForms,
        field_map: Mapping[str, str] | None = None,
        refuse_outside_hours: bool = True,
    ) -> None:
        self._handles = HandleMaker()
        self._hours = hours
        self._refuse_outside_hours = refuse_outside_hours
        self._prechat = prechat
        self._field_map = dict(field_map or {})
        self._limits = limits
        self._shared_state = shared_state
        self._client = client
        self._store = store
        self._delivery = delivery
        self._ttl = session_ttl
        self._sends: SharedCalls[SentMessage] = SharedCalls()

    # -- sessions -----------------------------------------------------------------------------

    async def start_session(
        self, owner: str | None, identity_token: str | None = None
    ) -> SessionRecord:
        """A guest session, or with a customer identity token a verified one."""
        handle = self._handles.new()
        now = time.time()
        # A place among the concurrent sessions first: a refused call mints no token.
        await self._limits.open_session(handle, now + self._ttl)
        try:
            return await self._mint(handle, owner, now, identity_token)
        except BaseException:
            await self._limits.session_over(handle)
            raise

    async def _mint(
        self, handle: str, owner: str | None, now: float, identity_token: str | None
    ) -> SessionRecord:
        try:
            if identity_token is None:
                token = await self._client.guest_token()
            else:
                token = await self._client.verified_token(identity_token)
        except ScrtError as exc:
            if identity_token is not None and isinstance(exc, ScrtStatusError) and exc.status < 500:
                log.warning("session.identity_refused", status=exc.status)
                raise HandoffError(IDENTITY_REFUSED) from exc
            raise HandoffError(describe(exc)) from exc
        self._prechat.learn(token.embedded_service_config)
        if identity_token is not None and not is_verified(token.subject):
            # Reported to happen for a bad identity token: never chat as a guest instead.
            log.warning("session.identity_not_verified")
            with contextlib.suppress(ScrtError):
                await self._client.revoke_token(token.bearer)
            raise HandoffError(IDENTITY_REFUSED)
        expires = now + self._ttl
        token_exp = token.expires_at.timestamp() if token.expires_at else None
        if token_exp is not None:
            expires = min(expires, token_exp)
        record = SessionRecord(
            handle=handle,
            owner=owner,
            access_token=SecretStr(token.bearer),
            token_expires_at=token_exp,
            subject=token.subject,
            verified=identity_token is not None,
            last_event_id=token.last_event_id,
            created_at=now,
            expires_at=expires,
        )
        if record.verified:
            await self._resume(record)
        await self._store.put(record)
        await self._limits.open_session(handle, expires)  # its place lasts as long as it does
        log.info("session.started", expires_in=round(expires - now))
        return record

    async def _resume(self, record: SessionRecord) -> None:
        """A verified customer's conversations still open (from an earlier chat in ChatGPT) join
        the new session, so the user can go on where they left off."""
        try:
            listing = await self._client.list_conversations(record.access_token.get_secret_value())
        except ScrtError as exc:
            log.warning("session.resume_failed", error=type(exc).__name__)
            return
        for item in listing.conversations:  # open ones only: closed ones are not asked for
            record.conversations[item.conversation_id.lower()] = new_conversation(
                item.conversation_id
            )
        log.info("session.resumed", conversations=len(record.conversations))

    async def _session(
        self,
        handle: str,
        owner: str | None,
        widget_key: str | None = None,
        conversation_id: str | None = None,
    ) -> SessionRecord:
        record = await self._store.get(handle) if handle else None
        if record is None and not self._shared_state and self._handles.made_elsewhere(handle):
            raise UnknownSession(SERVER_RESTARTED)
        if record is None:
            raise UnknownSession(
                "Unknown or expired sessionId. Call generate_guest_access_token to start a new "
                "chat session."
            )
        # A handle bound to a ChatGPT user serves that user only: a call naming another user
        # is refused, and so is a call naming none, unless it carries the conversation's widget
        # key (the live-chat widget's calls may come without the user). Checked before anything
        # else is said of the chat, even that it was closed.
        if record.owner is not None and not (
            owner == record.owner
            or (owner is None and self._widget_key_fits(record, conversation_id, widget_key))
        ):
            raise UnknownSession(
                "This sessionId belongs to another user. Call generate_guest_access_token to "
                "start your own chat session."
            )
        if record.closed:
            raise HandoffError(
                "This chat was closed; nothing more can be read or sent in it. Start a new chat "
                "with generate_guest_access_token only if the user asks for one."
            )
        return record

    @staticmethod
    def _widget_key_fits(
        record: SessionRecord, conversation_id: str | None, widget_key: str | None
    ) -> bool:
        state = record.conversations.get((conversation_id or "").lower())
        return bool(
            state is not None
            and state.widget_key
            and widget_key
            and hmac.compare_digest(state.widget_key.encode(), widget_key.encode())
        )

    async def widget_key(self, handle: str, owner: str | None, conversation_id: str) -> str:
        """The conversation's widget key, for the widget only (never for the model)."""
        record = await self._session(handle, owner)
        return self._conversation(record, conversation_id).widget_key

    def _conversation(self, record: SessionRecord, conversation_id: str) -> ConversationState:
        state = record.conversations.get(conversation_id.lower())
        if state is None:
            raise HandoffError(
                "This conversationId was not created in this session. Use the conversationId "
                "returned by create_conversation."
            )
        return state

    # -- conversations ------------------------------------------------------------------------

    async def support_hours(self) -> HoursNow | None:
        """Whether support is open now (business hours); None when unknown."""
        return await self._hours.now()

    async def prechat_form(self) -> PrechatForm | None:
        """The deployment's pre-chat form; None when unknown."""
        return await self._prechat.form()

    async def create_conversation(
        self,
        handle: str,
        owner: str | None,
        routing_attributes: dict[str, str],
        *,
        outside_hours: bool = False,
        context: AgentContext | None = None,
        admit: Callable[[], Awaitable[None]] | None = None,
    ) -> ConversationOpened:
        """Open a conversation; outside business hours only when `outside_hours` says so. The
        pre-chat values (the caller's, and the context PRECHAT_FIELD_MAP sends to fields) are
        checked against the deployment's form first; context mapped nowhere follows as a first
        marked message. `admit` (the abuse limits) runs once those checks passed, so a refusal
        that creates nothing costs the caller nothing."""
        record = await self._session(handle, owner)
        if not outside_hours and self._refuse_outside_hours:
            hours = await self.support_hours()
            if hours is not None and not hours.open:
                log.info("conversation.support_closed")
                raise SupportClosed(hours)
        placement = place(context or AgentContext(), routing_attributes, self._field_map)
        form = await self.prechat_form()
        if form is not None:
            form.check(placement.routing_attributes, origin=placement.origin)
        routing_attributes = placement.routing_attributes
        if admit is not None:
            await admit()
        conversation_id = new_id()
        await self._limits.open_conversation(
            record.owner, handle, conversation_id, record.expires_at
        )
        try:
            # Subscribe before creating, so the routing events are seen as they happen.
            await self._delivery.attach(record)
            conversation_id = await self._client.create_conversation(
                record.access_token.get_secret_value(),
                conversation_id=conversation_id,
                routing_attributes=routing_attributes,
            )
        except BaseException as exc:
            await self._limits.conversations_over(record.owner, handle, [conversation_id])
            if isinstance(exc, ScrtError):
                raise HandoffError(describe(exc)) from exc
            raise
        state = new_conversation(conversation_id, routing_attributes)

        def add(fresh: SessionRecord) -> bool:
            # Onto the record as it is now: a read may have moved a cursor meanwhile.
            fresh.conversations[conversation_id] = state
            return True

        await self._store.update(handle, add)
        structlog.contextvars.bind_contextvars(conversation_id=conversation_id)
        log.info("conversation.created", routing_attributes=len(routing_attributes))
        if placement.message is None:
            return ConversationOpened(conversation_id, context_message=None)
        # The conversation is open whatever happens to this message: the model is told how it
        # went, never asked to create another.
        try:
            post = self._post(
                record, state, partial(self._client.send_message, text=placement.message)
            )
            await self._send(record, state, new_id(), post, keyed=False)
        except SendUnconfirmed:
            log.warning("conversation.context_unconfirmed")
            return ConversationOpened(conversation_id, context_message="unconfirmed")
        except Exception as exc:
            cause = exc.__cause__ if isinstance(exc, HandoffError) else exc
            log.warning("conversation.context_not_sent", error=type(cause).__name__)
            return ConversationOpened(conversation_id, context_message="failed")
        return ConversationOpened(conversation_id, context_message="sent")

    async def send_message(
        self,
        handle: str,
        owner: str | None,
        conversation_id: str,
        text: str,
        client_message_id: str | None = None,
        widget_key: str | None = None,
    ) -> SentMessage:
        """Send once. With a `client_message_id`, every retry of the call is the same message:
        one already delivered is reported sent without sending it again."""
        record = await self._session(handle, owner, widget_key, conversation_id)
        state = self._conversation(record, conversation_id)
        post = self._post(record, state, partial(self._client.send_message, text=text))
        return await self._send_once(record, state, client_message_id, post)

    @staticmethod
    def _post(
        record: SessionRecord, state: ConversationState, send: Callable[..., Awaitable[SentMessage]]
    ) -> Post:
        """`send` (a ScrtClient send with its content bound) as a Post: the session's token, the
        conversation, and its pre-chat values when a new messaging session starts."""
        token = record.access_token.get_secret_value()

        def post(message_id: str, new_session: bool) -> Awaitable[SentMessage]:
            return send(
                token,
                state.conversation_id,
                message_id=message_id,
                new_session=new_session,
                routing_attributes=state.routing_attributes if new_session else None,
            )

        return post

    async def send_choice(
        self,
        handle: str,
        owner: str | None,
        conversation_id: str,
        message_id: str,
        choice_id: str,
        client_message_id: str | None = None,
        widget_key: str | None = None,
    ) -> SentMessage:
        """Pick option `choice_id` of the message `message_id`, once (as `send_message`). The offer
        is looked up before the first attempt, not when a keyed retry finds the pick delivered."""
        record = await self._session(handle, owner, widget_key, conversation_id)
        state = self._conversation(record, conversation_id)
        token = record.access_token.get_secret_value()
        send: Post | None = None

        async def post(pick_id: str, new_session: bool) -> SentMessage:
            nonlocal send
            if send is None:
                offer, option = await offered_option(
                    self._client, token, state.conversation_id, message_id, choice_id
                )
                pick = partial(
                    self._client.send_choice,
                    option_identifiers=[option.option_identifier],
                    in_reply_to=offer,
                )
                send = self._post(record, state, pick)
            return await send(pick_id, new_session)

        return await self._send_once(record, state, client_message_id, post, tool="send_choice")

    async def send_file(
        self,
        handle: str,
        owner: str | None,
        conversation_id: str,
        upload: Upload,
        client_message_id: str | None = None,
        widget_key: str | None = None,
    ) -> SentMessage:
        """Send a file the user attached (in the widget), once (as `send_message`)."""
        record = await self._session(handle, owner, widget_key, conversation_id)
        state = self._conversation(record, conversation_id)
        send = partial(
            self._client.send_file,
            filename=upload.name,
            content=upload.content,
            mime_type=upload.mime_type,
            caption=upload.caption,
        )
        post = self._post(record, state, send)
        return await self._send_once(record, state, client_message_id, post, tool="send_file")

    async def report_activity(
        self,
        handle: str,
        owner: str | None,
        conversation_id: str,
        *,
        typing: bool | None,
        read: Sequence[str],
        widget_key: str | None = None,
    ) -> None:
        """Tell the agent the user is typing (or stopped) and which entries the user has read."""
        record = await self._session(handle, owner, widget_key, conversation_id)
        state = self._conversation(record, conversation_id)
        token = record.access_token.get_secret_value()
        try:
            if typing is not None:
                await self._client.send_typing(token, state.conversation_id, typing=typing)
            if read:
                await self._client.acknowledge_entries(token, state.conversation_id, read=read)
        except ScrtError as exc:
            raise HandoffError(describe(exc)) from exc

    async def _send_once(
        self,
        record: SessionRecord,
        state: ConversationState,
        client_message_id: str | None,
        post: Post,
        *,
        tool: str = "send_message",
    ) -> SentMessage:
        await self._delivery.attach(record)
        if client_message_id is None:
            return await self._send(record, state, new_id(), post, keyed=False)
        message_id = message_id_for(record.handle, state.conversation_id, client_message_id)
        return await self._sends.run(
            (record.handle, message_id),
            lambda: self._send(record, state, message_id, post, keyed=True, tool=tool),
        )

    async def _send(
        self,
        record: SessionRecord,
        state: ConversationState,
        message_id: str,
        post: Post,
        *,
        keyed: bool,
        tool: str = "send_message",
    ) -> SentMessage:
        if await self._delivery.delivered(record, state.conversation_id, message_id):
            # Its echo is in the log: an earlier call delivered it.
            return SentMessage(message_id=message_id)
        try:
            try:
                return await post(message_id, False)
            except ScrtNoSessionError:
                # The messaging session ended (per-session pre-chat): start a new one with the
                # pre-chat values this conversation began with. Same message id, one message.
                log.info("message.new_session")
                return await post(message_id, True)
        except ScrtError as exc:
            if await self._delivery.delivered(record, state.conversation_id, message_id):
                return SentMessage(message_id=message_id)
            if outcome_unknown(exc):
                log.info("message.unconfirmed", error=type(exc).__name__)
                raise SendUnconfirmed(unconfirmed_message(keyed, tool)) from exc
            raise HandoffError(describe(exc)) from exc

    async def read(
        self,
        handle: str,
        owner: str | None,
        conversation_id: str,
        cursor: str | None,
        wait_seconds: float,
        *,
        include_live: bool = False,
        widget_key: str | None = None,
    ) -> ReadResult:
        record = await self._session(handle, owner, widget_key, conversation_id)
        state = self._conversation(record, conversation_id)
        start = (state.cursor or "0") if cursor is None else cursor
        try:
            result = await self._delivery.read(
                record,
                state.conversation_id,
                start,
                wait_seconds,
                include_live=include_live,
            )
        except BadCursor as exc:
            raise HandoffError(BAD_CURSOR) from exc
        except FeedBroken as exc:
            cause = exc.__cause__
            raise HandoffError(
                describe(cause) if isinstance(cause, ScrtError) else str(exc)
            ) from exc
        if result.role_info.conversationEnded:
            # Over (the agent, the bot or the user ended it): no longer counts as open.
            await self._limits.conversations_over(record.owner, handle, [conversation_id])
        if cursor is None and result.cursor != state.cursor:

            def advance(fresh: SessionRecord) -> bool:
                # Onto the record as it is now (a close, a new conversation or another read
                # may have changed it meanwhile); a cursor only moves forward.
                kept = fresh.conversations.get(conversation_id.lower())
                if fresh.closed or kept is None:
                    return False
                if kept.cursor and cursor_order(kept.cursor) >= cursor_order(result.cursor):
                    return False
                kept.cursor = result.cursor
                return True

            await self._store.update(handle, advance)
        return result

    async def chat_copy(
        self, handle: str, owner: str | None, conversation_id: str
    ) -> tuple[list[TranscriptEntry], bool]:
        """The whole conversation as Salesforce keeps it, and whether it was cut short."""
        record = await self._session(handle, owner)
        state = self._conversation(record, conversation_id)
        try:
            entries, cut = await fetch_whole(
                self._client, record.access_token.get_secret_value(), state.conversation_id
            )
        except ScrtError as exc:
            raise HandoffError(describe(exc)) from exc
        return shown(entries), cut

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

    async def close(
        self,
        handle: str,
        owner: str | None,
        conversation_id: str,
        widget_key: str | None = None,
    ) -> CloseReport:
        """End the session, then close the conversation; forget the handle once closed."""
        record = await self._session(handle, owner, widget_key, conversation_id)
        state = self._conversation(record, conversation_id)
        token = record.access_token.get_secret_value()
        problems: list[str] = []
        session_ended = conversation_closed = False
        try:
            # At most half of the time left, so closing the conversation keeps time of its own.
            with call_deadline(remaining(math.inf) / 2):
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

            def tombstone(fresh: SessionRecord) -> bool:
                fresh.closed = True
                fresh.access_token = SecretStr("")
                return True

            # Tombstone first, so a read racing with the close cannot reopen a stream.
            await self._store.update(handle, tombstone)
            await self._delivery.drop(handle, record.expires_at)
            await self._limits.conversations_over(record.owner, handle, list(record.conversations))
            await self._limits.session_over(handle)
        log.info(
            "conversation.close",
            session_ended=session_ended,
            conversation_closed=conversation_closed,
        )
        return CloseReport(session_ended, conversation_closed, problems)

    async def end_every_session(self, records: list[SessionRecord]) -> int:
        """Before a server that keeps chats in memory stops: end the messaging session of every
        open conversation, so no agent is left talking to nobody. Returns how many ended."""
        calls = [
            self._client.end_session(record.access_token.get_secret_value(), cid)
            for record in records
            if not record.closed
            for cid in record.conversations
        ]
        results = await asyncio.gather(*calls, return_exceptions=True)
        ended = sum(1 for r in results if not isinstance(r, BaseException))
        log.info("shutdown.sessions_ended", ended=ended, failed=len(results) - ended)
        return ended
