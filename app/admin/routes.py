"""The operator page's routes under `/admin` (mounted only when ADMIN_PASSWORD is set).

- `GET /admin`: the page (signed in), else a redirect to the sign-in form;
- `GET /admin/signin`, `POST /admin/signin`, `POST /admin/signout`;
- `GET /admin/api/state?after=<version>`: the board's snapshot as JSON; with `after`, a long
  poll answering as soon as the board moves past that version (at most `POLL_SECONDS`), which
  is how the page updates without reloading. A version names the board (the process) it
  counts: one of another process's waits for this board to move;
- `GET /admin/api/audit?tool=&caller=&outcome=&limit=&after=`: the audit trail, newest first
  (`trail.py`).

Every answer is refused unless the Host is one the server serves and the request came over
HTTPS or between loopback addresses (`transport.py`); HTTPS answers carry HSTS. While Redis
(with REDIS_URL: the sign-in budgets, the revocations) does not answer, every answer that needs
it is a 503 and nobody gets in. The page is one autoescaped template (`answers.py`); its inline
script and style carry a per-response CSP nonce and it loads nothing from elsewhere. It draws
every value with `textContent`.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Awaitable, Callable

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import (
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
    signing_secret,
)
from app.admin.answers import PRIVATE, html, json_answer, small_form
from app.admin.board import OperationsBoard
from app.admin.revocations import MemoryRevocations, RedisRevocations, Revocations
from app.admin.transport import (
    HSTS,
    Transport,
    cookie_name,
    host_allowed,
    same_origin,
    transport_of,
)
from app.audit import Audit
from app.config import Settings
from app.limits import Counters

log = structlog.get_logger(__name__)

POLL_SECONDS = 20.0
"""A long poll answers within this (Heroku's router ends a request with no answer at 30 s)."""
NOT_HTTPS = (
    "The operator page is served only over HTTPS, or over plain HTTP between loopback "
    "addresses (a browser on this machine at http://127.0.0.1 or http://localhost). Behind a "
    "proxy that terminates TLS (Heroku's router), set TRUSTED_PROXY_HOPS so its "
    "X-Forwarded-Proto is believed."
)
UNKNOWN_HOST = "This server does not serve that host name (see PUBLIC_URL and MCP_ALLOWED_HOSTS)."
REDIS_DOWN = (
    "The operator page's shared state (Redis) does not answer, so sign-ins and sessions cannot "
    "be checked now; try again shortly."
)
VERSION = re.compile(r"([0-9a-f]{1,16})\.([0-9]{1,18})")
"""`after`: a version the state returned, `<board>.<n>` (`OperationsBoard.version_token`)."""

Health = Callable[[], Awaitable[tuple[int, dict[str, object]]]]
Handler = Callable[[Request], Awaitable[Response]]


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

    async def _session(self, request: Request, transport: Transport) -> AdminSession | None:
        return await self._access.session(request.cookies.get(cookie_name(transport, COOKIE)))

    def _guarded(self, handler: Handler) -> Handler:
        """Every answer: Redis not answering (the sign-in budgets, the revocations) refuses the
        request with a 503 saying so, letting nobody in; HTTPS answers carry HSTS."""

        @functools.wraps(handler)
        async def guarded(request: Request) -> Response:
            try:
                response = await handler(request)
            except RedisError as exc:
                log.warning("admin.redis_unavailable", error=type(exc).__name__)
                if request.url.path.startswith("/admin/api/"):
                    response = json_answer({"error": REDIS_DOWN}, 503)
                else:
                    response = PlainTextResponse(REDIS_DOWN, status_code=503, headers=PRIVATE)
                response.headers["Retry-After"] = "5"
            if transport_of(request, self._access.proxy_hops).https:
                response.headers["Strict-Transport-Security"] = HSTS
            return response

        return guarded

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
        response = html("signin.html", status, csrf=token, problem=problem)
        self._set_cookie(response, transport, SIGNIN_COOKIE, token, 3600)
        return response

    async def signin_form(self, request: Request) -> Response:
        refusal, transport = self._refusal(request)
        if refusal is not None:
            return refusal
        if await self._session(request, transport) is not None:
            return RedirectResponse("/admin", status_code=303, headers=PRIVATE)
        return self._signin_form(transport, None, 200)

    async def signin(self, request: Request) -> Response:
        refusal, transport = self._refusal(request)
        if refusal is not None:
            return refusal
        form = await small_form(request)
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
        if wait is not None:
            self._board.refused(wait.limit, None)
            log.warning("admin.signin_refused", reason="rate", limit=wait.limit)
            minutes = math.ceil(wait.seconds / 60)
            whose = "to this server" if wait.everyone else "from your address"
            problem = f"Too many sign-in attempts {whose}; try again in {minutes} min."
            response = self._signin_form(transport, problem, 429)
            response.headers["Retry-After"] = str(math.ceil(wait.seconds))
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
        session = await self._session(request, transport)
        form = await small_form(request)
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
        await self._access.revoke(session)
        log.info("admin.signed_out")
        response = RedirectResponse("/admin/signin", status_code=303, headers=PRIVATE)
        self._forget_cookie(response, transport, COOKIE)
        return response

    # -- the page and its data -------------------------------------------------------------------

    async def page(self, request: Request) -> Response:
        refusal, transport = self._refusal(request)
        if refusal is not None:
            return refusal
        session = await self._session(request, transport)
        if session is None:
            return RedirectResponse("/admin/signin", status_code=303, headers=PRIVATE)
        return html("page.html", csrf=session.csrf, process=self._board.process)

    async def _api_refusal(self, request: Request) -> Response | None:
        refusal, transport = self._refusal(request)
        if refusal is not None:
            return refusal
        if await self._session(request, transport) is None:
            return json_answer({"error": "Sign in at /admin/signin first."}, 401)
        return None

    async def state(self, request: Request) -> Response:
        refusal = await self._api_refusal(request)
        if refusal is not None:
            return refusal
        after = request.query_params.get("after")
        if after is not None:
            version = VERSION.fullmatch(after)
            if version is None:
                return json_answer({"error": "after must be a version the state returned."}, 400)
            await self._board.changed(version[1], int(version[2]), POLL_SECONDS)
        snapshot = self._board.snapshot()
        _, health = await self._health()
        snapshot["health"] = {
            "status": health.get("status"),
            "problem": health.get("problem"),
            "stateStore": health.get("state"),
        }
        return json_answer(snapshot)

    async def audit(self, request: Request) -> Response:
        refusal = await self._api_refusal(request)
        if refusal is not None:
            return refusal
        status, body = await trail.recent(self._audit, request.query_params)
        return json_answer(body, status)

    def routes(self) -> list[BaseRoute]:
        guarded = self._guarded
        return [
            Route("/admin", guarded(self.page), methods=["GET"]),
            Route("/admin/signin", guarded(self.signin_form), methods=["GET"]),
            Route("/admin/signin", guarded(self.signin), methods=["POST"]),
            Route("/admin/signout", guarded(self.signout), methods=["POST"]),
            Route("/admin/api/state", guarded(self.state), methods=["GET"]),
            Route("/admin/api/audit", guarded(self.audit), methods=["GET"]),
        ]


def admin_routes(
    settings: Settings,
    board: OperationsBoard,
    counters: Counters,
    health: Health,
    audit: Audit,
    redis: Redis | None = None,
) -> list[BaseRoute]:
    """The routes under /admin, for `build_app` when ADMIN_PASSWORD is set; `redis`: the
    shared state's client (REDIS_URL), which keeps the revocations of signed-out sessions."""
    assert settings.admin_password is not None
    revocations: Revocations = (
        MemoryRevocations() if redis is None else RedisRevocations(redis, settings.redis_key_prefix)
    )
    access = AdminAccess(
        settings.admin_password,
        counters,
        signing_secret(settings.state_encryption_key, shared=redis is not None),
        revocations,
        settings.trusted_proxy_hops,
    )
    return AdminPage(access, board, settings.allowed_hosts(), health, audit).routes()
