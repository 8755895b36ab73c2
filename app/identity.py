"""Verified customers: a signed-in user reaches Salesforce as who they are, not as a guest.

For a user signed in with the operator's identity provider (`app.signin`), the server signs a
customer identity token (RS256, `sub` = the user's subject at the identity provider, and the
claims named in `IDENTITY_CLAIMS` copied from the user's access token) with its own key
(`IDENTITY_SIGNING_KEY`), and mints a verified messaging token with it. The public key is at
`/.well-known/jwks.json`, for the org's User Verification settings (a key set that points there).
Salesforce is reported to answer a bad identity token with an anonymous token instead of an
error, so the minted token's subject is checked: a token that is not verified is revoked and
reported, never used as if it were.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from app.signin import SignedInUser

VERIFIED_SUBJECT_PREFIX = "v2/iamessage/AUTH/"
"""A verified messaging token's subject: `v2/iamessage/AUTH/<key set>/uid:<sub>`."""
IDENTITY_TOKEN_SECONDS = 300
"""An identity token is used once, at once: it lives five minutes."""
HOW_TO_MAKE_A_SIGNING_KEY = (
    "make one with `openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048` and set the "
    "PEM text (newlines may be written as \\n)"
)


class IdentityKeyError(ValueError):
    pass


def load_signing_key(pem: str) -> rsa.RSAPrivateKey:
    text = pem.strip().replace("\\n", "\n")
    try:
        key = serialization.load_pem_private_key(text.encode(), password=None)
    except (ValueError, TypeError) as exc:
        raise IdentityKeyError(
            f"must be an unencrypted RSA private key in PEM form; {HOW_TO_MAKE_A_SIGNING_KEY}"
        ) from exc
    if not isinstance(key, rsa.RSAPrivateKey) or key.key_size < 2048:
        raise IdentityKeyError(
            f"must be an RSA key of at least 2048 bits; {HOW_TO_MAKE_A_SIGNING_KEY}"
        )
    return key


def _thumbprint(jwk: dict[str, Any]) -> str:
    # RFC 7638: the SHA-256 of the required members in lexicographic order, base64url.
    canonical = json.dumps({k: jwk[k] for k in ("e", "kty", "n")}, separators=(",", ":"))
    digest = hashlib.sha256(canonical.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


class CustomerIdentity:
    def __init__(
        self,
        key: rsa.RSAPrivateKey,
        issuer: str,
        claims: tuple[str, ...] = (),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._key = key
        self._issuer = issuer
        self._claims = claims
        self._clock = clock
        public = RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
        self.kid = _thumbprint(public)
        self._jwk = {**public, "kid": self.kid, "use": "sig", "alg": "RS256"}

    def jwks(self) -> dict[str, Any]:
        """The public key set for the org's User Verification settings."""
        return {"keys": [self._jwk]}

    def token_for(self, user: SignedInUser) -> str:
        now = int(self._clock())
        copied = {name: user.claims[name] for name in self._claims if name in user.claims}
        body = {
            **copied,
            "iss": self._issuer,
            "sub": user.subject,
            "iat": now,
            "exp": now + IDENTITY_TOKEN_SECONDS,
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode(body, self._key, algorithm="RS256", headers={"kid": self.kid})


def is_verified(subject: str | None) -> bool:
    return bool(subject and subject.startswith(VERIFIED_SUBJECT_PREFIX))
