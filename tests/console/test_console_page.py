"""`GET /console` as plain HTTP: one self-contained page, locked down, reachable when mounted."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from app.simulator import build_simulator
from tests.console.conftest import console_options


@pytest.fixture
async def mounted() -> AsyncIterator[httpx.AsyncClient]:
    app = Starlette(routes=[Mount("/sim", app=build_simulator(console_options()))])
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://demo") as client:
        yield client


async def test_console_page_is_self_contained_and_runs_only_its_own_script(
    mounted: httpx.AsyncClient,
) -> None:
    response = await mounted.get("/sim/console")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["cache-control"] == "no-store"
    html = response.text

    csp = response.headers["content-security-policy"]
    [nonce] = re.findall(r"script-src 'nonce-([^']+)'", csp)
    assert f"style-src 'nonce-{nonce}'" in csp
    assert "default-src 'none'" in csp and "connect-src 'self'" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert re.findall(r"<script\b[^>]*>", html) == [f'<script nonce="{nonce}">']
    assert re.findall(r"<style\b[^>]*>", html) == [f'<style nonce="{nonce}">']
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html), "external asset"
    assert 'value="Jane Agent"' in html
    # The control API is addressed relative to the page, never from the host's root.
    assert '"/control' not in html and "'/control" not in html
    assert (await mounted.get("/sim/console")).headers["content-security-policy"] != csp


async def test_console_page_escapes_the_org_options_it_shows() -> None:
    app = build_simulator(console_options(es_developer_name='Demo<script>"x"</script>'))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://sim") as client:
        html = (await client.get("/console")).text
    assert "Demo&lt;script&gt;&#34;x&#34;&lt;/script&gt;" in html
    assert "Demo<script>" not in html


async def test_console_with_a_trailing_slash_redirects_to_the_page(
    mounted: httpx.AsyncClient,
) -> None:
    response = await mounted.get("/sim/console/")
    assert response.status_code in (301, 307, 308)
    assert response.headers["location"] == "http://demo/sim/console"
