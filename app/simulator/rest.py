"""The MIAW REST v2 endpoints (`/iamessage/api/v2`) and the embedded-service config endpoints."""

from __future__ import annotations

import json
import re
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from app.simulator.actors import Actors
from app.simulator.errors import bad_request, conflict
from app.simulator.org import Conversation, SimulatedOrg, now_ms
from app.simulator.tokens import TokenRecord

Json = dict[str, Any]
V2 = "/iamessage/api/v2"
UUID_V4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def org_of(request: Request) -> SimulatedOrg:
    org: SimulatedOrg = request.app.state.simulator
    return org


def actors_of(request: Request) -> Actors:
    actors: Actors = request.app.state.actors
    return actors


async def json_body(request: Request) -> Json:
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise bad_request("The request body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise bad_request("The request body must be a JSON object.")
    return body


def require_str(body: Json, name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value:
        raise bad_request(f"Specify {name}.")
    return value


def authorize(request: Request) -> TokenRecord:
    return org_of(request).tokens.verify(request.headers.get("authorization"))


def conversation(request: Request, token: TokenRecord) -> Conversation:
    return org_of(request).conversation_for(token, request.path_params["conversationId"])


def require_deployment_query(request: Request) -> None:
    if not request.query_params.get("esDeveloperName"):
        raise bad_request("Specify esDeveloperName.")


# -- conversations -------------------------------------------------------------------------


async def create_conversation(request: Request) -> Response:
    token = authorize(request)
    org = org_of(request)
    body = await json_body(request)
    raw_id = body.get("conversationId")
    if not isinstance(raw_id, str) or not UUID_V4.match(raw_id.lower()):
        raise bad_request("Specify the conversationId in UUID format.")
    conversation_id = raw_id.lower()
    es_name = require_str(body, "esDeveloperName")
    if es_name != org.options.es_developer_name:
        raise bad_request("No Embedded Service deployment was found for this esDeveloperName.")
    attributes = body.get("routingAttributes", {})
    if not isinstance(attributes, dict):
        raise bad_request("routingAttributes must be an object of field names to values.")
    if conversation_id in org.conversations:
        raise conflict("A conversation with this conversationId already exists.")
    conv = Conversation(
        conversation_id=conversation_id,
        subject=token.subject,
        es_developer_name=es_name,
        routing_attributes=attributes,
        start_ms=now_ms(),
        channel_address=org.channel_address,
        session=org.new_session(),
    )
    org.add_conversation(conv)
    actors_of(request).start_routing(conv)
    return Response(status_code=201)


async def routing_status(request: Request) -> Response:
    conv = conversation(request, authorize(request))
    return JSONResponse(
        {"conversationId": conv.conversation_id, "routingStatus": conv.routing_status}
    )


def int_param(request: Request, name: str, default: int | None = None) -> int | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise bad_request(f"{name} must be an integer.") from None


def limit_param(request: Request) -> int:
    limit = int_param(request, "limit", 20)
    assert limit is not None
    if limit < 1:
        raise bad_request("limit must be between 1 and 50.")
    return min(limit, 50)


async def list_conversations(request: Request) -> Response:
    token = authorize(request)
    org = org_of(request)
    include_closed = request.query_params.get("inclClosedConvs", "false").lower() == "true"
    limit = limit_param(request)
    mine = [c for c in org.conversations.values() if c.subject == token.subject]
    open_count = sum(1 for c in mine if c.open)
    listed = [c for c in mine if c.open or include_closed]
    listed.sort(key=lambda c: c.start_ms, reverse=True)
    return JSONResponse(
        {
            "openConversationsFound": open_count,
            "closedConversationsFound": len(mine) - open_count,
            "conversations": [
                {
                    "conversationId": c.conversation_id,
                    "startTimestamp": c.start_ms,
                    "endTimestamp": c.end_ms,
                }
                for c in listed[:limit]
            ],
        }
    )


async def list_entries(request: Request) -> Response:
    conv = conversation(request, authorize(request))
    limit = limit_param(request)
    start = int_param(request, "startTimestamp")
    end = int_param(request, "endTimestamp")
    direction = request.query_params.get("direction", "FromEnd")
    if direction not in ("FromStart", "FromEnd"):
        raise bad_request("direction must be FromStart or FromEnd.")
    type_filter = request.query_params.get("entryTypeFilter")
    wanted = {t.strip() for t in type_filter.split(",") if t.strip()} if type_filter else None
    selected = [
        e
        for e in conv.entries
        if (start is None or e["transcriptedTimestamp"] >= start)
        and (end is None or e["transcriptedTimestamp"] <= end)
        and (wanted is None or e["entryType"] in wanted)
    ]
    page = selected[:limit] if direction == "FromStart" else selected[::-1][:limit]
    return JSONResponse({"conversationEntries": page})


async def close_conversation(request: Request) -> Response:
    token = authorize(request)
    require_deployment_query(request)
    conv = conversation(request, token)
    if not conv.open:
        raise bad_request("The conversation is closed.")
    actors_of(request).close(conv)
    return Response(status_code=204)


async def end_session(request: Request) -> Response:
    token = authorize(request)
    require_deployment_query(request)
    conv = conversation(request, token)
    if not conv.open:
        raise bad_request("The conversation is closed.")
    actors_of(request).end_session(conv)
    return Response(status_code=204)
