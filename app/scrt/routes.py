"""SCRT route templates: used to build URLs and, unfilled, as the `route` in logs and errors.

Logging the template rather than the URL keeps conversation ids and query strings out of logs.
"""

from __future__ import annotations

_V2 = "/iamessage/api/v2"
_CONVERSATION = f"{_V2}/conversation/{{conversationId}}"

GUEST_TOKEN = f"{_V2}/authorization/unauthenticated/access-token"
VERIFIED_TOKEN = f"{_V2}/authorization/authenticated/access-token"
CONTINUATION_TOKEN = f"{_V2}/authorization/continuation-access-token"
REVOKE_TOKEN = VERIFIED_TOKEN
CONVERSATIONS = f"{_V2}/conversation"
CONVERSATION_LIST = f"{_V2}/conversation/list"
CONVERSATION = _CONVERSATION
ENTRIES = f"{_CONVERSATION}/entries"
MESSAGE = f"{_CONVERSATION}/message"
FILE = f"{_CONVERSATION}/file"
ENTRY = f"{_CONVERSATION}/entry"
ACKNOWLEDGE_ENTRIES = f"{_CONVERSATION}/acknowledge-entries"
SESSION = f"{_CONVERSATION}/session"
SSE = "/eventrouter/v1/sse"
EMBEDDED_SERVICE_CONFIG = "/embeddedservice/v1/embedded-service-config"
BUSINESS_HOURS = "/embeddedservice/v1/businesshours"
