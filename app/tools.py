"""The MCP tools and the widget resource. Thin: validate, call the service, shape the result.

Tool names are those of the earlier TypeScript server, so existing ChatGPT instructions keep
working. Each docstring is what the model reads: when to call the tool and what comes back.
"""

import asyncio
import base64
import binascii
import contextlib
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, Self

import structlog
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult, TextContent, ToolAnnotations
from pydantic import BaseModel, Field
from redis.exceptions import RedisError

from app.audit import Audit, call_arguments, callers, touch
from app.chat_copy import as_text
from app.conversations import BAD_CURSOR, HandoffService, Upload
from app.failures import HandoffError
from app.hours import iso
from app.identity import CustomerIdentity
from app.limits import LimitReached, Limits
from app.prechat import AgentContext
from app.scrt import ScrtConnectionError, ScrtError, SentMessage
from app.scrt.deadline import call_deadline
from app.sends import CLIENT_MESSAGE_ID_PATTERN
from app.signin import signed_in_user
from app.state.sealing import SealingError
from app.transcript import RoleInfo, TranscriptEntry
from app.widget import WidgetResource

log = structlog.get_logger(__name__)

INSTRUCTIONS = """\
Hands the user's conversation to the company's Salesforce support chat.
1. generate_guest_access_token → sessionId (supportOpen false: support is closed, tell the user
   when it opens, supportOpensAt). 2. create_conversation(sessionId) → conversationId.
3. list_conversation_entries(sessionId, conversationId) waits for and returns new entries; relay
   every bot message to the user as written. 4. send_message relays what the user says.
When roleInfo.isLiveAgent is true, call show_salesforce_chat once: the user then chats with the
human agent directly in the widget; stop relaying. When roleInfo.conversationEnded is true the chat
is over. close_conversation ends it when the user wants to stop; before that,
get_conversation_transcript gives the user a copy when they ask.
"""

SessionId = Annotated[
    str,
    Field(
        min_length=1, max_length=200, description="The sessionId from generate_guest_access_token"
    ),
]
ConversationId = Annotated[
    str,
    Field(
        min_length=36,
        max_length=36,
        pattern=r"^[0-9a-fA-F-]{36}$",
        description="The conversationId from create_conversation",
    ),
]


class PrechatFieldInfo(BaseModel):
    name: str = Field(description="The field's API name: the key in routingAttributes")
    required: bool
    hidden: bool = Field(description="Not shown to users: set by the integration, not asked for")
    type: str = Field(description="Text, Email, Number, Phone, Checkbox or ChoiceList")
    maxLength: int | None = None
    choices: list[str] | None = Field(
        default=None, description="A ChoiceList field's values: pass one of these exactly"
    )


class GuestSession(BaseModel):
    sessionId: str = Field(description="Opaque handle; pass it to every other tool")
    expiresAt: str = Field(description="When the session expires (ISO 8601, UTC)")
    verified: bool = Field(
        default=False,
        description="The user is signed in and Salesforce knows who they are (not a guest)",
    )
    openConversations: list[str] = Field(
        default_factory=list,
        description="A verified user's conversations still open from an earlier chat: continue "
        "one with list_conversation_entries (this sessionId) instead of creating another",
    )
    supportOpen: bool | None = Field(
        default=None,
        description="Whether the company's support is open now (its business hours); null when "
        "unknown. When false, tell the user before opening a conversation",
    )
    supportOpensAt: str | None = Field(
        default=None, description="When support opens next, if it is closed (ISO 8601, UTC)"
    )
    prechatFields: list[PrechatFieldInfo] | None = Field(
        default=None,
        description="The deployment's pre-chat form (null when unknown): ask the user for the "
        "required ones that are not hidden, and pass them to create_conversation as "
        "routingAttributes",
    )


class ConversationCreated(BaseModel):
    conversationId: str
    status: str = Field(description="'created': now call list_conversation_entries")
    contextMessage: Literal["sent", "failed", "unconfirmed"] | None = Field(
        default=None,
        description="How the first message carrying your summary and the customer's details "
        "went: 'sent'; 'failed' (the conversation is open anyway: say what matters with "
        "send_message); 'unconfirmed' (Salesforce may have it: check the entries before "
        "repeating it); null when none was needed",
    )


class ChatCopy(BaseModel):
    conversationId: str
    entries: list[TranscriptEntry] = Field(description="The conversation, oldest first")
    text: str = Field(description="The same as plain text, one line per message or event")
    complete: bool = Field(description="False when the chat was too long to copy whole")


MAX_UPLOAD_BYTES = 5 * 1024 * 1024
"""Salesforce's limit for a file from the user (larger ones it refuses with 413)."""
UPLOAD_BASE64_CHARS = (MAX_UPLOAD_BYTES + 2) // 3 * 4
MAX_REQUEST_BYTES = UPLOAD_BASE64_CHARS + 1024 * 1024
"""The largest /mcp request body taken: a send_file call with a file at Salesforce's limit (the
SDK's default, 4 MB, would refuse files over about 3 MB)."""

EntryId = Annotated[
    str,
    Field(
        min_length=1,
        max_length=100,
        pattern=r"^[0-9A-Za-z-]+$",
        description="An entry's id, as list_conversation_entries returned it",
    ),
]


class ActivityReported(BaseModel):
    typing: bool | None = Field(description="The typing state sent, if any")
    read: int = Field(description="How many entries were acknowledged as read")


ClientMessageId = Annotated[
    str | None,
    Field(
        pattern=CLIENT_MESSAGE_ID_PATTERN,
        description="Your own id for this message (letters, digits, . _ : -; at most 100). Reuse "
        "it when retrying the same message: it is never sent twice.",
    ),
]


class MessageSent(BaseModel):
    status: str = Field(default="sent", description="'sent': Salesforce has the message")
    messageId: str
    conversationId: str
    clientMessageId: str | None = Field(
        default=None, description="The idempotency key the call was made with, if any"
    )

    @classmethod
    def of(cls, sent: SentMessage, conversation_id: str, client_message_id: str | None) -> Self:
        return cls(
            messageId=sent.message_id,
            conversationId=conversation_id.lower(),
            clientMessageId=client_message_id,
        )


@dataclass(frozen=True)
class ToolLimits:
    wait_default: float
    """waitSeconds when the caller gives none."""
    wait_cap: float
    """The largest waitSeconds honoured."""
    deadline: float
    """Every call answers within this many seconds; its Salesforce requests share them."""


class EntriesPage(BaseModel):
    entries: list[TranscriptEntry] = Field(description="New entries since the cursor, oldest first")
    cursor: str = Field(description="Pass back to continue after these entries")
    roleInfo: RoleInfo


class RoutingStatusResult(BaseModel):
    conversationId: str
    routingStatus: str | None = Field(
        description="INITIAL, ROUTED, TRANSFER or NEEDS_ROUTING (no one owns the conversation)"
    )


class CloseResult(BaseModel):
    closed: bool
    sessionEnded: bool
    conversationClosed: bool
    problems: list[str] = Field(
        default_factory=list, description="Steps that failed although the conversation closed"
    )


class ChatShown(BaseModel):
    conversationId: str
    agentName: str | None
    status: str = Field(description="live (an agent is on), waiting, or ended")


BACKSTOP_SECONDS = 1.0
"""TOOL_DEADLINE_SECONDS is at most 28: a call still answers inside Heroku's 30 s."""
OVERRAN = "The server could not answer in time; try again shortly. Nothing of the chat is lost."
STATE_UNAVAILABLE = (
    "The server's state store is unavailable; try again shortly. Nothing of the chat is lost."
)


MAX_PRECHAT_FIELDS = 50
PrechatName = Annotated[
    str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
]
"""A pre-chat field's API name (`_firstName`, `Order_Number__c`)."""
PrechatValue = Annotated[str, Field(max_length=1000)]

WidgetKey = Annotated[
    str | None,
    Field(
        max_length=200,
        description="Only the live-chat widget passes this; leave it out.",
    ),
]


def owner_of(ctx: Context) -> str | None:
    """The user a chat is bound to: the ChatGPT user when the request says (`openai/subject` in
    `_meta`), else the signed-in user (another MCP client with a sign-in token), else none."""
    meta: Any = ctx.request_context.meta or {}
    subject = meta.get("openai/subject") if isinstance(meta, dict) else None
    if isinstance(subject, str) and subject:
        return subject
    user = signed_in_user(ctx.request_context.request)
    return user.principal if user is not None else None


def parse_cursor(cursor: str | None) -> str | None:
    if cursor is None or cursor == "":
        return None
    if not re.fullmatch(r"[0-9]{1,20}(-[0-9]{1,20})?", cursor):
        raise ToolError(BAD_CURSOR)
    return cursor


@contextlib.asynccontextmanager
async def tool_call(
    name: str, deadline: float, ctx: Context, audit: Audit, conversation_id: str | None = None
) -> AsyncIterator[None]:
    """One log line and one audit record per tool call with duration and outcome; HandoffError
    → a tool error (an abuse limit's: `refused` in the audit). Every Salesforce request of the
    call shares one deadline."""
    started = time.perf_counter()
    outcome = "ok"
    failure: dict[str, str] = {}
    # The audit names the verified signed-in user over the `openai/subject` a client claims
    # (which still decides whose chat it is: `owner_of`).
    caller, subject = callers(ctx.request_context.request, ctx.request_context.meta, "handoff")
    with (
        audit.call(name, "handoff", caller, call_arguments(ctx), subject=subject) as audited,
        structlog.contextvars.bound_contextvars(tool=name, conversation_id=conversation_id),
        call_deadline(deadline),
    ):
        if conversation_id:
            audited.touch("Conversation", conversation_id.lower())
        backstop = asyncio.timeout(deadline + BACKSTOP_SECONDS)
        try:
            # Salesforce requests and waits keep to the deadline themselves; this bounds what
            # else a call may wait for (a shared state store that hangs).
            async with backstop:
                yield
        except HandoffError as exc:
            outcome = "error"
            if isinstance(exc, LimitReached):
                audited.refused()
            failure = salesforce_failure(exc.__cause__)
            raise ToolError(str(exc)) from exc
        except ToolError:
            outcome = "error"
            raise
        except RedisError as exc:
            outcome = "error"
            log.warning("state.unavailable", error=type(exc).__name__)
            raise ToolError(STATE_UNAVAILABLE) from exc
        except SealingError as exc:
            outcome = "error"
            log.error("state.unsealable")
            raise ToolError(str(exc)) from exc
        except TimeoutError as exc:
            if not backstop.expired():
                outcome = "crash"
                raise
            outcome = "error"
            log.warning("tool.overran")
            raise ToolError(OVERRAN) from exc
        except Exception:
            outcome = "crash"
            raise
        finally:
            log.info(
                "tool.call",
                outcome=outcome,
                duration_ms=round((time.perf_counter() - started) * 1000, 1),
                **failure,
            )


def salesforce_failure(cause: BaseException | None) -> dict[str, str]:
    """Log fields naming the Salesforce failure behind a tool error: its class and, for a
    network failure, what the network said (a certificate problem, an unknown host)."""
    if not isinstance(cause, ScrtError):
        return {}
    fields = {"error": type(cause).__name__}
    if isinstance(cause, ScrtConnectionError) and cause.cause:
        fields["cause"] = cause.cause
    return fields


def register_tools(
    mcp: MCPServer,
    service: HandoffService,
    widget: WidgetResource,
    limits: ToolLimits,
    abuse: Limits,
    security: list[dict[str, Any]],
    identity: CustomerIdentity | None,
    audit: Audit,
) -> None:
    wait_default, wait_cap = limits.wait_default, limits.wait_cap

    def call(
        name: str, ctx: Context, conversation_id: str | None = None
    ) -> contextlib.AbstractAsyncContextManager[None]:
        return tool_call(name, limits.deadline, ctx, audit, conversation_id)

    open_world = ToolAnnotations(read_only_hint=False, destructive_hint=False, open_world_hint=True)
    read_only = ToolAnnotations(read_only_hint=True, destructive_hint=False, open_world_hint=True)
    # Which sign-in each tool accepts (ChatGPT reads `securitySchemes`; the SDK's tool model has
    # no field for it, so it goes in `_meta`, where ChatGPT also looks).
    secured = {"securitySchemes": security}
    widget_callable = {**widget.tool_meta(app_callable=True), **secured}
    widget_only = {**widget.tool_meta(app_callable=True, app_only=True), **secured}

    @mcp.tool(annotations=open_world, meta={"openai/widgetAccessible": False, **secured})
    async def generate_guest_access_token(ctx: Context) -> GuestSession:
        """Start a Salesforce chat session for the user (a guest). Call this first, once per chat.
        Returns a sessionId to pass to every other tool; it expires at expiresAt."""
        async with call("generate_guest_access_token", ctx):
            owner = owner_of(ctx)
            request = ctx.request_context.request
            await abuse.admit("generate_guest_access_token", owner, request)
            user = signed_in_user(request)
            identity_token = identity.token_for(user) if identity and user else None
            record = await service.start_session(owner, identity_token)
            expires = datetime.fromtimestamp(record.expires_at, UTC)
            # After minting: when Salesforce cannot be reached, the token's failure is the one
            # reported, and nothing else is tried.
            hours = await service.support_hours()
            form = await service.prechat_form()
            return GuestSession(
                sessionId=record.handle,
                expiresAt=expires.isoformat().replace("+00:00", "Z"),
                verified=record.verified,
                openConversations=[
                    state.conversation_id for state in record.conversations.values()
                ],
                supportOpen=hours.open if hours is not None else None,
                supportOpensAt=iso(hours.opens_at) if hours is not None else None,
                prechatFields=None
                if form is None
                else [
                    PrechatFieldInfo(
                        name=f.name,
                        required=f.required,
                        hidden=f.hidden,
                        type=f.type,
                        maxLength=f.max_length,
                        choices=list(f.choices) if f.choices else None,
                    )
                    for f in form.fields
                ],
            )

    @mcp.tool(annotations=open_world, meta=secured)
    async def create_conversation(
        sessionId: SessionId,
        ctx: Context,
        routingAttributes: Annotated[
            dict[PrechatName, PrechatValue] | None,
            Field(
                max_length=MAX_PRECHAT_FIELDS,
                description='Pre-chat values by field API name, e.g. {"_firstName": "Ana"}',
            ),
        ] = None,
        outsideBusinessHours: Annotated[
            bool,
            Field(
                description="Open it even though support is closed now (only when the user, told "
                "so, wants to leave a message anyway)"
            ),
        ] = False,
        summary: Annotated[
            str | None,
            Field(
                max_length=2000,
                description="For the human agent who takes over: a short account of what the "
                "user asked and what was already tried, so they need not repeat it. Leave out "
                "anything the user did not want shared, and confirm it with the user first",
            ),
        ] = None,
        customerName: Annotated[str | None, Field(max_length=200)] = None,
        customerEmail: Annotated[str | None, Field(max_length=320)] = None,
        customerDetails: Annotated[
            str | None,
            Field(
                max_length=2000,
                description="Other details the user agreed to share (order number, account…)",
            ),
        ] = None,
    ) -> ConversationCreated:
        """Open a conversation with the company's support (its bot answers first). Then call
        list_conversation_entries to get the bot's greeting. Pass a summary (and the customer's
        details the user agreed to share) so the human agent who takes over starts informed.
        Outside business hours it is refused with when support opens next, unless
        outsideBusinessHours is true."""
        async with call("create_conversation", ctx):
            owner = owner_of(ctx)
            request = ctx.request_context.request

            async def admit() -> None:
                await abuse.admit("create_conversation", owner, request)

            opened = await service.create_conversation(
                sessionId,
                owner,
                dict(routingAttributes or {}),
                outside_hours=outsideBusinessHours,
                admit=admit,
                context=AgentContext(
                    summary=summary, name=customerName, email=customerEmail, details=customerDetails
                ),
            )
            touch("Conversation", opened.conversation_id)
            return ConversationCreated(
                conversationId=opened.conversation_id,
                status="created",
                contextMessage=opened.context_message,
            )

    @mcp.tool(annotations=open_world, meta=widget_callable)
    async def send_message(
        sessionId: SessionId,
        conversationId: ConversationId,
        text: Annotated[
            str, Field(min_length=1, max_length=8000, description="What the user said")
        ],
        ctx: Context,
        clientMessageId: ClientMessageId = None,
        widgetKey: WidgetKey = None,
    ) -> MessageSent:
        """Send the user's message to the conversation, word for word. Then call
        list_conversation_entries to get the reply. Give each new message a fresh
        clientMessageId and pass the same one if you retry it after an error: a message
        Salesforce already has is then reported sent, not sent again."""
        async with call("send_message", ctx, conversationId):
            sent = await service.send_message(
                sessionId, owner_of(ctx), conversationId, text, clientMessageId, widgetKey
            )
            return MessageSent.of(sent, conversationId, clientMessageId)

    @mcp.tool(annotations=open_world, meta=widget_callable)
    async def send_choice(
        sessionId: SessionId,
        conversationId: ConversationId,
        messageId: EntryId,
        choiceId: Annotated[
            str,
            Field(min_length=1, max_length=200, description="The id of the choice the user picked"),
        ],
        ctx: Context,
        clientMessageId: ClientMessageId = None,
        widgetKey: WidgetKey = None,
    ) -> MessageSent:
        """Pick one of the choices (buttons, quick replies) a bot or agent offered: messageId is
        the id of the entry with `choices`, choiceId the picked choice's id. Only the one the
        user picked; if they answer in their own words, use send_message instead. The pick
        reaches Salesforce as the user's answer to that message."""
        async with call("send_choice", ctx, conversationId):
            sent = await service.send_choice(
                sessionId,
                owner_of(ctx),
                conversationId,
                messageId,
                choiceId,
                clientMessageId,
                widgetKey,
            )
            return MessageSent.of(sent, conversationId, clientMessageId)

    @mcp.tool(annotations=open_world, meta=widget_only)
    async def send_file(
        sessionId: SessionId,
        conversationId: ConversationId,
        fileName: Annotated[
            str,
            Field(
                min_length=1,
                max_length=255,
                pattern=r"^[^/\\\x00-\x1f]+$",
                description="The file's name, without a path",
            ),
        ],
        mimeType: Annotated[
            str,
            Field(
                max_length=100,
                pattern=r"^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*$",
                description="The file's MIME type, e.g. image/png",
            ),
        ],
        content: Annotated[
            str,
            Field(
                min_length=1,
                max_length=UPLOAD_BASE64_CHARS,
                description="The file's bytes in base64, at most "
                f"{MAX_UPLOAD_BYTES // (1024 * 1024)} MB",
            ),
        ],
        ctx: Context,
        caption: Annotated[str | None, Field(max_length=1000)] = None,
        clientMessageId: ClientMessageId = None,
        widgetKey: WidgetKey = None,
    ) -> MessageSent:
        """For the live-chat widget: sends a file the user attached to the agent."""
        async with call("send_file", ctx, conversationId):
            try:
                data = base64.b64decode(content, validate=True)
            except binascii.Error:
                raise ToolError("content must be the file's bytes in base64.") from None
            if len(data) > MAX_UPLOAD_BYTES:
                raise ToolError(
                    f"content is over {MAX_UPLOAD_BYTES // (1024 * 1024)} MB, the most "
                    "Salesforce takes."
                )
            upload = Upload(fileName, mimeType.lower(), data, caption or None)
            sent = await service.send_file(
                sessionId, owner_of(ctx), conversationId, upload, clientMessageId, widgetKey
            )
            return MessageSent.of(sent, conversationId, clientMessageId)

    @mcp.tool(annotations=open_world, meta=widget_only)
    async def report_chat_activity(
        sessionId: SessionId,
        conversationId: ConversationId,
        ctx: Context,
        typing: Annotated[
            bool | None,
            Field(description="true: the user is typing; false: stopped; omit: no change"),
        ] = None,
        readEntryIds: Annotated[
            list[EntryId],
            Field(max_length=50, description="Entries the user has now seen (read receipts)"),
        ] = [],  # noqa: B006 (pydantic copies defaults)
        widgetKey: WidgetKey = None,
    ) -> ActivityReported:
        """For the live-chat widget: tells the agent that the user is typing and which of the
        agent's messages the user has read."""
        async with call("report_chat_activity", ctx, conversationId):
            await service.report_activity(
                sessionId,
                owner_of(ctx),
                conversationId,
                typing=typing,
                read=readEntryIds,
                widget_key=widgetKey,
            )
            return ActivityReported(typing=typing, read=len(readEntryIds))

    @mcp.tool(annotations=read_only, meta=widget_callable)
    async def list_conversation_entries(
        sessionId: SessionId,
        conversationId: ConversationId,
        ctx: Context,
        cursor: Annotated[
            str | None,
            Field(description="From a previous call; omit to continue after your last read"),
        ] = None,
        waitSeconds: Annotated[
            float | None,
            Field(
                ge=0,
                le=60,
                description=f"Wait this long for something new (default "
                f"{wait_default:g}, at most {wait_cap:g})",
            ),
        ] = None,
        includeTyping: Annotated[
            bool,
            Field(
                description="Also return what only a live display needs: typing_started/"
                "typing_stopped, and a bot's answer in the making (streaming, progress)"
            ),
        ] = False,
        widgetKey: WidgetKey = None,
    ) -> EntriesPage:
        """Get everything new in the conversation since the last read, oldest first: bot, agent
        and user messages, joins and leaves, transfers, queue position, session end. Waits for
        something new and returns the moment it arrives. roleInfo says who is on the other side:
        isLiveAgent (a human agent joined: call show_salesforce_chat), conversationEnded,
        endedByAgent."""
        async with call("list_conversation_entries", ctx, conversationId):
            wait = wait_default if waitSeconds is None else min(waitSeconds, wait_cap)
            result = await service.read(
                sessionId,
                owner_of(ctx),
                conversationId,
                parse_cursor(cursor),
                wait,
                include_live=includeTyping,
                widget_key=widgetKey,
            )
            return EntriesPage(
                entries=result.entries, cursor=result.cursor, roleInfo=result.role_info
            )

    @mcp.tool(annotations=read_only, meta=secured)
    async def get_conversation_transcript(
        sessionId: SessionId, conversationId: ConversationId, ctx: Context
    ) -> ChatCopy:
        """The whole conversation as Salesforce keeps it (bot, agent and user messages, who
        joined and left), to give the user a copy when they ask for one. Works until
        close_conversation; typing indicators are not in it."""
        async with call("get_conversation_transcript", ctx, conversationId):
            entries, cut = await service.chat_copy(sessionId, owner_of(ctx), conversationId)
            return ChatCopy(
                conversationId=conversationId.lower(),
                entries=entries,
                text=as_text(entries, cut=cut),
                complete=not cut,
            )

    @mcp.tool(annotations=read_only, meta=secured)
    async def get_conversation_routing_status(
        sessionId: SessionId, conversationId: ConversationId, ctx: Context
    ) -> RoutingStatusResult:
        """Salesforce's routing status of the conversation: INITIAL (being routed), ROUTED
        (a bot or agent owns it), TRANSFER (moving to another owner), NEEDS_ROUTING (no owner,
        e.g. after the agent ended the session)."""
        async with call("get_conversation_routing_status", ctx, conversationId):
            status = await service.routing_status(sessionId, owner_of(ctx), conversationId)
            return RoutingStatusResult(
                conversationId=conversationId.lower(), routingStatus=status.routing_status
            )

    @mcp.tool(
        annotations=ToolAnnotations(
            read_only_hint=False, destructive_hint=True, open_world_hint=True
        ),
        meta=widget_callable,
    )
    async def close_conversation(
        sessionId: SessionId,
        conversationId: ConversationId,
        ctx: Context,
        widgetKey: WidgetKey = None,
    ) -> CloseResult:
        """End the chat: ends the messaging session and closes the conversation. Call when the
        user wants to stop. The sessionId is forgotten afterwards."""
        async with call("close_conversation", ctx, conversationId):
            report = await service.close(sessionId, owner_of(ctx), conversationId, widgetKey)
            if not report.conversation_closed:
                raise ToolError("The conversation is still open: " + "; ".join(report.problems))
            return CloseResult(
                closed=True,
                sessionEnded=report.session_ended,
                conversationClosed=report.conversation_closed,
                problems=report.problems,
            )

    @mcp.tool(
        annotations=ToolAnnotations(
            read_only_hint=True, destructive_hint=False, open_world_hint=False
        ),
        meta={**widget.tool_meta(app_callable=False, output_template=True), **secured},
    )
    async def show_salesforce_chat(
        sessionId: SessionId,
        conversationId: ConversationId,
        ctx: Context,
        agentName: Annotated[str | None, Field(max_length=200)] = None,
    ) -> Annotated[CallToolResult, ChatShown]:
        """Show the live chat widget, where the user talks to the human agent directly. Call it
        once, when roleInfo.isLiveAgent is true. After that, do not relay messages yourself."""
        async with call("show_salesforce_chat", ctx, conversationId):
            result = await service.read(sessionId, owner_of(ctx), conversationId, "0", 0)
            widget_key = await service.widget_key(sessionId, owner_of(ctx), conversationId)
            info = result.role_info
            status = (
                "ended" if info.conversationEnded else "live" if info.isLiveAgent else "waiting"
            )
            shown = ChatShown(
                conversationId=conversationId.lower(),
                agentName=info.agentName or agentName,
                status=status,
            )
            return CallToolResult(
                content=[
                    TextContent(
                        type="text",
                        text="The live chat is open in the widget; the user talks to the agent "
                        "there.",
                    )
                ],
                structured_content=shown.model_dump(),
                # Widget-only: the model never sees _meta.
                _meta={
                    "sessionId": sessionId,
                    "conversationId": conversationId.lower(),
                    # Lets the widget's calls in when ChatGPT sends them without the user.
                    "widgetKey": widget_key,
                },
            )
