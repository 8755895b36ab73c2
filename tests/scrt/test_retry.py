"""Retries: only where repeating is harmless, same ids on every attempt, bounded in time."""

from __future__ import annotations

import asyncio

import httpx
import pytest
import respx
from structlog.testing import capture_logs

from app.scrt import (
    RetryPolicy,
    ScrtBadRequestError,
    ScrtClient,
    ScrtConfig,
    ScrtConflictError,
    ScrtRateLimitError,
    ScrtServerError,
    ScrtTimeoutError,
)
from tests.scrt.conftest import body_of

CID = "0f8e2c1a-8d3b-4c55-b0a9-3c2f1e0d9a77"
V2 = "/iamessage/api/v2"
TOKEN = "secret-token-value"


def unavailable() -> httpx.Response:
    return httpx.Response(503, json={"message": "down", "errorCode": "UNAVAILABLE"})


async def test_send_survives_two_503s_with_one_message_id(
    scrt: ScrtClient, router: respx.MockRouter
) -> None:
    route = router.post(f"{V2}/conversation/{CID}/message").mock(
        side_effect=[unavailable(), unavailable(), httpx.Response(202)]
    )

    with capture_logs() as logs:
        sent = await scrt.send_message(TOKEN, CID, "private words")

    ids = [body_of(call.request)["message"]["id"] for call in route.calls]
    assert ids == [sent.message_id] * 3
    retries = [line for line in logs if line["event"] == "scrt.retry"]
    assert [(r["attempt"], r["status"], r["error"]) for r in retries] == [
        (1, 503, "ScrtServerError"),
        (2, 503, "ScrtServerError"),
    ]
    assert all(r["route"] == f"{V2}/conversation/{{conversationId}}/message" for r in retries)
    assert all(r["method"] == "POST" and r["delay"] >= 0 for r in retries)
    logged = repr(logs)
    assert TOKEN not in logged and "private words" not in logged and CID not in logged


async def test_persistent_503_fails_after_max_attempts(
    scrt: ScrtClient, router: respx.MockRouter
) -> None:
    route = router.get(f"{V2}/conversation/{CID}").mock(return_value=unavailable())

    with pytest.raises(ScrtServerError) as caught:
        await scrt.routing_status(TOKEN, CID)

    assert route.call_count == 3
    assert caught.value.error_code == "UNAVAILABLE"


@pytest.mark.looptime
async def test_retries_stop_when_the_next_pause_would_cross_the_total_bound(
    http: httpx.AsyncClient, config: ScrtConfig, router: respx.MockRouter
) -> None:
    # Pauses of 0.02-0.04 s (half fixed, half random) against a 0.2 s budget: 5 to 10 attempts.
    policy = RetryPolicy(max_attempts=100, base_delay=0.04, max_delay=0.04, total_timeout=0.2)
    scrt = ScrtClient(http, config, retry=policy)
    route = router.get(f"{V2}/conversation/{CID}").mock(return_value=unavailable())
    loop = asyncio.get_running_loop()  # fake time: it moves only by the client's own pauses
    started = loop.time()

    with capture_logs() as logs, pytest.raises(ScrtServerError):
        await scrt.routing_status(TOKEN, CID)

    elapsed = loop.time() - started
    pauses = [line["delay"] for line in logs if line["event"] == "scrt.retry"]
    assert route.call_count == len(pauses) + 1
    assert 5 <= route.call_count <= 10
    assert elapsed == pytest.approx(sum(pauses), abs=0.001 * len(pauses))  # logged rounded
    # It stopped inside the budget, and only because a further pause (at most 0.04 s) would
    # have crossed it, not earlier.
    assert 0.2 - 0.04 <= elapsed < 0.2


@pytest.mark.looptime
async def test_a_hung_request_is_cut_at_the_total_bound(
    http: httpx.AsyncClient, config: ScrtConfig, router: respx.MockRouter
) -> None:
    scrt = ScrtClient(http, config, retry=RetryPolicy(total_timeout=10.0))

    attempts: list[httpx.Request] = []

    async def never_answers(request: httpx.Request) -> httpx.Response:
        attempts.append(request)
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    router.get(f"{V2}/conversation/{CID}").mock(side_effect=never_answers)
    loop = asyncio.get_running_loop()  # fake time: the 10 s pass at once
    started = loop.time()

    with pytest.raises(ScrtTimeoutError):
        await scrt.routing_status(TOKEN, CID)

    assert loop.time() - started == pytest.approx(10.0)
    assert len(attempts) == 1  # the budget is spent: no retry after the cut


async def test_bad_request_is_not_retried(scrt: ScrtClient, router: respx.MockRouter) -> None:
    route = router.post(f"{V2}/conversation/{CID}/message").mock(
        return_value=httpx.Response(400, json={"message": "bad", "errorCode": "BAD_REQUEST"})
    )

    with pytest.raises(ScrtBadRequestError):
        await scrt.send_message(TOKEN, CID, "hi")

    assert route.call_count == 1


async def test_rate_limit_is_retried_for_idempotent_calls(
    scrt: ScrtClient, router: respx.MockRouter
) -> None:
    route = router.post(f"{V2}/conversation/{CID}/entry").mock(
        side_effect=[httpx.Response(429), httpx.ConnectError("reset"), httpx.Response(202)]
    )

    await scrt.send_typing(TOKEN, CID)

    typing_ids = {body_of(call.request)["id"] for call in route.calls}
    assert route.call_count == 3 and len(typing_ids) == 1


async def test_verified_token_minting_is_never_retried(
    scrt: ScrtClient, router: respx.MockRouter
) -> None:
    route = router.post(f"{V2}/authorization/authenticated/access-token").mock(
        return_value=unavailable()
    )

    with pytest.raises(ScrtServerError):
        await scrt.verified_token("single-use-identity-jwt")

    assert route.call_count == 1


async def test_guest_token_retries_5xx_but_not_429(
    scrt: ScrtClient, router: respx.MockRouter
) -> None:
    route = router.post(f"{V2}/authorization/unauthenticated/access-token").mock(
        side_effect=[
            unavailable(),
            httpx.Response(200, json={"accessToken": "t"}),
            httpx.Response(429),
        ]
    )

    assert (await scrt.guest_token()).bearer == "t"
    with pytest.raises(ScrtRateLimitError):
        await scrt.guest_token()

    assert route.call_count == 3


async def test_create_conversation_retry_hitting_409_counts_as_created(
    scrt: ScrtClient, router: respx.MockRouter
) -> None:
    route = router.post(f"{V2}/conversation").mock(
        side_effect=[httpx.ReadTimeout("answer lost"), httpx.Response(409)]
    )

    conversation_id = await scrt.create_conversation(TOKEN)

    sent_ids = [body_of(call.request)["conversationId"] for call in route.calls]
    assert sent_ids == [conversation_id, conversation_id]


async def test_create_conversation_409_on_first_attempt_is_a_conflict(
    scrt: ScrtClient, router: respx.MockRouter
) -> None:
    router.post(f"{V2}/conversation").mock(return_value=httpx.Response(409))

    with pytest.raises(ScrtConflictError):
        await scrt.create_conversation(TOKEN, conversation_id=CID)


def test_policy_delays_grow_and_stay_under_the_cap() -> None:
    policy = RetryPolicy(base_delay=0.1, max_delay=0.3)

    delays = [policy.delay(attempt) for attempt in (1, 2, 3, 4, 5)]

    assert 0.05 <= delays[0] <= 0.1
    assert 0.1 <= delays[1] <= 0.2
    assert all(0.15 <= d <= 0.3 for d in delays[2:])


@pytest.mark.parametrize("draw", ["low", "high"])
def test_policy_delays_spread_over_the_whole_upper_half_of_the_ceiling(
    draw: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Half fixed, half random: the jitter spans from half the ceiling to all of it (clients
    retrying together spread out over the whole window), never beyond."""
    monkeypatch.setattr("app.scrt.retry.random.uniform", lambda a, b: a if draw == "low" else b)
    policy = RetryPolicy(base_delay=0.1, max_delay=0.3)

    delays = [policy.delay(attempt) for attempt in (1, 2, 3, 4)]

    ceilings = [0.1, 0.2, 0.3, 0.3]
    expected = [c / 2 for c in ceilings] if draw == "low" else ceilings
    assert delays == pytest.approx(expected)


@pytest.mark.parametrize(
    "kwargs",
    [{"max_attempts": 0}, {"base_delay": -1}, {"total_timeout": 0}],
)
def test_policy_rejects_nonsense(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]
