"""The daily random draw: is this participant tested today?

Each day is drawn on its own with the same probability, weekends and holidays included, so no
pattern tells a participant when the next test comes (All Rise Adult Treatment Court
Best Practice Standard VII; the daily draw is a project rule, docs/rules.md). A floor and a ceiling
per rolling 7-day window bound the draw. Randomness comes in as arguments (workflow.random() in
the workflow, a seeded generator in tests), so that an auditor can replay every draw.

Pure and stdlib-only: imported inside Temporal's deterministic workflow sandbox.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, time, timedelta

from domain.plan import TestingPlan, hours_for, minutes_of_day
from domain.vocab import Vocabulary

WINDOW_DAYS = 7


class SelectionReason(Vocabulary):
    """Why a participant was or was not selected on a day."""

    SELECTED = "selected"
    NOT_SELECTED = "not-selected"
    PAUSED = "paused"
    CLINIC_CLOSED = "clinic-closed"
    CEILING_REACHED = "ceiling-reached"
    FLOOR_REQUIRED = "floor-required"


SELECTED = SelectionReason.SELECTED
NOT_SELECTED = SelectionReason.NOT_SELECTED
PAUSED = SelectionReason.PAUSED
CLINIC_CLOSED = SelectionReason.CLINIC_CLOSED
CEILING_REACHED = SelectionReason.CEILING_REACHED
FLOOR_REQUIRED = SelectionReason.FLOOR_REQUIRED
REASONS: tuple[str, ...] = (SELECTED, NOT_SELECTED, PAUSED, CLINIC_CLOSED, CEILING_REACHED, FLOOR_REQUIRED)


@dataclass(frozen=True)
class Draw:
    """One day's outcome, with what an auditor needs to check it."""

    day: str  # ISO date
    weekday: int  # Monday 0 .. Sunday 6
    probability: float  # the probability actually applied: 0 when no test was possible, 1 when forced
    roll: float  # the uniform number consumed, whatever the outcome
    selected: bool
    reason: str  # one of REASONS
    detail: str


@dataclass(frozen=True)
class DrawInputs:
    """What a verifiable draw was computed from, kept with it so that anyone holding the revealed seed can
    compute it again (domain.verifiable.recompute)."""

    plan: TestingPlan
    recent_selections: tuple[str, ...]  # ISO days selected in the 7 days before
    paused: bool
    history_start: str  # ISO date: the floor counts from here


def daily_probability(plan: TestingPlan) -> float:
    """Chance of a test on an open day: tests per week spread evenly over the collection weekdays.

    Closed dates are rare and left out of the base rate.
    """
    return min(1.0, plan.tests_per_week / len(plan.collection_weekdays))


def is_collection_day(plan: TestingPlan, day: date) -> bool:
    """Whether the clinic collects specimens on this day."""
    # Most plans close no single date: skip formatting the day then (iop simulate draws millions).
    closed = plan.closed_dates
    return day.weekday() in plan.collection_weekdays and not (closed and day.isoformat() in closed)


def draw_day(
    plan: TestingPlan,
    day: date,
    roll: float,
    selected_days: Sequence[date],
    paused: bool = False,
    *,
    history_start: date | None = None,
) -> Draw:
    """Decide whether the participant is tested on `day`.

    `roll` is uniform in [0, 1), drawn by the caller every day, paused and closed days included,
    so that the n-th roll always belongs to the n-th day and the whole sequence replays the same.
    `selected_days` are the days already selected; only the 6 days before `day` matter.
    `history_start` is the first day of the unbroken run of non-paused draws under this plan (the
    phase start, or the day after a pause ended). Rolling windows that begin earlier are exempt
    from the floor, since the participant was not under this plan for all their days; the ceiling
    still counts every test taken. None means the history is complete.

    Rules, first match wins: paused, clinic closed, ceiling reached, floor required, then the roll.
    """
    if not 0.0 <= roll < 1.0:
        raise ValueError(f"roll must be uniform in [0, 1); got {roll!r}")
    recent = _recent_selections(selected_days, day)

    def outcome(probability: float, selected: bool, reason: str, detail: str) -> Draw:
        return Draw(day.isoformat(), day.weekday(), probability, roll, selected, reason, detail)

    if paused:
        return outcome(0.0, False, PAUSED, f"participant paused; roll {roll:.3f} consumed, not applied")
    if not is_collection_day(plan, day):
        why = "a closed date" if day.isoformat() in plan.closed_dates else "not a collection weekday"
        return outcome(0.0, False, CLINIC_CLOSED, f"clinic closed on {day:%A} {day.isoformat()} ({why})")
    if len(recent) + 1 > plan.max_per_rolling_week:
        return outcome(
            0.0,
            False,
            CEILING_REACHED,
            f"{len(recent)} test(s) in the 6 days before; one more would exceed the ceiling of "
            f"{plan.max_per_rolling_week} per rolling 7 days",
        )
    window = _window_left_without_slack(plan, day, recent, history_start)
    if window is not None:
        last = window.start + timedelta(days=WINDOW_DAYS - 1)
        return outcome(
            1.0,
            True,
            FLOOR_REQUIRED,
            f"the 7 days {window.start.isoformat()}..{last.isoformat()} have {window.tests_so_far} test(s) "
            f"and {window.open_days_left} open day(s) left, today included, for a floor of "
            f"{plan.min_per_rolling_week}",
        )
    probability = daily_probability(plan)
    if roll < probability:
        return outcome(probability, True, SELECTED, f"roll {roll:.3f} < p {probability:.3f}")
    return outcome(probability, False, NOT_SELECTED, f"roll {roll:.3f} ≥ p {probability:.3f}")


# Floor trade-off: a window is forced only when it has no slack left, i.e. when every one of its
# remaining open days (today included) must be a test to reach the floor. Forcing as late as
# possible keeps forced tests rare, so most days stay a plain independent draw; the price is that
# a participant who has gone untested for most of a window can tell a test is coming on its last
# open days. Because the ceiling is at least the floor and windows repeat weekly, a forced day
# never meets the ceiling unless a closed date or an earlier plan's tests intervene; then the
# ceiling wins, as it always holds.
@dataclass(frozen=True)
class _ShortWindow:
    start: date
    tests_so_far: int
    open_days_left: int


def _window_left_without_slack(
    plan: TestingPlan, day: date, recent: set[date], history_start: date | None
) -> _ShortWindow | None:
    """A rolling window containing `day` that cannot reach the floor without today, if any."""
    floor = plan.min_per_rolling_week
    if floor == 0:
        return None
    # open_ahead[k]: open days from today to today + k.
    open_ahead: list[int] = []
    count = 0
    weekday, weekdays, closed = day.weekday(), plan.collection_weekdays, plan.closed_dates
    for offset in range(WINDOW_DAYS):
        if (weekday + offset) % 7 in weekdays:
            count += not (closed and (day + timedelta(days=offset)).isoformat() in closed)
        open_ahead.append(count)
    # within[back]: the tests at most `back` days old (recent holds the 6 days before today), i.e. the
    # tests so far of the window that starts `back` days ago.
    within = [0] * WINDOW_DAYS
    for selected in recent:
        within[(day - selected).days] += 1
    for back in range(1, WINDOW_DAYS):
        within[back] += within[back - 1]
    # A window starting `back` days ago starts before history_start when back > since.
    since = WINDOW_DAYS if history_start is None else (day - history_start).days
    for back in range(min(WINDOW_DAYS - 1, since), -1, -1):  # oldest window first, it has least time left
        tests_so_far = within[back]
        days_left = open_ahead[WINDOW_DAYS - 1 - back]
        if floor - tests_so_far >= days_left:
            return _ShortWindow(day - timedelta(days=back), tests_so_far, days_left)
    return None


def _recent_selections(selected_days: Iterable[date], day: date) -> set[date]:
    earliest = day - timedelta(days=WINDOW_DAYS - 1)
    return {selected for selected in selected_days if earliest <= selected < day}


def notification_time(plan: TestingPlan, day: date, roll: float) -> time:
    """Random local (clinic wall-clock) time to tell a selected participant, to the minute.

    Drawn uniformly between opening and the latest time that still leaves the whole collection
    window before closing, so a participant is never notified too late to comply. If the window is
    longer than the clinic's hours, the notice goes out at opening. Use a fresh roll, not the
    selection roll: a selected day's roll is below p, so reusing it would bunch notices early.
    """
    if not 0.0 <= roll < 1.0:
        raise ValueError(f"roll must be uniform in [0, 1); got {roll!r}")
    if not is_collection_day(plan, day):
        raise ValueError(f"the clinic does not collect on {day.isoformat()}; no notification time")
    opens_at, closes_at = hours_for(plan, day.weekday())
    opens, closes = minutes_of_day(opens_at), minutes_of_day(closes_at)
    latest = closes - round(plan.collection_window_hours * 60)
    spread = max(0, latest - opens)
    minute = opens + int(roll * spread)  # roll < 1, so never past `latest`
    return time(minute // 60, minute % 60)


def window_end(plan: TestingPlan, day: date, notice: time) -> time:
    """When the collection window that a notice at `notice` opens must close (local wall clock).

    The window lasts collection_window_hours but ends at the day's closing time, never after:
    a participant cannot be asked to report to a closed clinic.
    """
    if not is_collection_day(plan, day):
        raise ValueError(f"the clinic does not collect on {day.isoformat()}; no collection window")
    closes = minutes_of_day(hours_for(plan, day.weekday())[1])
    start = notice.hour * 60 + notice.minute
    end = min(closes, start + round(plan.collection_window_hours * 60))
    end = max(end, start)
    return time(end // 60, end % 60) if end < 24 * 60 else time(23, 59)


def simulate(
    plan: TestingPlan,
    days: int,
    start: date,
    rolls: Iterable[float],
    paused_days: set[date] | frozenset[date] = frozenset(),
) -> list[Draw]:
    """Draw `days` consecutive days from `start` for a participant new to the plan, one roll a day."""
    if days < 0:
        raise ValueError(f"days must not be negative; got {days}")
    roll_source = iter(rolls)
    draws: list[Draw] = []
    selected: list[date] = []
    history_start = start
    for offset in range(days):
        day = start + timedelta(days=offset)
        roll = next(roll_source, None)
        if roll is None:
            raise ValueError(f"ran out of rolls after {offset} day(s); one roll is needed per day")
        paused = day in paused_days
        draw = draw_day(plan, day, roll, selected[-WINDOW_DAYS:], paused, history_start=history_start)
        draws.append(draw)
        if draw.selected:
            selected.append(day)
        if paused:
            history_start = day + timedelta(days=1)
    return draws
