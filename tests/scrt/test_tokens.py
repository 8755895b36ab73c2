"""Access tokens: expiry read from the JWT without verification, and never shown."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import jwt

from app.scrt import AccessToken
from tests.scrt.conftest import make_jwt


def test_expiry_comes_from_the_exp_claim_even_when_already_expired() -> None:
    exp = int(time.time()) - 60
    token = AccessToken.from_response({"accessToken": make_jwt(exp)})

    assert token.expires_at == datetime.fromtimestamp(exp, tz=UTC)


def test_a_jwt_without_exp_or_a_non_jwt_has_no_expiry() -> None:
    assert AccessToken.from_response({"accessToken": make_jwt(sub="x")}).expires_at is None
    assert AccessToken.from_response({"accessToken": "opaque"}).expires_at is None
    assert (
        AccessToken.from_response({"accessToken": jwt.encode({"exp": "soon"}, "k" * 32)}).expires_at
        is None
    )


def test_the_token_never_shows_in_repr_str_or_dumps() -> None:
    secret = make_jwt(time.time() + 60)
    token = AccessToken.from_response(
        {"accessToken": secret, "lastEventId": "5", "context": {"endUser": {"subject": "s"}}}
    )

    for shown in (repr(token), str(token), token.model_dump_json(), str(token.model_dump())):
        assert secret not in shown
    assert token.bearer == secret
    assert (token.last_event_id, token.subject) == ("5", "s")
