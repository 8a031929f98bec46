"""A site's calendar: opening hours per weekday, closed days (holidays), and what they allow.

Pure and stdlib-only: imported inside Temporal's deterministic workflow sandbox, and by the dosing
rules, which take a site's closed days as a set (`closed_days`) so that a closed day is never a
missed dose.

The iCalendar reader covers what clinics publish as holiday calendars (RFC 5545 §3.6.1 VEVENT with
all-day DTSTART/DTEND, §3.1 line folding, §3.3.10 RRULE FREQ=YEARLY with COUNT or UNTIL); anything
else is refused with the line that could not be read rather than silently skipped.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, time, timedelta
from typing import Any

from domain.checks import is_int, parse_day, require_text
from domain.vocab import Vocabulary


class Weekday(Vocabulary):
    """The days of the week, Monday first (date.weekday() order), as a calendar names them."""

    MON = "Mon"
    TUE = "Tue"
    WED = "Wed"
    THU = "Thu"
    FRI = "Fri"
    SAT = "Sat"
    SUN = "Sun"


WEEKDAY_NAMES = tuple(Weekday)
ROLLING_DAYS = 7


def clock_minutes(clock: str) -> int:
    """Minutes since midnight of a strict 24-hour "HH:MM"."""
    if not (
        isinstance(clock, str) and len(clock) == 5 and clock[2] == ":" and clock[:2].isdigit() and clock[3:].isdigit()
    ):
        raise ValueError(f"clinic time {clock!r} must be written HH:MM (24-hour), e.g. 07:30")
    hours, minutes = int(clock[:2]), int(clock[3:])
    if hours > 23 or minutes > 59:
        raise ValueError(f"clinic time {clock!r} is not a time of day")
    return hours * 60 + minutes


@dataclass(frozen=True, kw_only=True)
class SiteCalendar:
    """When a site collects specimens. Weekdays missing from `hours` are closed every week."""

    timezone: str
    hours: Mapping[int, tuple[str, str]]  # weekday (Mon 0 .. Sun 6) -> (opens, closes), "HH:MM"
    closed: Mapping[str, str] = field(default_factory=dict)  # ISO date -> label ("Thanksgiving")

    def __post_init__(self) -> None:
        require_text("timezone", self.timezone)
        if not self.hours:
            raise ValueError("a site must be open on at least one weekday")
        for weekday, span in self.hours.items():
            if not is_int(weekday) or not 0 <= weekday <= 6:
                raise ValueError(f"weekday {weekday!r} must be a number from 0 (Monday) to 6 (Sunday)")
            if not isinstance(span, tuple) or len(span) != 2:
                raise ValueError(f"hours for {WEEKDAY_NAMES[weekday]} must be [opens, closes]")
            if clock_minutes(span[0]) >= clock_minutes(span[1]):
                raise ValueError(
                    f"on {WEEKDAY_NAMES[weekday]} the site opens at {span[0]}, which is not before "
                    f"it closes at {span[1]}"
                )
        for text in self.closed:
            parse_day("closed day", text)


def is_open(calendar: SiteCalendar, day: date) -> bool:
    """Whether the site collects on this day: an open weekday that is not a closed day."""
    return day.weekday() in calendar.hours and day.isoformat() not in calendar.closed


def hours_on(calendar: SiteCalendar, day: date) -> tuple[time, time] | None:
    """Opening and closing (local wall clock) on this day, or None when closed."""
    if not is_open(calendar, day):
        return None
    opens, closes = calendar.hours[day.weekday()]
    return time.fromisoformat(opens), time.fromisoformat(closes)


def closed_days(calendar: SiteCalendar, start: date, end: date) -> frozenset[date]:
    """Every day from start to end (both included) on which the site is closed."""
    return frozenset(
        start + timedelta(days=i)
        for i in range((end - start).days + 1)
        if not is_open(calendar, start + timedelta(days=i))
    )


def open_days(calendar: SiteCalendar, start: date, end: date) -> list[date]:
    days = (start + timedelta(days=i) for i in range((end - start).days + 1))
    return [day for day in days if is_open(calendar, day)]


@dataclass(frozen=True)
class ShortWindow:
    """The rolling 7 days with the fewest open days: what a floor per rolling week can ask for."""

    start: date
    open_days: int
    closed_in_it: tuple[str, ...]  # the closed days (holidays) inside it, beyond closed weekdays


def tightest_week(calendar: SiteCalendar) -> ShortWindow:
    """The rolling 7 days with the fewest open days, holidays counted (earliest such window)."""
    weekly = len(calendar.hours)
    best = ShortWindow(date(2000, 1, 3), weekly, ())  # a plain week: every open weekday once
    for text in sorted(calendar.closed):
        holiday = date.fromisoformat(text)
        for back in range(ROLLING_DAYS):
            start = holiday - timedelta(days=back)
            days = [start + timedelta(days=i) for i in range(ROLLING_DAYS)]
            count = sum(is_open(calendar, d) for d in days)
            if count < best.open_days:
                closed_in = tuple(
                    d.isoformat() for d in days if d.weekday() in calendar.hours and d.isoformat() in calendar.closed
                )
                best = ShortWindow(start, count, closed_in)
    return best


def calendar_to_dict(calendar: SiteCalendar) -> dict[str, Any]:
    return {
        "timezone": calendar.timezone,
        "hours": {WEEKDAY_NAMES[d].lower(): list(span) for d, span in sorted(calendar.hours.items())},
        "closed": dict(sorted(calendar.closed.items())),
    }


def calendar_from_dict(data: Mapping[str, Any]) -> SiteCalendar:
    """Hours keyed by weekday name ("mon") or number; unknown keys are refused."""
    if not isinstance(data, Mapping):
        raise ValueError("a site calendar is an object with timezone, hours and closed")
    unknown = sorted(set(data) - {"timezone", "hours", "closed"})
    if unknown:
        raise ValueError(f"unknown site calendar field(s): {', '.join(unknown)}; known: timezone, hours, closed")
    hours: dict[int, tuple[str, str]] = {}
    raw_hours = data.get("hours")
    if not isinstance(raw_hours, Mapping):
        raise ValueError('hours must map weekdays (mon..sun) to [opens, closes], e.g. {"mon": ["07:00", "19:00"]}')
    for key, span in raw_hours.items():
        weekday = _weekday(key)
        if not isinstance(span, (list, tuple)) or len(span) != 2:
            raise ValueError(f'hours for {key!r} must be [opens, closes], e.g. ["07:00", "19:00"]')
        hours[weekday] = (str(span[0]), str(span[1]))
    closed = data.get("closed") or {}
    if isinstance(closed, list):  # a plain list of dates is accepted too
        closed = {day: "closed" for day in closed}
    if not isinstance(closed, Mapping):
        raise ValueError('closed must map ISO dates to labels, e.g. {"2026-12-25": "Christmas Day"}')
    return SiteCalendar(
        timezone=str(data.get("timezone") or ""), hours=hours, closed={str(k): str(v)[:120] for k, v in closed.items()}
    )


def _weekday(key: Any) -> int:
    if is_int(key) and 0 <= key <= 6:
        return key
    if isinstance(key, str):
        if key.isdigit() and 0 <= int(key) <= 6:
            return int(key)
        names = [n.lower() for n in WEEKDAY_NAMES]
        if key.lower()[:3] in names:
            return names.index(key.lower()[:3])
    raise ValueError(f"{key!r} is not a weekday; use mon, tue, wed, thu, fri, sat or sun")


def with_closed(calendar: SiteCalendar, days: Iterable[tuple[date, str]]) -> SiteCalendar:
    closed = dict(calendar.closed)
    closed.update({day.isoformat(): label for day, label in days})
    return SiteCalendar(timezone=calendar.timezone, hours=dict(calendar.hours), closed=closed)


# --- iCalendar (RFC 5545) holiday import ------------------------------------------------------

MAX_ICS_DAYS = 1000  # a holiday file with more closed days than this is not a holiday file


def parse_ics(text: str) -> list[tuple[date, str]]:
    """All-day events of an iCalendar file as (day, summary), multi-day events expanded."""
    if not isinstance(text, str) or "BEGIN:VCALENDAR" not in text:
        raise ValueError("not an iCalendar file: BEGIN:VCALENDAR is missing")
    lines: list[str] = []
    for raw in text.replace("\r\n", "\n").split("\n"):
        if raw[:1] in (" ", "\t") and lines:
            lines[-1] += raw[1:]  # RFC 5545 §3.1: a folded line continues the one before
        elif raw:
            lines.append(raw)
    days: list[tuple[date, str]] = []
    event: dict[str, tuple[str, str]] | None = None
    for number, line in enumerate(lines, 1):
        name_part, sep, value = line.partition(":")
        if not sep:
            raise ValueError(f"iCalendar line {number} has no ':' ({line[:40]!r})")
        name, _, params = name_part.partition(";")
        name = name.upper()
        if name == "BEGIN" and value.upper() == "VEVENT":
            event = {}
        elif name == "END" and value.upper() == "VEVENT":
            if event is None:
                raise ValueError(f"iCalendar line {number}: END:VEVENT without BEGIN:VEVENT")
            days.extend(_event_days(event, number))
            event = None
        elif event is not None:
            event[name] = (params.upper(), value.strip())
        if len(days) > MAX_ICS_DAYS:
            raise ValueError(f"the calendar has more than {MAX_ICS_DAYS} closed days; import a year at a time")
    return sorted(set(days))


def _ics_date(params: str, value: str, number: int) -> date:
    text = value[:8]
    if len(text) != 8 or not text.isdigit():
        raise ValueError(f"iCalendar event ending at line {number}: date {value!r} is not YYYYMMDD")
    return date(int(text[:4]), int(text[4:6]), int(text[6:8]))


def _event_days(event: dict[str, tuple[str, str]], number: int) -> list[tuple[date, str]]:
    if "DTSTART" not in event:
        raise ValueError(f"iCalendar event ending at line {number} has no DTSTART")
    summary = _unescape(event.get("SUMMARY", ("", "closed"))[1]) or "closed"
    start = _ics_date(*event["DTSTART"], number)
    end = _ics_date(*event["DTEND"], number) if "DTEND" in event else start + timedelta(days=1)
    if end <= start:  # DTEND is exclusive for all-day events (RFC 5545 §3.6.1)
        end = start + timedelta(days=1)
    span = [(start + timedelta(days=i), summary) for i in range((end - start).days)]
    if "RRULE" not in event:
        return span
    rule = dict(part.split("=", 1) for part in event["RRULE"][1].split(";") if "=" in part)
    if rule.get("FREQ") != "YEARLY" or set(rule) - {"FREQ", "COUNT", "UNTIL", "INTERVAL"}:
        raise ValueError(
            f"iCalendar event {summary!r}: only RRULE FREQ=YEARLY with COUNT or UNTIL is understood; "
            "list the dates of other repeating closures one by one"
        )
    count = int(rule["COUNT"]) if rule.get("COUNT", "").isdigit() else None
    until = _ics_date("", rule["UNTIL"], number) if "UNTIL" in rule else None
    if count is None and until is None:
        raise ValueError(f"iCalendar event {summary!r} repeats without end; give COUNT or UNTIL")
    interval = int(rule.get("INTERVAL", "1"))
    out: list[tuple[date, str]] = []
    for n in range(count if count is not None else 200):
        try:
            shifted = [(d.replace(year=d.year + n * interval), s) for d, s in span]
        except ValueError:  # 29 February in a common year: skipped, as RFC 5545 §3.3.10 says
            continue
        if until is not None and shifted[0][0] > until:
            break
        out.extend(shifted)
    return out


def _unescape(text: str) -> str:
    return text.replace("\\,", ",").replace("\\;", ";").replace("\\n", " ").replace("\\N", " ").replace("\\\\", "\\")
