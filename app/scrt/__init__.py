"""Salesforce SCRT (Messaging for In-App and Web v2) client: REST calls, SSE events, entries.

The only package that talks to Salesforce. See `client.ScrtClient`, `events.ScrtEventStream`,
`models.Entry` and the error tree in `errors`.
"""

from app.scrt.client import ScrtClient, Token
from app.scrt.config import ScrtConfig
from app.scrt.errors import (
    ScrtAuthError,
    ScrtBadRequestError,
    ScrtCertificateError,
    ScrtConflictError,
    ScrtConnectionError,
    ScrtError,
    ScrtHostNotFoundError,
    ScrtNoSessionError,
    ScrtNotFoundError,
    ScrtPayloadTooLargeError,
    ScrtPoolTimeoutError,
    ScrtProtocolError,
    ScrtRateLimitError,
    ScrtRefusedError,
    ScrtServerError,
    ScrtStatusError,
    ScrtTimeoutError,
    ScrtUnsupportedMediaTypeError,
)
from app.scrt.events import ReconnectPolicy, ScrtEvent, ScrtEventStream, TokenSource
from app.scrt.models import Entry, EntryType, chronological
from app.scrt.payloads import new_id
from app.scrt.results import (
    AccessToken,
    BusinessHours,
    ConversationList,
    ConversationSummary,
    RoutingStatus,
    SentMessage,
)
from app.scrt.retry import RetryPolicy

__all__ = [
    "AccessToken",
    "BusinessHours",
    "ConversationList",
    "ConversationSummary",
    "Entry",
    "EntryType",
    "ReconnectPolicy",
    "RetryPolicy",
    "RoutingStatus",
    "ScrtAuthError",
    "ScrtBadRequestError",
    "ScrtCertificateError",
    "ScrtClient",
    "ScrtConfig",
    "ScrtConflictError",
    "ScrtConnectionError",
    "ScrtError",
    "ScrtEvent",
    "ScrtEventStream",
    "ScrtHostNotFoundError",
    "ScrtNoSessionError",
    "ScrtNotFoundError",
    "ScrtPayloadTooLargeError",
    "ScrtPoolTimeoutError",
    "ScrtProtocolError",
    "ScrtRateLimitError",
    "ScrtRefusedError",
    "ScrtServerError",
    "ScrtStatusError",
    "ScrtTimeoutError",
    "ScrtUnsupportedMediaTypeError",
    "SentMessage",
    "Token",
    "TokenSource",
    "chronological",
    "new_id",
]
