"""draw_day's floor check was rewritten for speed (iop simulate draws millions of days); the running
workflows replay it, so it must decide exactly as the code it replaced, kept here verbatim."""

from datetime import date, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from domain import selection
from domain.plan import TestingPlan
from domain.selection import WINDOW_DAYS, _recent_selections, is_collection_day


def original_window_left_without_slack(plan, day, recent, history_start):
    floor = plan.min_per_rolling_week
    if floor == 0:
        return None
    open_ahead: list[int] = []
    count = 0
    for offset in range(WINDOW_DAYS):
        count += is_collection_day(plan, day + timedelta(days=offset))
        open_ahead.append(count)
    for back in range(WINDOW_DAYS - 1, -1, -1):
        start = day - timedelta(days=back)
        if history_start is not None and start < history_start:
            continue
        tests_so_far = sum(1 for selected in recent if selected >= start)
        days_left = open_ahead[WINDOW_DAYS - 1 - back]
        if floor - tests_so_far >= days_left:
            return selection._ShortWindow(start, tests_so_far, days_left)
    return None


BASE = date(2026, 3, 2)


@st.composite
def cases(draw):
    weekdays = tuple(sorted(draw(st.sets(st.integers(0, 6), min_size=1))))
    floor = draw(st.integers(0, len(weekdays)))
    ceiling = draw(st.integers(max(floor, 1), 7))
    rate = float(max(floor, 1))  # the rate does not enter the floor check
    closed = tuple(sorted({(BASE + timedelta(days=d)).isoformat() for d in draw(st.lists(st.integers(0, 30)))}))
    plan = TestingPlan(
        phase="p",
        tests_per_week=rate,
        min_per_rolling_week=floor,
        max_per_rolling_week=ceiling,
        collection_weekdays=weekdays,
        closed_dates=closed,
        source="test",
    )
    day = BASE + timedelta(days=draw(st.integers(0, 20)))
    recent = {day - timedelta(days=d) for d in draw(st.sets(st.integers(1, 10)))}
    history = draw(st.one_of(st.none(), st.integers(-12, 3).map(lambda d: day + timedelta(days=d))))
    return plan, day, recent, history


@settings(max_examples=600, deadline=None)
@given(cases())
def test_floor_check_decides_as_before(case):
    plan, day, recent, history_start = case
    recent = _recent_selections(recent, day)
    assert selection._window_left_without_slack(plan, day, recent, history_start) == original_window_left_without_slack(
        plan, day, recent, history_start
    )
