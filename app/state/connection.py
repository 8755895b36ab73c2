"""The Redis client from the settings.

One pool per process, bounded (`REDIS_MAX_CONNECTIONS`): callers wait for a free connection rather
than opening more. Blocking reads (the journal's dispatcher) use a connection of their own, so
however many readers wait, a process holds at most the pool plus one.

Heroku Key-Value Store serves `rediss://` with a self-signed certificate, so certificates are not
verified unless `REDIS_TLS_VERIFY=true`.
"""

from __future__ import annotations

from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

POOL_TIMEOUT = 5.0
"""Seconds a call waits for a free pooled connection before it fails."""
SOCKET_TIMEOUT = 5.0
RETRIES = 3


def connection_options(url: str, *, tls_verify: bool) -> dict[str, Any]:
    options: dict[str, Any] = {
        "socket_connect_timeout": SOCKET_TIMEOUT,
        "health_check_interval": 30,
        # A pooled connection broken by a Redis restart fails once, then reconnects: retried,
        # so the first calls after Redis is back do not fail. Commands we send are safe to
        # repeat (the journal's append skips entries it already has).
        "retry": Retry(ExponentialBackoff(cap=0.5, base=0.05), RETRIES),
        "retry_on_error": [RedisConnectionError],
    }
    if url.startswith("rediss://"):
        options["ssl_cert_reqs"] = "required" if tls_verify else "none"
        options["ssl_check_hostname"] = tls_verify
    return options


def pooled_client(url: str, *, tls_verify: bool, max_connections: int) -> Redis:
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=POOL_TIMEOUT,
        socket_timeout=SOCKET_TIMEOUT,
        **connection_options(url, tls_verify=tls_verify),
    )
    return Redis(connection_pool=pool)


BLOCKING_READ_SECONDS = 30.0
"""How long one blocking read (the journal's dispatcher) waits at most."""


def blocking_client(url: str, *, tls_verify: bool) -> Redis:
    """One connection for blocking reads. Its socket timeout outlasts the longest blocking read
    (redis-py's default, 5 s, would cut every quiet wait at 5 s); a Redis that stops answering
    altogether is still noticed, after that."""
    return Redis.from_url(
        url,
        single_connection_client=True,
        socket_timeout=BLOCKING_READ_SECONDS + SOCKET_TIMEOUT,
        **connection_options(url, tls_verify=tls_verify),
    )
