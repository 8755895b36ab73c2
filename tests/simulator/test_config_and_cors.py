"""Embedded-service configuration endpoints and CORS for browser clients."""

from __future__ import annotations

import time

import httpx

from tests.simulator.conftest import (
    API,
    DEPLOYMENT,
    ORG_ID,
    ORG_ID15,
    SSE_PATH,
    Sim,
    SimFactory,
)

CONFIG = "/embeddedservice/v1/embedded-service-config"
HOURS = "/embeddedservice/v1/businesshours"


# -- embedded-service-config -----------------------------------------------------------------


async def test_embedded_service_config_without_auth(sim: Sim) -> None:
    for org_id in (ORG_ID, ORG_ID15):
        response = await sim.client.get(
            CONFIG, params={"orgId": org_id, "esConfigName": DEPLOYMENT, "language": "en_US"}
        )
        assert response.status_code == 200, response.text
        config = response.json()["embeddedServiceConfig"]
        assert config["name"] == DEPLOYMENT
        assert config["deploymentType"] == "Api"
        [form] = config["forms"]
        assert form["formType"] == "PreChat"
        assert form["displayContext"] == "Conversation"
        for field in form["formFields"]:
            assert {"name", "order", "type", "required", "isHidden"} <= set(field)
        assert "choiceList" in config["choiceListConfig"]


async def test_embedded_service_config_matches_the_token_context(sim: Sim) -> None:
    token_config = (await sim.guest()).body["context"]["configuration"]["embeddedServiceConfig"]
    response = await sim.client.get(
        CONFIG, params={"orgId": ORG_ID, "esConfigName": DEPLOYMENT, "language": "en_US"}
    )
    assert response.json()["embeddedServiceConfig"] == token_config


async def test_embedded_service_config_of_unpublished_deployment_is_412_text(
    make_sim: SimFactory,
) -> None:
    sim = await make_sim(deployment_published=False)
    response = await sim.client.get(
        CONFIG, params={"orgId": ORG_ID, "esConfigName": DEPLOYMENT, "language": "en_US"}
    )
    assert response.status_code == 412
    assert response.json() == {"text": "Embedded Messaging Config is not Published"}


async def test_embedded_service_config_of_unknown_deployment_is_4xx(sim: Sim) -> None:
    response = await sim.client.get(
        CONFIG, params={"orgId": ORG_ID, "esConfigName": "Nope", "language": "en_US"}
    )
    assert 400 <= response.status_code < 500


async def test_per_session_prechat_shows_in_the_config(make_sim: SimFactory) -> None:
    sim = await make_sim(prechat_display_context="Session")
    response = await sim.client.get(CONFIG, params={"orgId": ORG_ID, "esConfigName": DEPLOYMENT})
    assert response.json()["embeddedServiceConfig"]["forms"][0]["displayContext"] == "Session"


async def test_business_hours_are_millisecond_windows(sim: Sim) -> None:
    response = await sim.client.get(HOURS, params={"orgId": ORG_ID, "esConfigName": DEPLOYMENT})
    assert response.status_code == 200, response.text
    windows = response.json()["businessHoursInfo"]["businessHours"]
    assert windows
    now_ms = int(time.time() * 1000)
    for window in windows:
        assert isinstance(window["startTime"], int) and isinstance(window["endTime"], int)
        assert window["startTime"] < window["endTime"]
        assert window["endTime"] > 10**12  # milliseconds, not seconds
    assert any(w["startTime"] <= now_ms <= w["endTime"] for w in windows)


# -- CORS ------------------------------------------------------------------------------------


async def preflight(sim: Sim, path: str, origin: str, method: str, headers: str) -> httpx.Response:
    return await sim.client.options(
        path,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": headers,
        },
    )


def allowed_headers(response: httpx.Response) -> set[str]:
    raw = response.headers.get("access-control-allow-headers", "")
    return {h.strip().lower() for h in raw.split(",") if h.strip()}


async def test_preflight_on_sse_path_allows_auth_org_and_last_event_id(sim: Sim) -> None:
    response = await preflight(
        sim, SSE_PATH, "https://shop.example", "GET", "authorization,x-org-id,last-event-id"
    )
    assert response.status_code == 200, response.text
    assert response.headers["access-control-allow-origin"] in ("*", "https://shop.example")
    assert {"authorization", "x-org-id", "last-event-id"} <= allowed_headers(response)
    assert "GET" in response.headers["access-control-allow-methods"]


async def test_preflight_on_rest_path_allows_post_with_json(sim: Sim) -> None:
    response = await preflight(
        sim, f"{API}/conversation", "https://shop.example", "POST", "authorization,content-type"
    )
    assert response.status_code == 200, response.text
    assert response.headers["access-control-allow-origin"] in ("*", "https://shop.example")
    assert {"authorization", "content-type"} <= allowed_headers(response)
    assert "POST" in response.headers["access-control-allow-methods"]
    delete = await preflight(
        sim, f"{API}/conversation/x", "https://shop.example", "DELETE", "authorization"
    )
    assert delete.status_code == 200
    assert "DELETE" in delete.headers["access-control-allow-methods"]


async def test_simple_request_from_browser_gets_allow_origin(sim: Sim) -> None:
    response = await sim.guest_response()
    assert response.status_code == 200
    response = await sim.client.post(
        f"{API}/authorization/unauthenticated/access-token",
        json=sim.token_body(),
        headers={"Origin": "https://shop.example"},
    )
    assert response.headers["access-control-allow-origin"] in ("*", "https://shop.example")


async def test_configured_cors_origins_refuse_other_origins(make_sim: SimFactory) -> None:
    sim = await make_sim(cors_origins=("https://a.example",))
    ok = await preflight(sim, SSE_PATH, "https://a.example", "GET", "authorization,x-org-id")
    assert ok.status_code == 200
    assert ok.headers["access-control-allow-origin"] == "https://a.example"

    refused = await preflight(sim, SSE_PATH, "https://b.example", "GET", "authorization,x-org-id")
    assert refused.status_code >= 400
    assert refused.headers.get("access-control-allow-origin") not in ("*", "https://b.example")

    actual = await sim.client.post(
        f"{API}/authorization/unauthenticated/access-token",
        json=sim.token_body(),
        headers={"Origin": "https://b.example"},
    )
    assert actual.headers.get("access-control-allow-origin") not in ("*", "https://b.example")
