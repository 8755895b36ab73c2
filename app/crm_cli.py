"""`miaw-mcp crm login`: the command around `app.salesforce.login` (settings, browser, output)."""

from __future__ import annotations

import argparse
import asyncio
import sys
import webbrowser

import httpx

from app.config import ConfigError, load_settings
from app.salesforce.errors import SalesforceError
from app.salesforce.login import LOGIN_PORT, CredentialStore, default_file, login


def add_crm_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    crm = subparsers.add_parser("crm", help="the CRM toolset's Salesforce access")
    commands = crm.add_subparsers(dest="crm_command", required=True)
    login_parser = commands.add_parser(
        "login",
        help="log in to Salesforce in the browser and keep the refresh token",
        description="Run Salesforce's OAuth web-server flow with PKCE for the connected app in "
        "SALESFORCE_CLIENT_ID (and SALESFORCE_CLIENT_SECRET) at SALESFORCE_INSTANCE_URL: log in "
        "and allow access in the browser; the refresh token is kept in the system keyring (or "
        "a file only you can read) and used by the CRM tools when SALESFORCE_REFRESH_TOKEN is "
        "not set. The connected app's callback URL must be http://127.0.0.1:PORT/callback.",
    )
    login_parser.add_argument(
        "--port",
        type=int,
        default=LOGIN_PORT,
        help=f"the loopback port of the callback URL registered on the connected app "
        f"(http://127.0.0.1:PORT/callback; default {LOGIN_PORT})",
    )
    login_parser.add_argument(
        "--no-browser", action="store_true", help="print the URL instead of opening a browser"
    )


def run_crm(args: argparse.Namespace) -> int:
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    missing = [
        name
        for name in ("SALESFORCE_INSTANCE_URL", "SALESFORCE_CLIENT_ID")
        if not getattr(settings, name.lower())
    ]
    if missing:
        print(f"error: crm login needs {', '.join(missing)}", file=sys.stderr)
        return 2
    assert settings.salesforce_instance_url and settings.salesforce_client_id

    if settings.salesforce_refresh_token is not None:
        print(
            "warning: SALESFORCE_REFRESH_TOKEN is set: the server uses it, not the token this "
            "login keeps. Unset it to use this login.",
            file=sys.stderr,
        )

    def show(url: str) -> None:
        print(f"Log in to Salesforce and allow access:\n  {url}", flush=True)
        if not args.no_browser:
            # A console browser would hold the loop until it exits: open it beside the loop.
            asyncio.get_running_loop().run_in_executor(None, webbrowser.open, url)

    async def run() -> str:
        async with httpx.AsyncClient(timeout=30) as http:
            return await login(
                http,
                instance_url=settings.salesforce_instance_url or "",
                client_id=settings.salesforce_client_id or "",
                client_secret=settings.salesforce_client_secret,
                store=CredentialStore(default_file()),
                open_browser=show,
                port=args.port,
            )

    try:
        where = asyncio.run(run())
    except SalesforceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"error: cannot answer on 127.0.0.1:{args.port} ({exc.strerror})", file=sys.stderr)
        return 1
    print(f"Logged in. The refresh token is kept in {where}.")
    return 0
