"""Where session state lives: handles, Salesforce tokens, conversations and read cursors.

`SessionStore` is the contract; `MemorySessionStore` is the default (one process). The same contract
test suite runs against every implementation.
"""

from app.store.base import ConversationState, SessionRecord, SessionStore
from app.store.memory import MemorySessionStore

__all__ = [
    "ConversationState",
    "MemorySessionStore",
    "SessionRecord",
    "SessionStore",
]
