"""One HTTP attempt against SCRT, with httpx exceptions and non-2xx answers turned into ScrtErrors.

The bearer token is put on the request, never on the shared client: one `httpx.AsyncClient` serves
every user of the process, and a default header would leak one user's token to another.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import httpx

from app.scrt.errors import error_from_response, transport_error

Params = Mapping[str, str | int]


def bearer_headers(token: str | None) -> dict[str, str]:
    headers = {"Accept": "application/json"}
    if token is not None:
        if not token.strip():
            raise ValueError("access token must not be empty")
        headers["Authorization"] = f"Bearer {token}"
    return headers


def fill_route(route: str, **path: str) -> str:
    """`/conversation/{conversationId}` → `/conversation/<id>`, each value percent-encoded."""
    return route.format(**{name: quote(value, safe="") for name, value in path.items()})


async def send(
    http: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    route: str,
    token: str | None,
    params: Params | None = None,
    json_body: Any = None,
    files: Mapping[str, tuple[str | None, bytes, str]] | None = None,
) -> httpx.Response:
    """Send once; return the 2xx response (body read) or raise the matching ScrtError."""
    try:
        response = await http.request(
            method,
            url,
            headers=bearer_headers(token),
            params=dict(params) if params else None,
            json=json_body,
            files=dict(files) if files else None,
        )
    except httpx.TransportError as exc:
        raise transport_error(exc, f"{method} {route}") from exc
    if not response.is_success:
        raise error_from_response(response, method=method, route=route)
    return response


def json_or_none(response: httpx.Response) -> Any:
    """The JSON body, or None when it is empty or not JSON (2xx bodies are often empty)."""
    if not response.content.strip():
        return None
    try:
        return json.loads(response.content)
    except ValueError:
        return None
