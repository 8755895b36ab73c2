"""`miaw-mcp doctor`: checks the operator's settings against their org, one step at a time.

Each step either passes, warns (worth knowing, not blocking) or fails; the first failure stops the
run, because every later step depends on it. A failure says what is wrong and how to fix it, in
Salesforce's words where Salesforce gave some. Steps, in order: the settings load; the SCRT URL's
form; the org id's form (15 or 18 characters, the checksum of the 18-character form); DNS; the TLS
certificate (or a plain-HTTP loopback simulator); the deployment (exists, published, of type
Custom Client) from the embedded-service configuration; its required pre-chat fields; minting a
guest token; the event stream opening and sending a ping; `PUBLIC_URL` and the hosts allowed to
reach /mcp. `--create-conversation` also opens a conversation, watches its routing and closes it.

Nothing printed holds a token: the guest token doctor mints is used and dropped.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import json
import os
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx

from app import __version__
from app.arguments import seconds
from app.config import ConfigError, Settings, load_settings
from app.scrt import (
    AccessToken,
    RetryPolicy,
    ScrtCertificateError,
    ScrtClient,
    ScrtConfig,
    ScrtConnectionError,
    ScrtError,
    ScrtHostNotFoundError,
    ScrtRateLimitError,
    ScrtRefusedError,
    ScrtServerError,
    ScrtStatusError,
    ScrtTimeoutError,
    routes,
)
from app.scrt.config import org_id_18
from app.scrt.errors import outcome_unknown, transport_error
from app.scrt.events import parse_event, raise_for_stream_status, sse_frames, sse_headers
from app.scrt.payloads import new_id

Status = Literal["pass", "warn", "fail", "skip"]

SCRT_DOMAIN = "salesforce-scrt.com"
_SETUP_DEPLOYMENTS = "Setup → Embedded Service Deployments"
_STREAM_CUT = (
    "Something between this server and Salesforce cuts streaming responses (a proxy?); the "
    "event stream must stay open."
)


@dataclass
class Progress:
    checks: list[Check] = field(default_factory=list)
    unclosed: set[str] = field(default_factory=set)
    """Test conversations created (or perhaps created) and not closed yet."""


@dataclass(frozen=True)
class Check:
    name: str
    """Stable id for scripts: settings, url, org_id, dns, tls, deployment, prechat, token,
    event_stream, public_url, conversation."""
    title: str
    status: Status
    detail: str
    fix: str = ""


_SITE_SUFFIXES = (".my.salesforce.com", ".lightning.force.com", ".salesforce.com", ".force.com")


def scrt_host_for_site(host: str) -> str | None:
    """The messaging host that goes with an org's site host (`acme.my.salesforce.com` →
    `acme.my.salesforce-scrt.com`, sandbox labels kept), or None when `host` is not a site."""
    for suffix in _SITE_SUFFIXES:
        if host.endswith(suffix):
            return f"{host[: -len(suffix)]}.my.{SCRT_DOMAIN}"
    return None


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Doctor:
    """Runs the checks in order with the given settings; `run()` returns what it found."""

    def __init__(
        self,
        settings: Settings,
        *,
        http: httpx.AsyncClient,
        timeout: float = 30.0,
        create_conversation: bool = False,
        on_heroku: bool = False,
        progress: Progress | None = None,
    ) -> None:
        self.progress = progress or Progress()
        """What was found so far (the caller's when given: an interrupted run leaves it)."""
        self._settings = settings
        self._on_heroku = on_heroku
        self._http = http
        self._timeout = timeout
        self._create = create_conversation
        self._config: ScrtConfig | None = None
        self._client: ScrtClient | None = None
        self._token: AccessToken | None = None
        self._frames: AsyncIterator[Any] | None = None
        self._site: dict[str, Any] = {}
        self._exit = contextlib.AsyncExitStack()

    async def run(self) -> list[Check]:
        steps: list[Callable[[], Awaitable[Check]]] = [
            self.settings,
            self.url,
            self.org_id,
            self.dns,
            self.tls,
            self.deployment,
            self.prechat,
            self.token,
            self.event_stream,
            self.public_url,
        ]
        if self._create:
            steps.append(self.conversation)
        async with self._exit:
            for step in steps:
                check = await step()
                self.progress.checks.append(check)
                if check.status == "fail":
                    break
        return self.progress.checks

    # -- offline ---------------------------------------------------------------------------------

    async def settings(self) -> Check:
        missing = [
            name
            for name, value in (
                ("MIAW_SCRT_URL", self._settings.miaw_scrt_url),
                ("MIAW_ORG_ID", self._settings.miaw_org_id),
                ("MIAW_ES_DEVELOPER_NAME", self._settings.miaw_es_developer_name),
            )
            if not value
        ]
        if missing:
            return Check(
                "settings",
                "Settings",
                "fail",
                f"Not set: {', '.join(missing)}.",
                "Set them in the environment (Heroku: config vars), in .env, or pass "
                "--scrt-url, --org-id and --deployment. All three are in Setup → Embedded Service "
                "Deployments → your Custom Client deployment → Code Snippet.",
            )
        assert self._settings.miaw_scrt_url and self._settings.miaw_org_id
        assert self._settings.miaw_es_developer_name
        self._config = ScrtConfig(
            scrt_url=self._settings.miaw_scrt_url,
            org_id=self._settings.miaw_org_id,
            es_developer_name=self._settings.miaw_es_developer_name,
        )
        # One attempt per request: doctor reports what Salesforce answers, it does not insist.
        policy = RetryPolicy(max_attempts=1, total_timeout=self._timeout)
        self._client = ScrtClient(self._http, self._config, retry=policy)
        return Check("settings", "Settings", "pass", "Salesforce settings are set.")

    async def url(self) -> Check:
        config = self._require_config()
        parts = urlsplit(config.scrt_url)
        host = parts.hostname or ""
        title = "Salesforce URL"
        try:
            parts.port  # noqa: B018 (raises for a port out of range)
        except ValueError:
            return Check(
                "url",
                title,
                "fail",
                f"{config.scrt_url} has an invalid port.",
                f"Set MIAW_SCRT_URL to https://{host} (Salesforce needs no port).",
            )
        if parts.path not in ("", "/") or parts.query:
            return Check(
                "url",
                title,
                "fail",
                f"{config.scrt_url} has a path; the SCRT URL is a host only.",
                f"Set MIAW_SCRT_URL to https://{host} (no path).",
            )
        site = scrt_host_for_site(host)
        if site is not None:
            return Check(
                "url",
                title,
                "fail",
                f"{host} is your org's site, not its messaging (SCRT) host.",
                f"Set MIAW_SCRT_URL to the SCRT URL of the deployment's code snippet, usually "
                f"https://{site}.",
            )
        if parts.scheme == "http" and not is_loopback(host):
            return Check(
                "url",
                title,
                "fail",
                f"{config.scrt_url} is plain HTTP; Salesforce serves the messaging API over HTTPS.",
                f"Use https://{host}.",
            )
        if not host.endswith(f".{SCRT_DOMAIN}") and not is_loopback(host):
            return Check(
                "url",
                title,
                "warn",
                f"{config.scrt_url} is not a *.{SCRT_DOMAIN} host (fine for a proxy).",
                f"Salesforce's messaging hosts end in .{SCRT_DOMAIN}; copy it from the "
                "deployment's code snippet if this is not on purpose.",
            )
        return Check("url", title, "pass", config.scrt_url)

    async def org_id(self) -> Check:
        org_id = self._require_config().org_id
        title = "Org id"
        if len(org_id) == 18 and org_id[15:].upper() != org_id_18(org_id[:15])[15:]:
            return Check(
                "org_id",
                title,
                "fail",
                f"The last three characters of {org_id} do not match its first fifteen (a typo "
                "or a changed letter case).",
                "Copy the org id again from Setup → Company Information (Salesforce.com "
                "Organization ID), or use its first 15 characters.",
            )
        form = "18-character" if len(org_id) == 18 else "15-character"
        return Check(
            "org_id",
            title,
            "pass",
            f"{org_id} ({form}; the event stream is sent the 15-character {org_id[:15]}).",
        )

    # -- network ---------------------------------------------------------------------------------

    async def dns(self) -> Check:
        parts = urlsplit(self._require_config().scrt_url)
        host = parts.hostname or ""
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            async with asyncio.timeout(self._timeout):
                addresses = await asyncio.get_running_loop().getaddrinfo(
                    host, port, type=socket.SOCK_STREAM
                )
        except TimeoutError:
            return Check(
                "dns",
                "DNS",
                "fail",
                f"Looking up {host} took longer than {self._timeout:g} s.",
                "This machine's DNS resolver does not answer; check its network settings.",
            )
        except socket.gaierror as exc:
            return Check(
                "dns",
                "DNS",
                "fail",
                f"{host} could not be resolved: {exc.strerror}.",
                "Check the spelling of MIAW_SCRT_URL against the deployment's code snippet "
                "(My Domain name, sandbox suffix); a sandbox or a renamed My Domain has its own "
                "SCRT host.",
            )
        found = sorted({str(a[4][0]) for a in addresses})
        return Check("dns", "DNS", "pass", f"{host} resolves to {', '.join(found)}.")

    async def tls(self) -> Check:
        config = self._require_config()
        if config.scrt_url.startswith("http://"):
            return Check("tls", "TLS", "skip", "Plain HTTP to a loopback address: no TLS.")
        try:
            await self._http.get(config.scrt_url + "/", timeout=self._timeout)
        except httpx.TransportError as exc:
            error = transport_error(exc, "GET /")
            return Check("tls", "TLS", "fail", *self._explain_network(error))
        return Check("tls", "TLS", "pass", "The certificate is valid for this host.")

    async def deployment(self) -> Check:
        config = self._require_config()
        title = "Deployment"
        try:
            body = await self._require_client().embedded_service_config()
        except ScrtError as exc:
            return Check("deployment", title, "fail", *self._explain(exc))
        site = body.get("embeddedServiceConfig")
        self._site = site if isinstance(site, dict) else {}
        kind = self._site.get("deploymentType")
        if kind is not None and kind != "Api":
            return Check(
                "deployment",
                title,
                "fail",
                f'{config.es_developer_name} is a deployment of type "{kind}"; this server needs '
                'a Custom Client deployment (type "Api").',
                f"In {_SETUP_DEPLOYMENTS}, create a new deployment of type Custom Client for "
                "the same messaging channel, publish it, and set MIAW_ES_DEVELOPER_NAME to its "
                "API name.",
            )
        kind_text = "Custom Client" if kind == "Api" else "type not stated (the token step tells)"
        return Check(
            "deployment", title, "pass", f"{config.es_developer_name}: published, {kind_text}."
        )

    async def prechat(self) -> Check:
        fields = self._prechat_fields()
        title = "Pre-chat"
        if not fields:
            return Check("prechat", title, "pass", "No pre-chat form.")
        names = ", ".join(f["name"] + (" (hidden)" if f.get("isHidden") else "") for f in fields)
        required = self._required_prechat()
        if required:
            return Check(
                "prechat",
                title,
                "warn",
                f"Fields: {names}. Required: {', '.join(required)}.",
                "The assistant must pass the required fields in create_conversation's "
                "routingAttributes, or make them optional in the deployment's pre-chat form.",
            )
        return Check("prechat", title, "pass", f"Fields: {names}; none required.")

    async def token(self) -> Check:
        title = "Guest token"
        try:
            self._token = await self._require_client().guest_token()
        except ScrtError as exc:
            return Check("token", title, "fail", *self._explain(exc))
        expires = (
            f", valid until {self._token.expires_at:%H:%M} UTC" if self._token.expires_at else ""
        )
        return Check("token", title, "pass", f"Minted a guest token{expires}.")

    async def event_stream(self) -> Check:
        config, token = self._require_config(), self._token
        assert token is not None
        title = "Event stream"
        headers = sse_headers(config, token.bearer, token.last_event_id)
        request = self._http.stream("GET", config.url(routes.SSE), headers=headers)
        try:
            async with asyncio.timeout(self._timeout):
                response = await self._exit.enter_async_context(request)
                await raise_for_stream_status(response)
        except TimeoutError:
            return Check(
                "event_stream",
                title,
                "fail",
                f"Salesforce did not answer the stream request within {self._timeout:g} s.",
                "Something on the way holds streaming requests (a proxy?), or Salesforce is "
                "slow: run doctor again with a longer --timeout.",
            )
        except httpx.TransportError as exc:
            return self._stream_failed("event_stream", title, exc)
        except ScrtStatusError as exc:
            return Check("event_stream", title, "fail", *self._explain_stream(exc))
        self._frames = sse_frames(response)
        try:
            async with asyncio.timeout(self._timeout):
                # Any frame proves events get through; on a fresh subject it is a ping.
                await anext(self._frames)
        except StopAsyncIteration:
            return Check(
                "event_stream",
                title,
                "fail",
                "The stream opened and closed at once, before sending anything.",
                _STREAM_CUT,
            )
        except TimeoutError:
            return Check(
                "event_stream",
                title,
                "fail",
                f"The stream opened but sent nothing within {self._timeout:g} s.",
                "Salesforce pings an open stream about every 15 s (not documented): run doctor "
                "again with --timeout 60. If it still fails, something on the way (a proxy) "
                "buffers streaming responses.",
            )
        except httpx.TransportError as exc:
            return self._stream_failed("event_stream", title, exc)
        return Check(
            "event_stream",
            title,
            "pass",
            f"Opened with X-Org-Id {config.org_id_15}; a ping arrived.",
        )

    async def public_url(self) -> Check:
        s = self._settings
        title = "Public URL"
        if s.public_url:
            parts = urlsplit(s.public_url)
            if parts.path not in ("", "/"):
                return Check(
                    "public_url",
                    title,
                    "fail",
                    f"PUBLIC_URL {s.public_url} has a path; it must be the app's origin.",
                    f"Set PUBLIC_URL={parts.scheme}://{parts.netloc} (the server adds /mcp).",
                )
            if parts.scheme != "https" and not is_loopback(parts.hostname or ""):
                return Check(
                    "public_url",
                    title,
                    "fail",
                    f"PUBLIC_URL {s.public_url} is plain HTTP; ChatGPT connects over HTTPS only.",
                    f"Set PUBLIC_URL=https://{parts.netloc}.",
                )
        if not s.public_host_configured:
            # On a dyno this is fatal; on a laptop it is how local use works.
            return Check(
                "public_url",
                title,
                "fail" if self._on_heroku else "warn",
                "No PUBLIC_URL, HEROKU_APP_NAME or MCP_ALLOWED_HOSTS: /mcp answers only "
                "requests for localhost; ChatGPT would get 421 Invalid Host header.",
                "Set PUBLIC_URL=https://<your-app>.herokuapp.com (or turn on Heroku's dyno "
                "metadata: heroku labs:enable runtime-dyno-metadata).",
            )
        hosts = ", ".join(s.allowed_hosts())
        connector = f"{s.public_url}/mcp" if s.public_url else f"https://<host>/mcp ({hosts})"
        return Check(
            "public_url",
            title,
            "pass",
            f"ChatGPT connector URL: {connector}; hosts allowed to reach /mcp: {hosts}.",
        )

    async def conversation(self) -> Check:
        """Open a conversation, watch its routing on the stream, close it again."""
        client, token = self._require_client(), self._token
        assert token is not None
        title = "Conversation"
        required = self._required_prechat()
        if required:
            return Check(
                "conversation",
                title,
                "skip",
                f"Not tried: the deployment requires pre-chat fields ({', '.join(required)}) and "
                "doctor does not make up values for them.",
            )
        conversation_id = new_id()
        self.progress.unclosed.add(conversation_id)
        try:
            try:
                await client.create_conversation(token, conversation_id=conversation_id)
            except ScrtError as exc:
                # It may exist although the call failed (no answer, a gateway error).
                if outcome_unknown(exc) and not await self._close(conversation_id):
                    return self._left_open(self._explain(exc)[0])
                return Check("conversation", title, "fail", *self._explain(exc))
            outcome = await self._watch_routing(conversation_id)
        except BaseException:
            # Interrupted (Ctrl+C): the conversation must not stay open.
            await asyncio.shield(self._close(conversation_id))
            raise
        if not await self._close(conversation_id):
            return self._left_open(outcome.detail)
        if outcome.status == "pass":
            return Check(
                "conversation", title, "pass", f"{outcome.detail}; the test conversation is closed."
            )
        return outcome

    def _left_open(self, found: str) -> Check:
        return Check(
            "conversation",
            "Conversation",
            "fail",
            f"{found} Closing the test conversation failed; if Salesforce created it, it stays "
            "open until Salesforce's inactivity timeout.",
            "Close it from the Omni-Channel console if an agent sees it.",
        )

    def _required_prechat(self) -> list[str]:
        return [str(f["name"]) for f in self._prechat_fields() if f.get("required")]

    def _prechat_fields(self) -> list[dict[str, Any]]:
        return [
            f
            for form in _list(self._site.get("forms"))
            if isinstance(form, dict) and form.get("formType") == "PreChat"
            for f in _list(form.get("formFields"))
            if isinstance(f, dict) and isinstance(f.get("name"), str)
        ]

    async def _watch_routing(self, conversation_id: str) -> Check:
        title = "Conversation"
        assert self._frames is not None
        try:
            async with asyncio.timeout(self._timeout):
                async for frame in self._frames:
                    event = parse_event(frame)
                    entry = event.entry
                    if event.conversation_id != conversation_id or entry is None:
                        continue
                    routing = entry.routing
                    if routing is not None and routing.failure_type not in (None, "None"):
                        return Check(
                            "conversation",
                            title,
                            "fail",
                            f"Routing failed ({routing.failure_type}).",
                            "Check the Omni-Channel flow of the deployment's messaging channel "
                            "(Setup → Messaging Settings → the channel → Routing): it must "
                            "route to a bot or a queue.",
                        )
                    for change in entry.participant_changes:
                        if change.operation == "add" and change.role in ("Chatbot", "Agent"):
                            who = "bot" if change.role == "Chatbot" else "agent"
                            name = change.display_name or "(no name)"
                            return Check(
                                "conversation", title, "pass", f"Routed to the {who} {name}"
                            )
        except TimeoutError:
            return Check(
                "conversation",
                title,
                "fail",
                f"Nobody joined the test conversation within {self._timeout:g} s.",
                "Check the Omni-Channel flow of the deployment's messaging channel: it should "
                "route new conversations to a bot (or to a queue with agents online).",
            )
        except httpx.TransportError as exc:
            return self._stream_failed("conversation", title, exc)
        return Check(
            "conversation",
            title,
            "fail",
            "The event stream closed before the conversation was routed.",
            _STREAM_CUT,
        )

    async def _close(self, conversation_id: str) -> bool:
        assert self._token is not None
        try:
            await self._require_client().close_conversation(self._token, conversation_id)
        except ScrtError:
            return False
        self.progress.unclosed.discard(conversation_id)
        return True

    # -- explanations ----------------------------------------------------------------------------

    def _explain(self, error: ScrtError) -> tuple[str, str]:
        """What Salesforce's answer means for the operator, and the fix."""
        if isinstance(error, ScrtConnectionError | ScrtTimeoutError):
            return self._explain_network(error)
        config = self._require_config()
        if isinstance(error, ScrtRateLimitError):
            return (
                "Salesforce is rate-limiting token requests (200 a minute per org).",
                "Wait a minute and run doctor again.",
            )
        if isinstance(error, ScrtServerError):
            return (
                f"Salesforce answered {error.status}: {error.message}",
                "A failure on Salesforce's side; try again in a few minutes, and check "
                "status.salesforce.com.",
            )
        if not isinstance(error, ScrtStatusError):
            return (f"Salesforce's answer was not understood: {error}", "")
        said = f"Salesforce answered {error.status}: {error.message}"
        text = error.message.lower()
        if error.status == 412 or error.error_code == "SETUP_ERROR" or "not published" in text:
            return (
                f"{said} The deployment {config.es_developer_name} is not published.",
                f"In {_SETUP_DEPLOYMENTS} → {config.es_developer_name}, click Publish and wait "
                "for it to finish (a few minutes).",
            )
        if "deploymenttype" in text:
            return (
                f"{said} The deployment is not a Custom Client deployment.",
                f"In {_SETUP_DEPLOYMENTS}, create a Custom Client deployment, publish it, and "
                "set MIAW_ES_DEVELOPER_NAME to its API name.",
            )
        if "orgid" in text:
            return (
                f"{said} Salesforce does not know the org id {config.org_id} for this host.",
                "Copy the org id from Setup → Company Information (or from the deployment's "
                "code snippet) into MIAW_ORG_ID; a sandbox has its own org id.",
            )
        if error.status in (400, 404) and ("deployment" in text or "esdevelopername" in text):
            return (
                f"{said} No deployment is named {config.es_developer_name}.",
                f"Set MIAW_ES_DEVELOPER_NAME to the API Name shown in {_SETUP_DEPLOYMENTS} (not "
                "its label).",
            )
        return (said, "")

    def _stream_failed(self, name: str, title: str, exc: httpx.TransportError) -> Check:
        error = transport_error(exc, f"GET {routes.SSE}")
        return Check(name, title, "fail", *self._explain_network(error))

    def _explain_network(self, error: ScrtError) -> tuple[str, str]:
        host = urlsplit(self._require_config().scrt_url).hostname
        cause = getattr(error, "cause", "") or str(error)
        if isinstance(error, ScrtCertificateError):
            if "hostname mismatch" in cause.lower() or "not valid for" in cause.lower():
                return (
                    f"The TLS certificate is for another host ({cause}).",
                    "MIAW_SCRT_URL must name the SCRT host exactly as the deployment's code "
                    f"snippet gives it (…{SCRT_DOMAIN}), not an alias or an IP address.",
                )
            return (
                f"The TLS certificate was not accepted: {cause}.",
                "Something between this server and Salesforce presents its own certificate (a "
                "proxy or firewall inspecting TLS), or the URL points at the wrong server. If "
                "your network inspects TLS on purpose, point SSL_CERT_FILE at its CA bundle; "
                "otherwise check MIAW_SCRT_URL.",
            )
        if isinstance(error, ScrtHostNotFoundError):
            return (f"{host} could not be resolved: {cause}.", "Check MIAW_SCRT_URL's spelling.")
        if isinstance(error, ScrtRefusedError):
            return (
                f"{host} refused the connection.",
                "Check the port in MIAW_SCRT_URL, and for a local simulator that it is running.",
            )
        if isinstance(error, ScrtTimeoutError):
            return (
                f"{host} did not answer within {self._timeout:g} s.",
                "A firewall may be dropping outgoing HTTPS; check this machine's egress rules.",
            )
        return (f"{host} could not be reached: {cause}.", "Check the network and try again.")

    def _explain_stream(self, error: ScrtStatusError) -> tuple[str, str]:
        if "must match" in error.message:
            return (
                f"Salesforce answered {error.status}: {error.message}",
                f"The org id does not belong to this org: check MIAW_ORG_ID "
                f"({self._require_config().org_id}) against Setup → Company Information.",
            )
        return self._explain(error)

    def _require_config(self) -> ScrtConfig:
        assert self._config is not None, "the settings step runs first"
        return self._config

    def _require_client(self) -> ScrtClient:
        assert self._client is not None, "the settings step runs first"
        return self._client


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


# -- command line ------------------------------------------------------------------------------

SYMBOLS = {"pass": "ok", "warn": "warn", "fail": "FAIL", "skip": "skip"}


def render(
    checks: list[Check], *, interrupted: bool = False, unclosed: set[str] | None = None
) -> str:
    width = max((len(c.title) for c in checks), default=0)
    lines = [f"miaw-mcp {__version__} doctor"]
    for check in checks:
        lines.append(f"  {SYMBOLS[check.status]:<4}  {check.title:<{width}}  {check.detail}")
        if check.fix:
            lines.append(f"        {'':<{width}}  fix: {check.fix}")
    failed = [c for c in checks if c.status == "fail"]
    for conversation_id in sorted(unclosed or ()):
        # The id is no secret: the operator needs it to find and close the conversation.
        lines.append(f"The test conversation {conversation_id} may still be open.")
    if interrupted:
        lines.append("Interrupted.")
    elif failed:
        lines.append(f'Stopped at "{failed[0].title}": fix it and run doctor again.')
    else:
        lines.append("Everything checked works.")
    return "\n".join(lines)


MAX_STEP_SECONDS = 300.0


def add_doctor_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    doctor = subparsers.add_parser(
        "doctor",
        help="check the Salesforce set-up step by step",
        description="Check the settings (environment, .env or flags) against the org, step by "
        "step, stopping at the first problem with what is wrong and how to fix it. Exit status "
        "0 when nothing failed, 1 otherwise, 130 when interrupted.",
    )
    doctor.add_argument("--scrt-url", help="overrides MIAW_SCRT_URL")
    doctor.add_argument("--org-id", help="overrides MIAW_ORG_ID")
    doctor.add_argument("--deployment", help="overrides MIAW_ES_DEVELOPER_NAME")
    doctor.add_argument("--public-url", help="overrides PUBLIC_URL")
    doctor.add_argument(
        "--timeout",
        type=seconds(MAX_STEP_SECONDS),
        default=30.0,
        metavar="SECONDS",
        help="how long each request or wait may take (default 30)",
    )
    doctor.add_argument(
        "--create-conversation",
        action="store_true",
        help="also open a conversation, check its routing and close it (an agent may see it)",
    )
    doctor.add_argument("--json", action="store_true", help="print a JSON report")


def run_doctor(args: argparse.Namespace) -> int:
    overrides = {
        key: value
        for key, value in (
            ("miaw_scrt_url", args.scrt_url),
            ("miaw_org_id", args.org_id),
            ("miaw_es_developer_name", args.deployment),
            ("public_url", args.public_url),
        )
        if value is not None
    }
    progress = Progress()
    interrupted = False
    try:
        settings = load_settings(**overrides)
    except ConfigError as exc:
        progress.checks.append(
            Check("settings", "Settings", "fail", str(exc), "Correct the value named.")
        )
    else:
        try:
            asyncio.run(diagnose(settings, args.timeout, args.create_conversation, progress))
        except KeyboardInterrupt:
            interrupted = True
    checks = progress.checks
    failed = any(c.status == "fail" for c in checks)
    if args.json:
        report = {
            "ok": not failed and not interrupted and not progress.unclosed,
            "interrupted": interrupted,
            "unclosedConversations": sorted(progress.unclosed),
        }
        print(json.dumps({**report, "checks": [asdict(c) for c in checks]}, indent=2))
    else:
        print(render(checks, interrupted=interrupted, unclosed=progress.unclosed))
    if interrupted:
        return 130
    return 1 if failed else 0


async def diagnose(
    settings: Settings, seconds: float, create_conversation: bool, progress: Progress
) -> list[Check]:
    """Run every step into `progress` (filled as it goes, so an interrupted run keeps it)."""
    async with httpx.AsyncClient(timeout=seconds) as http:
        doctor = Doctor(
            settings,
            http=http,
            timeout=seconds,
            create_conversation=create_conversation,
            on_heroku="DYNO" in os.environ,
            progress=progress,
        )
        return await doctor.run()
