"""app/hours.py on its own: which window holds now, the next opening, and the answer kept for a
minute (a controllable clock)."""

from __future__ import annotations

from app.hours import HoursNow, SupportHours, iso
from app.scrt import ScrtServerError
from app.scrt.results import BusinessHours, BusinessHoursWindow
from tests.clock import Clock

HOUR = 3_600_000


class Hours:
    """The business-hours endpoint: these windows, or a failure; counts the requests."""

    def __init__(self, *windows: tuple[int, int], fail: bool = False) -> None:
        self.windows = [BusinessHoursWindow(start=s, end=e) for s, e in windows]
        self.fail = fail
        self.requests = 0

    async def business_hours(self) -> BusinessHours:
        self.requests += 1
        if self.fail:
            raise ScrtServerError(status=503, message="Service Unavailable")
        return BusinessHours(windows=self.windows)


def support(client: Hours, clock: Clock, monotonic: Clock) -> SupportHours:
    return SupportHours(client, clock=clock, monotonic=monotonic)  # type: ignore[arg-type]


async def test_open_closed_and_the_next_opening_come_from_the_windows() -> None:
    wall, mono = Clock(), Clock()
    wall.now = 10 * HOUR / 1000  # 10:00 on day 0
    client = Hours((8 * HOUR, 12 * HOUR), (20 * HOUR, 22 * HOUR), (14 * HOUR, 18 * HOUR))
    hours = support(client, wall, mono)
    assert await hours.now() == HoursNow(open=True, opens_at=None)
    wall.now = 12 * HOUR / 1000  # a window's end is not in it
    assert await hours.now() == HoursNow(open=False, opens_at=14 * HOUR)
    wall.now = 23 * HOUR / 1000
    assert await hours.now() == HoursNow(open=False, opens_at=None)


async def test_the_answer_is_kept_a_minute_and_a_failure_keeps_the_windows_known() -> None:
    wall, mono = Clock(), Clock()
    wall.now = 2 * HOUR / 1000
    client = Hours((3 * HOUR, 4 * HOUR))
    hours = support(client, wall, mono)
    assert await hours.now() == HoursNow(open=False, opens_at=3 * HOUR)
    mono.now = 59.0
    await hours.now()
    assert client.requests == 1
    mono.now = 60.0
    client.fail = True
    wall.now = 3.5 * HOUR / 1000
    # Asked again; it failed, but the windows known still say support is open now.
    assert await hours.now() == HoursNow(open=True, opens_at=None)
    assert client.requests == 2
    mono.now = 69.0
    await hours.now()
    assert client.requests == 2  # a failure is not asked again at once…
    mono.now = 70.0
    await hours.now()
    assert client.requests == 3  # …but sooner than an answer
    assert await support(Hours(fail=True), wall, mono).now() is None  # never known: unknown
    assert await support(Hours(), wall, mono).now() is None  # no hours set


def test_a_time_no_calendar_holds_is_no_time() -> None:
    assert iso(1_760_000_000_000) == "2025-10-09T08:53:20Z"
    assert iso(10**20) is None
    assert iso(None) is None
