"""The operator page's routes under `/admin` (mounted only when ADMIN_PASSWORD is set).

- `GET /admin`: the page (signed in), else a redirect to the sign-in form;
- `GET /admin/signin`, `POST /admin/signin`, `POST /admin/signout`;
- `GET /admin/api/state?after=<version>`: the board's snapshot as JSON; with `after`, a long
  poll answering as soon as the board moves past that version (at most `POLL_SECONDS`), which
  is how the page updates without reloading;
- `GET /admin/api/audit?tool=&caller=&outcome=&limit=`: the audit trail, newest first
  (`trail.py`).

Every answer is refused unless the Host is one the server serves and the request came over
HTTPS or between loopback addresses (`app.admin.access`). The page is one autoescaped template;
its inline script and style carry a per-response CSP nonce and it loads nothing from elsewhere.
It draws every value with `textContent`.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import structlog
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
)
from starlette.routing import BaseRoute, Route

from app.admin import trail
from app.admin.access import (
    COOKIE,
    SESSION_SECONDS,
    SIGNIN_COOKIE,
    AdminAccess,
    AdminSession,
    Transport,
    cookie_name,
    host_allowed,
    same_origin,
    transport_of,
)
from app.admin.board import OperationsBoard
from app.audit import Audit
from app.config import Settings
from app.limits import Counters

log = structlog.get_logger(__name__)

POLL_SECONDS = 20.0
"""A long poll answers within this (Heroku's router ends a request with no answer at 30 s)."""
FORM_BYTES = 4096
TEMPLATES = Environment(
    loader=FileSystemLoader(str(Path(__file__).resolve().parent)),
    autoescape=select_autoescape(default=True, default_for_string=True),
)
NOT_HTTPS = (
    "The operator page is served only over HTTPS, or over plain HTTP between loopback "
    "addresses (a browser on this machine at http://127.0.0.1 or http://localhost). Behind a "
    "proxy that terminates TLS (Heroku's router), set TRUSTED_PROXY_HOPS so its "
    "X-Forwarded-Proto is believed."
)
UNKNOWN_HOST = "This server does not serve that host name (see PUBLIC_URL and MCP_ALLOWED_HOSTS)."

Health = Callable[[], Awaitable[tuple[int, dict[str, object]]]]


def _csp(nonce: str) -> str:
    return "; ".join(
        [
            "default-src 'none'",
            f"script-src 'nonce-{nonce}'",
            f"style-src 'nonce-{nonce}'",
            "connect-src 'self'",
            "img-src 'self' data:",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ]
    )


PRIVATE = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    # Not no-referrer: under it Chromium sends `Origin: null` with the page's own forms.
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}


def _html(template: str, status: int = 200, **values: Any) -> HTMLResponse:
    nonce = secrets.token_urlsafe(18)
    body = TEMPLATES.get_template(template).render(nonce=nonce, **values)
    headers = {**PRIVATE, "Content-Security-Policy": _csp(nonce)}
    return HTMLResponse(body, status_code=status, headers=headers)


def _json(body: dict[str, Any], status: int = 200) -> JSONResponse:
    return JSONResponse(body, status_code=status, headers=PRIVATE)


class AdminPage:
    def __init__(
        self,
        access: AdminAccess,
        board: OperationsBoard,
        allowed_hosts: list[str],
        health: Health,
        audit: Audit,
    ) -> None:
        self._access = access
        self._board = board
        self._hosts = allowed_hosts
        self._health = health
        self._audit = audit

    # -- the gate --------------------------------------------------------------------------------

    def _refusal(self, request: Request) -> tuple[Response | None, Transport]:
        """A refusal for a request from the wrong host or over plain HTTP from elsewhere."""
        transport = transport_of(request, self._access.proxy_hops)
        if not host_allowed(request.headers.get("host", ""), self._hosts):
            return PlainTextResponse(UNKNOWN_HOST, status_code=421, headers=PRIVATE), transport
        if not transport.acceptable:
            log.warning("admin.refused", reason="not_https")
            return PlainTextResponse(NOT_HTTPS, status_code=403, headers=PRIVATE), transport
        return None, transport

    def _session(self, request: Request, transport: Transport) -> AdminSession | None:
        return self._access.session(request.cookies.get(cookie_name(transport, COOKIE)))

    def _set_cookie(
        self, response: Response, transport: Transport, base: str, value: str, seconds: int
    ) -> None:
        response.set_cookie(
            cookie_name(transport, base),
            value,
            max_age=seconds,
            path="/",
            secure=transport.https,
            httponly=True,
            samesite="strict",
        )

    def _forget_cookie(self, response: Response, transport: Transport, base: str) -> None:
        response.delete_cookie(
            cookie_name(transport, base),
            path="/",
            secure=transport.https,
            httponly=True,
            samesite="strict",
        )

    # -- sign-in ---------------------------------------------------------------------------------

    def _signin_form(self, transport: Transport, problem: str | None, status: int) -> Response:
        token = self._access.new_signin_token()
        response = _html("signin.html", status, csrf=token, problem=problem)
        self._set_cookie(response, transport, SIGNIN_COOKIE, token, 3600)
        return response

    async def signin_form(self, request: Request) -> Response:
        refusal, transport = self._refusal(request)
        if refusal is not None:
            return refusal
        if self._session(request, transport) is not None:
            return RedirectResponse("/admin", status_code=303, headers=PRIVATE)
        return self._signin_form(transport, None, 200)

    async def signin(self, request: Request) -> Response:
        refusal, transport = self._refusal(request)
        if refusal is not None:
            return refusal
        form = await _form(request)
        if form is None:
            return PlainTextResponse("The sign-in form is too large.", 413, headers=PRIVATE)
        expected = request.cookies.get(cookie_name(transport, SIGNIN_COOKIE))
        if not same_origin(request, transport) or not self._access.token_fits(
            expected, form.get("csrf")
        ):
            log.warning("admin.signin_refused", reason="csrf")
            problem = "The sign-in form expired or did not come from this page; try again."
            return self._signin_form(transport, problem, 403)
        wait = await self._access.attempt_allowed(request)
        if wait > 0:
            self._board.refused("ADMIN_SIGNIN", None)
            log.warning("admin.signin_refused", reason="rate")
            minutes = math.ceil(wait / 60)
            problem = f"Too many sign-in attempts from your address; try again in {minutes} min."
            response = self._signin_form(transport, problem, 429)
            response.headers["Retry-After"] = str(math.ceil(wait))
            return response
        if not self._access.password_fits(form.get("password", "")):
            log.warning("admin.signin_refused", reason="password")
            return self._signin_form(transport, "Wrong password.", 401)
        log.info("admin.signed_in")
        response = RedirectResponse("/admin", status_code=303, headers=PRIVATE)
        session = self._access.new_session()
        self._set_cookie(response, transport, COOKIE, session, SESSION_SECONDS)
        self._forget_cookie(response, transport, SIGNIN_COOKIE)
        return response

    async def signout(self, request: Request) -> Response:
        refusal, transport = self._refusal(request)
        if refusal is not None:
            return refusal
        session = self._session(request, transport)
        form = await _form(request)
        if session is None:
            return RedirectResponse("/admin/signin", status_code=303, headers=PRIVATE)
        if (
            form is None
            or not same_origin(request, transport)
            or not self._access.token_fits(session.csrf, form.get("csrf"))
        ):
            log.warning("admin.signout_refused", reason="csrf")
            return PlainTextResponse(
                "Refused: the request did not come from the operator page (CSRF token).",
                status_code=403,
                headers=PRIVATE,
            )
        self._access.revoke(session)
        log.info("admin.signed_out")
        response = RedirectResponse("/admin/signin", status_code=303, headers=PRIVATE)
        self._forget_cookie(response, transport, COOKIE)
        return response

    # -- the page and its data -------------------------------------------------------------------

    async def page(self, request: Request) -> Response:
        refusal, transport = self._refusal(request)
        if refusal is not None:
            return refusal
        session = self._session(request, transport)
        if session is None:
            return RedirectResponse("/admin/signin", status_code=303, headers=PRIVATE)
        return _html("page.html", csrf=session.csrf, process=self._board.process)

    def _api_refusal(self, request: Request) -> Response | None:
        refusal, transport = self._refusal(request)
        if refusal is not None:
            return refusal
        if self._session(request, transport) is None:
            return _json({"error": "Sign in at /admin/signin first."}, 401)
        return None

    async def state(self, request: Request) -> Response:
        refusal = self._api_refusal(request)
        if refusal is not None:
            return refusal
        after = request.query_params.get("after")
        if after is not None:
            if not after.isdigit() or len(after) > 18:
                return _json({"error": "after must be a version the state returned."}, 400)
            await self._board.changed(int(after), POLL_SECONDS)
        snapshot = self._board.snapshot()
        _, health = await self._health()
        snapshot["health"] = {
            "status": health.get("status"),
            "problem": health.get("problem"),
            "stateStore": health.get("state"),
        }
        return _json(snapshot)

    async def audit(self, request: Request) -> Response:
        refusal = self._api_refusal(request)
        if refusal is not None:
            return refusal
        status, body = await trail.recent(self._audit, request.query_params)
        return _json(body, status)

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/admin", self.page, methods=["GET"]),
            Route("/admin/signin", self.signin_form, methods=["GET"]),
            Route("/admin/signin", self.signin, methods=["POST"]),
            Route("/admin/signout", self.signout, methods=["POST"]),
            Route("/admin/api/state", self.state, methods=["GET"]),
            Route("/admin/api/audit", self.audit, methods=["GET"]),
        ]


async def _form(request: Request) -> dict[str, str] | None:
    """A small urlencoded form's fields (the first value of each); None when it is too large."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > FORM_BYTES:
            return None
    fields = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    return {name: values[0] for name, values in fields.items()}


def admin_routes(
    settings: Settings, board: OperationsBoard, counters: Counters, health: Health, audit: Audit
) -> list[BaseRoute]:
    """The routes under /admin, for `build_app` when ADMIN_PASSWORD is set."""
    assert settings.admin_password is not None
    access = AdminAccess(settings.admin_password, counters, settings.trusted_proxy_hops)
    return AdminPage(access, board, settings.allowed_hosts(), health, audit).routes()
