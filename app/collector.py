"""CPython's cyclic garbage collector, tuned for a server that holds many long-lived objects.

With thousands of waiting conversations the heap holds millions of objects; the collector's full
collections walk all of them and stop the process while they run (issue 14 measured about 42 %
of the server's CPU in them at 1,000 conversations). What the server allocates per request is
freed by reference counting (the cycles per request come from the MCP SDK's per-request objects,
a few dozen). So: what exists once start-up is done (modules, schemas, the SDK) is frozen out of
every collection, and collections run less often.
"""

from __future__ import annotations

import gc

THRESHOLDS = (50_000, 20, 100)
"""Allocations before a young collection (CPython's default 700), and young / middle collections
before the next older one (defaults 10, 10)."""


def tune_collector() -> None:
    """Once, after start-up: collect what start-up left, freeze the rest, collect less often."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
