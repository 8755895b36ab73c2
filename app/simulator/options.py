"""Knobs of the simulated org. Defaults match a freshly published Custom Client deployment."""

from __future__ import annotations

import math
import secrets
from dataclasses import dataclass, field
from typing import Literal

DEFAULT_ORG_ID = "00D000000000001EAA"
DEFAULT_DEPLOYMENT = "Demo_Custom_Client"


MAX_FAULT_DELAY = 60.0


@dataclass(frozen=True)
class FaultSpec:
    """A fault armed at start-up and again on every reset, like one `POST /control/faults` arms.

    `path` is an exact path, a route template (`/iamessage/api/v2/conversation/{conversationId}`)
    or a glob (`/iamessage/*`). Each matching request (of `method`, when given) is hit with
    `probability`; a hit fails it with `status` and/or holds it for `delay` seconds first. A miss
    does not use up `count`; `count=None` keeps the fault armed for good.
    """

    path: str
    method: str | None = None
    status: int | None = None
    delay: float | None = None
    probability: float = 1.0
    count: int | None = None

    def __post_init__(self) -> None:
        problem = fault_problem(
            self.path, self.method, self.status, self.delay, self.probability, self.count
        )
        if problem is not None:
            raise ValueError(problem)


def fault_problem(
    path: str,
    method: str | None,
    status: int | None,
    delay: float | None,
    probability: float,
    count: int | None,
) -> str | None:
    """What is wrong with a fault's values (naming the field), or None. Types are the caller's."""
    if not path.startswith("/"):
        return 'Field "path" must be a path starting with "/" (template or glob).'
    if method is not None and not method.isalpha():
        return 'Field "method" must be an HTTP method such as "POST".'
    if count is not None and count < 1:
        return 'Field "count" must be a positive integer, or null for every matching request.'
    if status is not None and not 400 <= status <= 599:
        return 'Field "status" must be an HTTP error status (400-599).'
    if delay is not None and not 0 < delay <= MAX_FAULT_DELAY:  # also rejects nan
        return f'Field "delay" must be a number of seconds above 0, at most {MAX_FAULT_DELAY:g}.'
    if status is None and delay is None:
        return 'Give "status" (fail the requests) or "delay" (slow them down).'
    if not 0 < probability <= 1:
        return 'Field "probability" must be a number above 0, at most 1.'
    return None


@dataclass(frozen=True)
class SimulatorOptions:
    org_id: str = DEFAULT_ORG_ID
    """18-character org id. Request bodies accept the 15- or 18-character form; SSE wants 15."""
    es_developer_name: str = DEFAULT_DEPLOYMENT
    deployment_type: str = "Api"
    """Anything but "Api" makes token requests fail with 400, as for a plain Web deployment."""
    deployment_published: bool = True
    prechat_display_context: Literal["Conversation", "Session"] = "Conversation"
    prechat_required: tuple[str, ...] = ()
    """Pre-chat fields (`_firstName`, `Topic`, `Source`) the deployment marks required."""
    prechat_hidden_fields: tuple[str, ...] = ()
    """More hidden pre-chat fields (Text, at most 255 characters), e.g. `ChatGPT_Summary__c`."""
    business_hours: Literal["open", "closed", "unset"] = "open"
    """The deployment's business hours: "open" now (a window from an hour ago to eight hours
    ahead), "closed" now (the next window starts in two hours) or "unset" (no window answered)."""
    routing_failure: str | None = None
    """When set (e.g. "RoutingError"), initial routing fails with this `failureType` and no bot
    joins: a messaging channel whose Omni-Channel flow routes nowhere."""
    """"Session" means pre-chat per messaging session: a send after the session ended gets 417."""
    guest_token_ttl: float = 3600.0
    verified_token_ttl: float = 3600.0
    keyset_name: str = "Demo_Keyset"
    identity_jwks_url: str | None = None
    """User Verification: the key set that must sign customer identity tokens (None: any
    well-formed one is trusted)."""
    identity_fallback_to_guest: bool = False
    """A bad identity token gets an anonymous token with 200 instead of 401 (reported of real
    orgs)."""
    strict_token_context: bool = False
    """Require `context` in token requests (400 when missing), as the API reference marks it."""
    rate_limits: bool = True
    token_requests_per_minute: int = 200
    messages_per_minute: int = 22
    replay: bool = True
    """Replay events after `Last-Event-Id` on (re)connect. False: live events only, to test
    clients against a server whose replay window fell short."""
    ping_interval: float = 15.0
    cors_origins: tuple[str, ...] = ("*",)
    bot_name: str = "Agentforce"
    crm_client_id: str = "sim-connected-app"
    """The CRM surface's connected app (`app/simulator/crm.py`): client id and secret, and the
    refresh token it accepts."""
    crm_client_secret: str = "sim-connected-app-secret"
    crm_refresh_token: str = "sim-refresh-token"
    crm_rotate_refresh_tokens: bool = False
    """Refresh token rotation: each refresh answers with a new refresh token; the old one is
    revoked."""
    crm_query_batch_size: int = 2000
    """Records per page of a SOQL answer (Salesforce's default); the rest via nextRecordsUrl."""
    bot_menu: bool = False
    """The bot greets with a menu (a ChoicesMessage: Orders, Billing, Talk to an agent)."""
    actor_delay: float = 0.0
    """Seconds the scripted bot waits before reacting (0 still reacts after the HTTP response)."""
    auto_agent_name: str | None = None
    """When set, a human agent of that name joins transferred conversations and answers."""
    auto_agent_delay: float = 2.0
    max_message_chars: int = 8000
    max_file_bytes: int = 5 * 1024 * 1024
    allowed_file_types: tuple[str, ...] = (
        "image/png",
        "image/jpeg",
        "image/gif",
        "application/pdf",
        "text/plain",
    )
    jwt_secret: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    faults: tuple[FaultSpec, ...] = ()
    """Faults armed at start-up and re-armed by `POST /control/reset`."""
    fault_seed: int = 0
    """Seed of the random draws of faults with a probability below 1, so runs are reproducible."""
    cut_streams_every: float | None = None
    """Cut every open SSE stream every this many seconds (None: never)."""
    sse_accepts_org_id18: bool = False
    """The event stream also accepts the 18-character org id in `X-Org-Id` (one source reports a
    real org did; by default only the 15-character form is accepted)."""

    def __post_init__(self) -> None:
        if self.cut_streams_every is not None and not (
            math.isfinite(self.cut_streams_every) and self.cut_streams_every > 0
        ):
            raise ValueError(
                f"cut_streams_every must be a number of seconds above 0 (or None), "
                f"got {self.cut_streams_every!r}"
            )

    @property
    def org_id15(self) -> str:
        return self.org_id[:15]
