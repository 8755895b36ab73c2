"""The org's User Verification settings: which key set signs customer identity tokens.

With a key set URL (`--identity-jwks-url`, or `PUT /control/user-verification`), a verified token
is minted only for an identity token signed by one of its keys (RS256) and not expired. A bad one
is refused with 401, unless `fallbackToGuest` is on: then it gets an anonymous token with 200, as an
integrator reports a real org doing. The reference does not give the refusal's exact status or
text. Without a key set URL any well-formed identity token is trusted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import jwt

from app.simulator.errors import SimError, bad_request


class IdentityRefused(SimError):
    def __init__(self, message: str) -> None:
        super().__init__(401, message, "UNAUTHORIZED")


@dataclass
class UserVerification:
    jwks_url: str | None = None
    fallback_to_guest: bool = False

    def as_json(self) -> dict[str, Any]:
        return {"jwksUrl": self.jwks_url, "fallbackToGuest": self.fallback_to_guest}

    def update(self, body: object) -> None:
        if not isinstance(body, dict):
            raise bad_request("Give a JSON object with jwksUrl and fallbackToGuest.")
        url = body.get("jwksUrl")
        fallback = body.get("fallbackToGuest", False)
        if url is not None and not (
            isinstance(url, str) and url.startswith(("http://", "https://"))
        ):
            raise bad_request('Field "jwksUrl" must be an http(s) URL or null.')
        if not isinstance(fallback, bool):
            raise bad_request('Field "fallbackToGuest" must be true or false.')
        self.jwks_url, self.fallback_to_guest = url, fallback

    async def subject_of(self, identity_token: str) -> str:
        """The identity token's `sub` once verified (IdentityRefused when it is not)."""
        try:
            header = jwt.get_unverified_header(identity_token)
            claims = jwt.decode(identity_token, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise bad_request("The customerIdentityToken is not a valid JWT.") from None
        if self.jwks_url is not None:
            claims = await self._verified_claims(identity_token, header)
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub:
            raise bad_request("The customerIdentityToken has no sub claim.")
        return sub

    async def _verified_claims(self, token: str, header: dict[str, Any]) -> dict[str, Any]:
        assert self.jwks_url is not None
        try:
            async with httpx.AsyncClient(timeout=5) as http:
                response = await http.get(self.jwks_url)
            keys = jwt.PyJWKSet.from_dict(response.json())
        except (httpx.HTTPError, ValueError, jwt.PyJWTError):
            raise IdentityRefused("The key set for user verification could not be read.") from None
        key = next((k for k in keys.keys if k.key_id == header.get("kid")), None)
        if key is None:
            raise IdentityRefused("The customerIdentityToken is signed with an unknown key.")
        try:
            return dict(
                jwt.decode(
                    token,
                    key.key,
                    algorithms=["RS256"],
                    options={"require": ["exp", "sub"], "verify_aud": False},
                )
            )
        except jwt.ExpiredSignatureError:
            raise IdentityRefused("The customerIdentityToken has expired.") from None
        except jwt.PyJWTError:
            raise IdentityRefused("The customerIdentityToken could not be verified.") from None
