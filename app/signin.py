"""Sign-in: `/mcp` as an OAuth 2.1 resource server (the MCP authorization spec).

The operator's identity provider (Auth0, Okta, Entra, Salesforce, any OIDC issuer) issues the
access tokens; ChatGPT gets them for its user (PKCE, client registration) and sends them as
`Authorization: Bearer`. This server only checks them: signature against the issuer's published
keys (JWKS, found through its metadata, cached, fetched again when a token names a key it does not
know), issuer, audience (this server's resource URL), expiry and scopes. It publishes its
protected resource metadata (RFC 9728) so clients find the issuer, and answers 401 with
`WWW-Authenticate` pointing there.

`AUTH_MODE`: `none` (no sign-in; the default), `optional` (anonymous calls chat as guests; a call
with a token must carry a valid one), `required` (every `/mcp` call needs a valid token).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx
import jwt
import structlog
from mcp.server.auth.routes import build_resource_metadata_url
from pydantic import AnyHttpUrl
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

log = structlog.get_logger(__name__)

AuthMode = Literal["none", "optional", "required"]
ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA")
"""Signatures with the issuer's public keys; never `none` or a shared secret."""
REFETCH_AFTER = 30.0
"""Unknown key ids fetch the key set again at most this often (a new key is fetched at once the
first time a token names it; a stream of made-up key ids costs one fetch per period)."""
KEYS_FOR = 3600.0
"""Known keys are fetched again after this long (the issuer rotates them)."""
LEEWAY = 30
"""Seconds of clock skew allowed on `exp` and `nbf`."""
STATE_KEY = "miaw_signed_in"


@dataclass(frozen=True)
class SignedInUser:
    issuer: str
    subject: str
    scopes: frozenset[str]
    claims: dict[str, Any]

    @property
    def principal(self) -> str:
        """Who this is, for binding a chat to its user: unique across issuers."""
        return f"signin:{self.issuer}|{self.subject}"


class TokenRefused(Exception):
    """The token cannot be accepted; the message is safe to send back (it names no claim value)."""


class IssuerUnavailable(Exception):
    """The identity provider's metadata or keys could not be fetched."""


@dataclass(frozen=True)
class SignInSettings:
    mode: AuthMode
    issuer: str
    audience: str
    required_scopes: tuple[str, ...] = ()

    @property
    def metadata_url(self) -> str:
        return str(build_resource_metadata_url(AnyHttpUrl(self.audience)))


class IssuerKeys:
    """The issuer's signing keys, found through its metadata document."""

    def __init__(
        self, issuer: str, http: httpx.AsyncClient, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._issuer = issuer
        self._http = http
        self._clock = clock
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at: float | None = None
        self._unknown_fetched_at: float | None = None

    def _metadata_urls(self) -> list[str]:
        base = self._issuer.rstrip("/")
        parts = urlsplit(base)
        # OpenID Connect Discovery appends; RFC 8414 inserts the well-known part before the path.
        return [
            f"{base}/.well-known/openid-configuration",
            f"{parts.scheme}://{parts.netloc}/.well-known/oauth-authorization-server{parts.path}",
        ]

    async def _jwks_uri(self) -> str:
        for url in self._metadata_urls():
            try:
                response = await self._http.get(url)
            except httpx.HTTPError as exc:
                raise IssuerUnavailable(f"{url}: {type(exc).__name__}") from exc
            if response.status_code == 404:
                continue
            try:
                metadata = response.json() if response.is_success else None
            except ValueError:
                metadata = None
            if not isinstance(metadata, dict):
                raise IssuerUnavailable(f"{url}: HTTP {response.status_code}, no JSON metadata")
            if metadata.get("issuer") != self._issuer:
                raise IssuerUnavailable(
                    f"{url} names issuer {metadata.get('issuer')!r}, not AUTH_ISSUER"
                )
            jwks_uri = metadata.get("jwks_uri")
            if not isinstance(jwks_uri, str):
                raise IssuerUnavailable(f"{url} has no jwks_uri")
            return jwks_uri
        raise IssuerUnavailable("the issuer publishes no OpenID or OAuth metadata")

    async def _fetch(self) -> None:
        self._fetched_at = self._clock()
        jwks_uri = await self._jwks_uri()
        try:
            response = await self._http.get(jwks_uri)
            response.raise_for_status()
            key_set = jwt.PyJWKSet.from_dict(response.json())
        except (httpx.HTTPError, ValueError, jwt.PyJWTError) as exc:
            raise IssuerUnavailable(f"{jwks_uri}: {type(exc).__name__}") from exc
        self._keys = {key.key_id: key for key in key_set.keys if key.key_id}
        log.info("signin.keys_fetched", keys=len(self._keys))

    async def key(self, kid: str) -> jwt.PyJWK | None:
        now = self._clock()
        stale = self._fetched_at is None or now - self._fetched_at >= KEYS_FOR
        unknown = kid not in self._keys and (
            self._unknown_fetched_at is None or now - self._unknown_fetched_at >= REFETCH_AFTER
        )
        if unknown and not stale:
            self._unknown_fetched_at = now
        if stale or unknown:
            try:
                await self._fetch()
            except IssuerUnavailable:
                if not self._keys:
                    raise
                log.warning("signin.keys_unavailable")  # keep using the keys already known
        return self._keys.get(kid)


class TokenChecker:
    def __init__(
        self, settings: SignInSettings, keys: IssuerKeys, clock: Callable[[], float] = time.time
    ) -> None:
        self._settings = settings
        self._keys = keys
        self._clock = clock

    async def check(self, token: str) -> SignedInUser:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise TokenRefused("The access token is not a well-formed JWT.") from exc
        alg, kid = header.get("alg"), header.get("kid")
        if alg not in ALGORITHMS:
            raise TokenRefused("The access token is not signed with a public-key algorithm.")
        if not isinstance(kid, str):
            raise TokenRefused("The access token names no signing key (kid).")
        key = await self._keys.key(kid)
        if key is None:
            raise TokenRefused("The access token is signed with a key the issuer does not publish.")
        if key.algorithm_name not in (None, alg):
            raise TokenRefused("The access token's algorithm does not match its key.")
        try:
            claims = jwt.decode(
                token,
                key=key.key,
                algorithms=[alg],
                audience=self._settings.audience,
                issuer=self._settings.issuer,
                leeway=LEEWAY,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.InvalidSignatureError as exc:
            raise TokenRefused("The access token's signature is not valid.") from exc
        except jwt.ExpiredSignatureError as exc:
            raise TokenRefused("The access token has expired.") from exc
        except jwt.InvalidAudienceError as exc:
            raise TokenRefused("The access token was not issued for this server.") from exc
        except jwt.InvalidIssuerError as exc:
            raise TokenRefused("The access token was not issued by AUTH_ISSUER.") from exc
        except jwt.MissingRequiredClaimError as exc:
            raise TokenRefused(f"The access token has no {exc.claim} claim.") from exc
        except jwt.PyJWTError as exc:
            raise TokenRefused("The access token is not valid.") from exc
        if not isinstance(claims["sub"], str) or not claims["sub"]:
            raise TokenRefused("The access token has no sub claim.")
        return SignedInUser(
            issuer=str(claims["iss"]),
            subject=str(claims["sub"]),
            scopes=frozenset(_scopes(claims)),
            claims=claims,
        )


def _scopes(claims: dict[str, Any]) -> list[str]:
    # `scope` (RFC 9068: space-separated) or `scp` (Okta, Entra: a list or a string).
    value = claims.get("scope", claims.get("scp", ""))
    if isinstance(value, list):
        return [str(item) for item in value]
    return str(value).split()


class SignInGate:
    """ASGI middleware in front of `/mcp`: checks the bearer token as `AUTH_MODE` says and puts
    the signed-in user where the tools find it (`signed_in_user`)."""

    def __init__(self, app: ASGIApp, settings: SignInSettings, checker: TokenChecker) -> None:
        self._app = app
        self._settings = settings
        self._checker = checker

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        token = _bearer(scope)
        if token is None:
            if self._settings.mode == "required":
                await self._challenge(send, None, "Sign-in is required.")
                return
            await self._app(scope, receive, send)
            return
        try:
            user = await self._checker.check(token)
        except TokenRefused as exc:
            log.info("signin.refused", reason=str(exc))
            await self._challenge(send, "invalid_token", str(exc))
            return
        except IssuerUnavailable as exc:
            log.warning("signin.issuer_unavailable", problem=str(exc))
            await _json(
                send,
                503,
                {
                    "error": "temporarily_unavailable",
                    "error_description": "The identity provider's keys could not be fetched; "
                    "try again shortly.",
                },
                [(b"retry-after", b"5")],
            )
            return
        missing = [s for s in self._settings.required_scopes if s not in user.scopes]
        if missing:
            await self._challenge(
                send, "insufficient_scope", "The access token lacks a required scope.", status=403
            )
            return
        scope.setdefault("state", {})[STATE_KEY] = user
        await self._app(scope, receive, send)

    async def _challenge(
        self, send: Send, error: str | None, description: str, status: int = 401
    ) -> None:
        parts = []
        if error is not None:
            parts += [f'error="{error}"', f'error_description="{description}"']
        if self._settings.required_scopes:
            parts.append(f'scope="{" ".join(self._settings.required_scopes)}"')
        parts.append(f'resource_metadata="{self._settings.metadata_url}"')
        body = {"error": error or "unauthorized", "error_description": description}
        await _json(
            send, status, body, [(b"www-authenticate", f"Bearer {', '.join(parts)}".encode())]
        )


def _bearer(scope: Scope) -> str | None:
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            return token.strip() if scheme.lower() == "bearer" and token.strip() else None
    return None


async def _json(
    send: Send, status: int, body: dict[str, str], headers: list[tuple[bytes, bytes]]
) -> None:
    raw = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(raw)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": raw})


def metadata_routes(settings: SignInSettings) -> list[Route]:
    """The protected resource metadata (RFC 9728), at its path for `/mcp` and at the root (for
    clients that look there). The issuer is given exactly as configured: clients compare it
    character by character with the issuer's own metadata."""
    document: dict[str, Any] = {
        "resource": settings.audience,
        "authorization_servers": [settings.issuer],
        "scopes_supported": list(settings.required_scopes) or None,
        "bearer_methods_supported": ["header"],
        "resource_name": "Salesforce live chat handoff",
    }
    body = {key: value for key, value in document.items() if value is not None}

    async def metadata(_: Request) -> JSONResponse:
        return JSONResponse(body, headers={"Cache-Control": "public, max-age=3600"})

    paths = [urlsplit(settings.metadata_url).path, "/.well-known/oauth-protected-resource"]
    return [Route(path, metadata, methods=["GET"]) for path in dict.fromkeys(paths)]


def signed_in_user(request: Request | None) -> SignedInUser | None:
    if request is None:
        return None
    user = request.scope.get("state", {}).get(STATE_KEY)
    return user if isinstance(user, SignedInUser) else None


def security_schemes(settings: SignInSettings | None) -> list[dict[str, Any]]:
    """The tools' `securitySchemes` (ChatGPT offers sign-in where a tool accepts oauth2)."""
    if settings is None or settings.mode == "none":
        return [{"type": "noauth"}]
    oauth = {"type": "oauth2", "scopes": list(settings.required_scopes)}
    return [{"type": "noauth"}, oauth] if settings.mode == "optional" else [oauth]
