"""A send whose outcome is unknown is looked for before it is repeated; every request of a tool call
shares one deadline. Time here is the event loop's, fast-forwarded (looptime), never the wall's."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
import respx

from app.scrt import (
    RetryPolicy,
    ScrtClient,
    ScrtConfig,
    ScrtConnectionError,
    ScrtServerError,
    ScrtTimeoutError,
)
from app.scrt.deadline import call_deadline, remaining
from app.scrt.errors import outcome_unknown
from tests.scrt.conftest import body_of

CID = "0f8e2c1a-8d3b-4c55-b0a9-3c2f1e0d9a77"
V2 = "/iamessage/api/v2"
MESSAGE_PATH = f"{V2}/conversation/{CID}/message"
ENTRIES_PATH = f"{V2}/conversation/{CID}/entries"
TOKEN = "secret-token-value"
PATIENT = RetryPolicy(max_attempts=4, base_delay=0.2, max_delay=1.0, total_timeout=20.0)


@pytest.fixture
def patient(http: httpx.AsyncClient, config: ScrtConfig) -> ScrtClient:
    return ScrtClient(http, config, retry=PATIENT)


def entries_with(*message_ids: str) -> httpx.Response:
    return httpx.Response(
        200,
        json={
            "conversationEntries": [
                {
                    "identifier": message_id,
                    "entryType": "Message",
                    "sender": {"role": "EndUser"},
                    "clientTimestamp": 1741300000000,
                    "transcriptedTimestamp": 1741300000000,
                    "entryPayload": {"entryType": "Message", "id": message_id},
                }
                for message_id in message_ids
            ]
        },
    )


def posted_ids(route: respx.Route) -> list[str]:
    return [body_of(call.request)["message"]["id"] for call in route.calls]


async def test_send_answered_500_is_found_among_the_entries_and_not_posted_again(
    patient: ScrtClient, router: respx.MockRouter
) -> None:
    posts = router.post(MESSAGE_PATH).mock(return_value=httpx.Response(500))
    looked: list[dict[str, Any]] = []

    def entries(request: httpx.Request) -> httpx.Response:
        looked.append(dict(request.url.params))
        return entries_with("someone-else", posted_ids(posts)[0])

    router.get(ENTRIES_PATH).mock(side_effect=entries)

    sent = await patient.send_message(TOKEN, CID, "did it land?")

    assert posted_ids(posts) == [sent.message_id]
    assert sent.client_timestamp == 1741300000000
    assert looked == [{"limit": "50", "entryTypeFilter": "Message"}]


async def test_send_that_timed_out_and_is_not_found_is_posted_again_with_the_same_id(
    patient: ScrtClient, router: respx.MockRouter
) -> None:
    posts = router.post(MESSAGE_PATH).mock(
        side_effect=[httpx.ReadTimeout("no answer"), httpx.Response(202)]
    )
    lookups = router.get(ENTRIES_PATH).mock(return_value=entries_with("someone-else"))

    sent = await patient.send_message(TOKEN, CID, "second try")

    assert posted_ids(posts) == [sent.message_id, sent.message_id]
    assert lookups.call_count == 1


@pytest.mark.parametrize(
    "failure",
    [
        httpx.Response(503, json={"message": "busy"}),
        httpx.Response(429, json={"message": "slow down"}),
        httpx.ConnectError("refused"),
    ],
    ids=["503", "429", "connect-error"],
)
async def test_refused_sends_are_retried_without_looking_for_them(
    patient: ScrtClient, router: respx.MockRouter, failure: Any
) -> None:
    posts = router.post(MESSAGE_PATH).mock(side_effect=[failure, httpx.Response(202)])
    lookups = router.get(ENTRIES_PATH).mock(return_value=entries_with())

    sent = await patient.send_message(TOKEN, CID, "refused first")

    assert posted_ids(posts) == [sent.message_id, sent.message_id]
    assert lookups.call_count == 0


async def test_a_409_on_a_send_means_salesforce_already_has_the_message(
    patient: ScrtClient, router: respx.MockRouter
) -> None:
    posts = router.post(MESSAGE_PATH).mock(
        return_value=httpx.Response(409, json={"message": "Entry exists."})
    )

    sent = await patient.send_message(TOKEN, CID, "hello", message_id="an-id-sent-before")

    assert sent.message_id == "an-id-sent-before"
    assert posts.call_count == 1


def test_only_failures_after_which_salesforce_may_have_acted_count_as_unknown() -> None:
    def server(status: int) -> ScrtServerError:
        return ScrtServerError(status=status, message="x")

    assert [outcome_unknown(server(s)) for s in (500, 502, 503, 504)] == [True, True, False, True]
    assert outcome_unknown(ScrtTimeoutError("read"))
    assert not outcome_unknown(ScrtTimeoutError("pool", request_sent=False))
    assert outcome_unknown(ScrtConnectionError("reset"))
    assert not outcome_unknown(ScrtConnectionError("refused", request_sent=False))


@pytest.mark.looptime
async def test_requests_in_a_row_share_the_call_deadline(
    patient: ScrtClient, router: respx.MockRouter
) -> None:
    async def slow(_: httpx.Request) -> httpx.Response:
        await asyncio.sleep(15)
        return httpx.Response(204)

    router.delete(f"{V2}/conversation/{CID}/session").mock(side_effect=slow)
    router.delete(f"{V2}/conversation/{CID}").mock(side_effect=slow)
    loop = asyncio.get_running_loop()
    started = loop.time()

    with call_deadline(25):
        await patient.end_session(TOKEN, CID)  # 15 s of the 25
        assert remaining(60) == pytest.approx(10)
        with pytest.raises(ScrtTimeoutError):
            await patient.close_conversation(TOKEN, CID)  # its own budget is 20 s: cut at 10

    assert loop.time() - started == pytest.approx(25)


@pytest.mark.looptime
async def test_the_retry_budget_holds_without_a_call_deadline(
    patient: ScrtClient, router: respx.MockRouter
) -> None:
    async def hung(_: httpx.Request) -> httpx.Response:
        await asyncio.sleep(3600)
        return httpx.Response(200, json={})

    router.get(f"{V2}/conversation/{CID}").mock(side_effect=hung)
    loop = asyncio.get_running_loop()
    started = loop.time()

    with pytest.raises(ScrtTimeoutError):
        await patient.routing_status(TOKEN, CID)

    assert loop.time() - started == pytest.approx(PATIENT.total_timeout)


@pytest.mark.looptime
async def test_an_inner_deadline_never_extends_the_outer_one() -> None:
    loop = asyncio.get_running_loop()
    with call_deadline(5) as outer, call_deadline(30) as inner:
        assert inner == outer == pytest.approx(loop.time() + 5)
    assert remaining(7) == 7  # no deadline outside


@pytest.mark.looptime
async def test_looking_for_an_unconfirmed_send_keeps_to_the_call_deadline(
    patient: ScrtClient, router: respx.MockRouter
) -> None:
    async def hung(_: httpx.Request) -> httpx.Response:
        await asyncio.sleep(3600)
        return entries_with()

    router.post(MESSAGE_PATH).mock(side_effect=httpx.ReadTimeout("no answer"))
    router.get(ENTRIES_PATH).mock(side_effect=hung)
    loop = asyncio.get_running_loop()
    started = loop.time()

    with call_deadline(12), pytest.raises(ScrtTimeoutError) as failed:
        await patient.send_message(TOKEN, CID, "did it land?")

    assert outcome_unknown(failed.value)  # the caller must not assume it was lost
    assert loop.time() - started == pytest.approx(12)
