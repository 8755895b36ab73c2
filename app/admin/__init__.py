"""The operator page, `/admin`: live conversations, Salesforce's event streams, recent errors,
rate-limit refusals and the audit trail, for whoever holds ADMIN_PASSWORD.

- `board.py`: `OperationsBoard`, what this process has seen (the feeds, the limits and the MCP
  middleware report into it); read-only for the page.
- `watch.py`: `ToolWatch`, the MCP middleware reporting how each tool call ended.
- `transport.py`: the HTTPS rule (and plain HTTP between loopback addresses, no proxy between).
- `access.py`: the sign-in and its budgets, the session cookie, CSRF tokens;
  `revocations.py`: signed-out sessions (in Redis with REDIS_URL).
- `routes.py`: the routes, the page (`page.html`) and the sign-in form (`signin.html`), drawn
  by `answers.py`; `trail.py`: the audit trail's endpoint.

Nothing is served unless `Settings.admin_enabled`; `build_app` mounts `admin_routes`.
"""

from app.admin.board import OperationsBoard
from app.admin.routes import admin_routes
from app.admin.watch import ToolWatch

__all__ = ["OperationsBoard", "ToolWatch", "admin_routes"]
