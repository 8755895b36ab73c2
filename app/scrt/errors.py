"""The one error tree of the SCRT client.

Everything the client raises for a failed Salesforce call is a `ScrtError`; httpx exceptions are
translated here, at the I/O boundary, so callers never import httpx to handle failures.

    ScrtError
    ├── ScrtConnectionError          the request never got an HTTP answer (reset, network down)
    │   ├── ScrtCertificateError         TLS certificate not accepted: permanent, never retried
    │   ├── ScrtHostNotFoundError        the host name does not exist: permanent, never retried
    │   └── ScrtRefusedError             nothing listens at the address (connection refused)
    ├── ScrtTimeoutError             no answer in time (httpx timeout, retry budget, SSE watchdog)
    │   └── ScrtPoolTimeoutError         no free connection: SCRT_MAX_CONNECTIONS requests under way
    ├── ScrtProtocolError            a 2xx whose body lacks what the call needs (no accessToken)
    └── ScrtStatusError              any non-2xx answer; other 4xx (412, 418, ...) stay this class
        ├── ScrtBadRequestError            400  malformed request, wrong deployment, bad X-Org-Id
        ├── ScrtAuthError                  401  token missing, invalid, expired or revoked
        ├── ScrtNotFoundError              403, 404  unknown conversation or another subject's
        ├── ScrtConflictError              409  conversation id already exists
        ├── ScrtPayloadTooLargeError       413  file over the 5 MB cap
        ├── ScrtUnsupportedMediaTypeError  415  file type not allowed
        ├── ScrtNoSessionError             417  no messaging session: resend with a new session
        ├── ScrtRateLimitError             429  rate limited
        └── ScrtServerError                5xx

A `ScrtStatusError` carries the HTTP status, Salesforce's `message` and `errorCode`, and the request
method and route template (`/iamessage/api/v2/conversation/{conversationId}`). It never carries the
access token, the request body (message text) or the concrete URL, so it is safe to log.
"""

from __future__ import annotations

import json
import socket
import ssl
from typing import Any

import httpx

_MAX_MESSAGE_CHARS = 300


class ScrtError(Exception):
    """Base of every error raised by `app.scrt`."""


class ScrtConnectionError(ScrtError):
    """The request failed before an HTTP status arrived."""

    permanent = False
    """True when repeating the request cannot help (a certificate, a host name that does not
    exist): it is not retried, and the operator has to fix the set-up."""

    def __init__(self, message: str = "", *, request_sent: bool = True, cause: str = "") -> None:
        super().__init__(message)
        self.request_sent = request_sent
        """False only when the request surely never left (refused connection, DNS, pool)."""
        self.cause = cause
        """What the network layer said (e.g. "self-signed certificate"): safe to log, never
        holds a token or a message."""


class ScrtCertificateError(ScrtConnectionError):
    """TLS: the server's certificate was refused (self-signed, expired, for another host)."""

    permanent = True


class ScrtHostNotFoundError(ScrtConnectionError):
    """DNS: the host name does not exist (a temporary DNS failure stays a ScrtConnectionError)."""

    permanent = True


class ScrtRefusedError(ScrtConnectionError):
    """Nothing accepts connections at the address (wrong port, server down)."""


class ScrtTimeoutError(ScrtError):
    """The request or stream produced nothing within its time limit."""

    def __init__(self, message: str = "", *, request_sent: bool = True) -> None:
        super().__init__(message)
        self.request_sent = request_sent
        """False only when the time ran out before the request left (connect or pool wait)."""


class ScrtPoolTimeoutError(ScrtTimeoutError):
    """This process has as many Salesforce requests under way as it allows, and none finished
    in time to make room (the request never left)."""


class ScrtProtocolError(ScrtError):
    """Salesforce answered 2xx, but without a field the call cannot do without."""


class ScrtStatusError(ScrtError):
    """Salesforce answered with a non-2xx status."""

    def __init__(
        self,
        *,
        status: int,
        message: str,
        error_code: str | None = None,
        method: str = "",
        route: str = "",
        retry_after: float | None = None,
    ) -> None:
        self.status = status
        self.message = message
        self.error_code = error_code
        self.method = method
        self.route = route
        self.retry_after = retry_after
        code = f" {error_code}" if error_code else ""
        super().__init__(f"{method} {route} -> {status}{code}: {message}".strip())


class ScrtBadRequestError(ScrtStatusError):
    """400: the request is wrong and repeating it will not help."""


class ScrtAuthError(ScrtStatusError):
    """401: mint a new token (or a continuation token while the old one is still valid)."""


class ScrtNotFoundError(ScrtStatusError):
    """403/404: the conversation does not exist or belongs to another subject."""


class ScrtConflictError(ScrtStatusError):
    """409: the resource (a conversation id) already exists."""


class ScrtPayloadTooLargeError(ScrtStatusError):
    """413: the uploaded file is over the limit."""


class ScrtUnsupportedMediaTypeError(ScrtStatusError):
    """415: the uploaded file type is not allowed."""


class ScrtNoSessionError(ScrtStatusError):
    """417: no messaging session; resend with `new_session=True` and the pre-chat values."""


class ScrtRateLimitError(ScrtStatusError):
    """429: too many requests."""


class ScrtServerError(ScrtStatusError):
    """5xx: Salesforce failed; transient more often than not."""


_BY_STATUS: dict[int, type[ScrtStatusError]] = {
    400: ScrtBadRequestError,
    401: ScrtAuthError,
    403: ScrtNotFoundError,
    404: ScrtNotFoundError,
    409: ScrtConflictError,
    413: ScrtPayloadTooLargeError,
    415: ScrtUnsupportedMediaTypeError,
    417: ScrtNoSessionError,
    429: ScrtRateLimitError,
}


def status_error_class(status: int) -> type[ScrtStatusError]:
    """The error class for an HTTP status (5xx share one class, unlisted 4xx the base class)."""
    if status >= 500:
        return ScrtServerError
    return _BY_STATUS.get(status, ScrtStatusError)


# Gateway and internal errors can come after Salesforce acted on the request; 503 and 429 are
# refusals of requests it did not act on.
_UNKNOWN_OUTCOME_STATUSES = frozenset({500, 502, 504})


def outcome_unknown(error: ScrtError) -> bool:
    """Whether Salesforce may have acted on the request although the call failed: a write that
    failed this way must be looked for before it is repeated or reported as failed."""
    if isinstance(error, ScrtConnectionError | ScrtTimeoutError):
        return error.request_sent
    return isinstance(error, ScrtServerError) and error.status in _UNKNOWN_OUTCOME_STATUSES


def transport_error(exc: httpx.TransportError, what: str) -> ScrtConnectionError | ScrtTimeoutError:
    """The ScrtError for an httpx failure, by its cause: certificate, unknown host, refused
    connection, timeout, or another connection failure. `what` names the request ("GET /route")."""
    sent = not isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)
    if isinstance(exc, httpx.PoolTimeout):
        return ScrtPoolTimeoutError(f"{what}: no free connection", request_sent=False)
    if isinstance(exc, httpx.TimeoutException):
        return ScrtTimeoutError(f"{what}: {type(exc).__name__}", request_sent=sent)
    kind: type[ScrtConnectionError] = ScrtConnectionError
    cause = ""
    for link in _causes(exc):
        if isinstance(link, ssl.SSLCertVerificationError):
            kind = ScrtCertificateError
            cause = getattr(link, "verify_message", None) or "certificate verify failed"
            break
        if isinstance(link, socket.gaierror):
            if link.errno in _NAME_NOT_FOUND:
                kind = ScrtHostNotFoundError
            cause = link.strerror or "name resolution failed"
            break
        if isinstance(link, ConnectionRefusedError):
            kind, cause = ScrtRefusedError, "connection refused"
            break
        if isinstance(link, ssl.SSLError):
            cause = f"TLS handshake failed ({link.reason or link})"
            break
    else:
        cause = type(exc).__name__
    return kind(f"{what}: {cause}", request_sent=sent, cause=cause)


# getaddrinfo's "no such name" answers; EAI_AGAIN (a resolver that did not answer) may pass.
_NAME_NOT_FOUND = frozenset(
    code
    for code in (getattr(socket, "EAI_NONAME", None), getattr(socket, "EAI_NODATA", None))
    if code is not None
)


def _causes(exc: BaseException) -> list[BaseException]:
    """The exception and what caused it, outermost first (httpx → httpcore → OSError/ssl)."""
    chain: list[BaseException] = []
    link: BaseException | None = exc
    while link is not None and link not in chain and len(chain) < 10:
        chain.append(link)
        if isinstance(link, BaseExceptionGroup) and link.exceptions:
            # anyio tried every address of the host; the first attempt's failure says why.
            link = link.exceptions[0]
        else:
            link = link.__cause__ or link.__context__
    return chain


def is_permanent(error: ScrtError) -> bool:
    """Whether no retry can help: the set-up is wrong (certificate, host name)."""
    return isinstance(error, ScrtConnectionError) and error.permanent


def error_from_response(response: httpx.Response, *, method: str, route: str) -> ScrtStatusError:
    """Build the error for a non-2xx response whose body has been read."""
    message, error_code = _parse_error_body(response.content)
    if not message:
        message = response.reason_phrase or f"HTTP {response.status_code}"
    return status_error_class(response.status_code)(
        status=response.status_code,
        message=message,
        error_code=error_code,
        method=method,
        route=route,
        retry_after=_retry_after(response),
    )


def _parse_error_body(body: bytes) -> tuple[str | None, str | None]:
    """Salesforce `{message, errorCode}`, Spring `{error, message}`, `{text}`, or raw text."""
    text = body.decode("utf-8", errors="replace").strip()
    if not text:
        return None, None
    try:
        data: Any = json.loads(text)
    except ValueError:
        return _clip(text), None
    if isinstance(data, list) and data and isinstance(data[0], dict):
        data = data[0]
    if not isinstance(data, dict):
        return _clip(text), None
    message = _first_text(data, "message", "text", "error", "errorMessage")
    error_code = _first_text(data, "errorCode")
    return (_clip(message) if message else None), error_code


def _first_text(data: dict[str, Any], *keys: str) -> str | None:
    for key in keys:
        value = data.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def _clip(text: str) -> str:
    text = " ".join(text.split())
    if len(text) <= _MAX_MESSAGE_CHARS:
        return text
    return text[: _MAX_MESSAGE_CHARS - 1] + "…"


def _retry_after(response: httpx.Response) -> float | None:
    """Seconds from a numeric `Retry-After` header (undocumented for SCRT, honoured if present)."""
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if seconds >= 0 else None
