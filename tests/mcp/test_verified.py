"""Verified customers end to end: a user signed in with the test identity provider reaches the
simulator's org as who they are; the org checks the identity token against this server's key set
(`/.well-known/jwks.json`); a token the org does not accept is reported, never used as a guest's."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from app.config import ConfigError, load_settings
from app.signin import SignedInUser
from tests.identity_provider import IdentityProvider, identity_provider, new_key
from tests.mcp.conftest import Stack, StackFactory, ToolFailed, raw_call
from tests.mcp.test_signin import AUDIENCE, bearer

VERIFY = "/control/user-verification"
REVOKE = "DELETE /iamessage/api/v2/authorization/authenticated/access-token"


def pem() -> str:
    key = new_key()
    raw = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return raw.decode().replace("\n", "\\n")  # as a one-line config var


@pytest.fixture
async def idp() -> AsyncIterator[IdentityProvider]:
    async with identity_provider() as provider:
        yield provider


async def verified_stack(stack_factory: StackFactory, idp: IdentityProvider) -> Stack:
    stack = await stack_factory(
        auth_mode="optional",
        auth_issuer=idp.issuer,
        auth_audience=AUDIENCE,
        public_url="https://chat.example.com",
        identity_signing_key=pem(),
        identity_claims="email",
    )
    jwks_url = stack.mcp_url.removesuffix("/mcp") + "/.well-known/jwks.json"
    response = await stack.control.put(VERIFY, json={"jwksUrl": jwks_url})
    assert response.status_code == 200, response.text
    return stack


async def test_a_signed_in_customer_chats_verified_and_the_agent_sees_who_they_are(
    stack_factory: StackFactory, idp: IdentityProvider
) -> None:
    stack = await verified_stack(stack_factory, idp)
    ana = bearer(idp.token(AUDIENCE, subject="ana-42", email="ana@example.com", phone="555"))
    session = await raw_call(stack.mcp_url, "generate_guest_access_token", headers=ana)
    assert session["verified"] is True
    handle = {"sessionId": session["sessionId"]}
    created = await raw_call(stack.mcp_url, "create_conversation", handle, headers=ana)
    conversation = await stack.conversation(created["conversationId"])
    assert conversation["subject"] == "v2/iamessage/AUTH/Demo_Keyset/uid:ana-42"

    # The whole chat works as a guest's does.
    ids = {**handle, "conversationId": created["conversationId"]}
    await raw_call(stack.mcp_url, "send_message", {**ids, "text": "hello"}, headers=ana)
    assert await stack.user_texts(created["conversationId"]) == ["hello"]

    # Anonymous users of the same server are still guests.
    guest = await raw_call(stack.mcp_url, "generate_guest_access_token")
    assert guest["verified"] is False


async def test_the_published_key_set_verifies_the_identity_token_and_only_named_claims_pass(
    stack_factory: StackFactory, idp: IdentityProvider
) -> None:
    stack = await verified_stack(stack_factory, idp)
    async with httpx.AsyncClient() as http:
        key_set = (
            await http.get(stack.mcp_url.removesuffix("/mcp") + "/.well-known/jwks.json")
        ).json()
    assert [(k["kty"], k["alg"], k["use"]) for k in key_set["keys"]] == [("RSA", "RS256", "sig")]
    assert "d" not in key_set["keys"][0]  # the public half only
    signer = load_settings(
        _env_file=None,
        auth_mode="optional",
        auth_issuer=idp.issuer,
        public_url="https://chat.example.com",
        identity_signing_key=pem(),
        identity_claims="email",
    ).customer_identity()
    assert signer is not None
    user = SignedInUser(
        issuer=idp.issuer,
        subject="ana-42",
        scopes=frozenset(),
        claims={"email": "ana@example.com", "phone": "555"},
    )
    claims = jwt.decode(
        signer.token_for(user),
        jwt.PyJWKSet.from_dict(signer.jwks()).keys[0].key,
        algorithms=["RS256"],
        options={"verify_aud": False},
    )
    assert claims["iss"] == "https://chat.example.com" and claims["sub"] == "ana-42"
    assert claims["email"] == "ana@example.com" and "phone" not in claims
    assert 0 < claims["exp"] - claims["iat"] <= 300


@pytest.mark.parametrize("fallback", [False, True], ids=["refused", "silent-guest-fallback"])
async def test_an_identity_the_org_does_not_accept_is_an_error_never_a_guest_chat(
    stack_factory: StackFactory, idp: IdentityProvider, fallback: bool
) -> None:
    stack = await verified_stack(stack_factory, idp)
    # The org's key set is someone else's: it cannot verify this server's identity tokens.
    other = f"{idp.issuer}/jwks"
    await stack.control.put(VERIFY, json={"jwksUrl": other, "fallbackToGuest": fallback})
    ana = bearer(idp.token(AUDIENCE, subject="ana-42"))
    with pytest.raises(ToolFailed) as refused:
        await raw_call(stack.mcp_url, "generate_guest_access_token", headers=ana)
    assert "Salesforce did not accept the signed-in customer's identity" in str(refused.value)
    assert "User Verification" in str(refused.value)
    requests = (await stack.control.get("/control/stats")).json()["requests"]
    # The anonymous token the org answered with is given back at once, never used.
    assert requests.get(REVOKE, 0) == (1 if fallback else 0)
    listing = (await stack.control.get("/control/conversations")).json()["conversations"]
    assert listing == []


def test_identity_signing_settings_are_checked_at_start() -> None:
    with pytest.raises(ConfigError, match=r"IDENTITY_SIGNING_KEY: .*RSA private key in PEM"):
        load_settings(_env_file=None, identity_signing_key="not a key")
    with pytest.raises(ConfigError, match="IDENTITY_SIGNING_KEY is set but AUTH_MODE is none"):
        load_settings(_env_file=None, identity_signing_key=pem())


async def test_a_verified_customer_goes_on_with_an_open_conversation_from_a_new_chat(
    stack_factory: StackFactory, idp: IdentityProvider
) -> None:
    stack = await verified_stack(stack_factory, idp)
    ana = bearer(idp.token(AUDIENCE, subject="ana-42"))
    first = await raw_call(stack.mcp_url, "generate_guest_access_token", headers=ana)
    assert first["openConversations"] == []
    handle = {"sessionId": first["sessionId"]}
    created = await raw_call(stack.mcp_url, "create_conversation", handle, headers=ana)
    cid = created["conversationId"]
    await raw_call(
        stack.mcp_url,
        "send_message",
        {**handle, "conversationId": cid, "text": "my order"},
        headers=ana,
    )

    # A new ChatGPT chat: a new session for the same customer finds the conversation open.
    later = await raw_call(stack.mcp_url, "generate_guest_access_token", headers=ana)
    assert later["openConversations"] == [cid]
    ids = {"sessionId": later["sessionId"], "conversationId": cid}
    page = await raw_call(
        stack.mcp_url, "list_conversation_entries", {**ids, "waitSeconds": 1}, headers=ana
    )
    assert "my order" in [entry.get("text") for entry in page["entries"]]
    await raw_call(stack.mcp_url, "send_message", {**ids, "text": "still there?"}, headers=ana)
    assert await stack.user_texts(cid) == ["my order", "still there?"]
    # Someone else signed in sees none of it.
    bob = await raw_call(
        stack.mcp_url,
        "generate_guest_access_token",
        headers=bearer(idp.token(AUDIENCE, subject="bob")),
    )
    assert bob["openConversations"] == []
