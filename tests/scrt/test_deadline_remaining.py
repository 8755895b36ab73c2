"""What is left of a tool call's deadline: never less than nothing, never more than asked."""

from __future__ import annotations

import asyncio

import pytest

from app.scrt.deadline import call_deadline, remaining


@pytest.mark.looptime
async def test_time_left_shrinks_with_the_clock_and_stops_at_zero() -> None:
    assert remaining(7.0) == 7.0  # no deadline: the caller's own budget

    with call_deadline(2.0):
        assert remaining(10.0) == pytest.approx(2.0)
        assert remaining(0.5) == 0.5
        await asyncio.sleep(1.5)
        assert remaining(10.0) == pytest.approx(0.5)
        await asyncio.sleep(1.0)
        assert remaining(10.0) == 0.0
