"""Sign-in (AUTH_MODE): `/mcp` as an OAuth resource server, against a test identity provider on
loopback whose keys are generated per run."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import jwt
import pytest

from app.config import ConfigError, load_settings
from tests.identity_provider import IdentityProvider, identity_provider, new_key
from tests.mcp.conftest import Stack, StackFactory, ToolFailed, raw_call

AUDIENCE = "https://chat.example.com/mcp"
METADATA = "https://chat.example.com/.well-known/oauth-protected-resource/mcp"
ROOT_METADATA = "/.well-known/oauth-protected-resource"
LIST_TOOLS = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}


@pytest.fixture
async def idp() -> AsyncIterator[IdentityProvider]:
    async with identity_provider() as provider:
        yield provider


async def signin_stack(
    stack_factory: StackFactory, idp: IdentityProvider, mode: str, **settings: Any
) -> Stack:
    return await stack_factory(
        auth_mode=mode, auth_issuer=idp.issuer, auth_audience=AUDIENCE, **settings
    )


async def post(url: str, body: Any, token: str | None = None) -> httpx.Response:
    headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    async with httpx.AsyncClient(timeout=30) as http:
        return await http.post(url, content=json.dumps(body), headers=headers)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_the_protected_resource_metadata_names_this_server_and_its_issuer(
    stack_factory: StackFactory, idp: IdentityProvider
) -> None:
    stack = await signin_stack(stack_factory, idp, "required", auth_required_scopes="chat")
    base = stack.mcp_url.removesuffix("/mcp")
    async with httpx.AsyncClient() as http:
        for path in ["/.well-known/oauth-protected-resource/mcp", ROOT_METADATA]:
            response = await http.get(base + path)
            assert response.status_code == 200, path
            assert response.json() == {
                "resource": AUDIENCE,
                "authorization_servers": [idp.issuer],
                "scopes_supported": ["chat"],
                "bearer_methods_supported": ["header"],
                "resource_name": "Salesforce live chat handoff",
            }
        # Without sign-in there is nothing to describe.
        plain = await stack_factory()
        response = await http.get(plain.mcp_url.removesuffix("/mcp") + path)
        assert response.status_code == 404


async def test_required_mode_refuses_every_bad_token_with_401_and_a_pointer_to_the_metadata(
    stack_factory: StackFactory, idp: IdentityProvider
) -> None:
    stack = await signin_stack(stack_factory, idp, "required")
    missing = await post(stack.mcp_url, LIST_TOOLS)
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == f'Bearer resource_metadata="{METADATA}"'

    wrong_key = new_key()
    cases = {
        "expired": (idp.token(AUDIENCE, expires_in=-120), "The access token has expired."),
        "wrong audience": (
            idp.token("https://other.example.com/mcp"),
            "The access token was not issued for this server.",
        ),
        "wrong issuer": (
            idp.token(AUDIENCE, issuer="https://evil.example.com"),
            "The access token was not issued by AUTH_ISSUER.",
        ),
        "bad signature": (
            idp.token(AUDIENCE, key=wrong_key),
            "The access token's signature is not valid.",
        ),
        "unknown key": (
            idp.token(AUDIENCE, key=wrong_key, kid="not-published"),
            "The access token is signed with a key the issuer does not publish.",
        ),
        "no subject": (idp.token(AUDIENCE, subject=""), "The access token has no sub claim."),
        "shared secret": (
            jwt.encode(
                {"iss": idp.issuer, "aud": AUDIENCE, "sub": "x", "exp": 4102444800},
                "s" * 32,
                algorithm="HS256",
                headers={"kid": idp.kid},
            ),
            "The access token is not signed with a public-key algorithm.",
        ),
        "garbage": ("not-a-jwt", "The access token is not a well-formed JWT."),
    }
    for case, (token, description) in cases.items():
        response = await post(stack.mcp_url, LIST_TOOLS, token)
        assert response.status_code == 401, case
        assert response.headers["www-authenticate"] == (
            f'Bearer error="invalid_token", error_description="{description}", '
            f'resource_metadata="{METADATA}"'
        ), case
        assert response.json()["error"] == "invalid_token", case

    good = await post(stack.mcp_url, LIST_TOOLS, idp.token(AUDIENCE))
    assert good.status_code == 200
    tools = {tool["name"]: tool for tool in good.json()["result"]["tools"]}
    assert {name: tool["_meta"]["securitySchemes"] for name, tool in tools.items()} == {
        name: [{"type": "oauth2", "scopes": []}] for name in tools
    }


async def test_a_token_without_a_required_scope_gets_403(
    stack_factory: StackFactory, idp: IdentityProvider
) -> None:
    stack = await signin_stack(stack_factory, idp, "required", auth_required_scopes="chat,support")
    response = await post(stack.mcp_url, LIST_TOOLS, idp.token(AUDIENCE, scope="chat"))
    assert response.status_code == 403
    assert response.headers["www-authenticate"] == (
        'Bearer error="insufficient_scope", error_description="The access token lacks a '
        f'required scope.", scope="chat support", resource_metadata="{METADATA}"'
    )
    # Okta and Entra list scopes in `scp`.
    for token in [
        idp.token(AUDIENCE, scope="support chat"),
        idp.token(AUDIENCE, scp=["chat", "support"]),
    ]:
        assert (await post(stack.mcp_url, LIST_TOOLS, token)).status_code == 200


async def test_optional_mode_serves_guests_and_signed_in_users_and_refuses_bad_tokens(
    stack_factory: StackFactory, idp: IdentityProvider
) -> None:
    stack = await signin_stack(stack_factory, idp, "optional")
    # A guest: no token, a whole start.
    guest = await raw_call(stack.mcp_url, "generate_guest_access_token")
    await raw_call(stack.mcp_url, "create_conversation", {"sessionId": guest["sessionId"]})

    # A signed-in user (another MCP client: no ChatGPT subject) owns the chat it starts.
    ana = bearer(idp.token(AUDIENCE, subject="ana"))
    session = await raw_call(stack.mcp_url, "generate_guest_access_token", headers=ana)
    handle = {"sessionId": session["sessionId"]}
    await raw_call(stack.mcp_url, "create_conversation", handle, headers=ana)
    for someone_else in [bearer(idp.token(AUDIENCE, subject="bob")), {}]:
        with pytest.raises(ToolFailed, match="belongs to another user"):
            await raw_call(stack.mcp_url, "create_conversation", handle, headers=someone_else)

    # A token that is sent must be valid: never silently a guest.
    expired = await post(stack.mcp_url, LIST_TOOLS, idp.token(AUDIENCE, expires_in=-120))
    assert expired.status_code == 401
    assert 'error="invalid_token"' in expired.headers["www-authenticate"]

    tools = (await post(stack.mcp_url, LIST_TOOLS)).json()["result"]["tools"]
    assert {json.dumps(tool["_meta"]["securitySchemes"]) for tool in tools} == {
        json.dumps([{"type": "noauth"}, {"type": "oauth2", "scopes": []}])
    }


async def test_a_rotated_key_is_fetched_when_a_token_names_it(
    stack_factory: StackFactory, idp: IdentityProvider
) -> None:
    stack = await signin_stack(stack_factory, idp, "required")
    assert (await post(stack.mcp_url, LIST_TOOLS, idp.token(AUDIENCE))).status_code == 200
    assert (await post(stack.mcp_url, LIST_TOOLS, idp.token(AUDIENCE))).status_code == 200
    assert idp.jwks_fetches == 1  # cached
    idp.rotate()
    assert (await post(stack.mcp_url, LIST_TOOLS, idp.token(AUDIENCE))).status_code == 200
    assert idp.jwks_fetches == 2
    # A token naming a key nobody published does not make every request fetch the keys again.
    for _ in range(3):
        made_up = idp.token(AUDIENCE, kid="nope", key=new_key())
        response = await post(stack.mcp_url, LIST_TOOLS, made_up)
        assert response.status_code == 401
    assert idp.jwks_fetches == 2


async def test_no_sign_in_by_default_and_tools_say_so(stack: Stack) -> None:
    response = await post(stack.mcp_url, LIST_TOOLS, "anything")
    assert response.status_code == 200  # AUTH_MODE=none ignores Authorization
    assert {
        json.dumps(tool["_meta"]["securitySchemes"]) for tool in response.json()["result"]["tools"]
    } == {json.dumps([{"type": "noauth"}])}


def test_sign_in_settings_name_what_is_missing() -> None:
    with pytest.raises(ConfigError, match="AUTH_MODE=required needs AUTH_ISSUER"):
        load_settings(_env_file=None, auth_mode="required")
    with pytest.raises(
        ConfigError, match=r"AUTH_MODE=optional needs PUBLIC_URL \(or AUTH_AUDIENCE"
    ):
        load_settings(_env_file=None, auth_mode="optional", auth_issuer="https://idp.example.com")
    with pytest.raises(ConfigError, match=r"AUTH_ISSUER: .*absolute URL"):
        load_settings(_env_file=None, auth_mode="optional", auth_issuer="idp")
    with pytest.raises(ConfigError, match="AUTH_MODE"):
        load_settings(_env_file=None, auth_mode="sometimes")
    settings = load_settings(
        _env_file=None,
        auth_mode="Required",
        auth_issuer="https://idp.example.com/",
        public_url="https://chat.example.com",
    )
    signin = settings.signin_settings()
    assert signin is not None and signin.audience == AUDIENCE and signin.metadata_url == METADATA
