"""Shared state on Redis: what lets a chat survive a restart and any process serve any call.

- `connection`: the Redis client from the settings (redis:// and rediss://).
- `sealing`: authenticated encryption of what is stored (tokens, records, message text).
- `ownership`: which process holds a guest session's Salesforce event stream (process heartbeats,
  per-session owners, takeover when an owner dies).
- `journal`: each conversation's delivered entries in a Redis Stream, and the fenced writer that
  appends them.
- `dispatcher`: one blocking read per process that wakes its readers waiting on any stream.
- `delivery`: the delivery engine of a process sharing Redis with others.
"""
