"""Demo mode: the MCP server and a simulated Salesforce org in one process, no org needed.

The simulator is mounted at `/sim` (its control API at `/sim/control/...`, the agent console at
`/sim/console`) and the server talks to it over loopback exactly as it would to a real org. Demo
mode is only ever entered through `miaw-mcp demo`; `serve` never falls back to it.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.responses import RedirectResponse
from starlette.routing import Mount, Route

from app.config import Settings
from app.main import build_app
from app.simulator import SimulatorOptions, build_simulator
from app.simulator.options import DEFAULT_DEPLOYMENT, DEFAULT_ORG_ID

DEMO_ADMIN_PASSWORD = "demo-operator-page"
"""The operator page's password in demo mode: it serves only this machine (127.0.0.1)."""


def demo_settings(
    port: int, sim_options: SimulatorOptions | None = None, **overrides: object
) -> Settings:
    sim = sim_options or SimulatorOptions()
    values: dict[str, object] = {
        "miaw_scrt_url": f"http://127.0.0.1:{port}/sim",
        "miaw_org_id": DEFAULT_ORG_ID,
        "miaw_es_developer_name": DEFAULT_DEPLOYMENT,
        "playground_enabled": True,
        "log_format": "console",
        "host": "127.0.0.1",
        # The CRM toolset against the simulator's Salesforce REST surface (loopback, no sign-in).
        "mcp_toolsets": "handoff,crm",
        "crm_access": "admin",  # the simulator's records: every tool
        "salesforce_instance_url": f"http://127.0.0.1:{port}/sim",
        "salesforce_client_id": sim.crm_client_id,
        "salesforce_client_secret": sim.crm_client_secret,
        "salesforce_refresh_token": sim.crm_refresh_token,
        "admin_password": DEMO_ADMIN_PASSWORD,
        **overrides,
    }
    return Settings(_env_file=None, **values)  # type: ignore[arg-type, call-arg]


def build_demo_app(port: int, sim_options: SimulatorOptions | None = None) -> Starlette:
    options = sim_options or SimulatorOptions(rate_limits=False, bot_menu=True)
    simulator = build_simulator(options)
    home = Route("/", lambda _: RedirectResponse("/playground"), methods=["GET"])
    app = build_app(
        demo_settings(port, options),
        extra_routes=[home, Mount("/sim", app=simulator)],
        crm_on_loopback=True,
    )
    app.state.simulator_app = simulator
    return app


def demo_banner(port: int) -> str:
    base = f"http://127.0.0.1:{port}"
    return f"""\
miaw-mcp demo: the MCP server and a simulated Salesforce org, on {base}

  1. Open the agent console (you play the human agent):  {base}/sim/console
  2. Open the playground (you play the ChatGPT user):      {base}/playground
     Start a chat, ask the bot for "an agent", accept it in the console, and talk.

  Operator page:                             {base}/admin  (password {DEMO_ADMIN_PASSWORD})
  MCP endpoint (for curl or an MCP client):  {base}/mcp
  Simulator control API:                     {base}/sim/control/conversations
  Health:                                    {base}/health
Press Ctrl+C to stop."""
