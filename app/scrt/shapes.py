"""Defensive readers for JSON of uncertain shape.

Half of the SCRT payload fields are known only from unofficial sources, so parsing must never
trust a type: every reader returns a value of the promised type or None, never raises.
"""

from __future__ import annotations

import json
from typing import Any


def obj(value: Any, *keys: str) -> dict[str, Any]:
    """The dict at `value[k1][k2]…`, or {} when any step is missing or not a dict."""
    current = value
    for key in keys:
        if not isinstance(current, dict):
            return {}
        current = current.get(key)
    return current if isinstance(current, dict) else {}


def objs(value: Any) -> list[dict[str, Any]]:
    """The dict items of a list; anything else gives []."""
    if not isinstance(value, list):
        return []
    return [item for item in value if isinstance(item, dict)]


def text(value: Any) -> str | None:
    """A string as is, a number as its string (ids sometimes arrive numeric), else None."""
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return None


def integer(value: Any) -> int | None:
    """An int from an int, an integral float or a numeric string; else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            return None
    return None


def texts(value: Any) -> list[str]:
    """The string items of a list."""
    if not isinstance(value, list):
        return []
    return [item for item in value if isinstance(item, str)]


def json_object(value: Any) -> dict[str, Any] | None:
    """A dict as is, or a string holding a JSON object parsed; None otherwise."""
    if isinstance(value, dict):
        return value
    if isinstance(value, str | bytes):
        try:
            parsed = json.loads(value)
        except ValueError:
            return None
        return parsed if isinstance(parsed, dict) else None
    return None
