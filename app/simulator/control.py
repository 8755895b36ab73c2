"""The control API: plays the human agent and the bot, injects faults, reports stats.

Not part of Salesforce. Tests, benchmarks and the demo's agent console drive the org through it.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from app.simulator import entries as E
from app.simulator import rich as R
from app.simulator.errors import bad_request, conflict, not_found
from app.simulator.faults import FaultBook
from app.simulator.options import MAX_FAULT_DELAY, FaultSpec
from app.simulator.org import Conversation
from app.simulator.rest import actors_of, json_body, org_of

Json = dict[str, Any]

# Long-polls answer before Heroku's 30 s router limit (docs/delivery.md, "Every call answers in
# time": server waits stay under it).
MAX_WAIT_SECONDS = 25.0


def faults_of(request: Request) -> FaultBook:
    book: FaultBook = request.app.state.faults
    return book


def target(request: Request) -> Conversation:
    conv = org_of(request).conversations.get(request.path_params["conversationId"].lower())
    if conv is None:
        raise not_found("No conversation with this id.")
    return conv


async def optional_body(request: Request) -> Json:
    return await json_body(request) if await request.body() else {}


def text_field(body: Json) -> str:
    text = body.get("text")
    if not isinstance(text, str) or not text.strip():
        raise bad_request('Field "text" must be a non-empty string.')
    return text


def since_param(request: Request) -> int | None:
    raw = request.query_params.get("since")
    if raw is None:
        return None
    try:
        since = int(raw)
    except ValueError:
        since = -1
    if since < 0:
        raise bad_request('Query parameter "since" must be a non-negative integer (a version).')
    return since


def wait_seconds_param(request: Request) -> float:
    raw = request.query_params.get("waitSeconds")
    if raw is None:
        return 0.0
    try:
        seconds = float(raw)
    except ValueError:
        seconds = math.nan
    if not 0 <= seconds <= MAX_WAIT_SECONDS:  # also rejects nan
        raise bad_request(
            f'Query parameter "waitSeconds" must be a number of seconds from 0 to '
            f"{MAX_WAIT_SECONDS:g}."
        )
    return seconds


async def until_disconnected(request: Request) -> None:
    # A GET has no body left to read, so the next message is the disconnect (ASGI spec).
    try:
        while (await request.receive())["type"] != "http.disconnect":
            pass
    except Exception:
        # The connection cannot be watched from here: rely on the deadline alone.
        await asyncio.get_running_loop().create_future()


async def wait_for_change(request: Request, since: int, seconds: float) -> None:
    """Wait for the org to change after `since`, for at most `seconds`.

    Also returns when the client goes away, so abandoned long-polls do not pile up (or hold a
    graceful shutdown) until their deadline.
    """
    org = org_of(request)
    if org.version != since:
        return
    change = asyncio.ensure_future(org.wait_for_change(since))
    gone = asyncio.ensure_future(until_disconnected(request))
    org.open_long_polls += 1
    try:
        await asyncio.wait({change, gone}, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        org.open_long_polls -= 1
        for task in (change, gone):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def list_conversations(request: Request) -> Response:
    since = since_param(request)
    seconds = wait_seconds_param(request)
    if since is not None and seconds > 0:
        await wait_for_change(request, since, seconds)
    org = org_of(request)
    return JSONResponse(
        {
            "version": org.version,
            "conversations": [c.summary() for c in org.conversations.values()],
        }
    )


async def agent_join(request: Request) -> Response:
    conv = target(request)
    body = await json_body(request)
    name = body.get("name")
    if not isinstance(name, str) or not name.strip():
        raise bad_request('Field "name" must be the agent\'s display name (a non-empty string).')
    actors_of(request).agent_join(conv, name.strip())
    return JSONResponse({"conversation": conv.summary()})


async def send_as(request: Request, role: str) -> Response:
    """A message from the agent or the bot: a text, or a text with choices, a link, a file or a
    form (`app.simulator.rich`); the bot may name its id (the final message of a stream)."""
    conv = target(request)
    body = await json_body(request)
    entry_id = body.get("id", E.new_id())
    if not isinstance(entry_id, str) or not entry_id.strip():
        raise bad_request('Field "id" must be a non-empty string (the message\'s id).')
    if any(e["identifier"] == entry_id for e in conv.entries):
        raise conflict("An entry with this id exists in the conversation.")
    payload = R.message_payload(org_of(request), body, entry_id, str(request.base_url))
    entry = actors_of(request).send(conv, role, payload)
    return JSONResponse({"entryId": entry["identifier"]})


async def agent_message(request: Request) -> Response:
    return await send_as(request, "Agent")


async def agent_typing(request: Request) -> Response:
    conv = target(request)
    typing = (await json_body(request)).get("typing")
    if not isinstance(typing, bool):
        raise bad_request('Field "typing" must be true or false.')
    actors_of(request).agent_typing(conv, typing)
    return JSONResponse({})


async def agent_end(request: Request) -> Response:
    conv = target(request)
    actors_of(request).agent_end(conv)
    return JSONResponse({})


async def bot_message(request: Request) -> Response:
    return await send_as(request, "Chatbot")


async def bot_token(request: Request) -> Response:
    """One token of a streamed answer: {text, targetId?, sequence?}; the answer itself follows
    as `bot/message` with `id` = targetId."""
    conv = target(request)
    body = await json_body(request)
    target_id = body.get("targetId", E.new_id())
    sequence = body.get("sequence")
    if not isinstance(target_id, str) or not target_id.strip():
        raise bad_request('Field "targetId" must be a non-empty string (the final message\'s id).')
    if sequence is not None and not (is_integer(sequence) and sequence > 0):
        raise bad_request('Field "sequence" must be a positive integer.')
    text = body.get("text")
    if not isinstance(text, str) or not text:
        raise bad_request('Field "text" must be a non-empty string (spaces count).')
    number = actors_of(request).bot_token(conv, target_id, sequence, text)
    return JSONResponse({"targetId": target_id, "sequence": number})


async def bot_progress(request: Request) -> Response:
    conv = target(request)
    actors_of(request).bot_progress(conv, text_field(await json_body(request)))
    return JSONResponse({})


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def is_integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def fault_spec(body: Json) -> FaultSpec:
    """The fault a `POST /control/faults` body describes; 400 naming the first bad field."""
    path = body.get("path")
    if not isinstance(path, str):
        raise bad_request('Field "path" must be a path starting with "/" (template or glob).')
    method = body.get("method")
    if method is not None and not isinstance(method, str):
        raise bad_request('Field "method" must be an HTTP method such as "POST".')
    count = body.get("count", 1)
    if count is not None and not is_integer(count):
        raise bad_request(
            'Field "count" must be a positive integer, or null for every matching request.'
        )
    status = body.get("status")
    if status is not None and not is_integer(status):
        raise bad_request('Field "status" must be an HTTP error status (400-599).')
    delay = body.get("delay")
    if delay is not None and not is_number(delay):
        raise bad_request(
            f'Field "delay" must be a number of seconds above 0, at most {MAX_FAULT_DELAY:g}.'
        )
    probability = body.get("probability", 1)
    if not is_number(probability):
        raise bad_request('Field "probability" must be a number above 0, at most 1.')
    try:
        return FaultSpec(
            path,
            method=method,
            status=status,
            delay=float(delay) if delay is not None else None,
            probability=float(probability),
            count=count,
        )
    except ValueError as exc:
        raise bad_request(str(exc)) from None


def cut_period(value: Any) -> float | None:
    if value is None:
        return None
    if not is_number(value) or not (math.isfinite(value) and value > 0):
        raise bad_request(
            'Field "cutStreamsEvery" must be a number of seconds above 0, or null to stop.'
        )
    return float(value)


async def user_verification(request: Request) -> Response:
    """The org's User Verification settings: GET them, or PUT {jwksUrl, fallbackToGuest}."""
    settings = org_of(request).user_verification
    if request.method == "PUT":
        settings.update(await json_body(request))
    return JSONResponse(settings.as_json())


async def add_fault(request: Request) -> Response:
    """One call, several shapes (docs/simulator.md): arm a fault, cut streams now, set the
    period of periodic cuts, reseed the random draws; `seed` may come with a fault."""
    body = await json_body(request)
    book = faults_of(request)
    if body.get("cutStreams") is True:
        return JSONResponse({"cut": org_of(request).cut_streams()})
    if "cutStreamsEvery" in body:
        if len(body) > 1:
            raise bad_request('Field "cutStreamsEvery" comes alone, without a fault or a seed.')
        period = cut_period(body["cutStreamsEvery"])
        await book.cuts.set_period(period)
        return JSONResponse({"cutStreamsEvery": period})
    raw_seed = body.get("seed")
    if "seed" in body and not is_integer(raw_seed):
        raise bad_request('Field "seed" must be an integer.')
    seed: int | None = raw_seed
    if seed is not None and set(body) == {"seed"}:
        book.reseed(seed)
        return JSONResponse({"seed": seed})
    spec = fault_spec(body)
    error_body = body.get("body")
    if error_body is not None and not isinstance(error_body, dict):
        raise bad_request('Field "body" must be a JSON object.')
    if seed is not None:
        book.reseed(seed)
    fault = book.add(spec, body=error_body)
    return JSONResponse({"fault": fault.as_json(), "seed": book.seed}, status_code=201)


async def list_faults(request: Request) -> Response:
    book = faults_of(request)
    return JSONResponse(
        {
            "faults": [f.as_json() for f in book.faults],
            "seed": book.seed,
            "cutStreamsEvery": book.cuts.period,
        }
    )


async def clear_faults(request: Request) -> Response:
    await faults_of(request).clear()
    return Response(status_code=204)


async def expire_tokens(request: Request) -> Response:
    return JSONResponse({"expired": org_of(request).expire_tokens()})


async def stats(request: Request) -> Response:
    return JSONResponse(
        {
            "requests": dict(sorted(faults_of(request).requests.items())),
            "openSseStreams": org_of(request).open_stream_count,
            "openLongPolls": org_of(request).open_long_polls,
            "periodicCuts": {
                "rounds": faults_of(request).cuts.rounds,
                "streamsCut": faults_of(request).cuts.streams_cut,
            },
        }
    )


async def reset(request: Request) -> Response:
    org_of(request).reset()
    await faults_of(request).reset()
    return Response(status_code=204)


CONV = "/control/conversations/{conversationId}"

routes = [
    Route("/control/conversations", list_conversations, methods=["GET"]),
    Route(f"{CONV}/agent/join", agent_join, methods=["POST"]),
    Route(f"{CONV}/agent/message", agent_message, methods=["POST"]),
    Route(f"{CONV}/agent/typing", agent_typing, methods=["POST"]),
    Route(f"{CONV}/agent/end", agent_end, methods=["POST"]),
    Route(f"{CONV}/bot/message", bot_message, methods=["POST"]),
    Route(f"{CONV}/bot/token", bot_token, methods=["POST"]),
    Route(f"{CONV}/bot/progress", bot_progress, methods=["POST"]),
    Route("/control/faults", add_fault, methods=["POST"]),
    Route("/control/faults", list_faults, methods=["GET"]),
    Route("/control/faults", clear_faults, methods=["DELETE"]),
    Route("/control/tokens/expire", expire_tokens, methods=["POST"]),
    Route("/control/stats", stats, methods=["GET"]),
    Route("/control/user-verification", user_verification, methods=["GET", "PUT"]),
    Route("/control/reset", reset, methods=["POST"]),
]
