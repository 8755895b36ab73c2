"""Shared fixtures: a respx-mocked SCRT host, one shared httpx client, fast retry policies."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import jwt
import pytest
import respx

from app.scrt import RetryPolicy, ScrtClient, ScrtConfig

BASE = "https://acme.my.salesforce-scrt.com"
ORG_18 = "00D5g000004XyZaEAK"
ORG_15 = ORG_18[:15]
DEPLOYMENT = "Acme_Custom_Client"
FAST_RETRY = RetryPolicy(max_attempts=3, base_delay=0.001, max_delay=0.002, total_timeout=2.0)
NO_RETRY = RetryPolicy(max_attempts=1)


def make_jwt(exp: float | None = None, **claims: Any) -> str:
    payload = dict(claims)
    if exp is not None:
        payload["exp"] = int(exp)
    return jwt.encode(payload, "test-key-that-is-long-enough-for-hs256", algorithm="HS256")


def future_jwt(sub: str = "user") -> str:
    return make_jwt(time.time() + 3600, sub=sub)


def body_of(request: httpx.Request) -> Any:
    return json.loads(request.content)


@pytest.fixture
def config() -> ScrtConfig:
    # Scheme-less with a trailing slash, as operators paste it.
    return ScrtConfig(
        scrt_url="acme.my.salesforce-scrt.com/", org_id=ORG_18, es_developer_name=DEPLOYMENT
    )


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


@pytest.fixture
def scrt(http: httpx.AsyncClient, config: ScrtConfig) -> ScrtClient:
    return ScrtClient(http, config, retry=FAST_RETRY)


@pytest.fixture
def router() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=BASE, assert_all_called=False) as mock:
        yield mock
