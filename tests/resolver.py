"""Host names that do not resolve, whatever this machine's DNS says."""

from __future__ import annotations

import socket
from typing import Any

import pytest


class FailingLookups:
    """Lookups of `host` fail with `errno` (EAI_NONAME: no such name; EAI_AGAIN: no answer);
    `count` says how many were made. Other names resolve as usual."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, host: str, errno: int) -> None:
        self.count = 0
        real = socket.getaddrinfo
        text = {socket.EAI_NONAME: "Name or service not known"}.get(
            errno, "Temporary failure in name resolution"
        )

        def getaddrinfo(name: Any, *args: Any, **kwargs: Any) -> Any:
            # anyio passes the name IDNA-encoded, as bytes.
            if (name.decode() if isinstance(name, bytes) else name) == host:
                self.count += 1
                raise socket.gaierror(errno, text)
            return real(name, *args, **kwargs)

        monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
