"""Over what a request reached the operator page, and whether that will do.

HTTPS, or plain HTTP only between loopback addresses: the browser on this machine, to a server
it reached as 127.0.0.1/localhost, with nothing in between. Behind TRUSTED_PROXY_HOPS proxies
(Heroku's router) the scheme is the one the nearest proxy wrote (`X-Forwarded-Proto`) and the
client is the address it saw; without trusted proxies those headers are the client's say and
ignored. A request carrying any forwarding header came through a proxy, and a proxy on this
machine (nginx's `proxy_pass http://127.0.0.1:8000`) connects from loopback for every client
anywhere: such a request is never "local".
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from starlette.requests import Request

from app.limits import client_address

LOOPBACK_NAMES = ("localhost",)
FORWARDING_HEADERS = (
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-real-ip",
    "via",
)
"""Headers a proxy adds (RFC 7239, the de facto X-Forwarded-*, nginx's X-Real-IP, RFC 9110's
Via): their presence says a proxy stands between the browser and us."""
PORT = re.compile(r"[0-9]{1,5}")
HSTS = "max-age=31536000"
"""Strict-Transport-Security on HTTPS answers: a year, this host only (other hosts of the
domain may still serve plain HTTP)."""


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
    """Plain HTTP between loopback addresses, no proxy between: a browser on this machine."""
    origin: str
    """The page's own origin, as the browser sees it."""

    @property
    def acceptable(self) -> bool:
        return self.https or self.local


def forwarded_proto(request: Request) -> str:
    """The scheme the nearest proxy saw: the last value of every X-Forwarded-Proto line (a
    client may send its own; the trusted proxy appends to them or adds a line after them)."""
    values = [
        value.strip().lower()
        for line in request.headers.getlist("x-forwarded-proto")
        for value in line.split(",")
    ]
    return values[-1] if values else ""


def transport_of(request: Request, proxy_hops: int) -> Transport:
    scheme = request.url.scheme
    if proxy_hops > 0:
        scheme = forwarded_proto(request) or scheme
    host = request.headers.get("host", "")
    client = client_address(request, proxy_hops)
    proxied = any(name in request.headers for name in FORWARDING_HEADERS)
    local = (
        scheme == "http"
        and not proxied
        and is_loopback(request.url.hostname)
        and is_loopback(client)
    )
    return Transport(https=scheme == "https", local=local, origin=f"{scheme}://{host}")


def host_allowed(host: str, patterns: list[str]) -> bool:
    """`Settings.allowed_hosts()` patterns: exact names, or `name:*` for any port."""
    host = host.lower()
    for pattern in patterns:
        if pattern.endswith(":*"):
            if host.startswith(pattern[:-1]) and PORT.fullmatch(host[len(pattern) - 1 :]):
                return True
        elif host == pattern:
            return True
    return False


def cookie_name(transport: Transport, base: str) -> str:
    # `__Host-`: the browser keeps it only if it is Secure, for this host alone, at path /.
    return f"__Host-{base}" if transport.https else base


def same_origin(request: Request, transport: Transport) -> bool:
    """A POST's Origin, when the browser sends one, must be the page's own."""
    origin = request.headers.get("origin")
    if request.headers.get("sec-fetch-site") == "cross-site":
        return False
    return origin is None or origin == transport.origin
