"""Argument types shared by the command-line commands: a bad value names what was expected."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable


def seconds(maximum: float | None = None) -> Callable[[str], float]:
    """An argparse type: a number of seconds above 0 (and at most `maximum`, when given)."""
    bound = "" if maximum is None else f", at most {maximum:g}"

    def parse(raw: str) -> float:
        try:
            value = float(raw)
        except ValueError:
            value = math.nan
        # isfinite also rejects nan.
        if not (math.isfinite(value) and value > 0 and (maximum is None or value <= maximum)):
            raise argparse.ArgumentTypeError(
                f"must be a number of seconds above 0{bound}, got {raw!r}"
            )
        return value

    return parse
