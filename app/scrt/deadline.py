"""One deadline per tool call, shared by every Salesforce request the call makes.

A tool call may make several Salesforce requests in a row (close: end the session, then close the
conversation; a send after a 417: the send, then the resend with a new session), each with its own
retry budget. Without a shared deadline their budgets add up past Heroku's 30 s router limit. The
deadline is ambient (a context variable), so the calls in between need not pass it along: every
`call_with_retry` under `call_deadline(...)` stops at whichever comes first, its own budget or the
call's deadline. Background work (event streams, catch-ups) runs in a fresh context, without one.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from contextvars import ContextVar

_deadline: ContextVar[float | None] = ContextVar("scrt_call_deadline", default=None)


def current_deadline() -> float | None:
    """The ambient deadline in event-loop time, or None outside a `call_deadline` block."""
    return _deadline.get()


def remaining(default: float) -> float:
    """Seconds left before the ambient deadline (never below 0); `default` when there is none."""
    at = _deadline.get()
    if at is None:
        return default
    return max(0.0, min(default, at - asyncio.get_running_loop().time()))


@contextlib.contextmanager
def call_deadline(seconds: float) -> Iterator[float]:
    """Run the block under a deadline `seconds` from now (or the enclosing one, if sooner)."""
    at = asyncio.get_running_loop().time() + seconds
    outer = _deadline.get()
    if outer is not None:
        at = min(at, outer)
    token = _deadline.set(at)
    try:
        yield at
    finally:
        _deadline.reset(token)
