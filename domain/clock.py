"""Program-local dates and times. A program day is a calendar day in the program's time zone."""

from __future__ import annotations

from datetime import date, datetime, time
from functools import lru_cache
from zoneinfo import ZoneInfo


@lru_cache(maxsize=64)
def zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def local_date(moment: datetime, timezone: str) -> date:
    return moment.astimezone(zone(timezone)).date()


def local_moment(day: date, clock: time, timezone: str) -> datetime:
    """The instant a local wall-clock time happens (DST gaps resolve forward, as clocks do)."""
    return datetime.combine(day, clock, tzinfo=zone(timezone))


def local_clock(moment: datetime, timezone: str) -> str:
    return moment.astimezone(zone(timezone)).strftime("%H:%M")


def local_clock_named(moment: datetime, timezone: str) -> str:
    """'13:06 EST': the wall-clock time with the zone's abbreviation, as told to participants and staff."""
    local = moment.astimezone(zone(timezone))
    return f"{local:%H:%M} {local.tzname()}"
