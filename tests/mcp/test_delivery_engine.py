"""The delivery engine on its own, against the simulator."""

from __future__ import annotations

import time

import httpx

from app.delivery import DeliveryEngine, DeliveryOptions
from app.scrt import ScrtClient, ScrtConfig
from app.simulator import SimulatorOptions, build_simulator
from app.simulator.options import DEFAULT_DEPLOYMENT, DEFAULT_ORG_ID
from tests.servers import serve


async def test_feeds_of_expired_sessions_are_closed_with_their_streams() -> None:
    sim = build_simulator(SimulatorOptions(rate_limits=False))
    async with serve(sim) as base, httpx.AsyncClient() as http:
        client = ScrtClient(
            http,
            ScrtConfig(scrt_url=base, org_id=DEFAULT_ORG_ID, es_developer_name=DEFAULT_DEPLOYMENT),
        )
        engine = DeliveryEngine(client, DeliveryOptions(poll_interval=0.1))
        old, new = await client.guest_token(), await client.guest_token()
        await engine.feed("old", old.bearer, old.last_event_id, expires_at=time.time() - 1)
        assert engine.feed_count == 1
        await engine.feed("new", new.bearer, new.last_event_id, expires_at=time.time() + 60)
        assert engine.feed_count == 1  # the expired one was closed on the way
        await engine.aclose()
        assert engine.feed_count == 0
