"""Authorization endpoints (docs/simulator.md "Behaviour")."""

from __future__ import annotations

import re
import time
import uuid

from tests.simulator.conftest import (
    API,
    DEPLOYMENT,
    ORG_ID15,
    Sim,
    SimFactory,
    assert_error,
    claims_of,
)

UNAUTH_SUBJECT = re.compile(r"^v2/iamessage/UNAUTH/NA/uid:(?P<uid>[0-9a-f-]{36})$")


async def test_guest_token_is_a_jwt_with_subject_and_expiry(sim: Sim) -> None:
    before = int(time.time())
    response = await sim.guest_response()
    assert response.status_code == 200, response.text
    body = response.json()

    claims = claims_of(body["accessToken"])
    assert {"sub", "iat", "exp", "jti", "orgId", "clientId"} <= set(claims)
    assert before - 1 <= claims["iat"] <= int(time.time()) + 1
    assert claims["exp"] - claims["iat"] in range(3599, 3602)  # default guest_token_ttl = 1 h

    subject = body["context"]["endUser"]["subject"]
    m = UNAUTH_SUBJECT.match(subject)
    assert m, subject
    assert uuid.UUID(m["uid"]).version == 4
    assert claims["sub"] == subject
    assert body["context"]["endUser"]["role"] == "EndUser"

    assert isinstance(body["lastEventId"], str) and body["lastEventId"].isdigit()


async def test_guest_token_context_carries_the_embedded_service_config(sim: Sim) -> None:
    body = (await sim.guest_response()).json()
    config = body["context"]["configuration"]["embeddedServiceConfig"]
    assert config["name"] == DEPLOYMENT
    assert config["deploymentType"] == "Api"
    forms = config["forms"]
    assert forms and forms[0]["formType"] == "PreChat"
    assert forms[0]["displayContext"] == "Conversation"
    assert isinstance(forms[0]["formFields"], list)


async def test_per_session_prechat_option_shows_in_the_token_config(make_sim: SimFactory) -> None:
    sim = await make_sim(prechat_display_context="Session")
    body = (await sim.guest_response()).json()
    forms = body["context"]["configuration"]["embeddedServiceConfig"]["forms"]
    assert forms[0]["displayContext"] == "Session"


async def test_every_guest_gets_a_new_subject(sim: Sim) -> None:
    a, b = await sim.guest(), await sim.guest()
    assert a.subject != b.subject
    assert a.claims["clientId"] != b.claims["clientId"]


async def test_guest_token_accepts_15_char_org_id_in_body(sim: Sim) -> None:
    response = await sim.guest_response(orgId=ORG_ID15)
    assert response.status_code == 200, response.text


async def test_guest_token_without_context_is_accepted_by_default(sim: Sim) -> None:
    response = await sim.guest_response(context=None)
    assert response.status_code == 200, response.text


async def test_guest_token_without_context_is_400_in_strict_mode(make_sim: SimFactory) -> None:
    sim = await make_sim(strict_token_context=True)
    assert_error(await sim.guest_response(context=None), 400, "BAD_REQUEST")
    assert (await sim.guest_response()).status_code == 200


async def test_guest_token_for_unknown_deployment_is_400_bad_request(sim: Sim) -> None:
    assert_error(await sim.guest_response(esDeveloperName="No_Such_Thing"), 400, "BAD_REQUEST")


async def test_guest_token_for_non_api_deployment_is_400_bad_request(make_sim: SimFactory) -> None:
    sim = await make_sim(deployment_type="Web")
    body = assert_error(await sim.guest_response(), 400, "BAD_REQUEST")
    assert "api" in body["message"].lower()


async def test_guest_token_for_unpublished_deployment_is_setup_error(make_sim: SimFactory) -> None:
    sim = await make_sim(deployment_published=False)
    body = assert_error(await sim.guest_response(), 400, "SETUP_ERROR")
    assert body["message"] == "The Messaging for In-App and Web deployment isn't published."


async def test_guest_token_with_malformed_body_is_400(sim: Sim) -> None:
    response = await sim.client.post(
        f"{API}/authorization/unauthenticated/access-token",
        content=b"{not json",
        headers={"Content-Type": "application/json"},
    )
    assert_error(response, 400, "BAD_REQUEST")
    assert_error(await sim.guest_response(esDeveloperName=None), 400, "BAD_REQUEST")


async def test_verified_token_subject_is_auth_form_from_identity_sub(sim: Sim) -> None:
    response = await sim.verified_response(sub="customer-007")
    assert response.status_code == 200, response.text
    body = response.json()
    subject = body["context"]["endUser"]["subject"]
    assert subject == "v2/iamessage/AUTH/Demo_Keyset/uid:customer-007"
    claims = claims_of(body["accessToken"])
    assert claims["sub"] == subject
    assert claims["exp"] - claims["iat"] in range(3599, 3602)
    assert body["lastEventId"].isdigit()
    assert "embeddedServiceConfig" in body["context"]["configuration"]


async def test_verified_token_for_the_same_sub_reaches_the_same_conversations(sim: Sim) -> None:
    first = await sim.verified("returning-user")
    cid = await sim.create(first)
    again = await sim.verified("returning-user")
    assert again.subject == first.subject
    assert await sim.routing_status(again, cid)


async def test_verified_token_with_invalid_identity_token_is_400(sim: Sim) -> None:
    response = await sim.verified_response(customerIdentityToken="not-a-jwt")
    assert_error(response, 400, "BAD_REQUEST")


async def test_continuation_token_keeps_subject_and_exp_with_new_client_id(sim: Sim) -> None:
    guest = await sim.guest()
    cid = await sim.create(guest)
    follow = await sim.continuation(guest)

    original, renewed = guest.claims, follow.claims
    assert follow.token != guest.token
    assert renewed["sub"] == original["sub"] == guest.subject
    assert renewed["exp"] == original["exp"]
    assert renewed["clientId"] != original["clientId"]
    assert follow.last_event_id.isdigit()
    # It is a working token for the same end user.
    assert await sim.routing_status(follow, cid)


async def test_continuation_token_of_a_verified_user_keeps_its_exp(sim: Sim) -> None:
    user = await sim.verified()
    follow = await sim.continuation(user)
    assert follow.claims["exp"] == user.claims["exp"]
    assert follow.claims["sub"] == user.subject


async def test_continuation_token_needs_a_valid_bearer(sim: Sim) -> None:
    response = await sim.client.get(f"{API}/authorization/continuation-access-token")
    assert_error(response, 401, "UNAUTHORIZED")


async def test_revoke_is_204_and_the_token_then_gets_401(sim: Sim) -> None:
    user = await sim.verified()
    cid = await sim.create(user)
    response = await sim.client.delete(
        f"{API}/authorization/authenticated/access-token", headers=user.headers
    )
    assert response.status_code == 204
    assert response.content == b""
    for check in (
        sim.client.get(f"{API}/conversation/{cid}", headers=user.headers),
        sim.client.get(f"{API}/conversation/list", headers=user.headers),
        sim.send(user, cid, "still there?"),
    ):
        assert_error(await check, 401, "UNAUTHORIZED")


async def test_expired_token_is_401_jwt_is_expired(make_sim: SimFactory) -> None:
    sim = await make_sim(guest_token_ttl=0.0)
    guest = await sim.guest()
    response = await sim.client.get(f"{API}/conversation/list", headers=guest.headers)
    body = assert_error(response, 401, "UNAUTHORIZED")
    assert body["message"] == "Jwt is expired"


async def test_control_expire_makes_every_issued_token_401(sim: Sim) -> None:
    a, b = await sim.guest(), await sim.verified()
    cid = await sim.create(a)
    body = await sim.control_ok("POST", "/tokens/expire")
    assert body == {"expired": 2}
    for guest in (a, b):
        response = await sim.client.get(f"{API}/conversation/list", headers=guest.headers)
        assert assert_error(response, 401, "UNAUTHORIZED")["message"] == "Jwt is expired"
    assert_error(await sim.send(a, cid, "hello?"), 401, "UNAUTHORIZED")
    # An expired token cannot be continued either; a new token works.
    response = await sim.client.get(
        f"{API}/authorization/continuation-access-token", headers=a.headers
    )
    assert_error(response, 401, "UNAUTHORIZED")
    fresh = await sim.guest()
    await sim.list_conversations(fresh)


async def test_missing_forged_or_garbage_bearer_is_401(sim: Sim) -> None:
    guest = await sim.guest()
    forged = guest.token[:-4] + ("AAAA" if not guest.token.endswith("AAAA") else "BBBB")
    for headers in (
        {},
        {"Authorization": "Bearer not.a.jwt"},
        {"Authorization": f"Bearer {forged}"},
        {"Authorization": guest.token},  # no "Bearer " scheme
    ):
        response = await sim.client.get(f"{API}/conversation/list", headers=headers)
        assert_error(response, 401, "UNAUTHORIZED")


async def test_token_requests_over_200_per_minute_are_429(make_sim: SimFactory) -> None:
    sim = await make_sim(rate_limits=True)
    for _ in range(200):
        response = await sim.guest_response()
        assert response.status_code == 200, response.text
    assert_error(await sim.guest_response(), 429)
    # A verified-user token request counts against the same org limit.
    assert (await sim.verified_response()).status_code == 429


async def test_token_requests_are_not_limited_with_rate_limits_off(sim: Sim) -> None:
    for _ in range(230):
        response = await sim.guest_response()
        assert response.status_code == 200, response.text
