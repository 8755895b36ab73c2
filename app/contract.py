"""`miaw-mcp contract`: does an SCRT endpoint answer the way our simulator does?

Walks the items of the simulator's fidelity checklist that need no human agent against any SCRT
endpoint (a real org, or a simulator) and sends every request also to a reference simulator run
in-process with the target's org id and deployment name, so both get the same request. Each item
is `same`, `different` (with the request and both answers) or `skipped` (with why).

What is compared is what a client depends on, never volatile values: the HTTP status, the error's
`message` and `errorCode` (or `text`), the JSON body's shape (keys and value types, recursively,
lists by their first element), the class of the content type and, for the event stream, whether a
first event came in time. Ids, tokens, timestamps and `lastEventId` values are ignored, and never
printed: tokens, org ids and conversation ids appear in the report as placeholders (but for the id
of a conversation that could not be closed, which the operator needs).

Every conversation the walk creates is closed afterwards, also when a probe fails or the run is
interrupted (Ctrl+C). While closing, the first Ctrl+C is only noted (on stderr); the next quits at
once. The report names (with its id) each conversation it could not close.

A target that cannot be reached at all (its certificate is refused, its host name does not exist,
it refuses the connection) stops the walk at the first such answer: every item would say the same.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import signal
import sys
import threading
from collections.abc import AsyncIterator, Awaitable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import FrameType
from typing import Any, Literal

import httpx
from pydantic import ValidationError
from pydantic_settings import BaseSettings
from starlette.types import ASGIApp, Message, Scope

from app import __version__
from app.arguments import seconds
from app.config import Settings
from app.scrt import payloads, routes
from app.scrt.config import ScrtConfig, org_id_18
from app.scrt.errors import (
    ScrtCertificateError,
    ScrtConnectionError,
    ScrtHostNotFoundError,
    ScrtRefusedError,
    ScrtTimeoutError,
    error_from_response,
    transport_error,
)
from app.scrt.events import sse_frames, sse_headers
from app.scrt.models import Entry
from app.scrt.transport import fill_route
from app.simulator import SimulatorOptions, build_simulator

SIMULATOR = "simulator"
TARGET = "target"
SIDES = (SIMULATOR, TARGET)

DEFAULT_TIMEOUT = 10.0
MAX_TIMEOUT = 120.0
EXIT_INTERRUPTED = 130
MAX_SHOWN_DIFFERENCES = 12
"""Per item, in the human report; the JSON report has them all."""

PROBE_TEXT = "miaw-mcp contract check (an automated test; please ignore)"

ITEMS: dict[str, str] = {
    "guest-token": "mint a guest token (18-character org id): status and the response's shape",
    "continuation-token": "a continuation token for that guest token: status and shape",
    "token-org-id-15": "mint a guest token with the 15-character org id in the body",
    "token-unknown-deployment": "mint a guest token for a deployment the org does not have",
    "token-wrong-org-id": "mint a guest token with another org's id",
    "embedded-service-config": "the deployment's configuration (embedded-service-config)",
    "business-hours": "the deployment's business hours",
    "no-bearer": "list conversations without Authorization",
    "invalid-bearer": "list conversations with a bearer that is not one of the org's tokens",
    "sse-no-bearer": "open the event stream without Authorization",
    "sse-no-org-id": "open the event stream without X-Org-Id",
    "sse-org-id-18": "open the event stream with the 18-character org id in X-Org-Id",
    "create-conversation": "create a conversation: status and an empty body",
    "sse-open": "the event stream opened with the 15-character X-Org-Id before the conversation "
    "was created: 200 text/event-stream and a first event within the timeout",
    "create-bad-uuid": "create a conversation whose id is not a UUID",
    "routing-status": "the conversation's routing status",
    "list-conversations": "list the guest's conversations",
    "send-message": "send a text message: status and the response's shape",
    "list-entries": "the conversation's entries (the shape of the newest)",
    "typing-indicator": "send a typing-started indicator",
    "acknowledge-entries": "acknowledge the newest entry as delivered and read",
    "unknown-conversation": "the routing status of a conversation that does not exist",
    "end-session": "end the messaging session (the conversation stays open)",
    "close-conversation": "close the conversation",
    "send-after-close": "send a message to the closed conversation",
}

Result = Literal["same", "different", "skipped"]


# -- arguments and settings ------------------------------------------------------------------


class _Environment(BaseSettings):
    """The server's own Salesforce settings (same names, same `.env`): fallbacks for the flags."""

    model_config = Settings.model_config

    miaw_scrt_url: str | None = None
    miaw_org_id: str | None = None
    miaw_es_developer_name: str | None = None


@dataclass(frozen=True)
class Target:
    scrt_url: str
    org_id: str
    """As given: 15 or 18 characters."""
    deployment: str

    @property
    def org_id15(self) -> str:
        return self.org_id[:15]

    @property
    def org_id18(self) -> str:
        return org_id_18(self.org_id)

    @property
    def other_org_id18(self) -> str:
        """A well-formed id of another org."""
        last = "1" if self.org_id15[14] != "1" else "2"
        return org_id_18(self.org_id15[:14] + last)


class ArgumentProblem(ValueError):
    """A flag (or its environment fallback) is missing or malformed; the message names it."""


def _pick(flag: str, given: str | None, variable: str, fallback: str | None) -> tuple[str, str]:
    """The value to use and how to name it in an error."""
    if given is not None:
        return given.strip(), flag
    if fallback is not None and fallback.strip():
        return fallback.strip(), f"{variable} (the fallback for {flag})"
    raise ArgumentProblem(f"{flag} is required (or set {variable})")


# What each ScrtConfig field is called on the command line, and what it must be.
_FIELDS = {
    "scrt_url": "must be an http(s) URL with a host, such as "
    "https://acme.my.salesforce-scrt.com; got {value!r}",
    "org_id": "must be a 15- or 18-character org id starting with 00D, got {value!r}",
    "es_developer_name": "must not be empty (the deployment's API name)",
}


def resolve_target(args: argparse.Namespace, environment: _Environment | None = None) -> Target:
    """The endpoint and deployment from the flags, else the server's settings; raises
    ArgumentProblem naming the flag that is wrong. Validated as the server's client does
    (ScrtConfig), so the contract accepts what the server accepts."""
    env = environment if environment is not None else _Environment()
    given = {
        "scrt_url": _pick("--scrt-url", args.scrt_url, "MIAW_SCRT_URL", env.miaw_scrt_url),
        "org_id": _pick("--org-id", args.org_id, "MIAW_ORG_ID", env.miaw_org_id),
        "es_developer_name": _pick(
            "--deployment", args.deployment, "MIAW_ES_DEVELOPER_NAME", env.miaw_es_developer_name
        ),
    }
    try:
        config = ScrtConfig(**{field: value for field, (value, _) in given.items()})
    except ValidationError as exc:
        wrong = {str(error["loc"][0]) for error in exc.errors() if error["loc"]}
        field = next(name for name in _FIELDS if name in wrong)
        value, name = given[field]
        raise ArgumentProblem(f"{name} {_FIELDS[field].format(value=value)}") from None
    return Target(config.scrt_url, config.org_id, config.es_developer_name)


def add_contract_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    contract = subparsers.add_parser(
        "contract",
        help="check that an SCRT endpoint (a real org) answers like the simulator",
        description="Send the simulator's fidelity checks that need no human agent to an SCRT "
        "endpoint and to an in-process simulator of the same org id and deployment, and report "
        "each as same, different (with the request and both answers) or skipped. Creates one "
        "guest conversation and closes it. Exit status: 0 when nothing is different, 1 when "
        "something is (or a conversation could not be closed), 2 for bad arguments.",
    )
    contract.add_argument(
        "--scrt-url", metavar="URL", help="the SCRT base URL (default: MIAW_SCRT_URL)"
    )
    contract.add_argument(
        "--org-id", metavar="ID", help="the 15- or 18-character org id (default: MIAW_ORG_ID)"
    )
    contract.add_argument(
        "--deployment",
        metavar="NAME",
        help="the deployment's API name, esDeveloperName (default: MIAW_ES_DEVELOPER_NAME)",
    )
    contract.add_argument(
        "--json", action="store_true", help="print the report as JSON, to share it"
    )
    contract.add_argument(
        "--timeout",
        type=seconds(MAX_TIMEOUT),
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help=f"for each request, and for the first event (default {DEFAULT_TIMEOUT:g})",
    )


def run_contract(args: argparse.Namespace) -> int:
    try:
        target = resolve_target(args)
    except ArgumentProblem as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    report = Report(target, args.timeout)
    try:
        asyncio.run(check_contract(report))
    except KeyboardInterrupt:
        report.interrupted = True
    print(json.dumps(report.as_json(), indent=2) if args.json else report.render(), flush=True)
    if report.interrupted:
        print("interrupted", file=sys.stderr)
    return report.exit_status()


# -- requests and answers --------------------------------------------------------------------


@dataclass(frozen=True)
class Var:
    """A value filled in per side when sent (a token, an id) and shown as a placeholder."""

    name: str
    shown: str


BEARER = Var("bearer", "Bearer <guest token>")
LAST_EVENT_ID = Var("lastEventId", "<the token's lastEventId>")
CONVERSATION = Var("conversation", "<conversation id>")
ENTRY = Var("entry", "<the newest entry's id>")
ORG18 = Var("org18", "<org id, 18 characters>")
ORG15 = Var("org15", "<org id, 15 characters>")
OTHER_ORG = Var("otherOrg", "<another org's id, 18 characters>")
NOT_A_TOKEN = Var("notAToken", "Bearer <a JWT the org did not issue>")
TEXT = Var("text", "<probe text>")

OPEN = "open"
"""A side's value once its conversation was created (a precondition, never sent)."""
CLOSED = "closed"


def _walk(value: Any) -> list[Var]:
    if isinstance(value, Var):
        return [value]
    if isinstance(value, Mapping):
        return [v for item in value.values() for v in _walk(item)]
    if isinstance(value, list | tuple):
        return [v for item in value for v in _walk(item)]
    return []


def _fill(value: Any, values: Mapping[str, str]) -> Any:
    if isinstance(value, Var):
        return values[value.name]
    if isinstance(value, Mapping):
        return {k: _fill(v, values) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, values) for v in value]
    return value


def _show(value: Any) -> Any:
    if isinstance(value, Var):
        return value.shown
    if isinstance(value, Mapping):
        return {k: _show(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_show(v) for v in value]
    return value


SSE_PER_SIDE = {"Authorization": BEARER, "X-Org-Id": ORG15, "Last-Event-Id": LAST_EVENT_ID}
"""The event-stream headers (app.scrt.events.sse_headers) that hold a side's own values."""

JSON_HEADERS: dict[str, Any] = {"Accept": "application/json"}
AUTHORIZED: dict[str, Any] = {**JSON_HEADERS, "Authorization": BEARER}


@dataclass(frozen=True)
class Call:
    """One request, the same for both sides but for the per-side values (`Var`)."""

    method: str
    route: str
    path: Mapping[str, Any] = field(default_factory=dict)
    query: Mapping[str, Any] = field(default_factory=dict)
    headers: Mapping[str, Any] = field(default_factory=lambda: dict(JSON_HEADERS))
    body: Any = None
    note: str = ""
    """What the request line should point out (a header left out)."""

    def needs(self) -> list[str]:
        return [v.name for v in _walk([self.path, self.query, self.headers, self.body])]

    def build(self, http: httpx.AsyncClient, values: Mapping[str, str]) -> httpx.Request:
        return http.build_request(
            self.method,
            fill_route(self.route, **_fill(dict(self.path), values)),
            params=_fill(dict(self.query), values) or None,
            headers=_fill(dict(self.headers), values),
            json=_fill(self.body, values) if self.body is not None else None,
        )

    def line(self) -> str:
        query = "&".join(f"{k}={_show(v)}" for k, v in self.query.items())
        parts = [f"{self.method} {self.route}" + (f"?{query}" if query else "")]
        parts += [
            f"{name}: {_show(value)}"
            for name, value in self.headers.items()
            if name in ("Authorization", "X-Org-Id")
        ]
        if self.note:
            parts.append(f"({self.note})")
        return "  ".join(parts)

    def as_json(self) -> dict[str, Any]:
        shown: dict[str, Any] = {
            "method": self.method,
            "path": self.route,
            "headers": _show(dict(self.headers)),
        }
        if self.path:
            shown["pathParameters"] = _show(dict(self.path))
        if self.query:
            shown["query"] = _show(dict(self.query))
        if self.body is not None:
            shown["body"] = _show(self.body)
        return shown


_JWT = re.compile(r"eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*")
_BEARER_VALUE = re.compile(r"(?i)(bearer\s+)\S+")


def redact(text: str) -> str:
    """Tokens out of a text the server sent back (an error message could quote one)."""
    return _BEARER_VALUE.sub(r"\1<redacted>", _JWT.sub("<jwt>", text))


def content_class(content_type: str | None, body: bytes | None) -> str:
    """What a client tells apart: json, event-stream, text, html, empty, or the media type."""
    if body is not None and not body.strip():
        return "empty"
    media = (content_type or "").split(";")[0].strip().lower()
    if not media:
        return "none"
    if media == "application/json" or media.endswith("+json"):
        return "json"
    if media == "text/event-stream":
        return "event-stream"
    if media == "text/html":
        return "html"
    if media.startswith("text/"):
        return "text"
    return media


def shape_of(value: Any, depth: int | None = None) -> Any:
    """Keys and value types, recursively (lists by their first element), `depth` levels deep."""
    deeper = None if depth is None else depth - 1
    if isinstance(value, dict):
        if depth == 0:
            return "object"
        return {key: shape_of(item, deeper) for key, item in sorted(value.items())}
    if isinstance(value, list):
        if depth == 0:
            return "array"
        return [shape_of(value[0], deeper)] if value else []
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if value is None:
        return "null"
    return type(value).__name__


def _kind(shape: Any) -> str:
    if isinstance(shape, dict):
        return "object"
    if isinstance(shape, list):
        return "array"
    return str(shape)


def shape_differences(simulator: Any, target: Any, path: str = "") -> list[str]:
    """Where two shapes differ; an empty list matches any list."""
    where = path or "body"
    if isinstance(simulator, dict) and isinstance(target, dict):
        found: list[str] = []
        for key in sorted(simulator.keys() | target.keys()):
            at = f"{path}.{key}" if path else key
            if key not in target:
                found.append(f"{at}: only in the simulator's answer ({_kind(simulator[key])})")
            elif key not in simulator:
                found.append(f"{at}: only in the target's answer ({_kind(target[key])})")
            else:
                found += shape_differences(simulator[key], target[key], at)
        return found
    if isinstance(simulator, list) and isinstance(target, list):
        if simulator and target:
            return shape_differences(simulator[0], target[0], f"{path}[0]")
        return []
    if simulator != target:
        return [f"{where}: {_kind(simulator)} from the simulator, {_kind(target)} from the target"]
    return []


@dataclass
class Answer:
    """What one side answered, reduced to what is compared."""

    status: int | None = None
    content: str | None = None
    """The content type's class (see `content_class`)."""
    message: str | None = None
    error_code: str | None = None
    shape: Any = None
    first_event: str | None = None
    problem: str | None = None
    """Why there is no HTTP answer (timeout, certificate, connection refused)."""
    sent: bool = True
    """False when the request surely never left (no connection): it did nothing."""
    data: Any = field(default=None, repr=False)
    """The parsed body, for later steps (a token, an entry id); never reported."""

    @classmethod
    def of(cls, response: httpx.Response, call: Call, depth: int | None = None) -> Answer:
        body = response.content
        answer = cls(status=response.status_code)
        answer.content = content_class(response.headers.get("content-type"), body)
        if answer.content == "json":
            try:
                answer.data = json.loads(body)
                answer.shape = shape_of(answer.data, depth)
            except ValueError:
                answer.content = "invalid json"
        if response.status_code >= 400:
            error = error_from_response(response, method=call.method, route=call.route)
            answer.message = redact(error.message)
            answer.error_code = redact(error.error_code) if error.error_code else None
        return answer

    def summary(self) -> str:
        if self.problem is not None:
            return self.problem
        parts = [str(self.status), self.content or ""]
        if self.error_code:
            parts.append(self.error_code)
        if self.message:
            parts.append(json.dumps(self.message))
        if self.first_event:
            parts.append(f"(first event: {self.first_event})")
        return " ".join(p for p in parts if p)

    def as_json(self) -> dict[str, Any]:
        if self.problem is not None:
            return {"problem": self.problem}
        shown: dict[str, Any] = {"status": self.status, "contentType": self.content}
        if self.error_code is not None:
            shown["errorCode"] = self.error_code
        if self.message is not None:
            shown["message"] = self.message
        if self.shape is not None:
            shown["shape"] = self.shape
        if self.first_event is not None:
            shown["firstEvent"] = self.first_event
        return shown


STOPS_THE_WALK = (ScrtCertificateError, ScrtHostNotFoundError, ScrtRefusedError)
"""Network failures every later request to the target would repeat: the walk stops there."""


def failure(
    exc: Exception, what: str, timeout: float
) -> tuple[str, ScrtConnectionError | ScrtTimeoutError | None]:
    """Why a request got no HTTP answer, in the report's words, and the error the server's own
    client makes of it (app.scrt.errors.transport_error), which tells the causes apart."""
    if isinstance(exc, TimeoutError):
        return f"no answer within {timeout:g} s", None
    if not isinstance(exc, httpx.TransportError):
        return f"no answer: {type(exc).__name__}", None
    error = transport_error(exc, what)
    if isinstance(error, ScrtTimeoutError):
        return f"no answer within {timeout:g} s", error
    if isinstance(error, ScrtCertificateError):
        return f"no answer: the TLS certificate was not accepted ({error.cause})", error
    if isinstance(error, ScrtHostNotFoundError):
        return f"no answer: the host name was not found ({error.cause})", error
    if isinstance(error, ScrtRefusedError):
        return "no answer: the connection was refused", error
    return f"no answer: the connection failed ({error.cause})", error


def differences(simulator: Answer, target: Answer) -> list[str]:
    if simulator.problem is not None or target.problem is not None:
        if simulator.problem == target.problem:
            return []
        return [
            f"answer: {simulator.summary()} from the simulator, {target.summary()} from the target"
        ]
    found = []
    compared = [("status", "status"), ("content", "content type")]
    if simulator.status == target.status:  # else the rest follows from the status
        compared += [
            ("error_code", "errorCode"),
            ("message", "message"),
            ("first_event", "first event"),
        ]
    for attribute, label in compared:
        mine, theirs = getattr(simulator, attribute), getattr(target, attribute)
        if mine != theirs:
            found.append(
                f"{label}: {_value(mine)} from the simulator, {_value(theirs)} from the target"
            )
    if (
        simulator.status == target.status
        and simulator.shape is not None
        and target.shape is not None
    ):
        found += shape_differences(simulator.shape, target.shape)
    return found


def _value(value: Any) -> str:
    if value is None:
        return "none"
    return json.dumps(value) if isinstance(value, str) else str(value)


# -- the report ------------------------------------------------------------------------------


@dataclass
class Item:
    name: str
    result: Result
    request: Call | None = None
    simulator: Answer | None = None
    target: Answer | None = None
    differences: list[str] = field(default_factory=list)
    reason: str | None = None

    @property
    def description(self) -> str:
        return ITEMS[self.name]

    def as_json(self) -> dict[str, Any]:
        shown: dict[str, Any] = {
            "name": self.name,
            "description": self.description,
            "result": self.result,
        }
        if self.request is not None:
            shown["request"] = self.request.as_json()
        if self.simulator is not None and self.target is not None:
            shown["simulator"] = self.simulator.as_json()
            shown["target"] = self.target.as_json()
        if self.differences:
            shown["differences"] = self.differences
        if self.reason is not None:
            shown["reason"] = self.reason
        return shown


@dataclass
class Created:
    """A conversation the walk created (or may have created) on one side."""

    side: str
    conversation_id: str
    bearer: str = field(repr=False)
    state: Literal["unknown", "open", "closed", "not created"] = "unknown"
    how: str = ""
    """How it ended up closed, or why it is not."""

    @property
    def ok(self) -> bool:
        return self.state in ("closed", "not created")

    def as_json(self) -> dict[str, Any]:
        shown: dict[str, Any] = {"side": self.side, "state": self.state, "how": self.how}
        if not self.ok:
            # The operator needs it to close the conversation by hand; it is no secret.
            shown["conversationId"] = self.conversation_id
        return shown


@dataclass
class Report:
    target: Target
    timeout: float
    items: list[Item] = field(default_factory=list)
    conversations: list[Created] = field(default_factory=list)
    interrupted: bool = False
    stopped: str | None = None
    """Why the walk stopped early: the target could not be reached at all."""

    def add(self, item: Item) -> None:
        self.items.append(item)

    def count(self, result: Result) -> int:
        return sum(1 for item in self.items if item.result == result)

    @property
    def close_failed(self) -> list[Created]:
        return [c for c in self.conversations if not c.ok]

    def exit_status(self) -> int:
        if self.interrupted:
            return EXIT_INTERRUPTED
        return 1 if self.count("different") or self.close_failed or self.stopped else 0

    def as_json(self) -> dict[str, Any]:
        return {
            "tool": "miaw-mcp contract",
            "version": __version__,
            "target": {
                "scrtUrl": self.target.scrt_url,
                "deployment": self.target.deployment,
                "orgIdCharacters": len(self.target.org_id),
            },
            "timeoutSeconds": self.timeout,
            "summary": {
                "same": self.count("same"),
                "different": self.count("different"),
                "skipped": self.count("skipped"),
                "notRun": len(ITEMS) - len(self.items),
            },
            "items": [item.as_json() for item in self.items],
            "conversations": [c.as_json() for c in self.conversations],
            "stopped": self.stopped,
            "interrupted": self.interrupted,
        }

    def render(self) -> str:
        t = self.target
        lines = [
            f"miaw-mcp contract {__version__}: {t.scrt_url}, deployment {t.deployment}, "
            f"org id of {len(t.org_id)} characters; timeout {self.timeout:g} s",
            "Each request went to the target and to a simulator with the same org id and "
            "deployment.",
            "",
        ]
        width = max(len(name) for name in ITEMS) + 2
        for item in self.items:
            lines.append(f"{item.result:<11}{item.name:<{width}}{item.description}")
            indent = " " * 11
            if item.result == "different":
                assert item.request and item.simulator and item.target
                lines.append(f"{indent}request    {item.request.line()}")
                lines.append(f"{indent}simulator  {item.simulator.summary()}")
                lines.append(f"{indent}target     {item.target.summary()}")
                lines += [f"{indent}- {d}" for d in item.differences[:MAX_SHOWN_DIFFERENCES]]
                if len(item.differences) > MAX_SHOWN_DIFFERENCES:
                    more = len(item.differences) - MAX_SHOWN_DIFFERENCES
                    lines.append(f"{indent}- and {more} more (--json lists them all)")
            elif item.result == "skipped":
                lines.append(f"{indent}skipped: {item.reason}")
        lines.append("")
        lines.append(
            f"{len(self.items)} items: {self.count('same')} same, {self.count('different')} "
            f"different, {self.count('skipped')} skipped"
            + (f"; {len(ITEMS) - len(self.items)} not run" if len(self.items) < len(ITEMS) else "")
        )
        on_target = [c for c in self.conversations if c.side == TARGET]
        created = [c for c in on_target if c.state != "not created"]
        if created and all(c.ok for c in created):
            lines.append(f"Conversations created on the target: {len(created)}, all closed.")
        for c in self.close_failed:
            lines.append(
                f"WARNING: conversation {c.conversation_id} on the {c.side} could not be closed "
                f"({c.how}); close it in Salesforce or wait for it to time out."
            )
        if self.stopped is not None:
            lines.append(
                f"Stopped: {self.stopped}. The remaining items were not run: each would fail "
                "the same way. Fix the URL or the network, then run it again."
            )
        if self.interrupted:
            lines.append(
                "Interrupted: the remaining items were not run."
                if len(self.items) < len(ITEMS)
                else "Interrupted."
            )
        return "\n".join(lines)


# -- the reference simulator's event stream ---------------------------------------------------


class StreamingASGITransport(httpx.AsyncBaseTransport):
    """Requests to an ASGI app in-process, the body handed over as the app sends it.

    httpx.ASGITransport returns a response only once the app finished it, which an event stream
    never does. Closing the response tells the app the client went away.
    """

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        scope: Scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": request.method,
            "scheme": request.url.scheme,
            "path": request.url.path,
            "raw_path": request.url.raw_path.split(b"?")[0],
            "query_string": request.url.query,
            "root_path": "",
            "headers": [(name.lower(), value) for name, value in request.headers.raw],
            "server": (request.url.host, request.url.port),
            "client": ("127.0.0.1", 0),
        }
        outbox: asyncio.Queue[Message | None] = asyncio.Queue()
        gone = asyncio.Event()
        inbox: list[Message] = [{"type": "http.request", "body": body, "more_body": False}]

        async def receive() -> Message:
            if inbox:
                return inbox.pop()
            await gone.wait()
            return {"type": "http.disconnect"}

        async def send(message: Message) -> None:
            outbox.put_nowait(message)

        async def run() -> None:
            try:
                await self._app(scope, receive, send)
            finally:
                outbox.put_nowait(None)

        task = asyncio.create_task(run())
        start = await outbox.get()
        if start is None or start["type"] != "http.response.start":
            gone.set()
            await task  # raises what the app raised
            raise httpx.RemoteProtocolError("the app sent no response", request=request)
        return httpx.Response(
            start["status"],
            headers=list(start.get("headers", [])),
            stream=_AppBody(outbox, task, gone),
            request=request,
        )


class _AppBody(httpx.AsyncByteStream):
    def __init__(
        self, outbox: asyncio.Queue[Message | None], task: asyncio.Task[None], gone: asyncio.Event
    ) -> None:
        self._outbox = outbox
        self._task = task
        self._gone = gone

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while True:
            message = await self._outbox.get()
            if message is None:
                return
            if message["type"] == "http.response.body":
                if message.get("body"):
                    yield bytes(message["body"])
                if not message.get("more_body", False):
                    return

    async def aclose(self) -> None:
        self._gone.set()  # the app sees the client disconnect and ends its response
        # The app's own failure after its response began is already in what it sent.
        with contextlib.suppress(Exception):
            async with asyncio.timeout(5):
                await self._task


# -- the walk ----------------------------------------------------------------------------------


class Stopped(Exception):
    """The target cannot be reached; the walk ends (Report.stopped says why)."""


class Group:
    """One independent part of the walk, with a guest token of its own on each side."""

    def __init__(self, shared: Mapping[str, str]) -> None:
        self.values: dict[str, dict[str, str]] = {side: dict(shared) for side in SIDES}
        self.why: dict[str, str] = {}

    def missing(self, names: Sequence[str]) -> str | None:
        for name in names:
            if any(name not in values for values in self.values.values()):
                return self.why.get(name, f"an earlier step did not give {name}")
        return None

    def lack(self, name: str, why: str) -> None:
        self.why.setdefault(name, why)


@dataclass
class Side:
    name: str
    http: httpx.AsyncClient
    streams: httpx.AsyncClient


class Walk:
    def __init__(self, target: Target, timeout: float, report: Report, sides: Sequence[Side]):
        self.target = target
        self.timeout = timeout
        self.report = report
        self.sides = sides
        self.config = ScrtConfig(
            scrt_url=target.scrt_url,
            org_id=target.org_id18,
            es_developer_name=target.deployment,
        )
        self.shared = {
            ORG18.name: target.org_id18,
            ORG15.name: target.org_id15,
            OTHER_ORG.name: target.other_org_id18,
            NOT_A_TOKEN.name: "Bearer eyJhbGciOiJIUzI1NiJ9.e30.bm90LWEtc2lnbmF0dXJl",
            TEXT.name: PROBE_TEXT,
        }
        self.streams: list[httpx.Response] = []
        self.cleaning = False

    # sending

    async def exchange(
        self, side: Side, call: Call, values: Mapping[str, str], depth: int | None = None
    ) -> Answer:
        self.go_on()
        try:
            async with asyncio.timeout(self.timeout):
                response = await side.http.send(call.build(side.http, values))
        except (TimeoutError, httpx.HTTPError) as exc:
            return self.no_answer(side, call, exc)
        return Answer.of(response, call, depth)

    def no_answer(self, side: Side, call: Call, exc: Exception) -> Answer:
        """The answer for a request that got no HTTP status; a target that cannot be reached at
        all (certificate, host name, refused connection) stops the walk at the next request."""
        what = f"{call.method} {call.route}"
        problem, error = failure(exc, what, self.timeout)
        stops = side.name == TARGET and isinstance(error, STOPS_THE_WALK) and not self.cleaning
        if stops and self.report.stopped is None:
            self.report.stopped = f"{what} got {problem}"
        return Answer(problem=problem, sent=error.request_sent if error is not None else True)

    def go_on(self) -> None:
        """Raise Stopped once the target turned out unreachable (not while cleaning up)."""
        if self.report.stopped is not None and not self.cleaning:
            raise Stopped(self.report.stopped)

    async def probe(
        self,
        group: Group,
        name: str,
        call: Call,
        *,
        depth: int | None = None,
        needs: Sequence[str] = (),
        creates: str | None = None,
        closes: bool = False,
    ) -> dict[str, Answer] | None:
        """Send `call` to both sides and report the item; None when it was skipped."""
        self.go_on()
        missing = group.missing([*call.needs(), *needs])
        if missing is not None:
            self.report.add(Item(name, "skipped", request=call, reason=missing))
            return None
        answers: dict[str, Answer] = {}
        for side in self.sides:
            values = group.values[side.name]
            created = None
            if creates is not None:  # known before it is sent: an interruption may follow
                created = Created(side.name, creates, values[BEARER.name])
                self.report.conversations.append(created)
            answer = await self.exchange(side, call, values, depth)
            answers[side.name] = answer
            if created is not None:
                self._created(created, answer)
            if closes and answer.status is not None and 200 <= answer.status < 300:
                self._mark_closed(side.name, values[CONVERSATION.name], f"closed by {name}")
        self.compare(name, call, answers)
        return answers

    def compare(self, name: str, call: Call, answers: Mapping[str, Answer]) -> None:
        found = differences(answers[SIMULATOR], answers[TARGET])
        self.report.add(
            Item(
                name,
                "different" if found else "same",
                request=call,
                simulator=answers[SIMULATOR],
                target=answers[TARGET],
                differences=found,
            )
        )

    def _created(self, created: Created, answer: Answer) -> None:
        status = answer.status
        if not answer.sent:
            created.state, created.how = "not created", f"not sent: {answer.problem}"
        elif status is not None and 200 <= status < 300:
            created.state = "open"
        elif status is not None and 400 <= status < 500 and status not in (408, 429):
            created.state, created.how = "not created", f"refused: {status}"

    def _mark_closed(self, side: str, conversation_id: str, how: str) -> None:
        for created in self.report.conversations:
            if (created.side, created.conversation_id) == (side, conversation_id):
                created.state, created.how = "closed", how

    async def guest(self, group: Group) -> None:
        """Mint a guest token on each side into `group` (not an item of its own)."""
        for side in self.sides:
            answer = await self.exchange(side, self.token_call(), group.values[side.name])
            self.keep_token(group, side.name, answer)

    def keep_token(self, group: Group, side: str, answer: Answer) -> None:
        data = answer.data if isinstance(answer.data, dict) else {}
        token, last_event_id = data.get("accessToken"), data.get("lastEventId")
        if answer.status == 200 and isinstance(token, str) and token:
            group.values[side][BEARER.name] = f"Bearer {token}"
            if isinstance(last_event_id, str | int) and not isinstance(last_event_id, bool):
                group.values[side][LAST_EVENT_ID.name] = str(last_event_id)
            else:
                group.lack(LAST_EVENT_ID.name, f"the {side}'s token response has no lastEventId")
        else:
            why = f"no guest token: the {side} answered {answer.summary()}"
            group.lack(BEARER.name, why)
            group.lack(LAST_EVENT_ID.name, why)

    def token_call(self, note: str = "orgId of 18 characters", **changes: Any) -> Call:
        body = payloads.token_request(self.config)
        body["orgId"] = ORG18
        body.update(changes)
        return Call("POST", routes.GUEST_TOKEN, body=body, note=note)

    # the event stream

    async def open_stream(
        self, side: Side, call: Call, values: Mapping[str, str]
    ) -> tuple[Answer, httpx.Response | None]:
        """Open the stream; an answer other than an event stream is read whole and closed."""
        self.go_on()
        try:
            async with asyncio.timeout(self.timeout):
                response = await side.streams.send(call.build(side.streams, values), stream=True)
        except (TimeoutError, httpx.HTTPError) as exc:
            return self.no_answer(side, call, exc), None
        self.streams.append(response)
        content = content_class(response.headers.get("content-type"), None)
        if response.status_code == 200 and content == "event-stream":
            return Answer(status=200, content=content), response
        try:
            async with asyncio.timeout(self.timeout):
                await response.aread()
        except (TimeoutError, httpx.HTTPError) as exc:
            problem, _ = failure(exc, f"{call.method} {call.route}", self.timeout)
            return Answer(problem=f"the body did not come: {problem}"), None
        finally:
            await self.close_stream(response)
        return Answer.of(response, call), None

    async def close_stream(self, response: httpx.Response) -> None:
        if response in self.streams:
            self.streams.remove(response)
        with contextlib.suppress(Exception):
            async with asyncio.timeout(self.timeout):
                await response.aclose()

    async def first_event(self, response: httpx.Response) -> str:
        try:
            async with (
                asyncio.timeout(self.timeout),
                contextlib.aclosing(sse_frames(response)) as frames,
            ):
                async for _ in frames:
                    return "received"
        except TimeoutError:
            return f"none within {self.timeout:g} s"
        except httpx.HTTPError as exc:
            return f"the stream failed: {failure(exc, 'GET ' + routes.SSE, self.timeout)[0]}"
        return "the stream ended first"

    async def stream_item(self, group: Group, name: str, call: Call) -> None:
        """An event-stream request expected to be refused; a stream that opens is closed."""
        self.go_on()
        missing = group.missing(call.needs())
        if missing is not None:
            self.report.add(Item(name, "skipped", request=call, reason=missing))
            return
        answers = {}
        for side in self.sides:
            answers[side.name], response = await self.open_stream(
                side, call, group.values[side.name]
            )
            if response is not None:
                await self.close_stream(response)
        self.compare(name, call, answers)

    # the items

    async def walk(self) -> None:
        with contextlib.suppress(Stopped):  # the report says why
            await self.tokens()
            await self.deployment()
            await self.authorization()
            await self.stream_refusals()
            await self.conversation()

    async def tokens(self) -> None:
        group = Group(self.shared)
        answers = await self.probe(group, "guest-token", self.token_call(), depth=3)
        assert answers is not None
        for side, answer in answers.items():
            self.keep_token(group, side, answer)
        await self.probe(
            group,
            "continuation-token",
            Call("GET", routes.CONTINUATION_TOKEN, headers=AUTHORIZED),
            depth=3,
        )
        await self.probe(
            group,
            "token-org-id-15",
            self.token_call("orgId of 15 characters", orgId=ORG15),
            depth=1,
        )
        unknown = f"{self.target.deployment}_No_Such_Deployment"
        await self.probe(
            group,
            "token-unknown-deployment",
            self.token_call(f"esDeveloperName {unknown}", esDeveloperName=unknown),
        )
        await self.probe(
            group, "token-wrong-org-id", self.token_call("another org's orgId", orgId=OTHER_ORG)
        )

    async def deployment(self) -> None:
        group = Group(self.shared)
        query = {"orgId": ORG15, "esConfigName": self.target.deployment}
        await self.probe(
            group,
            "embedded-service-config",
            Call("GET", routes.EMBEDDED_SERVICE_CONFIG, query={**query, "language": "en_US"}),
            depth=2,
        )
        await self.probe(group, "business-hours", Call("GET", routes.BUSINESS_HOURS, query=query))

    async def authorization(self) -> None:
        group = Group(self.shared)
        await self.probe(
            group, "no-bearer", Call("GET", routes.CONVERSATION_LIST, note="no Authorization")
        )
        await self.probe(
            group,
            "invalid-bearer",
            Call(
                "GET",
                routes.CONVERSATION_LIST,
                headers={**JSON_HEADERS, "Authorization": NOT_A_TOKEN},
            ),
        )

    def stream_call(self, note: str = "", changes: Mapping[str, Any] | None = None) -> Call:
        """The event-stream request our client sends (app.scrt.events.sse_headers), with
        `changes` (None drops a header); the per-side values are placeholders until sent."""
        headers: dict[str, Any] = dict(sse_headers(self.config, "<token>", "<lastEventId>"))
        headers.update((name, var) for name, var in SSE_PER_SIDE.items() if name in headers)
        headers.update(changes or {})
        shown = {name: value for name, value in headers.items() if value is not None}
        return Call("GET", routes.SSE, headers=shown, note=note)

    async def stream_refusals(self) -> None:
        group = Group(self.shared)
        await self.guest(group)
        # Without Last-Event-Id: these are about the other headers.
        await self.stream_item(
            group,
            "sse-no-bearer",
            self.stream_call("no Authorization", {"Authorization": None, "Last-Event-Id": None}),
        )
        await self.stream_item(
            group,
            "sse-no-org-id",
            self.stream_call("no X-Org-Id", {"X-Org-Id": None, "Last-Event-Id": None}),
        )
        await self.stream_item(
            group,
            "sse-org-id-18",
            self.stream_call("", {"X-Org-Id": ORG18, "Last-Event-Id": None}),
        )

    async def conversation(self) -> None:
        group = Group(self.shared)
        await self.guest(group)
        conversation_id = payloads.new_id()
        for values in group.values.values():
            values[CONVERSATION.name] = conversation_id
        conv = {"conversationId": CONVERSATION}
        es = {"esDeveloperName": self.target.deployment}

        stream = self.stream_call()
        streams: dict[str, tuple[Answer, httpx.Response | None]] = {}
        if group.missing(stream.needs()) is None:
            for side in self.sides:
                streams[side.name] = await self.open_stream(side, stream, group.values[side.name])

        body = payloads.conversation_request(self.config, conversation_id, None, None)
        body["conversationId"] = CONVERSATION
        create = Call("POST", routes.CONVERSATIONS, headers=AUTHORIZED, body=body)
        created = await self.probe(group, "create-conversation", create, creates=conversation_id)
        self.note_outcome(group, OPEN, created, "no conversation")

        if not streams:
            reason = group.missing(stream.needs())
            self.report.add(Item("sse-open", "skipped", request=stream, reason=reason))
        else:
            answers = {}
            for name, (answer, response) in streams.items():
                if response is not None:
                    answer.first_event = await self.first_event(response)
                    await self.close_stream(response)
                answers[name] = answer
            self.compare("sse-open", stream, answers)

        bad_id = "not-a-uuid"
        await self.probe(
            group,
            "create-bad-uuid",
            Call(
                "POST",
                routes.CONVERSATIONS,
                headers=AUTHORIZED,
                body={**body, "conversationId": bad_id},
                note=f"conversationId {bad_id}",
            ),
            creates=bad_id,
        )
        await self.probe(
            group,
            "routing-status",
            Call("GET", routes.CONVERSATION, path=conv, headers=AUTHORIZED),
            needs=[OPEN],
        )
        await self.probe(
            group, "list-conversations", Call("GET", routes.CONVERSATION_LIST, headers=AUTHORIZED)
        )
        await self.probe(group, "send-message", self.send_call(""), needs=[OPEN])
        entries = await self.probe(
            group,
            "list-entries",
            Call("GET", routes.ENTRIES, path=conv, headers=AUTHORIZED),
            depth=3,
            needs=[OPEN],
        )
        for name, answer in (entries or {}).items():
            newest = self.newest_entry(answer, conversation_id)
            if newest is not None:
                group.values[name][ENTRY.name] = newest
            else:
                group.lack(ENTRY.name, f"the {name} listed no entry to acknowledge")
        await self.probe(
            group,
            "typing-indicator",
            Call(
                "POST",
                routes.ENTRY,
                path=conv,
                headers=AUTHORIZED,
                body=payloads.typing_entry(True),
            ),
            needs=[OPEN],
        )
        acks = payloads.acknowledgements(["newest"], ["newest"])
        for ack in acks["acks"]:
            ack["conversationEntryId"] = ENTRY
        await self.probe(
            group,
            "acknowledge-entries",
            Call("POST", routes.ACKNOWLEDGE_ENTRIES, path=conv, headers=AUTHORIZED, body=acks),
            needs=[OPEN],
        )
        await self.probe(
            group,
            "unknown-conversation",
            Call(
                "GET",
                routes.CONVERSATION,
                path={"conversationId": payloads.new_id()},
                headers=AUTHORIZED,
            ),
        )
        await self.probe(
            group,
            "end-session",
            Call("DELETE", routes.SESSION, path=conv, query=es, headers=AUTHORIZED),
            needs=[OPEN],
        )
        closed = await self.probe(
            group,
            "close-conversation",
            Call("DELETE", routes.CONVERSATION, path=conv, query=es, headers=AUTHORIZED),
            needs=[OPEN],
            closes=True,
        )
        self.note_outcome(group, CLOSED, closed, "the conversation was not closed")
        await self.probe(
            group, "send-after-close", self.send_call("after the close"), needs=[CLOSED]
        )

    def send_call(self, note: str) -> Call:
        message = payloads.text_message(PROBE_TEXT, payloads.new_id(), None)
        message["staticContent"]["text"] = TEXT
        return Call(
            "POST",
            routes.MESSAGE,
            path={"conversationId": CONVERSATION},
            headers=AUTHORIZED,
            body=payloads.message_envelope(self.config, message, False, None, None),
            note=note,
        )

    def note_outcome(
        self, group: Group, name: str, answers: Mapping[str, Answer] | None, failed: str
    ) -> None:
        """Set `name` for each side whose answer was a success; say why for the others."""
        if answers is None:
            group.lack(name, self.report.items[-1].reason or failed)
            return
        for side, answer in answers.items():
            if answer.status is not None and 200 <= answer.status < 300:
                group.values[side][name] = "yes"
            else:
                group.lack(name, f"{failed}: the {side} answered {answer.summary()}")

    @staticmethod
    def newest_entry(answer: Answer, conversation_id: str) -> str | None:
        data = answer.data if isinstance(answer.data, dict) else {}
        items = data.get("conversationEntries")
        if not isinstance(items, list) or not items:
            return None
        return Entry.from_rest(items[0], conversation_id).identifier or None

    # cleaning up

    async def clean_up(self) -> None:
        """Close the event streams and every conversation not known to be closed."""
        self.cleaning = True
        for response in list(self.streams):
            await self.close_stream(response)
        by_name = {side.name: side for side in self.sides}
        for created in self.report.conversations:
            if created.state in ("open", "unknown"):
                await self.close(by_name[created.side], created)

    async def close(self, side: Side, created: Created) -> None:
        call = Call(
            "DELETE",
            routes.CONVERSATION,
            path={"conversationId": CONVERSATION},
            query={"esDeveloperName": self.target.deployment},
            headers=AUTHORIZED,
        )
        values = {BEARER.name: created.bearer, CONVERSATION.name: created.conversation_id}
        created.how = "the run was stopped before its close finished"
        answer = await self.exchange(side, call, values)
        status = answer.status
        if status is not None and 200 <= status < 300:
            created.state, created.how = "closed", "closed after the walk"
        elif created.state == "unknown" and status == 404:
            created.state, created.how = "not created", "the close found no such conversation"
        else:
            created.how = f"the close got {answer.summary()}"


async def _to_the_end(work: Awaitable[None]) -> None:
    """Await `work` to its end even when this task is cancelled meanwhile (then re-raise)."""
    task = asyncio.ensure_future(work)
    cancelled = False
    while not task.done():
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            if task.cancelled():
                raise
            cancelled = True
    task.result()
    if cancelled:
        raise asyncio.CancelledError


CLOSING_NOTICE = (
    "miaw-mcp contract: closing the conversations this check created; "
    "press Ctrl+C again to quit without closing them"
)


def _say_closing() -> None:
    print(CLOSING_NOTICE, file=sys.stderr, flush=True)


def _quit() -> None:
    raise KeyboardInterrupt


@contextlib.contextmanager
def _ctrl_c_waits_for_the_clean_up(report: Report) -> Iterator[None]:
    """While the conversations are being closed, Ctrl+C does not cut the closing short.

    asyncio.run obeys a second SIGINT by raising KeyboardInterrupt in the loop and cancelling every
    task, the clean-up too. Here the first SIGINT that comes while cleaning up only marks the run
    interrupted and says so on stderr; a further one quits at once (the report then names each
    conversation not closed). Only the main thread can have a SIGINT handler; a run in another
    thread (tests) is cancelled, not interrupted, and `_to_the_end` covers that.
    """
    previous = signal.getsignal(signal.SIGINT)
    if threading.current_thread() is not threading.main_thread() or previous in (
        signal.SIG_IGN,
        None,
    ):
        yield
        return
    loop = asyncio.get_running_loop()
    presses = 0

    def on_sigint(signum: int, frame: FrameType | None) -> None:
        nonlocal presses
        presses += 1
        report.interrupted = True
        # Raised from a loop callback, not here: never inside a task, whose traceback would show.
        loop.call_soon_threadsafe(_quit if presses > 1 else _say_closing)

    signal.signal(signal.SIGINT, on_sigint)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


async def check_contract(report: Report) -> Report:
    """Walk the items against the report's target and a reference simulator; fill `report`."""
    target, timeout = report.target, report.timeout
    reference = build_simulator(
        SimulatorOptions(org_id=target.org_id18, es_developer_name=target.deployment)
    )
    agent = {"User-Agent": f"miaw-mcp-contract/{__version__}"}
    async with contextlib.AsyncExitStack() as stack:
        await stack.enter_async_context(reference.router.lifespan_context(reference))
        in_process = httpx.ASGITransport(app=reference, raise_app_exceptions=False)
        simulator = Side(
            SIMULATOR,
            await stack.enter_async_context(
                httpx.AsyncClient(transport=in_process, base_url="http://simulator", headers=agent)
            ),
            await stack.enter_async_context(
                httpx.AsyncClient(
                    transport=StreamingASGITransport(reference),
                    base_url="http://simulator",
                    headers=agent,
                )
            ),
        )
        http = await stack.enter_async_context(
            httpx.AsyncClient(base_url=target.scrt_url, timeout=timeout, headers=agent)
        )
        walk = Walk(target, timeout, report, [simulator, Side(TARGET, http, http)])
        try:
            await walk.walk()
        finally:
            with _ctrl_c_waits_for_the_clean_up(report):
                await _to_the_end(walk.clean_up())
    return report
