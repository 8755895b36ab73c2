"""Who gets the operator page, and over what: off without ADMIN_PASSWORD; the password, CSRF
tokens and the Origin on every POST; HTTPS except between loopback addresses; a budget of
sign-in attempts per address; a signed session cookie."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

import httpx
import pytest
from pydantic import SecretStr
from starlette.applications import Starlette

from app.admin.access import SESSION_SECONDS, SIGNIN_RATE_ALL, AdminAccess, signing_secret
from app.config import ConfigError, load_settings
from app.demo import DEMO_ADMIN_PASSWORD, build_demo_app, demo_banner
from app.limits import MemoryCounters
from tests.admin.conftest import (
    PASSWORD,
    UNUSED_SCRT,
    admin_app,
    client_for,
    csrf_of,
    sign_in,
)
from tests.mcp.conftest import settings_for
from tests.redis_support import TEST_KEY

ADMIN_PATHS = ["/admin", "/admin/signin", "/admin/api/state", "/admin/api/audit"]


async def test_without_a_password_there_is_no_admin_route_at_all() -> None:
    from app.main import build_app

    app = build_app(settings_for(UNUSED_SCRT))
    async with client_for(app) as client:
        for path in ADMIN_PATHS:
            assert (await client.get(path)).status_code == 404, path
        assert (await client.post("/admin/signin", data={"password": PASSWORD})).status_code == 404


def test_a_short_password_is_refused_at_start_naming_the_variable() -> None:
    with pytest.raises(ConfigError, match=r"ADMIN_PASSWORD: .*at least 16 characters"):
        load_settings(_env_file=None, admin_password="fifteen chars..")
    assert load_settings(_env_file=None, admin_password="sixteen chars..!").admin_enabled
    assert not load_settings(_env_file=None, admin_password=" ").admin_enabled


async def test_without_a_session_the_page_sends_to_sign_in_and_the_data_is_refused(
    local: httpx.AsyncClient,
) -> None:
    page = await local.get("/admin")
    assert page.status_code == 303 and page.headers["location"] == "/admin/signin"
    for path in ("/admin/api/state", "/admin/api/audit"):
        data = await local.get(path)
        assert data.status_code == 401 and "Sign in" in data.json()["error"], path


async def test_a_wrong_password_is_refused_and_the_right_one_signs_in(
    local: httpx.AsyncClient,
) -> None:
    wrong = await sign_in(local, "correct horse battery stapler")
    assert wrong.status_code == 401 and "Wrong password." in wrong.text
    assert not any(c.startswith("miaw-admin=") for c in wrong.headers.get_list("set-cookie"))
    assert (await local.get("/admin/api/state")).status_code == 401

    right = await sign_in(local)
    assert right.status_code == 303 and right.headers["location"] == "/admin"
    cookie = next(c for c in right.headers.get_list("set-cookie") if c.startswith("miaw-admin="))
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie  # plain HTTP on loopback: a Secure cookie would not come back
    state = await local.get("/admin/api/state")
    assert state.status_code == 200 and state.json()["conversations"] == []


async def test_signing_in_needs_the_forms_csrf_token_and_our_own_origin(
    app: Starlette, local: httpx.AsyncClient
) -> None:
    form = await local.get("/admin/signin")
    token = csrf_of(form.text)
    attempts = [
        ({"password": PASSWORD}, {}),
        ({"password": PASSWORD, "csrf": token + "x"}, {}),
        ({"password": PASSWORD, "csrf": token}, {"Origin": "https://evil.example"}),
        ({"password": PASSWORD, "csrf": token}, {"Sec-Fetch-Site": "cross-site"}),
    ]
    for data, headers in attempts:
        refused = await local.post("/admin/signin", data=data, headers=headers)
        assert refused.status_code == 403, (data, headers)
        assert "did not come from this page" in refused.text
        assert not any(c.startswith("miaw-admin=") for c in refused.headers.get_list("set-cookie"))
    # The form's token is checked against its cookie: another browser's token does not do.
    async with client_for(app) as another_browser:
        other = csrf_of((await another_browser.get("/admin/signin")).text)
    theirs = await local.post("/admin/signin", data={"password": PASSWORD, "csrf": other})
    assert theirs.status_code == 403


async def test_signing_out_needs_the_sessions_csrf_token_and_ends_the_session(
    local: httpx.AsyncClient,
) -> None:
    await sign_in(local)
    page = await local.get("/admin")
    assert page.status_code == 200
    token = csrf_of(page.text)
    assert (await local.post("/admin/signout", data={})).status_code == 403
    assert (await local.post("/admin/signout", data={"csrf": "forged"})).status_code == 403
    cross = await local.post(
        "/admin/signout", data={"csrf": token}, headers={"Origin": "https://evil.example"}
    )
    assert cross.status_code == 403
    cookie = local.cookies["miaw-admin"]
    assert (await local.get("/admin/api/state")).status_code == 200

    out = await local.post("/admin/signout", data={"csrf": token})
    assert out.status_code == 303 and out.headers["location"] == "/admin/signin"
    # Even a copy of the cookie kept from before no longer opens the page.
    local.cookies.set("miaw-admin", cookie)
    assert (await local.get("/admin/api/state")).status_code == 401


@pytest.mark.parametrize(
    ("base_url", "peer", "hops", "headers"),
    [
        # Plain HTTP from another machine, whatever Host it names.
        ("http://chat.example.com", "203.0.113.5", 0, {}),
        ("http://127.0.0.1:8000", "203.0.113.5", 0, {}),
        ("http://localhost:8000", "203.0.113.5", 0, {}),
        # A forwarded scheme is the client's say unless a trusted proxy is in front.
        ("http://chat.example.com", "203.0.113.5", 0, {"X-Forwarded-Proto": "https"}),
        # Behind a trusted proxy: what the proxy saw counts, not the hop from it.
        ("http://chat.example.com", "10.0.0.1", 1, {"X-Forwarded-Proto": "http"}),
        (
            "http://localhost:8000",
            "127.0.0.1",
            1,
            {"X-Forwarded-Proto": "http", "X-Forwarded-For": "203.0.113.5"},
        ),
    ],
)
async def test_plain_http_from_anywhere_but_this_machine_is_refused(
    base_url: str, peer: str, hops: int, headers: dict[str, str]
) -> None:
    app = admin_app(mcp_allowed_hosts="chat.example.com", trusted_proxy_hops=hops)
    async with client_for(app, base_url, peer) as client:
        for path in ADMIN_PATHS:
            refused = await client.get(path, headers=headers)
            assert refused.status_code == 403, path
            assert "only over HTTPS" in refused.text
        posted = await client.post("/admin/signin", data={"password": PASSWORD}, headers=headers)
        assert posted.status_code == 403


async def test_https_is_served_with_a_secure_host_only_cookie() -> None:
    app = admin_app(mcp_allowed_hosts="chat.example.com", trusted_proxy_hops=1)
    # Heroku: the router terminates TLS and says so in X-Forwarded-Proto.
    forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "198.51.100.7"}
    async with client_for(app, "http://chat.example.com", "10.0.0.1") as client:
        form = await client.get("/admin/signin", headers=forwarded)
        assert form.status_code == 200
        signin_cookie = form.headers["set-cookie"]
        assert signin_cookie.startswith("__Host-miaw-admin-signin=") and "Secure" in signin_cookie
        signed_in = await client.post(
            "/admin/signin",
            data={"password": PASSWORD, "csrf": csrf_of(form.text)},
            headers={
                **forwarded,
                "Origin": "https://chat.example.com",
                "Cookie": signin_cookie.split(";")[0],
            },
        )
        assert signed_in.status_code == 303
        cookie = next(
            c
            for c in signed_in.headers.get_list("set-cookie")
            if c.startswith("__Host-miaw-admin=")
        )
        assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie
    # Over TLS to the server itself, too.
    async with client_for(app, "https://chat.example.com", "198.51.100.7") as client:
        assert (await sign_in(client)).status_code == 303
        assert (await client.get("/admin/api/state")).status_code == 200


async def test_a_host_the_server_does_not_serve_is_refused() -> None:
    async with client_for(admin_app(), "http://evil.example", "127.0.0.1") as client:
        for path in ADMIN_PATHS:
            assert (await client.get(path)).status_code == 421, path


async def test_sign_in_attempts_are_limited_per_address_and_shown_as_refusals() -> None:
    app = admin_app()
    async with client_for(app) as client, client_for(app, peer="127.0.0.2") as neighbour:
        for _ in range(10):
            assert (await sign_in(client, "a wrong password, again")).status_code == 401
        limited = await sign_in(client)  # even the right password, once the budget is spent
        assert limited.status_code == 429
        assert "Too many sign-in attempts" in limited.text
        assert int(limited.headers["retry-after"]) > 0
        # Another address has a budget of its own.
        assert (await sign_in(neighbour)).status_code == 303
        state = (await neighbour.get("/admin/api/state")).json()
    assert state["refusals"][0]["limit"] == "ADMIN_SIGNIN"
    assert state["refusalCounts"] == {"ADMIN_SIGNIN": 1}


async def test_a_forged_tampered_or_expired_session_cookie_is_refused() -> None:
    now = [1_800_000_000.0]
    secret = signing_secret(SecretStr(TEST_KEY), shared=True)
    access = AdminAccess(SecretStr(PASSWORD), MemoryCounters(), secret, clock=lambda: now[0])
    cookie = access.new_session()
    session = await access.session(cookie)
    assert session is not None and session.csrf
    expires, session_id, mac = cookie.split(".")
    assert await access.session(f"{expires}.{session_id}.{mac[:-2]}AA") is None
    assert await access.session(f"{int(expires) + 3600}.{session_id}.{mac}") is None
    assert await access.session(f"{expires}.{session_id[:-1]}x.{mac}") is None
    other = AdminAccess(SecretStr(PASSWORD + "!"), MemoryCounters(), secret, clock=lambda: now[0])
    assert await other.session(cookie) is None  # a changed password ends every session
    assert await access.session("not.a-cookie") is None
    now[0] += SESSION_SECONDS - 1
    assert await access.session(cookie) is not None
    now[0] += 1
    assert await access.session(cookie) is None


async def test_the_page_runs_only_its_own_nonced_script_and_loads_nothing_else(
    local: httpx.AsyncClient,
) -> None:
    await sign_in(local)
    page = await local.get("/admin")
    policy = page.headers["content-security-policy"]
    nonce = re.search(r"script-src 'nonce-([^']+)'", policy)
    assert nonce is not None
    assert "default-src 'none'" in policy and "connect-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy
    scripts = re.findall(r"<script([^>]*)>", page.text)
    assert scripts and all(f'nonce="{nonce[1]}"' in attrs for attrs in scripts)
    assert not re.search(r"\b(src|href)=\"(https?:)?//", page.text)
    assert page.headers["cache-control"] == "no-store"
    assert page.headers["x-frame-options"] == "DENY"
    second = await local.get("/admin")
    assert second.headers["content-security-policy"] != policy  # a nonce per response


async def test_a_malformed_version_or_filter_is_refused_with_a_specific_error(
    local: httpx.AsyncClient,
) -> None:
    await sign_in(local)
    bad = await local.get("/admin/api/state", params={"after": "-1"})
    assert bad.status_code == 400 and "after must be" in bad.json()["error"]
    for params, said in [
        ({"tool": "send message"}, "tool must be a tool's name"),
        ({"caller": "x" * 301}, "caller must be at most 300"),
        ({"outcome": "failed"}, "outcome must be one of ok, error, refused, rejected, crash"),
        ({"limit": "0"}, "limit must be a whole number from 1 to 500"),
        ({"limit": "ten"}, "limit must be a whole number from 1 to 500"),
    ]:
        refused = await local.get("/admin/api/audit", params=params)
        assert refused.status_code == 400 and said in refused.json()["error"], params
    fine = await local.get("/admin/api/audit", params={"tool": "", "outcome": "", "limit": "5"})
    assert fine.status_code == 200
    assert fine.json() == {"records": [], "stoppedEarly": False, "scanBound": 5000}


async def test_the_long_poll_answers_at_once_when_the_board_has_moved_on(
    app: Starlette, local: httpx.AsyncClient
) -> None:
    await sign_in(local)
    first = (await local.get("/admin/api/state")).json()
    board = app.state.runtime.board
    board.refused("RATE_LIMIT_PER_USER", "create_conversation")
    moved = (await local.get("/admin/api/state", params={"after": first["version"]})).json()
    assert moved["version"] != first["version"]
    assert moved["refusals"][0] == {
        "at": moved["refusals"][0]["at"],
        "limit": "RATE_LIMIT_PER_USER",
        "tool": "create_conversation",
    }


async def test_demo_mode_serves_the_page_behind_the_password_its_banner_prints() -> None:
    banner = demo_banner(8000)
    assert "http://127.0.0.1:8000/admin" in banner and DEMO_ADMIN_PASSWORD in banner
    async with client_for(build_demo_app(8000)) as client:
        assert (await sign_in(client, DEMO_ADMIN_PASSWORD)).status_code == 303
        assert (await client.get("/admin/api/state")).status_code == 200


@pytest.mark.parametrize(
    "header",
    [
        ("Forwarded", "for=203.0.113.5;proto=http"),
        ("X-Forwarded-For", "203.0.113.5"),
        ("X-Forwarded-Proto", "http"),
        ("X-Forwarded-Host", "chat.example.com"),
        ("X-Real-IP", "203.0.113.5"),
        ("Via", "1.1 nginx"),
    ],
)
async def test_a_proxy_on_this_machine_does_not_make_its_clients_local(
    local: httpx.AsyncClient, header: tuple[str, str]
) -> None:
    # nginx's `proxy_pass http://127.0.0.1:8000`, no TRUSTED_PROXY_HOPS: every client anywhere
    # connects from loopback, and the proxy says so in the headers it adds.
    for path in ADMIN_PATHS:
        refused = await local.get(path, headers=[header])
        assert refused.status_code == 403 and "only over HTTPS" in refused.text, path
    assert (await local.get("/admin/signin")).status_code == 200  # the browser on this machine


async def test_the_scheme_is_the_one_the_trusted_proxy_wrote_last() -> None:
    app = admin_app(mcp_allowed_hosts="chat.example.com", trusted_proxy_hops=1)
    forwarded_for = ("X-Forwarded-For", "198.51.100.7")
    async with client_for(app, "http://chat.example.com", "10.0.0.1") as client:
        # The client's own line first, the router's after it: the router's counts.
        claimed = [("X-Forwarded-Proto", "https"), ("X-Forwarded-Proto", "http"), forwarded_for]
        assert (await client.get("/admin/signin", headers=claimed)).status_code == 403
        in_one_line = [("X-Forwarded-Proto", "https, http"), forwarded_for]
        assert (await client.get("/admin/signin", headers=in_one_line)).status_code == 403
        proxied = [("X-Forwarded-Proto", "http"), ("X-Forwarded-Proto", "https"), forwarded_for]
        answer = await client.get("/admin/signin", headers=proxied)
    assert answer.status_code == 200
    assert answer.headers["strict-transport-security"] == "max-age=31536000"


async def test_https_answers_carry_hsts_and_plain_http_ones_do_not(
    local: httpx.AsyncClient,
) -> None:
    async with client_for(admin_app(), "https://127.0.0.1:8000", "198.51.100.7") as client:
        answers = [
            await client.get("/admin/signin"),
            await client.get("/admin"),
            await client.get("/admin/api/state"),
            await sign_in(client),
        ]
    assert [a.status_code for a in answers] == [200, 303, 401, 303]
    assert all(a.headers["strict-transport-security"] == "max-age=31536000" for a in answers)
    assert "strict-transport-security" not in (await local.get("/admin/signin")).headers


async def test_ipv6_addresses_of_one_64_share_a_sign_in_budget() -> None:
    app = admin_app()
    base = "https://127.0.0.1:8000"
    async with (
        client_for(app, base, "2001:db8:1:2::1") as one,
        client_for(app, base, "2001:db8:1:2:ffff:ffff:ffff:fffe") as same_64,
        client_for(app, base, "2001:db8:1:3::1") as next_64,
    ):
        for _ in range(10):
            assert (await sign_in(one, "a wrong password, again")).status_code == 401
        assert (await sign_in(same_64)).status_code == 429
        assert (await sign_in(next_64)).status_code == 303


async def test_sign_ins_from_many_addresses_spend_one_budget_of_the_deployment() -> None:
    app = admin_app()
    base = "https://127.0.0.1:8000"
    for n in range(SIGNIN_RATE_ALL.count):
        async with client_for(app, base, f"198.51.{n // 200}.{n % 200 + 1}") as guesser:
            assert (await sign_in(guesser, "a wrong password, again")).status_code == 401, n
    async with client_for(app, base, "203.0.113.9") as operator:
        refused = await sign_in(operator)
        assert refused.status_code == 429 and int(refused.headers["retry-after"]) > 0
        assert "Too many sign-in attempts to this server" in refused.text
    board = app.state.runtime.board
    assert board.snapshot()["refusalCounts"] == {"ADMIN_SIGNIN_ALL": 1}


async def test_a_cookie_does_not_tell_whether_a_password_guess_is_right() -> None:
    """Its signature needs the server's secret besides the password: knowing a cookie, one
    cannot test guesses offline; and deployments sharing a password do not share sessions."""
    secret = signing_secret(SecretStr(TEST_KEY), shared=True)
    access = AdminAccess(SecretStr(PASSWORD), MemoryCounters(), secret)
    expires, session_id, mac = access.new_session().split(".")
    # What a guesser can compute from the right password alone: not the signature.
    stretched = hashlib.scrypt(PASSWORD.encode(), salt=b"miaw-mcp admin session", n=2**14, r=8, p=1)
    for key in (stretched, hashlib.sha256(PASSWORD.encode()).digest()):
        signed = hmac.new(key, f"session\x00{expires}\x00{session_id}".encode(), "sha256")
        assert base64.urlsafe_b64encode(signed.digest()).rstrip(b"=").decode() != mac
    cookie = f"{expires}.{session_id}.{mac}"
    same_key = AdminAccess(SecretStr(PASSWORD), MemoryCounters(), secret)
    assert await same_key.session(cookie) is not None  # another process of the deployment
    for other_secret in (
        signing_secret(SecretStr(TEST_KEY + "-another-deployment"), shared=True),
        signing_secret(SecretStr(TEST_KEY), shared=False),  # without Redis: per process
        signing_secret(None, shared=False),
    ):
        other = AdminAccess(SecretStr(PASSWORD), MemoryCounters(), other_secret)
        assert await other.session(cookie) is None


async def test_without_redis_a_restart_ends_every_session() -> None:
    before, after = (admin_app(state_encryption_key=TEST_KEY) for _ in range(2))
    async with client_for(before) as browser, client_for(after) as restarted:
        assert (await sign_in(browser)).status_code == 303
        restarted.cookies.set("miaw-admin", browser.cookies["miaw-admin"])
        assert (await restarted.get("/admin/api/state")).status_code == 401


@pytest.mark.parametrize(
    ("path", "params", "said"),
    [
        ("/admin/api/state", {"after": "²"}, "after must be"),
        ("/admin/api/state", {"after": "abc.²"}, "after must be"),
        ("/admin/api/state", {"after": "12"}, "after must be"),
        ("/admin/api/audit", {"limit": "²"}, "limit must be"),
        ("/admin/api/audit", {"limit": "1" * 40}, "limit must be"),
    ],
)
async def test_a_number_in_any_other_digits_is_a_400_naming_the_parameter(
    local: httpx.AsyncClient, path: str, params: dict[str, str], said: str
) -> None:
    await sign_in(local)
    refused = await local.get(path, params=params)
    assert refused.status_code == 400 and said in refused.json()["error"]
