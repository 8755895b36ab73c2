"""Failures the model is shown: each names what went wrong and what to do next.

Never a token, a handle or what anyone wrote: these texts reach the model and the widget.
"""

from __future__ import annotations

from app.scrt import (
    ScrtAuthError,
    ScrtCertificateError,
    ScrtConnectionError,
    ScrtError,
    ScrtHostNotFoundError,
    ScrtNotFoundError,
    ScrtPoolTimeoutError,
    ScrtProtocolError,
    ScrtRateLimitError,
    ScrtRefusedError,
    ScrtStatusError,
    ScrtTimeoutError,
)


class HandoffError(Exception):
    """A failure the model can act on; the message says what to do."""


class UnknownSession(HandoffError):
    pass


class SendUnconfirmed(HandoffError):
    """Salesforce may have the message or not: it did not answer before the call's deadline."""


def describe(exc: ScrtError) -> str:
    """A model-safe sentence for a Salesforce failure."""
    if isinstance(exc, ScrtAuthError):
        return (
            "Salesforce no longer accepts this chat session (its access expired). "
            "Start over with generate_guest_access_token."
        )
    if isinstance(exc, ScrtNotFoundError):
        return "Salesforce does not know this conversation for this session."
    if isinstance(exc, ScrtRateLimitError):
        return "Salesforce is rate-limiting this chat; wait a little before trying again."
    if isinstance(exc, ScrtStatusError):
        detail = f": {exc.message}" if exc.message else ""
        return f"Salesforce answered HTTP {exc.status}{detail}"
    if isinstance(exc, ScrtProtocolError):
        return "Salesforce answered in a way this server does not understand; try again later."
    if isinstance(exc, ScrtPoolTimeoutError):
        return (
            "This server has as many Salesforce requests under way as it allows "
            "(SCRT_MAX_CONNECTIONS); try again shortly."
        )
    if isinstance(exc, ScrtTimeoutError):
        return "Salesforce did not answer in time. Try again shortly."
    if isinstance(exc, ScrtCertificateError):
        return (
            "Salesforce's TLS certificate was not accepted, so this server will not connect to "
            "it. This is a set-up problem for the server's operator (run `miaw-mcp doctor`); "
            "trying again will not help."
        )
    if isinstance(exc, ScrtHostNotFoundError):
        return (
            "Salesforce's host name could not be found (DNS). This is a set-up problem for the "
            "server's operator (check MIAW_SCRT_URL, run `miaw-mcp doctor`); trying again "
            "will not help."
        )
    if isinstance(exc, ScrtRefusedError):
        return "Salesforce refused the connection. Try again shortly."
    if isinstance(exc, ScrtConnectionError):
        return "Salesforce could not be reached. Try again shortly."
    return f"Salesforce could not be reached ({type(exc).__name__}). Try again shortly."
