"""`miaw-mcp crm login` end to end against the simulator's OAuth endpoints: the authorization page
answered by a scripted browser (it follows the redirect to the loopback callback), the code
exchanged with its PKCE verifier, the refresh token kept in the keyring (a test backend) or, with
no keyring, in a file only the user can read, and used by the server."""

from __future__ import annotations

import asyncio
import stat
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import keyring
import keyring.backend
import keyring.errors
import pytest
from mcp.client import Client
from pydantic import SecretStr

from app.main import build_runtime
from app.salesforce.client import SalesforceClient
from app.salesforce.errors import LoginRequired
from app.salesforce.login import SERVICE, CredentialStore, login
from app.salesforce.oauth import OAuthSettings, TokenSource
from app.simulator import SimulatorOptions, build_simulator
from tests.mcp.conftest import call, settings_for
from tests.salesforce.test_crm_tools import crm_settings
from tests.servers import serve

OPTIONS = SimulatorOptions(rate_limits=False)


class MemoryKeyring(keyring.backend.KeyringBackend):
    priority = 1  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self.kept: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.kept.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.kept[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        self.kept.pop((service, username), None)


class NoKeyring(MemoryKeyring):
    def get_password(self, service: str, username: str) -> str | None:
        raise keyring.errors.NoKeyringError("no backend")

    def set_password(self, service: str, username: str, password: str) -> None:
        raise keyring.errors.NoKeyringError("no backend")


@pytest.fixture
def memory_keyring() -> Iterator[MemoryKeyring]:
    before = keyring.get_keyring()
    backend = MemoryKeyring()
    keyring.set_keyring(backend)
    yield backend
    keyring.set_keyring(before)


@pytest.fixture
async def org() -> AsyncIterator[str]:
    async with serve(build_simulator(OPTIONS)) as url:
        yield url


@pytest.fixture
async def org_rotating() -> AsyncIterator[str]:
    options = SimulatorOptions(rate_limits=False, crm_rotate_refresh_tokens=True)
    async with serve(build_simulator(options)) as url:
        yield url


def scripted_browser(http: httpx.AsyncClient, opened: list[str]) -> object:
    """Opens the authorization page the way a browser would: GET, following the redirect to
    the loopback callback (the simulated user is logged in and allows access)."""
    tasks: list[asyncio.Task[httpx.Response]] = []

    def open_url(url: str) -> None:
        opened.append(url)
        tasks.append(asyncio.ensure_future(http.get(url, follow_redirects=True)))

    return open_url


async def test_login_keeps_a_refresh_token_in_the_keyring_that_the_client_then_uses(
    org: str, memory_keyring: MemoryKeyring, tmp_path: Path
) -> None:
    store = CredentialStore(tmp_path / "tokens.json")
    opened: list[str] = []
    async with httpx.AsyncClient() as http:
        where = await login(
            http,
            instance_url=org,
            client_id=OPTIONS.crm_client_id,
            client_secret=SecretStr(OPTIONS.crm_client_secret),
            store=store,
            open_browser=scripted_browser(http, opened),  # type: ignore[arg-type]
            port=0,
        )
        token = store.load(org, OPTIONS.crm_client_id)
        assert token is not None
        settings = OAuthSettings(
            org, OPTIONS.crm_client_id, SecretStr(OPTIONS.crm_client_secret), token
        )
        described = await SalesforceClient(http, TokenSource(http, settings)).describe("Contact")

    assert where == "the system keyring"
    assert (SERVICE, f"{org}|{OPTIONS.crm_client_id}") in memory_keyring.kept
    assert not (tmp_path / "tokens.json").exists()
    [url] = opened
    assert "code_challenge_method=S256" in url and "code_challenge=" in url
    assert "redirect_uri=http%3A%2F%2F127.0.0.1%3A" in url
    assert described["name"] == "Contact"


async def test_without_a_keyring_the_token_goes_to_a_file_only_the_user_can_read(
    org: str, tmp_path: Path
) -> None:
    before = keyring.get_keyring()
    keyring.set_keyring(NoKeyring())
    try:
        store = CredentialStore(tmp_path / "cfg" / "tokens.json")
        async with httpx.AsyncClient() as http:
            where = await login(
                http,
                instance_url=org,
                client_id=OPTIONS.crm_client_id,
                client_secret=None,  # PKCE alone
                store=store,
                open_browser=scripted_browser(http, []),  # type: ignore[arg-type]
                port=0,
            )
        token = store.load(org, OPTIONS.crm_client_id)
    finally:
        keyring.set_keyring(before)

    assert where == str(tmp_path / "cfg" / "tokens.json")
    assert token is not None and token.get_secret_value().startswith("5Aep")
    assert stat.S_IMODE((tmp_path / "cfg" / "tokens.json").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "cfg").stat().st_mode) == 0o700


async def test_a_refused_login_says_why_and_keeps_nothing(
    org: str, memory_keyring: MemoryKeyring, tmp_path: Path
) -> None:
    async with httpx.AsyncClient() as http:
        with pytest.raises(LoginRequired, match="client identifier invalid"):
            await login(
                http,
                instance_url=org,
                client_id="not-the-app",
                client_secret=None,
                store=CredentialStore(tmp_path / "tokens.json"),
                open_browser=scripted_browser(http, []),  # type: ignore[arg-type]
                port=0,
            )

    assert memory_keyring.kept == {}


async def test_a_callback_without_the_logins_state_is_refused_and_the_login_goes_on(
    org: str, memory_keyring: MemoryKeyring, tmp_path: Path
) -> None:
    """Anything on the machine may call the loopback port: a callback that does not carry the
    login's own state (a forged one) is answered 400 and changes nothing; the real one then
    completes the login."""
    forged_status: list[int] = []
    tasks: list[asyncio.Task[None]] = []
    async with httpx.AsyncClient() as http:

        async def forged_then_real(url: str) -> None:
            page = await http.get(url)
            real = page.headers["location"]
            forged = await http.get(real.replace("state=", "state=forged"))
            forged_status.append(forged.status_code)
            await http.get(real)

        def open_url(url: str) -> None:
            tasks.append(asyncio.ensure_future(forged_then_real(url)))

        where = await login(
            http,
            instance_url=org,
            client_id=OPTIONS.crm_client_id,
            client_secret=None,
            store=CredentialStore(tmp_path / "tokens.json"),
            open_browser=open_url,
            port=0,
        )

    assert forged_status == [400]
    assert where == "the system keyring" and len(memory_keyring.kept) == 1


async def test_a_rotated_refresh_token_is_used_from_then_on_and_handed_over(
    org_rotating: str,
) -> None:
    rotated: list[SecretStr] = []
    async with httpx.AsyncClient() as http, httpx.AsyncClient(base_url=org_rotating) as control:
        settings = OAuthSettings(
            org_rotating,
            OPTIONS.crm_client_id,
            SecretStr(OPTIONS.crm_client_secret),
            SecretStr(OPTIONS.crm_refresh_token),
        )
        sf = SalesforceClient(http, TokenSource(http, settings, on_rotated=rotated.append))
        await sf.describe("Contact")
        await control.post("/control/crm/tokens/expire")
        await sf.describe("Case")  # renewed with the rotated token (the first is revoked)

    assert len(rotated) == 2
    assert rotated[0].get_secret_value() != rotated[1].get_secret_value()


async def test_the_code_is_exchanged_only_with_its_pkce_verifier(org: str) -> None:
    query = {
        "response_type": "code",
        "client_id": OPTIONS.crm_client_id,
        "redirect_uri": "http://127.0.0.1:9/callback",
        "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        "code_challenge_method": "S256",
        "state": "s",
    }
    async with httpx.AsyncClient(base_url=org) as http:
        page = await http.get("/services/oauth2/authorize", params=query)
        code = httpx.URL(page.headers["location"]).params["code"]
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "client_id": OPTIONS.crm_client_id,
            "redirect_uri": query["redirect_uri"],
            "code_verifier": "not-the-verifier",
        }
        refused = await http.post("/services/oauth2/token", data=form)

    assert refused.status_code == 400
    assert refused.json() == {
        "error": "invalid_grant",
        "error_description": "invalid code verifier",
    }


def test_a_token_file_that_was_readable_by_others_is_replaced_by_one_that_is_not(
    tmp_path: Path,
) -> None:
    before = keyring.get_keyring()
    keyring.set_keyring(NoKeyring())
    try:
        folder = tmp_path / "cfg"
        folder.mkdir(mode=0o755)
        loose = folder / "tokens.json"
        loose.write_text('{"other|app": "kept"}')
        loose.chmod(0o644)
        store = CredentialStore(loose)
        store.save("https://acme.my.salesforce.com", "app", SecretStr("new-token"))
        other = store.load("other", "app")
    finally:
        keyring.set_keyring(before)

    assert stat.S_IMODE(loose.stat().st_mode) == 0o600
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert other is not None and other.get_secret_value() == "kept"


async def test_over_stdio_the_server_uses_the_kept_token_and_keeps_its_rotation(
    memory_keyring: MemoryKeyring, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    options = SimulatorOptions(rate_limits=False, crm_rotate_refresh_tokens=True)
    async with serve(build_simulator(options)) as sim_url:
        key = (SERVICE, f"{sim_url}|{OPTIONS.crm_client_id}")
        memory_keyring.kept[key] = OPTIONS.crm_refresh_token  # as `crm login` left it
        settings = settings_for(
            sim_url,
            mcp_transport="stdio",
            **{**crm_settings(sim_url), "salesforce_refresh_token": None},
        )
        runtime = build_runtime(settings)
        try:
            async with Client(runtime.mcp) as client:
                described = await call(client, "salesforce_describe", {"objectName": "Case"})
        finally:
            await runtime.aclose()

    assert described["name"] == "Case"
    # The refresh flow ran with the kept token, and the rotated one replaced it.
    assert memory_keyring.kept[key] not in ("", OPTIONS.crm_refresh_token)
