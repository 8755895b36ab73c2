"""Access to a Salesforce org for the CRM toolset: OAuth tokens from a refresh token or from the
client-credentials flow, fetched when first needed and again when Salesforce says the one held
expired. Tokens are never logged."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from pydantic import SecretStr

from app.salesforce.errors import SalesforceError, Unavailable, from_oauth


@dataclass(frozen=True)
class OAuthSettings:
    login_url: str
    """Where the token endpoint lives: the org's My Domain (SALESFORCE_INSTANCE_URL)."""
    client_id: str
    client_secret: SecretStr
    refresh_token: SecretStr | None = None
    """With one: the refresh-token flow; without: client credentials (server to server)."""


@dataclass(frozen=True)
class Access:
    token: SecretStr
    instance_url: str


class TokenSource:
    """One access token at a time, shared by concurrent calls; `renew` after an expiry."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        settings: OAuthSettings,
        *,
        on_rotated: Callable[[SecretStr], None] | None = None,
    ) -> None:
        """`on_rotated(token)`: Salesforce answered a refresh with a new refresh token (refresh
        token rotation): the old one no longer works, so the new one is used from now on and
        handed over to be kept."""
        self._http = http
        self._settings = settings
        self._refresh = settings.refresh_token
        self._on_rotated = on_rotated
        self._access: Access | None = None
        self._lock = asyncio.Lock()

    async def access(self) -> Access:
        async with self._lock:
            if self._access is None:
                self._access = await self._fetch()
            return self._access

    async def renew(self, stale: Access) -> Access:
        """A new token unless another call already replaced `stale`."""
        async with self._lock:
            if self._access is None or self._access is stale:
                self._access = await self._fetch()
            return self._access

    async def _fetch(self) -> Access:
        s = self._settings
        form = {
            "client_id": s.client_id,
            "client_secret": s.client_secret.get_secret_value(),
        }
        if self._refresh is not None:
            form["grant_type"] = "refresh_token"
            form["refresh_token"] = self._refresh.get_secret_value()
        else:
            form["grant_type"] = "client_credentials"
        body = await token_request(self._http, s.login_url, form)
        if not isinstance(body, dict) or not body.get("access_token"):
            raise SalesforceError("Salesforce's login answer had no access token.")
        rotated = body.get("refresh_token")
        if (
            self._refresh is not None
            and isinstance(rotated, str)
            and rotated
            and rotated != self._refresh.get_secret_value()
        ):
            self._refresh = SecretStr(rotated)
            if self._on_rotated is not None:
                self._on_rotated(self._refresh)
        instance = str(body.get("instance_url") or s.login_url).rstrip("/")
        return Access(SecretStr(str(body["access_token"])), instance)


async def token_request(http: httpx.AsyncClient, login_url: str, form: dict[str, str]) -> Any:
    """POST `form` to the org's token endpoint; the answer's JSON, or the error it stands for."""
    url = login_url.rstrip("/") + "/services/oauth2/token"
    try:
        response = await http.post(url, data=form)
    except httpx.HTTPError as exc:
        raise Unavailable(
            f"Salesforce's login service could not be reached ({type(exc).__name__})."
        ) from None
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.status_code != 200:
        raise from_oauth(response.status_code, body)
    return body
