"""An async client of the Salesforce REST API for the CRM toolset: describe, and records of any
object (standard or custom) by id.

Plain httpx rather than a library: `simple-salesforce` is synchronous (a thread per call in an
async server), `aiosalesforce` is young and small; what the toolset needs is a handful of JSON
calls, one error tree (`app.salesforce.errors`), an access token renewed once when Salesforce
says it expired, and retries when Salesforce is down or over its limit.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from app.salesforce.errors import (
    NotFound,
    SalesforceError,
    SessionExpired,
    Unavailable,
    from_rest,
)
from app.salesforce.oauth import Access, TokenSource

API_VERSION = "62.0"
RETRY_DELAYS = (0.5, 2.0)
"""Pauses before the second and third attempt when Salesforce is unavailable or over its limit."""
NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,79}$")
RECORD_ID = re.compile(r"^[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?$")


def check_name(what: str, value: str) -> str:
    """An object or field API name, refused before any call when it cannot be one."""
    if not NAME.fullmatch(value):
        raise SalesforceError(
            f"{what} must be an API name (letters, digits and _, starting with a letter), "
            f"got {value!r}."
        )
    return value


def check_id(value: str) -> str:
    if not RECORD_ID.fullmatch(value):
        raise SalesforceError(
            f"recordId must be a 15- or 18-character Salesforce id, got {value!r}."
        )
    return value


NEXT_RECORDS = re.compile(r"/services/data/v\d{2,3}\.0/query/([A-Za-z0-9]{1,40}-\d{1,9})")


@dataclass(frozen=True)
class QueryPage:
    records: list[dict[str, Any]]
    total: int
    next: str | None
    """Salesforce's nextRecordsUrl: the next page, or None on the last."""

    @classmethod
    def of(cls, body: Any) -> QueryPage:
        body = body if isinstance(body, dict) else {}
        records = [r for r in body.get("records") or [] if isinstance(r, dict)]
        total = body.get("totalSize")
        next_url = body.get("nextRecordsUrl")
        return cls(
            records=records,
            total=total if isinstance(total, int) else len(records),
            next=next_url if isinstance(next_url, str) and not body.get("done", True) else None,
        )


class SalesforceClient:
    def __init__(
        self,
        http: httpx.AsyncClient,
        tokens: TokenSource,
        *,
        api_version: str = API_VERSION,
        retry_delays: Sequence[float] = RETRY_DELAYS,
    ) -> None:
        self._http = http
        self._tokens = tokens
        self._version = api_version
        self._delays = tuple(retry_delays)

    async def objects(self) -> list[dict[str, Any]]:
        """Every object of the org, briefly (name, label, custom, ...)."""
        body = await self._request("GET", "/sobjects")
        items = body.get("sobjects") if isinstance(body, dict) else None
        return [o for o in items or [] if isinstance(o, dict)]

    async def describe(self, sobject: str) -> dict[str, Any]:
        path = f"/sobjects/{check_name('object', sobject)}/describe"
        body = await self._request("GET", path)
        return body if isinstance(body, dict) else {}

    async def get(
        self, sobject: str, record_id: str, fields: Sequence[str] | None = None
    ) -> dict[str, Any]:
        params = {"fields": ",".join(check_name("field", f) for f in fields)} if fields else None
        path = f"/sobjects/{check_name('object', sobject)}/{check_id(record_id)}"
        body = await self._request("GET", path, params=params)
        return body if isinstance(body, dict) else {}

    async def create(self, sobject: str, values: dict[str, Any]) -> str:
        body = await self._request(
            "POST", f"/sobjects/{check_name('object', sobject)}", json=values
        )
        if not isinstance(body, dict) or not body.get("id"):
            raise SalesforceError("Salesforce did not return the new record's id.")
        return str(body["id"])

    async def update(self, sobject: str, record_id: str, values: dict[str, Any]) -> None:
        path = f"/sobjects/{check_name('object', sobject)}/{check_id(record_id)}"
        await self._request("PATCH", path, json=values)

    async def delete(self, sobject: str, record_id: str) -> None:
        path = f"/sobjects/{check_name('object', sobject)}/{check_id(record_id)}"
        await self._request("DELETE", path)

    async def query(self, soql: str) -> QueryPage:
        """The first page of a SOQL query's records (`next` leads on)."""
        return QueryPage.of(await self._request("GET", "/query", params={"q": soql}))

    async def search(self, sosl: str) -> list[dict[str, Any]]:
        """The records a SOSL search finds."""
        body = await self._request("GET", "/search", params={"q": sosl})
        items = body.get("searchRecords") if isinstance(body, dict) else None
        return [r for r in items or [] if isinstance(r, dict)]

    async def query_more(self, next_records_url: str) -> QueryPage:
        """The page `next_records_url` (a QueryPage's `next`) names."""
        match = NEXT_RECORDS.fullmatch(next_records_url)
        if match is None:
            raise SalesforceError("cursor must be a value a previous page returned.")
        return QueryPage.of(await self._request("GET", "/query/" + match.group(1)))

    async def _request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        json: Any = None,
    ) -> Any:
        """One call: renewed once if the token expired, retried while Salesforce is
        unavailable. A create (POST) is retried only when it cannot have been received (no
        connection, 503, the API limit), never after a timeout: it could be made twice."""
        renewed = False
        attempt = 0
        stale: Access | None = None
        while True:
            try:
                access = await (self._tokens.renew(stale) if stale else self._tokens.access())
                return await self._once(access, method, path, params, json, retried=attempt > 0)
            except SessionExpired:
                if renewed:
                    raise
                renewed = True
                stale = access
            except Unavailable as exc:
                if attempt >= len(self._delays) or (method == "POST" and not exc.unsent):
                    raise
                await asyncio.sleep(self._delays[attempt])
                attempt += 1

    async def _once(
        self,
        access: Access,
        method: str,
        path: str,
        params: dict[str, str] | None,
        json: Any,
        *,
        retried: bool,
    ) -> Any:
        url = f"{access.instance_url}/services/data/v{quote(self._version)}{path}"
        headers = {"Authorization": f"Bearer {access.token.get_secret_value()}"}
        try:
            response = await self._http.request(
                method, url, params=params, json=json, headers=headers
            )
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise Unavailable(
                f"Salesforce could not be reached ({type(exc).__name__}).", unsent=True
            ) from None
        except httpx.HTTPError as exc:
            raise Unavailable(
                f"Salesforce did not answer ({type(exc).__name__}); the change may or may not "
                "have been made: check before repeating it."
                if method != "GET"
                else f"Salesforce did not answer ({type(exc).__name__})."
            ) from None
        status = response.status_code
        if status == 204:
            return None
        try:
            body = response.json()
        except ValueError:
            body = None
        if status < 300 and body is None:
            raise SalesforceError(
                f"Salesforce answered HTTP {status} without JSON; check SALESFORCE_INSTANCE_URL."
            )
        if status >= 300:
            error = from_rest(status, body)
            if method == "DELETE" and retried and isinstance(error, NotFound):
                return None  # an earlier attempt deleted it; its answer was lost
            raise error
        return body
