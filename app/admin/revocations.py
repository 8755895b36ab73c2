"""Signed-out operator sessions, so a copy of a signed-out cookie opens nothing anywhere.

A session cookie is signed, not kept: any process accepts it until it expires. Signing out
therefore records its id as revoked until then: in Redis with REDIS_URL (one key per session,
expiring with the cookie, so every process and every restart sees it), else in this process's
memory (where a restart also changes the signing secret and so ends every session anyway,
`app.admin.access.signing_secret`). Keys hold a hash of the id, never the id.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from redis.asyncio import Redis

from app.limits import digest

PRUNE_AT = 1_000
"""In memory, revocations past this many are swept of the expired ones."""


class Revocations(Protocol):
    async def revoke(self, session_id: str, until: float, now: float) -> None:
        """Refuse `session_id` until `until` (its cookie's expiry)."""
        ...

    async def revoked(self, session_id: str) -> bool: ...


@dataclass
class MemoryRevocations:
    """Revocations of one process."""

    _until: dict[str, float] = field(default_factory=dict)

    async def revoke(self, session_id: str, until: float, now: float) -> None:
        if len(self._until) > PRUNE_AT:
            self._until = {sid: end for sid, end in self._until.items() if end > now}
        self._until[session_id] = until

    async def revoked(self, session_id: str) -> bool:
        # An expired one need not be answered: its cookie's own expiry refuses it first.
        return session_id in self._until


class RedisRevocations:
    """Revocations every process sees; RedisError when Redis does not answer (the caller
    refuses the request then: a revocation that cannot be checked lets nobody in)."""

    def __init__(self, redis: Redis, prefix: str) -> None:
        self._redis = redis
        self._prefix = f"{prefix}admin:revoked:"

    def _key(self, session_id: str) -> str:
        return self._prefix + digest("admin-session", session_id)

    async def revoke(self, session_id: str, until: float, now: float) -> None:
        await self._redis.set(self._key(session_id), b"1", pxat=max(int(until * 1000), 1))

    async def revoked(self, session_id: str) -> bool:
        return bool(await self._redis.exists(self._key(session_id)))
