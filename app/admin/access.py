"""Who may see the operator page, and over what.

- **Transport**: HTTPS, or plain HTTP only between loopback addresses (the browser on this
  machine, to a server it reached as 127.0.0.1/localhost). Behind TRUSTED_PROXY_HOPS proxies
  (Heroku's router) the scheme is the one the proxy saw (`X-Forwarded-Proto`) and the client is
  the address it saw; without trusted proxies those headers are the client's say and ignored.
- **Sign-in**: ADMIN_PASSWORD, compared in constant time (digests of equal length); every attempt
  spends from a budget per client address (`SIGNIN_RATE`, in the limits' counters: in Redis
  with REDIS_URL, so it holds across processes).
- **Session**: a cookie holding an expiry and a random id, signed (HMAC-SHA256) with a key
  derived from the password by scrypt, so any process of the deployment accepts it, a changed
  password ends every session, and a stolen cookie does not help guess the password. HttpOnly,
  SameSite=Strict, Secure (and `__Host-`) over HTTPS; 8 hours. Signing out forgets the cookie
  and revokes its id in this process (other processes accept it until it expires).
- **CSRF**: every POST carries a token (sign-in: a random one, also in a cookie; signed in: the
  session's, derived from its id) and, when the browser sends one, an Origin that is the page's
  own; SameSite=Strict keeps the cookie off other sites' requests anyway.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from pydantic import SecretStr
from starlette.requests import Request

from app.limits import Counters, Rate, client_address, digest

SESSION_SECONDS = 8 * 3600
SIGNIN_RATE = Rate(10, 15 * 60, "10 per 15 minutes")
"""Sign-in attempts per client address."""
COOKIE = "miaw-admin"
SIGNIN_COOKIE = "miaw-admin-signin"
LOOPBACK_NAMES = ("localhost",)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    name = host.strip("[]").lower()
    if name in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class Transport:
    """How a request reached us, as far as the trusted proxies say."""

    https: bool
    local: bool
    """Plain HTTP between loopback addresses: a browser on this machine."""
    origin: str
    """The page's own origin, as the browser sees it."""

    @property
    def acceptable(self) -> bool:
        return self.https or self.local


def transport_of(request: Request, proxy_hops: int) -> Transport:
    scheme = request.url.scheme
    if proxy_hops > 0:
        forwarded = request.headers.get("x-forwarded-proto", "")
        # The proxy nearest us wrote the last value; anything before it is the client's say.
        scheme = forwarded.split(",")[-1].strip().lower() or scheme
    host = request.headers.get("host", "")
    client = client_address(request, proxy_hops)
    local = scheme == "http" and is_loopback(request.url.hostname) and is_loopback(client)
    return Transport(https=scheme == "https", local=local, origin=f"{scheme}://{host}")


def host_allowed(host: str, patterns: list[str]) -> bool:
    """`Settings.allowed_hosts()` patterns: exact names, or `name:*` for any port."""
    host = host.lower()
    for pattern in patterns:
        if pattern.endswith(":*"):
            if host.startswith(pattern[:-1]) and host[len(pattern) - 1 :].isdigit():
                return True
        elif host == pattern:
            return True
    return False


@dataclass(frozen=True)
class AdminSession:
    session_id: str
    expires_at: float
    csrf: str


@dataclass
class AdminAccess:
    password: SecretStr
    counters: Counters
    proxy_hops: int = 0
    clock: Callable[[], float] = time.time
    _revoked: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        secret = self.password.get_secret_value().encode()
        self._digest = hashlib.sha256(secret).digest()
        # A slow derivation: a cookie's signature must not make guessing the password cheap.
        self._key = hashlib.scrypt(secret, salt=b"miaw-mcp admin session", n=2**14, r=8, p=1)

    def _mac(self, *parts: str) -> str:
        return _b64(hmac.new(self._key, "\x00".join(parts).encode(), hashlib.sha256).digest())

    def password_fits(self, given: str) -> bool:
        supplied = hashlib.sha256(given.encode()).digest()
        return hmac.compare_digest(supplied, self._digest)

    async def attempt_allowed(self, request: Request) -> float:
        """Spend one sign-in attempt of the caller's address: 0 if allowed, else seconds to wait."""
        address = client_address(request, self.proxy_hops) or "unknown"
        return await self.counters.take(
            f"admin-signin:{digest('address', address)}", SIGNIN_RATE, self.clock()
        )

    def new_session(self) -> str:
        """A cookie value: `<expiry>.<random id>.<signature>`."""
        expires = int(self.clock()) + SESSION_SECONDS
        session_id = secrets.token_urlsafe(24)
        return f"{expires}.{session_id}.{self._mac('session', str(expires), session_id)}"

    def session(self, cookie: str | None) -> AdminSession | None:
        if not cookie or cookie.count(".") != 2:
            return None
        expires, session_id, mac = cookie.split(".")
        if not hmac.compare_digest(
            mac.encode(), self._mac("session", expires, session_id).encode()
        ):
            return None
        if not expires.isdigit() or int(expires) <= self.clock() or session_id in self._revoked:
            return None
        return AdminSession(session_id, float(expires), self._mac("csrf", session_id))

    def revoke(self, session: AdminSession) -> None:
        now = self.clock()
        self._revoked = {sid: until for sid, until in self._revoked.items() if until > now}
        self._revoked[session.session_id] = session.expires_at

    @staticmethod
    def token_fits(expected: str | None, given: str | None) -> bool:
        return bool(expected and given) and hmac.compare_digest(
            str(expected).encode(), str(given).encode()
        )

    @staticmethod
    def new_signin_token() -> str:
        return secrets.token_urlsafe(24)


def cookie_name(transport: Transport, base: str) -> str:
    # `__Host-`: the browser keeps it only if it is Secure, for this host alone, at path /.
    return f"__Host-{base}" if transport.https else base


def same_origin(request: Request, transport: Transport) -> bool:
    """A POST's Origin, when the browser sends one, must be the page's own."""
    origin = request.headers.get("origin")
    if request.headers.get("sec-fetch-site") == "cross-site":
        return False
    return origin is None or origin == transport.origin
