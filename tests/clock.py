"""A clock a test sets by hand (`now`), for code that takes `clock=` / `monotonic=`."""

from __future__ import annotations


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now
