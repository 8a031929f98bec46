"""Testing plan per program phase: how often, on which days, and within which hours to test.

Every number here is a default with its source (see docs/rules.md), overridable per program.
Pure and stdlib-only: imported inside Temporal's deterministic workflow sandbox.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import date
from functools import lru_cache
from typing import Any

from domain.checks import is_int as _is_int
from domain.checks import require_text as _require_text

PHASES: tuple[str, ...] = ("phase-1", "phase-2", "phase-3", "aftercare")

ALL_WEEKDAYS: tuple[int, ...] = (0, 1, 2, 3, 4, 5, 6)
DAYS_PER_WEEK = 7

_STANDARD_VII = "All Rise (NADCP) Adult Drug Court Best Practice Standard VII"
_TIERS = "project rule: common treatment-court frequency tiers (docs/rules.md)"


@dataclass(frozen=True, kw_only=True)
class TestingPlan:
    """How a phase is tested. Floor and ceiling apply to every rolling 7-day window."""

    __test__ = False  # a domain object, not a pytest test class, despite its name

    phase: str
    tests_per_week: float
    min_per_rolling_week: int
    max_per_rolling_week: int
    # Urine is due within 8 h of notification (oral fluid would be 4 h): Standard VII.
    collection_window_hours: float = 8.0
    # Every day by default: the standard asks for the same odds on weekends and holidays.
    collection_weekdays: tuple[int, ...] = ALL_WEEKDAYS
    opens_at: str = "07:00"
    closes_at: str = "19:00"
    closed_dates: tuple[str, ...] = ()
    # An IANA name; whether it exists is checked where zoneinfo may be loaded, not here.
    timezone: str = "America/New_York"
    source: str
    # Per-weekday hours where they differ from opens_at..closes_at: (weekday, opens, closes).
    weekday_hours: tuple[tuple[int, str, str], ...] = ()
    # Where the plan came from: a stored program's id and version (empty: the built-in defaults).
    program_id: str = ""
    program_version: int = 0
    specimen_type: str = "urine"
    check_in_required: bool = False
    missed_check_in_reportable: bool = False
    make_up_hours: float = 24.0
    # The program's breath alcohol cutoff in g/210 L (49 CFR 40.23: 0.02 and above has consequences by default);
    # every screening started under this plan reads its breath tests against it.
    breath_alcohol_cutoff: float = 0.02
    # A reminder this many hours before the collection window closes, to a participant told to test and not
    # yet collected (0: no reminder).
    reminder_hours_before_close: float = 0.0
    # "colour": the program draws colour groups each open day (domain/colours.py) and the participant tests
    # when their colour is called, the draw made at opening; "individual": the participant's own draw.
    selection_mode: str = "individual"

    def __post_init__(self) -> None:
        _check_counts(self)
        _check_collection_hours(self)
        _check_calendar(self)
        _require_text("phase", self.phase)
        _require_text("timezone", self.timezone)
        _require_text("source", self.source)


def default_plan(phase: str) -> TestingPlan:
    """The cited default plan for a phase of the program."""
    try:
        return _DEFAULT_PLANS[phase]
    except KeyError:
        raise ValueError(f"unknown phase {phase!r}; known phases are {', '.join(PHASES)}") from None


def plan_from_dict(data: dict[str, Any]) -> TestingPlan:
    """A plan written as JSON by someone else (a selection export's recorded inputs, checked by
    domain.verifiable). Rejects unknown keys so a misspelt field is not silently dropped."""
    known = {f.name for f in fields(TestingPlan)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(
            f"unknown testing-plan field(s): {', '.join(unknown)}; known fields are {', '.join(sorted(known))}"
        )
    values = dict(data)
    for key in ("collection_weekdays", "closed_dates"):
        if key in values and isinstance(values[key], list):
            values[key] = tuple(values[key])
    if isinstance(values.get("weekday_hours"), list):
        values["weekday_hours"] = tuple(tuple(item) for item in values["weekday_hours"])
    # JSON does not distinguish 3 from 3.0.
    for key in (
        "tests_per_week",
        "collection_window_hours",
        "make_up_hours",
        "breath_alcohol_cutoff",
        "reminder_hours_before_close",
    ):
        if _is_number(values.get(key)):
            values[key] = float(values[key])
    try:
        return TestingPlan(**values)
    except TypeError as error:  # a required field is missing
        raise ValueError(f"incomplete testing plan: {error}") from None


# --- validation -------------------------------------------------------------------------------


def _check_counts(plan: TestingPlan) -> None:
    floor, ceiling = plan.min_per_rolling_week, plan.max_per_rolling_week
    if not _is_int(floor) or not _is_int(ceiling):
        raise ValueError("min_per_rolling_week and max_per_rolling_week must be whole numbers")
    if not 0 <= floor <= ceiling <= DAYS_PER_WEEK:
        raise ValueError(
            f"need 0 <= min_per_rolling_week <= max_per_rolling_week <= 7; got floor {floor}, ceiling {ceiling}"
        )
    if not _is_number(plan.tests_per_week) or not 0 < plan.tests_per_week <= DAYS_PER_WEEK:
        raise ValueError(f"tests_per_week must be above 0 and at most 7; got {plan.tests_per_week!r}")
    if not floor <= plan.tests_per_week <= ceiling:
        raise ValueError(
            f"tests_per_week {plan.tests_per_week} must lie between the floor {floor} and the ceiling {ceiling}"
        )


def _check_collection_hours(plan: TestingPlan) -> None:
    hours = plan.collection_window_hours
    if not _is_number(hours) or not 1 <= hours <= 24:
        raise ValueError(f"collection_window_hours must be between 1 and 24; got {hours!r}")
    opens, closes = minutes_of_day(plan.opens_at), minutes_of_day(plan.closes_at)
    if opens >= closes:
        raise ValueError(f"opens_at {plan.opens_at} must be earlier than closes_at {plan.closes_at}")
    for entry in plan.weekday_hours:
        if not isinstance(entry, tuple) or len(entry) != 3 or not _is_int(entry[0]) or not 0 <= entry[0] <= 6:
            raise ValueError(f"weekday_hours entries are (weekday 0..6, opens, closes); got {entry!r}")
        if minutes_of_day(entry[1]) >= minutes_of_day(entry[2]):
            raise ValueError(f"weekday {entry[0]} opens at {entry[1]}, not before it closes at {entry[2]}")


def _check_calendar(plan: TestingPlan) -> None:
    weekdays = plan.collection_weekdays
    if not isinstance(weekdays, tuple) or not weekdays:
        raise ValueError("collection_weekdays must be a non-empty tuple of weekday numbers (Monday 0 .. Sunday 6)")
    if any(not _is_int(day) or not 0 <= day <= 6 for day in weekdays) or len(set(weekdays)) != len(weekdays):
        raise ValueError(f"collection_weekdays must be distinct numbers from 0 (Monday) to 6 (Sunday); got {weekdays}")
    # Otherwise the clinic is open too few days for the plan to be kept.
    if plan.min_per_rolling_week > len(weekdays) or plan.tests_per_week > len(weekdays):
        raise ValueError(
            f"{len(weekdays)} collection weekday(s) cannot hold a floor of {plan.min_per_rolling_week} "
            f"or {plan.tests_per_week} tests a week; add collection weekdays or lower the plan"
        )
    if not isinstance(plan.closed_dates, tuple):
        raise ValueError("closed_dates must be a tuple of ISO dates (YYYY-MM-DD)")
    for text in plan.closed_dates:
        if not _is_iso_date(text):
            raise ValueError(f"closed date {text!r} is not an ISO date (YYYY-MM-DD)")


def hours_for(plan: TestingPlan, weekday: int) -> tuple[str, str]:
    """Opening and closing ("HH:MM") on a weekday: its own hours if given, else opens_at..closes_at."""
    for day, opens, closes in plan.weekday_hours:
        if day == weekday:
            return opens, closes
    return plan.opens_at, plan.closes_at


def minutes_of_day(clock: str) -> int:
    """Minutes since midnight for a strict "HH:MM" 24-hour clock time."""
    # A plan's few clock strings are parsed once (iop simulate asks millions of times); anything else
    # (unhashable included) goes to the check uncached, so it fails the same way.
    return _cached_minutes(clock) if isinstance(clock, str) else _minutes_of_day(clock)


@lru_cache(maxsize=256)
def _cached_minutes(clock: str) -> int:
    return _minutes_of_day(clock)


def _minutes_of_day(clock: str) -> int:
    if not (
        isinstance(clock, str) and len(clock) == 5 and clock[2] == ":" and clock[:2].isdigit() and clock[3:].isdigit()
    ):
        raise ValueError(f"clinic time {clock!r} must be written HH:MM (24-hour), e.g. 07:30")
    hours, minutes = int(clock[:2]), int(clock[3:])
    if hours > 23 or minutes > 59:
        raise ValueError(f"clinic time {clock!r} is not a time of day")
    return hours * 60 + minutes


def _is_iso_date(text: Any) -> bool:
    # date.fromisoformat also takes "20250101"; only the dashed form is accepted, so stored plans read the same.
    if not isinstance(text, str) or len(text) != 10:
        return False
    try:
        return date.fromisoformat(text).isoformat() == text
    except ValueError:
        return False


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value  # rejects NaN


# --- defaults ---------------------------------------------------------------------------------

# Floors: Standard VII asks for testing at least twice a week until the last phase, which the
# averages below meet. A floor is a guarantee on top of the average, and every guaranteed test is
# one the participant can see coming at the end of a bare week: a floor equal to the average
# (2 in phase 2) forced about 40% of tests in simulation, a floor of 1 about 14%. Hence floor 2
# only where the average leaves room (phase 1); a program wanting the strict reading in phase 2
# sets its floor to 2 and accepts the forced tests.
# Ceilings, about twice the average, spare the participant a run of bad luck; each one also makes
# the days after a run of tests safe, which is why they are not set lower.
_DEFAULT_PLANS: dict[str, TestingPlan] = {
    plan.phase: plan
    for plan in (
        TestingPlan(
            phase="phase-1",
            tests_per_week=3.0,
            min_per_rolling_week=2,
            max_per_rolling_week=5,
            source=f"~3/week: {_TIERS}; floor 2/week, random every day, urine within 8 h: {_STANDARD_VII}",
        ),
        TestingPlan(
            phase="phase-2",
            tests_per_week=2.0,
            min_per_rolling_week=1,
            max_per_rolling_week=4,
            source=f"~2/week: {_TIERS}; random every day, urine within 8 h: {_STANDARD_VII} "
            "(which asks for 2/week until the last phase: raise the floor to 2 for the strict reading)",
        ),
        TestingPlan(
            phase="phase-3",
            tests_per_week=1.0,
            min_per_rolling_week=0,
            max_per_rolling_week=3,
            source=f"~1/week: {_TIERS}; random every day, urine within 8 h: {_STANDARD_VII}",
        ),
        TestingPlan(
            phase="aftercare",
            # ~2 a month: 24 a year over 52.18 weeks.
            tests_per_week=0.46,
            min_per_rolling_week=0,
            max_per_rolling_week=2,
            source=f"~2/month: {_TIERS}; random every day, urine within 8 h: {_STANDARD_VII}",
        ),
    )
}
