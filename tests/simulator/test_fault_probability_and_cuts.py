"""Probabilistic faults, their seed, start-up faults and periodic stream cuts (docs/simulator.md
"Control API" and "Faults from the start")."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import httpx
import pytest

from app.simulator import SimulatorOptions, build_simulator
from app.simulator.faults import FaultBook, PeriodicCuts
from app.simulator.options import FaultSpec
from tests.servers import serve
from tests.simulator.conftest import (
    API,
    Guest,
    Sim,
    SimFactory,
    assert_error,
)

LIST_PATH = f"{API}/conversation/list"
SEND_TEMPLATE = f"{API}/conversation/{{conversationId}}/message"


def expected_hits(seed: int, probability: float, n: int) -> list[bool]:
    """The documented draw: one `random.Random(seed).random()` per matching request."""
    rng = random.Random(seed)
    return [rng.random() < probability for _ in range(n)]


async def list_statuses(sim: Sim, guest: Guest, n: int) -> list[int]:
    statuses = []
    for _ in range(n):
        response = await sim.client.get(LIST_PATH, headers=guest.headers)
        statuses.append(response.status_code)
    return statuses


async def faults_listing(sim: Sim) -> dict[str, Any]:
    listing: dict[str, Any] = await sim.control_ok("GET", "/faults")
    return listing


# -- probability and seed ------------------------------------------------------------------------


async def test_probabilistic_fault_hits_exactly_the_requests_the_seeded_draws_pick(
    sim: Sim,
) -> None:
    guest = await sim.guest()
    created = await sim.control_ok(
        "POST",
        "/faults",
        {"path": LIST_PATH, "status": 503, "probability": 0.3, "count": None, "seed": 7},
    )
    assert created["fault"]["probability"] == 0.3
    assert created["fault"]["remaining"] is None
    assert created["seed"] == 7

    statuses = await list_statuses(sim, guest, 40)

    hits = expected_hits(7, 0.3, 40)
    assert 0 < sum(hits) < 40  # the seed picks some requests, not all
    assert statuses == [503 if hit else 200 for hit in hits]
    assert len((await faults_listing(sim))["faults"]) == 1  # no count: still armed


async def test_the_same_seed_replays_the_same_hits_and_another_seed_does_not(sim: Sim) -> None:
    guest = await sim.guest()
    await sim.control_ok(
        "POST", "/faults", {"path": LIST_PATH, "status": 500, "probability": 0.5, "count": None}
    )
    runs: dict[str, list[int]] = {}
    for name, seed in (("first", 11), ("again", 11), ("other", 12)):
        assert await sim.control_ok("POST", "/faults", {"seed": seed}) == {"seed": seed}
        runs[name] = await list_statuses(sim, guest, 30)
    assert runs["first"] == runs["again"]
    assert runs["first"] != runs["other"]
    assert (await faults_listing(sim))["seed"] == 12


async def test_a_missed_request_does_not_use_up_the_count(sim: Sim) -> None:
    guest = await sim.guest()
    await sim.control_ok(
        "POST",
        "/faults",
        {"path": LIST_PATH, "status": 503, "probability": 0.25, "count": 3, "seed": 3},
    )
    hits = expected_hits(3, 0.25, 200)
    needed = [i for i, hit in enumerate(hits) if hit][2] + 1  # requests up to the third hit
    assert needed > 3

    statuses = await list_statuses(sim, guest, needed + 10)

    assert statuses[:needed] == [503 if hit else 200 for hit in hits[:needed]]
    assert statuses[needed:] == [200] * 10  # three hits used the fault up
    assert (await faults_listing(sim))["faults"] == []


async def test_probability_one_draws_nothing_so_it_leaves_the_sequence_alone(sim: Sim) -> None:
    guest = await sim.guest()
    cid = await sim.create(guest)
    await sim.control_ok(
        "POST",
        "/faults",
        {"path": LIST_PATH, "status": 503, "probability": 0.5, "count": None, "seed": 5},
    )
    # A certain fault on another route, hit in between, must not shift the draws.
    await sim.control_ok("POST", "/faults", {"path": SEND_TEMPLATE, "status": 500, "count": None})
    statuses = []
    for i in range(20):
        statuses += await list_statuses(sim, guest, 1)
        assert (await sim.send(guest, cid, f"message {i}")).status_code == 500
    assert statuses == [503 if hit else 200 for hit in expected_hits(5, 0.5, 20)]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"path": LIST_PATH, "status": 503, "probability": 0}, "probability"),
        ({"path": LIST_PATH, "status": 503, "probability": 1.5}, "probability"),
        ({"path": LIST_PATH, "status": 503, "probability": "half"}, "probability"),
        ({"path": LIST_PATH, "status": 503, "probability": True}, "probability"),
        ({"path": LIST_PATH, "status": 503, "count": -1}, "count"),
        ({"path": LIST_PATH, "status": 503, "count": 1.5}, "count"),
        ({"path": LIST_PATH, "status": 503, "seed": "7"}, "seed"),
        ({"seed": 1.5}, "seed"),
        ({"seed": None}, "seed"),
        ({"path": LIST_PATH, "delay": 61}, "delay"),
        ({"cutStreamsEvery": 0}, "cutStreamsEvery"),
        ({"cutStreamsEvery": "10"}, "cutStreamsEvery"),
        ({"cutStreamsEvery": 5, "seed": 1}, "cutStreamsEvery"),
    ],
)
async def test_bad_fault_fields_are_400_naming_the_field(
    sim: Sim, body: dict[str, Any], field: str
) -> None:
    error = assert_error(await sim.control("POST", "/faults", body), 400, "BAD_REQUEST")
    assert f'"{field}"' in error["message"]
    assert (await faults_listing(sim))["faults"] == []


# -- start-up faults, reset, delete ---------------------------------------------------------------


async def test_startup_faults_are_armed_and_reset_rearms_them_and_the_seed(
    make_sim: SimFactory,
) -> None:
    sim = await make_sim(
        faults=(FaultSpec(LIST_PATH, method="get", status=503, probability=0.5),),
        fault_seed=21,
        cut_streams_every=30.0,
    )
    guest = await sim.guest()
    listing = await faults_listing(sim)
    assert [(f["path"], f["method"], f["status"], f["probability"], f["remaining"])
            for f in listing["faults"]] == [(LIST_PATH, "GET", 503, 0.5, None)]  # fmt: skip
    assert (listing["seed"], listing["cutStreamsEvery"]) == (21, 30.0)
    first = await list_statuses(sim, guest, 20)
    assert first == [503 if hit else 200 for hit in expected_hits(21, 0.5, 20)]

    await sim.control_ok("POST", "/faults", {"seed": 99})
    await sim.control_ok("POST", "/faults", {"cutStreamsEvery": 2})
    await sim.control_ok("POST", "/faults", {"path": "/x", "status": 500})
    assert (await sim.control("POST", "/reset")).status_code == 204

    listing = await faults_listing(sim)
    assert [f["path"] for f in listing["faults"]] == [LIST_PATH]
    assert (listing["seed"], listing["cutStreamsEvery"]) == (21, 30.0)
    guest = await sim.guest()
    assert await list_statuses(sim, guest, 20) == first


async def test_delete_disarms_every_fault_and_the_periodic_cuts(make_sim: SimFactory) -> None:
    sim = await make_sim(
        faults=(FaultSpec(LIST_PATH, status=503),), cut_streams_every=30.0, fault_seed=4
    )
    guest = await sim.guest()  # the first request starts the cuts when no lifespan runs
    book: FaultBook = sim.app.state.faults
    assert book.cuts.running
    assert (await sim.control("DELETE", "/faults")).status_code == 204
    listing = await faults_listing(sim)
    assert (listing["faults"], listing["cutStreamsEvery"], listing["seed"]) == ([], None, 4)
    assert not book.cuts.running
    assert await list_statuses(sim, guest, 3) == [200, 200, 200]


@pytest.mark.looptime
async def test_startup_delay_fault_holds_a_send_and_the_message_still_lands(
    make_sim: SimFactory,
) -> None:
    sim = await make_sim(faults=(FaultSpec(SEND_TEMPLATE, method="POST", delay=9.0),))
    guest = await sim.guest()
    cid = await sim.create(guest)
    loop = asyncio.get_running_loop()
    started = loop.time()
    response = await sim.send(guest, cid, "slow but delivered")
    assert response.status_code == 202, response.text
    assert loop.time() - started == pytest.approx(9.0, abs=0.01)
    conversation = await sim.control_conversation(cid)
    texts = [
        e["entryPayload"]["abstractMessage"]["staticContent"]["text"]
        for e in conversation["entries"]
        if e["entryType"] == "Message" and e["sender"]["role"] == "EndUser"
    ]
    assert texts == ["slow but delivered"]


def test_options_refuse_bad_fault_values_naming_them() -> None:
    with pytest.raises(ValueError, match='"probability"'):
        FaultSpec(LIST_PATH, status=503, probability=0.0)
    with pytest.raises(ValueError, match=r'"status" .* or "delay"'):
        FaultSpec(LIST_PATH)
    with pytest.raises(ValueError, match='"path"'):
        FaultSpec("iamessage/*", status=503)
    with pytest.raises(ValueError, match="cut_streams_every"):
        SimulatorOptions(cut_streams_every=0.0)
    with pytest.raises(ValueError, match="cut_streams_every"):
        SimulatorOptions(cut_streams_every=float("nan"))


# -- periodic cuts -------------------------------------------------------------------------------


@pytest.mark.looptime
async def test_periodic_cuts_come_every_period_on_the_loop_clock() -> None:
    loop = asyncio.get_running_loop()
    times: list[float] = []
    reached = {3: asyncio.Event(), 4: asyncio.Event()}

    def cut() -> int:
        times.append(loop.time())
        if len(times) in reached:
            reached[len(times)].set()
        return 2

    cuts = PeriodicCuts(cut, 10.0)
    started = loop.time()
    cuts.ensure_started()
    try:
        async with asyncio.timeout(100):
            await reached[3].wait()
    finally:
        await cuts.stop()
    assert [round(t - started, 3) for t in times] == [10.0, 20.0, 30.0]
    assert (cuts.rounds, cuts.streams_cut, cuts.running) == (3, 6, False)

    # A new period restarts the task; no period stops it for good.
    await cuts.set_period(4.0)
    restarted = loop.time()
    async with asyncio.timeout(100):
        await reached[4].wait()
    assert round(times[3] - restarted, 3) == 4.0
    await cuts.set_period(None)
    assert not cuts.running


async def test_cut_streams_every_cuts_open_streams_again_and_again(make_sim: SimFactory) -> None:
    sim = await make_sim(live=True, cut_streams_every=0.2)
    guest = await sim.guest()
    for _ in range(3):
        async with sim.stream(guest) as stream:
            await stream.wait_closed()
    periodic = (await sim.stats())["periodicCuts"]
    assert periodic["rounds"] >= 3
    assert periodic["streamsCut"] >= 3


async def test_cut_period_set_through_the_control_api_cuts_then_stops(live: Sim) -> None:
    guest = await live.guest()
    book: FaultBook = live.app.state.faults
    assert not book.cuts.running
    assert await live.control_ok("POST", "/faults", {"cutStreamsEvery": 0.2}) == {
        "cutStreamsEvery": 0.2
    }
    assert book.cuts.running
    async with live.stream(guest) as stream:
        await stream.wait_closed()
    assert book.cuts.rounds >= 1
    assert await live.control_ok("POST", "/faults", {"cutStreamsEvery": None}) == {
        "cutStreamsEvery": None
    }
    assert not book.cuts.running
    assert (await faults_listing(live))["cutStreamsEvery"] is None


async def test_the_lifespan_starts_the_periodic_cuts_and_shutdown_stops_them() -> None:
    app = build_simulator(SimulatorOptions(cut_streams_every=60.0, rate_limits=False))
    book: FaultBook = app.state.faults
    assert not book.cuts.running
    async with serve(app) as base_url, httpx.AsyncClient(base_url=base_url) as http:
        # Control requests do not start the cuts: the lifespan did, before serving.
        assert (await http.get("/control/faults")).json()["cutStreamsEvery"] == 60.0
        assert book.cuts.running
    assert not book.cuts.running
