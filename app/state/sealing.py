"""Authenticated encryption of state at rest (Fernet from `cryptography`).

`STATE_ENCRYPTION_KEY` is either a Fernet key (`Fernet.generate_key()`) or any secret of at least
32 characters (Heroku's `app.json` generator makes a 64-character hex one), from which a key is
derived. Several comma-separated keys rotate: the first seals, every one opens.
"""

from __future__ import annotations

import base64
import binascii
import hashlib

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

MIN_SECRET_LENGTH = 32
HOW_TO_MAKE_A_KEY = (
    'make one with: python -c "import secrets; print(secrets.token_hex(32))" '
    "(on Heroku: heroku config:set STATE_ENCRYPTION_KEY=$(openssl rand -hex 32))"
)


class SealingError(Exception):
    """Stored state could not be opened (another key, or tampered with)."""


def _fernet(secret: str) -> Fernet:
    try:
        if len(base64.urlsafe_b64decode(secret.encode())) == 32:
            return Fernet(secret.encode())
    except (binascii.Error, ValueError):
        pass
    if len(secret) < MIN_SECRET_LENGTH:
        raise ValueError(
            f"STATE_ENCRYPTION_KEY: each key must be a Fernet key or a secret of at least "
            f"{MIN_SECRET_LENGTH} characters; {HOW_TO_MAKE_A_KEY}"
        )
    digest = hashlib.sha256(b"miaw-mcp state v1\0" + secret.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


class Sealer:
    def __init__(self, keys: str) -> None:
        secrets = [k.strip() for k in keys.split(",") if k.strip()]
        if not secrets:
            raise ValueError(f"STATE_ENCRYPTION_KEY is empty; {HOW_TO_MAKE_A_KEY}")
        self._fernet = MultiFernet([_fernet(s) for s in secrets])

    def seal(self, plain: bytes) -> bytes:
        return self._fernet.encrypt(plain)

    def open(self, sealed: bytes) -> bytes:
        try:
            return self._fernet.decrypt(sealed)
        except InvalidToken as exc:
            raise SealingError(
                "stored state cannot be opened with STATE_ENCRYPTION_KEY (was the key changed "
                "without keeping the old one after a comma?)"
            ) from exc
