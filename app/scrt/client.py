"""`ScrtClient`: one async method per SCRT REST endpoint, safe to share between all users.

The client holds only the shared `httpx.AsyncClient`, the deployment config and the retry policy;
each call gets the caller's access token as an argument. Ids that make a write idempotent (the
conversation id, message ids, ack ids) are generated once, before the first attempt, so a retried
call can never create a second conversation or a duplicate message; and a send whose answer was
lost is looked for among the conversation's entries before it is repeated.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import httpx

from app.scrt import payloads, routes, shapes
from app.scrt.config import ScrtConfig
from app.scrt.errors import ScrtConflictError, ScrtProtocolError
from app.scrt.events import ReconnectPolicy, ScrtEventStream, TokenSource
from app.scrt.models import Entry, EntryType
from app.scrt.payloads import new_id
from app.scrt.results import (
    AccessToken,
    BusinessHours,
    ConversationList,
    RoutingStatus,
    SentMessage,
)
from app.scrt.retry import RetryOn, RetryPolicy, call_with_retry
from app.scrt.transport import Params, fill_route, json_or_none, send

Token = str | AccessToken
"""A bearer token string, or the `AccessToken` it came in."""

Files = Mapping[str, tuple[str | None, bytes, str]]

RECONCILE_WINDOW = 50
"""How many of a conversation's newest messages are searched for a send whose answer was lost."""


def _bearer(token: Token) -> str:
    return token.bearer if isinstance(token, AccessToken) else token


class ScrtClient:
    """One per process, shared by all users: every call takes the caller's token."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        config: ScrtConfig,
        *,
        retry: RetryPolicy | None = None,
        streams: httpx.AsyncClient | None = None,
    ) -> None:
        self._http = http
        self._streams = streams or http
        """Event streams hold their connection for the session's life: on a client of their
        own they never take a REST request's place in a bounded pool."""
        self._config = config
        self._retry = retry or RetryPolicy()

    @property
    def config(self) -> ScrtConfig:
        return self._config

    # --- tokens -----------------------------------------------------------------------------

    async def guest_token(self, *, device_id: str | None = None) -> AccessToken:
        """Mint a token for a new anonymous end user (a new subject every time)."""
        body = payloads.token_request(self._config, device_id=device_id)
        response = await self._call(
            "POST", routes.GUEST_TOKEN, token=None, json_body=body, retry_on=RetryOn.SERVER
        )
        return AccessToken.from_response(json_or_none(response))

    async def verified_token(self, customer_identity_token: str) -> AccessToken:
        """Mint a token for a verified user; not retried, as identity tokens may be single-use."""
        body = payloads.verified_token_request(self._config, customer_identity_token)
        response = await self._call(
            "POST", routes.VERIFIED_TOKEN, token=None, json_body=body, retry_on=RetryOn.NEVER
        )
        return AccessToken.from_response(json_or_none(response))

    async def continuation_token(self, token: Token) -> AccessToken:
        """Same subject, new client id, same expiry: for a second reader, not a refresh."""
        response = await self._call("GET", routes.CONTINUATION_TOKEN, token=token)
        return AccessToken.from_response(json_or_none(response))

    async def revoke_token(self, token: Token) -> None:
        await self._call("DELETE", routes.REVOKE_TOKEN, token=token)

    # --- conversations ----------------------------------------------------------------------

    async def create_conversation(
        self,
        token: Token,
        *,
        conversation_id: str | None = None,
        routing_attributes: Mapping[str, str] | None = None,
        language: str | None = None,
    ) -> str:
        """Start a conversation (routing begins at once: open the SSE stream first).

        Returns the conversation id. A 409 on a retry means an earlier attempt succeeded but its
        answer was lost, so it counts as success; a 409 on the first attempt is raised.
        """
        conversation_id = conversation_id or new_id()
        body = payloads.conversation_request(
            self._config, conversation_id, routing_attributes, language
        )
        url = self._config.url(routes.CONVERSATIONS)

        async def attempt(number: int) -> None:
            try:
                await send(
                    self._http,
                    "POST",
                    url,
                    route=routes.CONVERSATIONS,
                    token=_bearer(token),
                    json_body=body,
                )
            except ScrtConflictError:
                if number == 1:
                    raise

        await call_with_retry(
            attempt,
            policy=self._retry,
            retry_on=RetryOn.TRANSIENT,
            method="POST",
            route=routes.CONVERSATIONS,
        )
        return conversation_id

    async def routing_status(self, token: Token, conversation_id: str) -> RoutingStatus:
        response = await self._call("GET", routes.CONVERSATION, token, conversation_id)
        return RoutingStatus.from_response(conversation_id, json_or_none(response))

    async def list_conversations(
        self, token: Token, *, include_closed: bool = False, limit: int | None = None
    ) -> ConversationList:
        params: dict[str, str | int] = {"inclClosedConvs": "true" if include_closed else "false"}
        if limit is not None:
            params["limit"] = limit
        response = await self._call("GET", routes.CONVERSATION_LIST, token=token, params=params)
        return ConversationList.from_response(json_or_none(response))

    async def list_entries(
        self,
        token: Token,
        conversation_id: str,
        *,
        limit: int | None = None,
        start_timestamp: int | None = None,
        end_timestamp: int | None = None,
        direction: Literal["FromStart", "FromEnd"] | None = None,
        entry_types: Sequence[str] | None = None,
    ) -> list[Entry]:
        """Entries in the server's order (newest first by default); sort with `chronological`."""
        params: dict[str, str | int] = {}
        for name, value in (
            ("limit", limit),
            ("startTimestamp", start_timestamp),
            ("endTimestamp", end_timestamp),
            ("direction", direction),
        ):
            if value is not None:
                params[name] = value
        if entry_types:
            params["entryTypeFilter"] = ",".join(entry_types)
        response = await self._call("GET", routes.ENTRIES, token, conversation_id, params=params)
        items = shapes.objs(shapes.obj(json_or_none(response)).get("conversationEntries"))
        return [Entry.from_rest(item, conversation_id) for item in items]

    async def close_conversation(self, token: Token, conversation_id: str) -> None:
        """End the conversation for good (sends no body: a body makes SCRT fail)."""
        params = {"esDeveloperName": self._config.es_developer_name}
        await self._call("DELETE", routes.CONVERSATION, token, conversation_id, params=params)

    async def end_session(self, token: Token, conversation_id: str) -> None:
        """End the current messaging session; the conversation stays open."""
        params = {"esDeveloperName": self._config.es_developer_name}
        await self._call("DELETE", routes.SESSION, token, conversation_id, params=params)

    # --- sending ----------------------------------------------------------------------------

    async def send_message(
        self,
        token: Token,
        conversation_id: str,
        text: str,
        *,
        message_id: str | None = None,
        in_reply_to: str | None = None,
        new_session: bool = False,
        routing_attributes: Mapping[str, str] | None = None,
        language: str | None = None,
    ) -> SentMessage:
        """Send a text. After a `ScrtNoSessionError` (417), resend with `new_session=True` and
        the pre-chat `routing_attributes`, reusing `message_id` so it stays one message."""
        message = payloads.text_message(text, message_id or new_id(), in_reply_to)
        body = payloads.message_envelope(
            self._config, message, new_session, routing_attributes, language
        )
        return await self._post_message(token, conversation_id, routes.MESSAGE, message, body)

    async def send_choice(
        self,
        token: Token,
        conversation_id: str,
        option_identifiers: Sequence[str],
        *,
        in_reply_to: str,
        message_id: str | None = None,
        new_session: bool = False,
        routing_attributes: Mapping[str, str] | None = None,
        language: str | None = None,
    ) -> SentMessage:
        """Answer a ChoicesMessage (`in_reply_to` = its id) with options' `optionIdentifier`s."""
        message = payloads.choices_response(option_identifiers, message_id or new_id(), in_reply_to)
        body = payloads.message_envelope(
            self._config, message, new_session, routing_attributes, language
        )
        return await self._post_message(token, conversation_id, routes.MESSAGE, message, body)

    async def send_file(
        self,
        token: Token,
        conversation_id: str,
        *,
        filename: str,
        content: bytes,
        mime_type: str,
        caption: str | None = None,
        message_id: str | None = None,
        in_reply_to: str | None = None,
        new_session: bool = False,
        routing_attributes: Mapping[str, str] | None = None,
        language: str | None = None,
    ) -> SentMessage:
        """Upload an attachment (SCRT refuses files over 5 MB with 413, bad types with 415)."""
        message = payloads.file_message(message_id or new_id(), caption, in_reply_to)
        entry = payloads.message_envelope(
            self._config, message, new_session, routing_attributes, language
        )
        files: Files = {
            "messageEntry": (None, json.dumps(entry).encode(), "application/json"),
            "fileData": (filename, content, mime_type),
        }
        return await self._post_message(token, conversation_id, routes.FILE, message, files=files)

    async def send_typing(self, token: Token, conversation_id: str, *, typing: bool = True) -> None:
        body = payloads.typing_entry(typing)
        await self._call("POST", routes.ENTRY, token, conversation_id, json_body=body)

    async def acknowledge_entries(
        self,
        token: Token,
        conversation_id: str,
        *,
        delivered: Sequence[str] = (),
        read: Sequence[str] = (),
    ) -> None:
        """Send delivery and/or read receipts for entries (by their `identifier`)."""
        body = payloads.acknowledgements(delivered, read)
        await self._call("POST", routes.ACKNOWLEDGE_ENTRIES, token, conversation_id, json_body=body)

    # --- deployment (no auth) ---------------------------------------------------------------

    async def embedded_service_config(self, *, language: str | None = None) -> dict[str, Any]:
        """The deployment config (412 `ScrtStatusError` when the deployment is not published)."""
        params: dict[str, str | int] = {
            "orgId": self._config.org_id,
            "esConfigName": self._config.es_developer_name,
        }
        if language:
            params["language"] = language
        response = await self._call(
            "GET", routes.EMBEDDED_SERVICE_CONFIG, token=None, params=params
        )
        body = json_or_none(response)
        if not isinstance(body, dict):
            raise ScrtProtocolError("embedded-service-config answered without a JSON object")
        return body

    async def business_hours(self) -> BusinessHours:
        params: Params = {
            "orgId": self._config.org_id,
            "esConfigName": self._config.es_developer_name,
        }
        response = await self._call("GET", routes.BUSINESS_HOURS, token=None, params=params)
        return BusinessHours.from_response(json_or_none(response))

    # --- events -----------------------------------------------------------------------------

    def event_stream(
        self,
        token: TokenSource,
        *,
        last_event_id: str | None = None,
        reconnect: ReconnectPolicy | None = None,
        read_timeout: float = 60.0,
        on_open: Callable[[int], None] | None = None,
    ) -> ScrtEventStream:
        """The SSE stream of every conversation of the token's subject (see `ScrtEventStream`)."""
        return ScrtEventStream(
            self._streams,
            self._config,
            token,
            last_event_id=last_event_id,
            reconnect=reconnect,
            read_timeout=read_timeout,
            on_open=on_open,
        )

    # --- plumbing ---------------------------------------------------------------------------

    async def find_message(
        self, token: Token, conversation_id: str, message_id: str
    ) -> SentMessage | None:
        """The message if Salesforce has it among the conversation's newest messages, else None:
        how a send whose answer was lost is told apart from one that never arrived."""
        newest = await self.list_entries(
            token, conversation_id, limit=RECONCILE_WINDOW, entry_types=[EntryType.MESSAGE]
        )
        found = next((e for e in newest if e.identifier == message_id), None)
        if found is None:
            return None
        return SentMessage(message_id=message_id, client_timestamp=found.client_timestamp)

    async def _post_message(
        self,
        token: Token,
        conversation_id: str,
        route: str,
        message: dict[str, Any],
        body: dict[str, Any] | None = None,
        *,
        files: Files | None = None,
    ) -> SentMessage:
        message_id: str = message["id"]
        url = self._config.url(fill_route(route, conversationId=conversation_id))

        async def attempt(_: int) -> SentMessage:
            try:
                response = await send(
                    self._http,
                    "POST",
                    url,
                    route=route,
                    token=_bearer(token),
                    json_body=body,
                    files=files,
                )
            except ScrtConflictError:
                # An entry with this id exists: an earlier attempt (or call) delivered it.
                return SentMessage(message_id=message_id)
            return SentMessage.from_response(message_id, json_or_none(response))

        async def reconcile() -> SentMessage | None:
            return await self.find_message(token, conversation_id, message_id)

        return await call_with_retry(
            attempt,
            policy=self._retry,
            retry_on=RetryOn.TRANSIENT,
            method="POST",
            route=route,
            reconcile=reconcile,
        )

    async def _call(
        self,
        method: str,
        route: str,
        token: Token | None,
        conversation_id: str | None = None,
        *,
        params: Params | None = None,
        json_body: Any = None,
        files: Files | None = None,
        retry_on: RetryOn = RetryOn.TRANSIENT,
    ) -> httpx.Response:
        path = {"conversationId": conversation_id} if conversation_id is not None else {}
        url = self._config.url(fill_route(route, **path))
        bearer = _bearer(token) if token is not None else None

        async def attempt(_: int) -> httpx.Response:
            return await send(
                self._http,
                method,
                url,
                route=route,
                token=bearer,
                params=params,
                json_body=json_body,
                files=files,
            )

        return await call_with_retry(
            attempt, policy=self._retry, retry_on=retry_on, method=method, route=route
        )
