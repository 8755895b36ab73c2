"""Session handles: opaque, unguessable, and telling which server process made them.

A handle is `<process>.<secret>`: 8 random characters naming the process that started the session
(new on every start), then 43 characters of randomness. With shared state (Redis) any process
knows every handle; a process keeping sessions in memory knows only its own, so a handle it does not
know but made by another process means the server restarted (or another dyno made it): the chat is
gone, and the user is told so plainly instead of "unknown session".
"""

from __future__ import annotations

import secrets


class HandleMaker:
    def __init__(self) -> None:
        self.process = secrets.token_hex(4)

    def new(self) -> str:
        return f"{self.process}.{secrets.token_urlsafe(32)}"

    def made_elsewhere(self, handle: str) -> bool:
        """Whether the handle looks like one of ours but another process made it."""
        process, dot, secret = handle.partition(".")
        return bool(dot) and len(process) == 8 and process != self.process and len(secret) >= 32
