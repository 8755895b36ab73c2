"""Markers shared by several test files."""

from __future__ import annotations

import sys

import pytest

not_under_mutmut = pytest.mark.skipif(
    "mutmut" in sys.modules,
    reason="mutmut's trampolines hold the arguments and results of the functions they wrap, so "
    "what these tests look for (an object let go) cannot be seen under `make mutation`",
)
