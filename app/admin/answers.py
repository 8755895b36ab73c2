"""The operator page's answers: private (never cached, never framed), the HTML ones rendered from
one autoescaped template with a per-response CSP nonce; and the small forms it takes."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse

FORM_BYTES = 4096
TEMPLATES = Environment(
    loader=FileSystemLoader(str(Path(__file__).resolve().parent)),
    autoescape=select_autoescape(default=True, default_for_string=True),
)


def csp(nonce: str) -> str:
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


def html(template: str, status: int = 200, **values: Any) -> HTMLResponse:
    nonce = secrets.token_urlsafe(18)
    body = TEMPLATES.get_template(template).render(nonce=nonce, **values)
    headers = {**PRIVATE, "Content-Security-Policy": csp(nonce)}
    return HTMLResponse(body, status_code=status, headers=headers)


def json_answer(body: dict[str, Any], status: int = 200) -> JSONResponse:
    return JSONResponse(body, status_code=status, headers=PRIVATE)


async def small_form(request: Request) -> dict[str, str] | None:
    """A small urlencoded form's fields (the first value of each); None when it is too large."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > FORM_BYTES:
            return None
    fields = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    return {name: values[0] for name, values in fields.items()}
