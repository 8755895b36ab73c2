"""Knobs of the simulated org. Defaults match a freshly published Custom Client deployment."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Literal

DEFAULT_ORG_ID = "00D000000000001AAA"
DEFAULT_DEPLOYMENT = "Demo_Custom_Client"


@dataclass(frozen=True)
class SimulatorOptions:
    org_id: str = DEFAULT_ORG_ID
    """18-character org id. Request bodies accept the 15- or 18-character form; SSE wants 15."""
    es_developer_name: str = DEFAULT_DEPLOYMENT
    deployment_type: str = "Api"
    """Anything but "Api" makes token requests fail with 400, as for a plain Web deployment."""
    deployment_published: bool = True
    prechat_display_context: Literal["Conversation", "Session"] = "Conversation"
    """"Session" means pre-chat per messaging session: a send after the session ended gets 417."""
    guest_token_ttl: float = 3600.0
    verified_token_ttl: float = 3600.0
    keyset_name: str = "Demo_Keyset"
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

    @property
    def org_id15(self) -> str:
        return self.org_id[:15]
