"""Who may see the operator page: the sign-in, its budgets, the session cookie, CSRF tokens.
(Over what: `transport.py`.)

- **Sign-in**: ADMIN_PASSWORD, compared in constant time (digests of equal length); every attempt
  spends from a budget per client address (`SIGNIN_RATE`; IPv6 addresses by their /64, which
  one client typically holds whole) and then from one budget for the whole deployment
  (`SIGNIN_RATE_ALL`, against guessing from many addresses), both in the limits' counters: in
  Redis with REDIS_URL, so they hold across processes.
- **Session**: a cookie holding an expiry and a random id, signed (HMAC-SHA256) with a key made
  of the password (through scrypt) and a server-side secret (`signing_secret`). So a changed
  password ends every session; a cookie does not let anyone test password guesses offline
  (they would need the secret too); deployments sharing a password do not accept each other's
  cookies. HttpOnly, SameSite=Strict, Secure (and `__Host-`) over HTTPS; 8 hours. Signing out
  forgets the cookie and revokes its id until its expiry (`revocations.py`: in Redis with
  REDIS_URL, so on every process and after restarts).
- **CSRF**: every POST carries a token (sign-in: a random one, also in a cookie; signed in: the
  session's, derived from its id) and, when the browser sends one, an Origin that is the page's
  own; SameSite=Strict keeps the cookie off other sites' requests anyway.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from pydantic import SecretStr
from starlette.requests import Request

from app.admin.revocations import MemoryRevocations, Revocations
from app.limits import Counters, Rate, client_address, digest

SESSION_SECONDS = 8 * 3600
SIGNIN_RATE = Rate(10, 15 * 60, "10 per 15 minutes")
"""Sign-in attempts per client address (an IPv6 /64)."""
SIGNIN_RATE_ALL = Rate(100, 15 * 60, "100 per 15 minutes")
"""Sign-in attempts for the whole deployment, from every address together."""
COOKIE = "miaw-admin"
SIGNIN_COOKIE = "miaw-admin-signin"
_EXPIRY = re.compile(r"[0-9]{1,12}")
SECRET_LABEL = b"miaw-mcp admin session signing"


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def signing_secret(state_key: SecretStr | None, shared: bool) -> bytes:
    """The server-side half of the session key. With shared state (REDIS_URL, which requires
    STATE_ENCRYPTION_KEY): derived from the first STATE_ENCRYPTION_KEY, so every process and
    every restart accepts the deployment's cookies (rotating that key ends every session).
    Without: random for this process, so a restart ends every session, as it ends every chat;
    the revocations kept in memory then need not outlive the process."""
    if shared and state_key is not None:
        first = state_key.get_secret_value().split(",")[0].strip().encode()
        return hmac.new(first, SECRET_LABEL, hashlib.sha256).digest()
    return secrets.token_bytes(32)


def address_scope(address: str) -> str:
    """Whose budget an address spends: an IPv6 address's /64 (a client holds all of one), an
    IPv4 address (or an IPv4-mapped IPv6 one) itself."""
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        return str(ipaddress.IPv6Network((parsed, 64), strict=False))
    return str(parsed)


@dataclass(frozen=True)
class AdminSession:
    session_id: str
    expires_at: float
    csrf: str


@dataclass(frozen=True)
class SigninWait:
    """A sign-in attempt refused by a budget: which one, and for how long."""

    seconds: float
    everyone: bool
    """The deployment's budget (True) or the address's."""

    @property
    def limit(self) -> str:
        return "ADMIN_SIGNIN_ALL" if self.everyone else "ADMIN_SIGNIN"


@dataclass
class AdminAccess:
    password: SecretStr
    counters: Counters
    secret: bytes
    """`signing_secret`: what makes a cookie unverifiable without the server."""
    revocations: Revocations = field(default_factory=MemoryRevocations)
    proxy_hops: int = 0
    clock: Callable[[], float] = time.time

    def __post_init__(self) -> None:
        given = self.password.get_secret_value().encode()
        self._digest = hashlib.sha256(given).digest()
        # scrypt keeps guessing slow even for someone who learns the secret.
        stretched = hashlib.scrypt(given, salt=b"miaw-mcp admin session", n=2**14, r=8, p=1)
        self._key = hmac.new(self.secret, stretched, hashlib.sha256).digest()

    def _mac(self, *parts: str) -> str:
        return _b64(hmac.new(self._key, "\x00".join(parts).encode(), hashlib.sha256).digest())

    def password_fits(self, given: str) -> bool:
        supplied = hashlib.sha256(given.encode()).digest()
        return hmac.compare_digest(supplied, self._digest)

    async def attempt_allowed(self, request: Request) -> SigninWait | None:
        """Spend one sign-in attempt of the caller's address, then of the deployment: None if
        allowed, else which budget is spent and until when. (An address out of budget does
        not spend the deployment's.)"""
        address = address_scope(client_address(request, self.proxy_hops) or "unknown")
        now = self.clock()
        wait = await self.counters.take(
            f"admin-signin:{digest('address', address)}", SIGNIN_RATE, now
        )
        if wait > 0:
            return SigninWait(wait, everyone=False)
        wait = await self.counters.take("admin-signin:all", SIGNIN_RATE_ALL, now)
        return SigninWait(wait, everyone=True) if wait > 0 else None

    def new_session(self) -> str:
        """A cookie value: `<expiry>.<random id>.<signature>`."""
        expires = int(self.clock()) + SESSION_SECONDS
        session_id = secrets.token_urlsafe(24)
        return f"{expires}.{session_id}.{self._mac('session', str(expires), session_id)}"

    async def session(self, cookie: str | None) -> AdminSession | None:
        """The cookie's session, if it is genuine, unexpired and not signed out. RedisError when
        the revocations (in Redis) cannot be read: the caller refuses the request."""
        if not cookie or cookie.count(".") != 2:
            return None
        expires, session_id, mac = cookie.split(".")
        if not hmac.compare_digest(
            mac.encode(), self._mac("session", expires, session_id).encode()
        ):
            return None
        if not _EXPIRY.fullmatch(expires) or int(expires) <= self.clock():
            return None
        if await self.revocations.revoked(session_id):
            return None
        return AdminSession(session_id, float(expires), self._mac("csrf", session_id))

    async def revoke(self, session: AdminSession) -> None:
        await self.revocations.revoke(session.session_id, session.expires_at, self.clock())

    @staticmethod
    def token_fits(expected: str | None, given: str | None) -> bool:
        return bool(expected and given) and hmac.compare_digest(
            str(expected).encode(), str(given).encode()
        )

    @staticmethod
    def new_signin_token() -> str:
        return secrets.token_urlsafe(24)
