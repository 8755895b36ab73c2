"""A test identity provider on loopback: OpenID metadata and a JWKS endpoint, RSA keys generated per
run, and access tokens minted the way Auth0 or Okta would (or wrongly, on purpose)."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.servers import serve


def new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@dataclass
class IdentityProvider:
    issuer: str = ""
    keys: dict[str, rsa.RSAPrivateKey] = field(default_factory=dict)
    """Published keys by key id; the newest signs."""
    jwks_fetches: int = 0

    @property
    def kid(self) -> str:
        return list(self.keys)[-1]

    def rotate(self) -> str:
        """A new signing key, published beside the old ones."""
        kid = uuid.uuid4().hex[:12]
        self.keys[kid] = new_key()
        return kid

    def token(
        self,
        audience: str,
        *,
        subject: str = "customer-1",
        scope: str = "",
        expires_in: float = 300,
        issuer: str | None = None,
        key: rsa.RSAPrivateKey | None = None,
        kid: str | None = None,
        **claims: Any,
    ) -> str:
        now = int(time.time())
        body = {
            "iss": self.issuer if issuer is None else issuer,
            "sub": subject,
            "aud": audience,
            "iat": now,
            "exp": int(now + expires_in),
            **({"scope": scope} if scope else {}),
            **claims,
        }
        kid = kid or self.kid
        return jwt.encode(body, key or self.keys[kid], algorithm="RS256", headers={"kid": kid})

    def app(self) -> Starlette:
        async def metadata(_: Request) -> JSONResponse:
            return JSONResponse(
                {
                    "issuer": self.issuer,
                    "jwks_uri": f"{self.issuer}/jwks",
                    "authorization_endpoint": f"{self.issuer}/authorize",
                    "token_endpoint": f"{self.issuer}/token",
                }
            )

        async def jwks(_: Request) -> JSONResponse:
            self.jwks_fetches += 1
            published = []
            for kid, key in self.keys.items():
                jwk = RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
                published.append({**jwk, "kid": kid, "use": "sig", "alg": "RS256"})
            return JSONResponse({"keys": published})

        return Starlette(
            routes=[
                Route("/.well-known/openid-configuration", metadata),
                Route("/jwks", jwks),
            ]
        )


@contextlib.asynccontextmanager
async def identity_provider() -> AsyncIterator[IdentityProvider]:
    idp = IdentityProvider()
    idp.rotate()
    async with serve(idp.app()) as url:
        idp.issuer = url
        yield idp
