"""The operator page over HTTP: the app in-process (httpx's ASGITransport, which lets a test say
which address and scheme a request came from), or the whole stack on loopback ports."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from app.main import build_app
from tests.mcp.conftest import settings_for, stack_factory

__all__ = ["stack_factory"]

PASSWORD = "correct horse battery staple"
LOCAL = "http://127.0.0.1:8000"
UNUSED_SCRT = "http://127.0.0.1:9"
"""No test here reaches Salesforce: the simulator is not needed in-process."""


def admin_app(**settings: Any) -> Starlette:
    values: dict[str, Any] = {"admin_password": PASSWORD, **settings}
    return build_app(settings_for(UNUSED_SCRT, **values))


def client_for(app: Starlette, base_url: str = LOCAL, peer: str = "127.0.0.1") -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(peer, 50_000))
    return httpx.AsyncClient(transport=transport, base_url=base_url)


@pytest.fixture
def app() -> Starlette:
    return admin_app()


@pytest.fixture
async def local(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    """A browser on the server's own machine, over plain HTTP."""
    async with client_for(app) as client:
        yield client


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, html
    return match[1]


async def sign_in(client: httpx.AsyncClient, password: str = PASSWORD) -> httpx.Response:
    """Open the sign-in form, then post it (same origin, as the browser would)."""
    form = await client.get("/admin/signin")
    assert form.status_code == 200, form.text
    return await client.post(
        "/admin/signin",
        data={"password": password, "csrf": csrf_of(form.text)},
        headers={"Origin": str(client.base_url).rstrip("/")},
    )
