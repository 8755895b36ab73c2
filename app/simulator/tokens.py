"""Access tokens: real HS256 JWTs, so clients can decode `exp` as they must with Salesforce's."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

import jwt

from app.simulator.errors import SimError


@dataclass
class TokenRecord:
    jti: str
    subject: str
    client_id: str
    issued_at: float
    expires_at: float
    revoked: bool = False
    force_expired: bool = False

    def expired(self, now: float) -> bool:
        return self.force_expired or now >= self.expires_at


class TokenRegistry:
    """Every token the org has issued; a token not in here was never valid."""

    def __init__(self, secret: str, org_id: str) -> None:
        self._secret = secret
        self._org_id = org_id
        self._tokens: dict[str, TokenRecord] = {}

    def issue(self, subject: str, ttl: float, *, expires_at: float | None = None) -> str:
        now = time.time()
        record = TokenRecord(
            jti=str(uuid.uuid4()),
            subject=subject,
            client_id=str(uuid.uuid4()),
            issued_at=now,
            expires_at=expires_at if expires_at is not None else now + ttl,
        )
        self._tokens[record.jti] = record
        claims = {
            "sub": subject,
            "iat": int(now),
            "exp": int(record.expires_at),
            "jti": record.jti,
            "orgId": self._org_id,
            "clientId": record.client_id,
            "iss": "simulated-scrt",
        }
        return jwt.encode(claims, self._secret, algorithm="HS256")

    def verify(self, authorization: str | None) -> TokenRecord:
        """Resolve an `Authorization` header to its token, or raise the 401 Salesforce would."""
        if not authorization or not authorization.lower().startswith("bearer "):
            raise SimError(401, "Missing or malformed Authorization header.", "UNAUTHORIZED")
        token = authorization[7:].strip()
        try:
            # Expiry is checked against the registry below, so a forced expiry also applies.
            claims = jwt.decode(
                token, self._secret, algorithms=["HS256"], options={"verify_exp": False}
            )
        except jwt.PyJWTError:
            raise SimError(401, "Invalid token", "UNAUTHORIZED") from None
        record = self._tokens.get(str(claims.get("jti")))
        if record is None:
            raise SimError(401, "Invalid token", "UNAUTHORIZED")
        if record.revoked:
            raise SimError(401, "Token has been revoked", "UNAUTHORIZED")
        if record.expired(time.time()):
            raise SimError(401, "Jwt is expired", "UNAUTHORIZED")
        return record

    def revoke(self, jti: str) -> None:
        self._tokens[jti].revoked = True

    def expire_all(self) -> int:
        live = [t for t in self._tokens.values() if not t.force_expired]
        for record in live:
            record.force_expired = True
        return len(live)

    def clear(self) -> None:
        self._tokens.clear()
