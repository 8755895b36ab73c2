"""`miaw-mcp crm login`: the OAuth authorization-code flow with PKCE, in the browser, answered on a
loopback port; the refresh token it yields is kept in the OS credential store (`keyring`), or,
where there is none, in a file only the user can read. The server finds it there when
SALESFORCE_REFRESH_TOKEN is not set. Tokens are never printed or logged."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import os
import secrets
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import keyring
from pydantic import SecretStr

from app.salesforce.errors import LoginRequired, SalesforceError
from app.salesforce.oauth import token_request

SERVICE = "miaw-mcp"
SCOPES = "api refresh_token"
LOGIN_SECONDS = 300.0
LOGIN_PORT = 1717
"""The loopback port of the callback: the connected app's callback URL must be
http://127.0.0.1:1717/callback (Salesforce matches it exactly); --port changes it."""
DONE_PAGE = (
    b"<!doctype html><meta charset=utf-8><title>miaw-mcp</title>"
    b"<p>Salesforce answered. You can close this tab and go back to the terminal."
)


def default_file() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "miaw-mcp" / "salesforce-tokens.json"


@dataclass
class CredentialStore:
    """Refresh tokens by org and connected app: the OS credential store, else `file` (0600)."""

    file: Path

    @staticmethod
    def key(instance_url: str, client_id: str) -> str:
        return f"{instance_url.rstrip('/')}|{client_id}"

    def save(self, instance_url: str, client_id: str, token: SecretStr) -> str:
        """Keep `token`; returns where: the system keyring, or the file's path."""
        key = self.key(instance_url, client_id)
        with contextlib.suppress(Exception):  # no usable keyring (a server, a container)
            keyring.set_password(SERVICE, key, token.get_secret_value())
            return "the system keyring"
        kept = self._read_file()
        kept[key] = token.get_secret_value()
        self._write_file(kept)
        return str(self.file)

    def _write_file(self, kept: dict[str, str]) -> None:
        """Replace the file at once with one made readable by the user only before anything is
        written to it (in a directory only the user can enter)."""
        folder = self.file.parent
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(folder, 0o700)
        fd, temporary = tempfile.mkstemp(dir=folder, prefix=".tokens-")  # made 0600
        try:
            with os.fdopen(fd, "w") as out:
                json.dump(kept, out)
            os.replace(temporary, self.file)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise

    def load(self, instance_url: str, client_id: str) -> SecretStr | None:
        key = self.key(instance_url, client_id)
        found: str | None = None
        with contextlib.suppress(Exception):  # no usable keyring: the file is read instead
            found = keyring.get_password(SERVICE, key)
        if found is None:
            found = self._read_file().get(key)
        return SecretStr(found) if found else None

    def _read_file(self) -> dict[str, str]:
        try:
            data = json.loads(self.file.read_text())
        except (OSError, ValueError):
            return {}
        return (
            {k: v for k, v in data.items() if isinstance(v, str)} if isinstance(data, dict) else {}
        )


def pkce_pair() -> tuple[str, str]:
    """(verifier, S256 challenge)."""
    verifier = secrets.token_urlsafe(64)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


async def _callback(port: int, state: str) -> tuple[asyncio.Server, asyncio.Future[dict[str, str]]]:
    """An HTTP server on 127.0.0.1:`port`; the future gets the query parameters of the first
    callback that carries `state` (others, from anything else on the machine, get a 400 and
    change nothing)."""
    loop = asyncio.get_running_loop()
    answered: asyncio.Future[dict[str, str]] = loop.create_future()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = (await reader.readline()).decode("latin-1")
            while (await reader.readline()).strip():
                pass  # headers
            parts = line.split()
            target = urlsplit(parts[1]) if len(parts) >= 2 else None
            if target is None or target.path != "/callback":
                writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
                return
            params = {k: v[0] for k, v in parse_qs(target.query).items()}
            if not secrets.compare_digest(params.get("state", ""), state):
                writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
                return
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n"
                + f"Content-Length: {len(DONE_PAGE)}\r\nConnection: close\r\n\r\n".encode()
                + DONE_PAGE
            )
            if not answered.done():
                answered.set_result(params)
        finally:
            with contextlib.suppress(Exception):
                await writer.drain()
                writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", port)
    return server, answered


async def login(
    http: httpx.AsyncClient,
    *,
    instance_url: str,
    client_id: str,
    client_secret: SecretStr | None,
    store: CredentialStore,
    open_browser: Callable[[str], object],
    port: int = LOGIN_PORT,
    wait_seconds: float = LOGIN_SECONDS,
) -> str:
    """Run the flow; returns where the refresh token was kept. `open_browser(url)` shows the
    authorization page (the user logs in and allows access there)."""
    verifier, challenge = pkce_pair()
    state = secrets.token_urlsafe(24)
    server, answered = await _callback(port, state)
    try:
        bound = server.sockets[0].getsockname()[1]
        redirect_uri = f"http://127.0.0.1:{bound}/callback"
        query = urlencode(
            {
                "response_type": "code",
                "client_id": client_id,
                "redirect_uri": redirect_uri,
                "scope": SCOPES,
                "state": state,
                "code_challenge": challenge,
                "code_challenge_method": "S256",
            }
        )
        open_browser(f"{instance_url.rstrip('/')}/services/oauth2/authorize?{query}")
        try:
            async with asyncio.timeout(wait_seconds):
                params = await answered
        except TimeoutError:
            raise LoginRequired(
                f"No answer from the browser within {wait_seconds:g} s; run the login again."
            ) from None
    finally:
        server.close()
    if "error" in params:
        reason = params.get("error_description") or params["error"]
        raise LoginRequired(f"Salesforce refused the login: {reason}.")
    code = params.get("code")
    if not code:
        raise LoginRequired("The login's answer had no authorization code; try again.")
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "code_verifier": verifier,
    }
    if client_secret is not None:
        form["client_secret"] = client_secret.get_secret_value()
    body = await token_request(http, instance_url, form)
    refresh = body.get("refresh_token") if isinstance(body, dict) else None
    if not isinstance(refresh, str) or not refresh:
        raise SalesforceError(
            "Salesforce gave no refresh token: add the 'refresh_token' (offline access) scope "
            "to the connected app."
        )
    return store.save(instance_url, client_id, SecretStr(refresh))
