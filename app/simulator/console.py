"""`GET /console`: the agent console, a page for the person playing the human agent.

Not part of Salesforce. One self-contained HTML page (inline CSS and JS, no external assets) that
drives the org through the control API: it lists the conversations, follows them with the
long-poll `GET control/conversations?since=V&waitSeconds=20`, and joins, writes, types and ends
chats as the agent.

The page calls the control API by URLs relative to its own (`control/...` against `.../console`),
so it works standalone (`/console`) and mounted (`/sim/console` in demo mode) alike. The template
is rendered with autoescaping and the inline script and style carry a per-response CSP nonce:
even a text that slipped into the markup could not run. The script itself only ever puts
user- and agent-supplied text into the page with `textContent`.
"""

from __future__ import annotations

import secrets
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from app.simulator.org import SimulatedOrg

TEMPLATE_DIR = Path(__file__).resolve().parent
TEMPLATE = "console.html"
POLL_WAIT_SECONDS = 20
DEFAULT_AGENT_NAME = "Jane Agent"

_env = Environment(
    loader=FileSystemLoader(str(TEMPLATE_DIR)),
    autoescape=select_autoescape(["html"], default=True),
)


def content_security_policy(nonce: str) -> str:
    return "; ".join(
        [
            "default-src 'none'",
            f"script-src 'nonce-{nonce}'",
            f"style-src 'nonce-{nonce}'",
            "connect-src 'self'",
            "img-src 'self' data:",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'self'",
        ]
    )


async def console_page(request: Request) -> Response:
    org: SimulatedOrg = request.app.state.simulator
    nonce = secrets.token_urlsafe(18)
    html = _env.get_template(TEMPLATE).render(
        nonce=nonce,
        org_id=org.options.org_id,
        deployment=org.options.es_developer_name,
        default_agent_name=DEFAULT_AGENT_NAME,
        poll_wait_seconds=POLL_WAIT_SECONDS,
    )
    return HTMLResponse(
        html,
        headers={
            "Content-Security-Policy": content_security_policy(nonce),
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
        },
    )
