"""A faithful local fake of a Salesforce org's SCRT messaging endpoints (MIAW REST v2 + SSE).

Built from Salesforce's public documentation of the API and its official sample app (see
docs/simulator.md), not from what our client happens to send. It ships with the product: tests,
benchmarks and demo mode run against it.

    app = build_simulator(SimulatorOptions(...))   # a Starlette app; app.state.simulator is the org

Real API surface (paths relative to the app root):
    POST   /iamessage/api/v2/authorization/unauthenticated/access-token
    POST   /iamessage/api/v2/authorization/authenticated/access-token
    GET    /iamessage/api/v2/authorization/continuation-access-token
    DELETE /iamessage/api/v2/authorization/authenticated/access-token
    POST   /iamessage/api/v2/conversation
    GET    /iamessage/api/v2/conversation/list
    GET    /iamessage/api/v2/conversation/{conversationId}
    DELETE /iamessage/api/v2/conversation/{conversationId}?esDeveloperName=
    GET    /iamessage/api/v2/conversation/{conversationId}/entries
    POST   /iamessage/api/v2/conversation/{conversationId}/message
    POST   /iamessage/api/v2/conversation/{conversationId}/file
    POST   /iamessage/api/v2/conversation/{conversationId}/entry
    POST   /iamessage/api/v2/conversation/{conversationId}/acknowledge-entries
    DELETE /iamessage/api/v2/conversation/{conversationId}/session?esDeveloperName=
    GET    /eventrouter/v1/sse
    GET    /embeddedservice/v1/embedded-service-config?orgId=&esConfigName=&language=
    GET    /embeddedservice/v1/businesshours?orgId=&esConfigName=
    GET    /files/{fileId}                      (download URL of uploaded attachments)

Not Salesforce: the control API under /control (see `control.py`) and the agent console at /console
(a page for a person playing the human agent, see `console.py`).

Choices where the documentation leaves a fact uncertain (GUESS) are documented where they are
made, and listed in docs/simulator.md. How the simulator fits the rest: docs/architecture.md.
"""

from app.simulator.app import build_simulator
from app.simulator.options import SimulatorOptions
from app.simulator.org import SimulatedOrg

__all__ = ["SimulatedOrg", "SimulatorOptions", "build_simulator"]
