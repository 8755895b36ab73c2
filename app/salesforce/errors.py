"""Salesforce REST and OAuth failures as one tree, each with a sentence safe to show the model.

The REST API answers errors as a JSON array of `{"message", "errorCode", "fields"}`; the OAuth
token endpoint as `{"error", "error_description"}`. Sentences name the field and the code, and
repeat Salesforce's own message (which names columns and values, never tokens); they never carry
a token or a request's authorization.
"""

from __future__ import annotations

from typing import Any


class SalesforceError(Exception):
    """A Salesforce call failed; `str(error)` is safe to show the model."""

    def __init__(self, message: str, *, code: str = "", fields: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.code = code
        self.fields = fields


class SessionExpired(SalesforceError):
    """401 INVALID_SESSION_ID: the access token expired or was revoked (refresh and retry once)."""


class LoginRequired(SalesforceError):
    """The refresh token or client credentials were refused: someone must log in again."""


class BadRequest(SalesforceError):
    """A field, a query or a value Salesforce refused; the message says which."""


class NotFound(SalesforceError):
    pass


class Unavailable(SalesforceError):
    """Salesforce is down, overloaded or over its API limit: worth trying again later.
    `unsent`: the request cannot have been acted on (no connection, 503, the API limit)."""

    def __init__(self, message: str, *, code: str = "", unsent: bool = False) -> None:
        super().__init__(message, code=code)
        self.unsent = unsent


LOGIN_AGAIN = (
    "Salesforce refused this server's login ({detail}). An administrator must log in again "
    "(miaw-mcp crm login, or a new SALESFORCE_REFRESH_TOKEN) or fix SALESFORCE_CLIENT_ID / "
    "SALESFORCE_CLIENT_SECRET."
)


def _items(body: Any) -> list[dict[str, Any]]:
    items = body if isinstance(body, list) else [body] if isinstance(body, dict) else []
    return [i for i in items if isinstance(i, dict)]


def from_rest(status: int, body: Any) -> SalesforceError:
    """The error a REST answer with this status and (parsed) body stands for."""
    first = next(iter(_items(body)), {})
    code = str(first.get("errorCode") or "")
    message = str(first.get("message") or f"HTTP {status}")
    fields = tuple(str(f) for f in first.get("fields") or [] if isinstance(f, str))
    if status == 401 or code == "INVALID_SESSION_ID":
        return SessionExpired("Salesforce session expired.", code=code)
    if code == "REQUEST_LIMIT_EXCEEDED" or status >= 500:
        return Unavailable(
            f"Salesforce is unavailable or over its API limit ({code or status}); try again later.",
            code=code,
            unsent=code == "REQUEST_LIMIT_EXCEEDED" or status == 503,
        )
    if 300 <= status < 400:
        return SalesforceError(
            f"Salesforce answered with a redirect (HTTP {status}): check SALESFORCE_INSTANCE_URL "
            "(the org's My Domain URL).",
            code=str(status),
        )
    if status == 404:
        return NotFound(f"Not found in Salesforce: {message}", code=code)
    named = f" (field {', '.join(fields)})" if fields else ""
    return BadRequest(
        f"Salesforce refused the request{named}: {code}: {message}", code=code, fields=fields
    )


def from_oauth(status: int, body: Any) -> SalesforceError:
    """The error an OAuth token endpoint answer stands for."""
    item = body if isinstance(body, dict) else {}
    error = str(item.get("error") or f"HTTP {status}")
    if status >= 500:
        return Unavailable("Salesforce's login service is unavailable; try again later.")
    description = str(item.get("error_description") or "")
    detail = f"{error}: {description}" if description else error
    return LoginRequired(LOGIN_AGAIN.format(detail=detail), code=error)
