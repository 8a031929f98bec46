"""Statistical and property tests of the daily random draw and of the testing plans.

Rolls come from seeded random.Random generators, so every run sees the same numbers. Tolerances
are four standard deviations of the quantity compared, which a correct draw breaches about once
in 16,000 comparisons: a failure means a bias, not bad luck.
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import replace
from datetime import date, time, timedelta
from itertools import pairwise

import pytest
import temporalio.converter
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.plan import PHASES, TestingPlan, default_plan, plan_from_dict
from domain.selection import (
    CEILING_REACHED,
    CLINIC_CLOSED,
    FLOOR_REQUIRED,
    NOT_SELECTED,
    PAUSED,
    REASONS,
    SELECTED,
    Draw,
    daily_probability,
    draw_day,
    notification_time,
    simulate,
)

SIGMAS = 4.0
FREE_DRAW = {SELECTED, NOT_SELECTED}  # days decided by the roll alone
WEEKEND = {5, 6}
YEAR = 2025
# US federal holidays in 2025: days the standards want drawn like any other when the clinic is open.
HOLIDAYS_2025 = tuple(
    date.fromisoformat(text)
    for text in (
        "2025-01-01", "2025-01-20", "2025-02-17", "2025-05-26", "2025-06-19", "2025-07-04",
        "2025-09-01", "2025-10-13", "2025-11-11", "2025-11-27", "2025-12-25",
    )
)  # fmt: skip
CLOSED_CHRISTMAS = "2025-12-25"


def plain_plan(tests_per_week: float, weekdays: tuple[int, ...] = (0, 1, 2, 3, 4, 5, 6)) -> TestingPlan:
    """A plan with no binding floor or ceiling: every open day is a plain independent draw."""
    return TestingPlan(
        phase="test",
        tests_per_week=tests_per_week,
        min_per_rolling_week=0,
        max_per_rolling_week=7,
        collection_weekdays=weekdays,
        source="test",
    )


def binomial_bound(trials: int, p: float) -> float:
    """Largest expected deviation of a success count from trials * p."""
    return SIGMAS * math.sqrt(trials * p * (1 - p))


def assert_rate(successes: int, trials: int, p: float) -> None:
    assert trials > 0
    bound = binomial_bound(trials, p)
    assert abs(successes - trials * p) <= bound, (
        f"{successes}/{trials} = {successes / trials:.4f}, expected p {p:.4f} ± {bound / trials:.4f}"
    )


def assert_same_rate(successes_a: int, trials_a: int, successes_b: int, trials_b: int) -> None:
    """Two-proportion z bound with the pooled rate."""
    pooled = (successes_a + successes_b) / (trials_a + trials_b)
    standard_error = math.sqrt(pooled * (1 - pooled) * (1 / trials_a + 1 / trials_b))
    gap = abs(successes_a / trials_a - successes_b / trials_b)
    assert gap <= SIGMAS * standard_error, (
        f"{successes_a}/{trials_a} vs {successes_b}/{trials_b}: gap {gap:.4f} > {SIGMAS} × {standard_error:.4f}"
    )


def rolls_from(seed: int, count: int) -> list[float]:
    rng = random.Random(seed)
    return [rng.random() for _ in range(count)]


def population(plan: TestingPlan, participants: int, seed: int) -> list[Draw]:
    """Draws for YEAR from many participants, each started on a random day of the previous autumn.

    Staggered starts and a lead-in keep phase starts (when no floor is owed yet) from piling onto
    particular weekdays or dates of the measured year.
    """
    rng = random.Random(seed)
    first, last = date(YEAR, 1, 1), date(YEAR, 12, 31)
    draws: list[Draw] = []
    for _ in range(participants):
        start = first - timedelta(days=rng.randint(30, 120))
        days = (last - start).days + 1
        all_draws = simulate(plan, days, start, (rng.random() for _ in range(days)))
        draws.extend(all_draws[(first - start).days :])
    return draws


def count(draws: list[Draw], predicate) -> tuple[int, int]:
    """(selected, total) among draws matching predicate."""
    chosen = [d for d in draws if predicate(d)]
    return sum(d.selected for d in chosen), len(chosen)


# Shared populations: simulated once per module, they are the bulk of the run time.
@pytest.fixture(scope="module")
def phase_1_population() -> list[Draw]:
    plan = replace(default_plan("phase-1"), closed_dates=(CLOSED_CHRISTMAS,))
    return population(plan, participants=250, seed=101)


@pytest.fixture(scope="module")
def plain_population() -> list[Draw]:
    return population(plain_plan(2.0), participants=250, seed=202)


# --- rates ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "plan",
    [
        plain_plan(0.46),
        plain_plan(1.0),
        plain_plan(2.0),
        plain_plan(3.0),
        plain_plan(5.5),
        plain_plan(2.0, weekdays=(0, 1, 2, 3, 4)),
    ],
    ids=lambda plan: f"{plan.tests_per_week}/week-on-{len(plan.collection_weekdays)}-days",
)
def test_daily_rate_matches_the_plan(plan: TestingPlan) -> None:
    days = 20_000
    draws = simulate(plan, days, date(YEAR, 1, 1), rolls_from(7, days))
    selected, open_days = count(draws, lambda d: d.reason != CLINIC_CLOSED)
    assert_rate(selected, open_days, daily_probability(plan))
    assert 7 * open_days / days == pytest.approx(len(plan.collection_weekdays), rel=0.01)


def test_days_left_to_chance_use_the_base_rate_even_when_limits_bind(phase_1_population) -> None:
    # Floor and ceiling depend only on earlier days, never on today's roll, so the days they leave
    # alone must be drawn at exactly p.
    p = daily_probability(default_plan("phase-1"))
    assert_rate(*count(phase_1_population, lambda d: d.reason in FREE_DRAW), p)


def test_daily_probability() -> None:
    assert daily_probability(plain_plan(3.0)) == pytest.approx(3 / 7)
    assert daily_probability(plain_plan(2.0, weekdays=(0, 1, 2, 3, 4))) == pytest.approx(2 / 5)
    assert daily_probability(plain_plan(7.0)) == 1.0
    # closed dates are rare and left out of the base rate
    assert daily_probability(replace(plain_plan(3.0), closed_dates=("2025-12-25",))) == pytest.approx(3 / 7)


# --- same odds every day ----------------------------------------------------------------------


@pytest.mark.parametrize("population_name", ["phase_1_population", "plain_population"])
def test_weekends_are_drawn_at_the_weekday_rate(population_name: str, request) -> None:
    draws = request.getfixturevalue(population_name)
    weekend = count(draws, lambda d: d.weekday in WEEKEND and d.reason != CLINIC_CLOSED)
    weekdays = count(draws, lambda d: d.weekday not in WEEKEND and d.reason != CLINIC_CLOSED)
    assert_same_rate(*weekend, *weekdays)


@pytest.mark.parametrize("population_name", ["phase_1_population", "plain_population"])
def test_holidays_the_clinic_stays_open_are_drawn_at_the_usual_rate(population_name: str, request) -> None:
    draws = request.getfixturevalue(population_name)
    open_holidays = {day.isoformat() for day in HOLIDAYS_2025} - {CLOSED_CHRISTMAS}
    holidays = count(draws, lambda d: d.day in open_holidays)
    other_days = count(draws, lambda d: d.day not in open_holidays and d.reason != CLINIC_CLOSED)
    assert holidays[1] >= 250 * len(open_holidays)
    assert_same_rate(*holidays, *other_days)


def test_closed_dates_and_non_collection_weekdays_are_never_selected(phase_1_population) -> None:
    christmas = [d for d in phase_1_population if d.day == CLOSED_CHRISTMAS]
    assert christmas and all(not d.selected and d.reason == CLINIC_CLOSED for d in christmas)
    weekdays_only = plain_plan(3.0, weekdays=(0, 1, 2, 3, 4))
    draws = simulate(weekdays_only, 700, date(YEAR, 1, 1), rolls_from(3, 700))
    weekend = [d for d in draws if d.weekday in WEEKEND]
    assert weekend and all(not d.selected and d.reason == CLINIC_CLOSED for d in weekend)


# --- no predictable gaps ----------------------------------------------------------------------


def pairs_after_selection(draws: list[Draw]) -> list[tuple[Draw, Draw]]:
    consecutive = pairwise(draws)
    return [(today, tomorrow) for today, tomorrow in consecutive if today.selected and _next_day(today, tomorrow)]


def _next_day(today: Draw, tomorrow: Draw) -> bool:
    return date.fromisoformat(tomorrow.day) - date.fromisoformat(today.day) == timedelta(days=1)


def test_a_test_yesterday_does_not_change_the_odds_today(plain_population) -> None:
    p = daily_probability(plain_plan(2.0))
    after_selection = [tomorrow for _, tomorrow in pairs_after_selection(plain_population)]
    assert_rate(sum(d.selected for d in after_selection), len(after_selection), p)
    after_none = [b for a, b in pairwise(plain_population) if not a.selected and _next_day(a, b)]
    assert_same_rate(
        sum(d.selected for d in after_selection),
        len(after_selection),
        sum(d.selected for d in after_none),
        len(after_none),
    )


def test_the_day_after_a_test_is_left_to_chance_under_limits(phase_1_population) -> None:
    after_selection = [tomorrow for _, tomorrow in pairs_after_selection(phase_1_population)]
    free = [d for d in after_selection if d.reason in FREE_DRAW]
    # Most days after a test are still a plain draw at p: no rule makes them safe.
    assert len(free) / len(after_selection) > 0.9
    assert_rate(sum(d.selected for d in free), len(free), daily_probability(default_plan("phase-1")))


# --- floor and ceiling ------------------------------------------------------------------------


@st.composite
def plans(draw: st.DrawFn) -> TestingPlan:
    weekdays = tuple(sorted(draw(st.sets(st.integers(0, 6), min_size=1))))
    floor = draw(st.integers(0, len(weekdays)))
    ceiling = draw(st.integers(max(floor, 1), 7))
    tests_per_week = draw(
        st.floats(max(floor, 0.05), min(ceiling, len(weekdays)), allow_nan=False, allow_infinity=False)
    )
    opens = draw(st.integers(0, 22 * 60))
    closes = draw(st.integers(opens + 1, 23 * 60 + 59))
    return TestingPlan(
        phase=draw(st.sampled_from(PHASES)),
        tests_per_week=tests_per_week,
        min_per_rolling_week=floor,
        max_per_rolling_week=ceiling,
        collection_window_hours=draw(st.floats(1, 24)),
        collection_weekdays=weekdays,
        opens_at=f"{opens // 60:02d}:{opens % 60:02d}",
        closes_at=f"{closes // 60:02d}:{closes % 60:02d}",
        closed_dates=tuple(
            day.isoformat() for day in draw(st.lists(st.dates(date(YEAR, 1, 1), date(YEAR, 3, 31)), max_size=4))
        ),
        timezone=draw(st.sampled_from(["America/New_York", "America/Chicago", "Europe/Paris"])),
        source=draw(st.text(min_size=1).filter(str.strip)),
    )


SIM_DAYS = 49
unit_rolls = st.floats(0, 1, exclude_max=True)
# Extreme rolls push on the limits: all high ones never select by chance, all low ones always would.
roll_sequences = st.one_of(
    st.lists(unit_rolls, min_size=SIM_DAYS, max_size=SIM_DAYS),
    st.lists(st.sampled_from([0.0, 0.999999]), min_size=SIM_DAYS, max_size=SIM_DAYS),
)


def windows(start: date, days: int):
    """Every 7 consecutive calendar days inside the simulated span."""
    for offset in range(days - 6):
        first = start + timedelta(days=offset)
        yield [first + timedelta(days=k) for k in range(7)]


@settings(max_examples=300, deadline=None)
@given(
    plan=plans(),
    rolls=roll_sequences,
    start=st.dates(date(YEAR, 1, 1), date(YEAR, 2, 28)),
    pause_offsets=st.sets(st.integers(0, SIM_DAYS - 1), max_size=6),
)
def test_floor_and_ceiling_hold_in_every_rolling_week(plan, rolls, start, pause_offsets) -> None:
    paused = {start + timedelta(days=offset) for offset in pause_offsets}
    draws = simulate(plan, SIM_DAYS, start, rolls, paused)
    selected = {date.fromisoformat(d.day) for d in draws if d.selected}
    # The ceiling holds in every window, including those that run before the start.
    for offset in range(SIM_DAYS):
        last = start + timedelta(days=offset)
        in_window = [day for day in selected if last - timedelta(days=6) <= day <= last]
        assert len(in_window) <= plan.max_per_rolling_week
    # The floor holds in every window with no pause and no closed date (closed weekdays are part
    # of the regular week and do not excuse it).
    for window in windows(start, SIM_DAYS):
        if any(day in paused or day.isoformat() in plan.closed_dates for day in window):
            continue
        assert sum(day in selected for day in window) >= plan.min_per_rolling_week, window


def test_floor_forces_tests_only_when_no_slack_is_left() -> None:
    plan = replace(plain_plan(2.0), min_per_rolling_week=2)
    never_by_chance = [0.999] * 21
    draws = simulate(plan, 21, date(YEAR, 3, 3), never_by_chance)
    assert [d.selected for d in draws[:7]] == [False] * 5 + [True, True]
    assert all(d.reason == FLOOR_REQUIRED for d in draws if d.selected)
    assert sum(d.selected for d in draws) == 6  # exactly the floor, every week


def test_ceiling_blocks_once_reached() -> None:
    plan = replace(plain_plan(3.0), max_per_rolling_week=3)
    always_by_chance = [0.0] * 14
    draws = simulate(plan, 14, date(YEAR, 3, 3), always_by_chance)
    assert [d.reason for d in draws[:7]] == [SELECTED] * 3 + [CEILING_REACHED] * 4
    assert all(d.probability == 0.0 for d in draws if d.reason == CEILING_REACHED)


def test_floor_starts_fresh_after_a_pause_and_at_the_start() -> None:
    # Without the exemption, a new or returning participant would be forced on their first days.
    plan = replace(plain_plan(2.0), min_per_rolling_week=2)
    start = date(YEAR, 3, 3)
    draws = simulate(plan, 20, start, [0.999] * 20, paused_days={start + timedelta(days=9)})
    forced = [(date.fromisoformat(d.day) - start).days for d in draws if d.reason == FLOOR_REQUIRED]
    assert forced == [5, 6, 15, 16]


def test_full_history_is_the_default() -> None:
    plan = replace(plain_plan(2.0), min_per_rolling_week=2)
    day = date(YEAR, 3, 10)
    assert draw_day(plan, day, 0.999, []).reason == FLOOR_REQUIRED
    assert draw_day(plan, day, 0.999, [], history_start=day).reason == NOT_SELECTED


# --- pauses and reproducibility ---------------------------------------------------------------


def test_no_selection_on_paused_days_and_their_rolls_are_still_consumed() -> None:
    plan = default_plan("phase-1")
    start = date(YEAR, 4, 1)
    paused = {start + timedelta(days=offset) for offset in range(10, 40)}
    rolls = rolls_from(11, 90)
    draws = simulate(plan, 90, start, rolls, paused)
    on_pause = [d for d in draws if date.fromisoformat(d.day) in paused]
    assert len(on_pause) == 30
    assert all(not d.selected and d.reason == PAUSED and d.probability == 0.0 for d in on_pause)
    assert [d.roll for d in draws] == rolls  # the n-th roll belongs to the n-th day
    assert any(d.selected for d in draws if date.fromisoformat(d.day) > max(paused))


def test_paused_beats_every_other_rule() -> None:
    plan = replace(plain_plan(2.0), min_per_rolling_week=2)
    draw = draw_day(plan, date(YEAR, 3, 10), 0.0, [], paused=True)
    assert (draw.selected, draw.reason) == (False, PAUSED)


def test_same_rolls_give_the_same_draws() -> None:
    plan = default_plan("phase-2")
    first = simulate(plan, 365, date(YEAR, 1, 1), rolls_from(5, 365), {date(YEAR, 6, 1)})
    again = simulate(plan, 365, date(YEAR, 1, 1), rolls_from(5, 365), {date(YEAR, 6, 1)})
    other = simulate(plan, 365, date(YEAR, 1, 1), rolls_from(6, 365), {date(YEAR, 6, 1)})
    assert first == again
    assert [d.selected for d in first] != [d.selected for d in other]


def test_draws_explain_themselves() -> None:
    plan = plain_plan(2.0)
    day = date(YEAR, 3, 10)
    missed = draw_day(plan, day, 0.412, [])
    assert missed == Draw("2025-03-10", 0, pytest.approx(2 / 7), 0.412, False, NOT_SELECTED, "roll 0.412 ≥ p 0.286")
    hit = draw_day(plan, day, 0.1, [])
    assert (hit.selected, hit.reason, hit.detail) == (True, SELECTED, "roll 0.100 < p 0.286")
    closed = draw_day(replace(plan, closed_dates=("2025-03-10",)), day, 0.1, [])
    assert (closed.selected, closed.reason) == (False, CLINIC_CLOSED)
    assert "closed date" in closed.detail
    for draw in (missed, hit, closed):
        assert draw.reason in REASONS


def test_only_the_six_days_before_count() -> None:
    plan = replace(plain_plan(1.0), max_per_rolling_week=1)
    day = date(YEAR, 3, 10)
    assert draw_day(plan, day, 0.0, [day - timedelta(days=7)]).reason == SELECTED
    assert draw_day(plan, day, 0.0, [day - timedelta(days=6)]).reason == CEILING_REACHED
    assert draw_day(plan, day, 0.0, [day + timedelta(days=1)]).reason == SELECTED


@pytest.mark.parametrize("roll", [-0.1, 1.0, float("nan")])
def test_rolls_must_be_uniform_on_the_unit_interval(roll: float) -> None:
    with pytest.raises(ValueError, match="roll"):
        draw_day(default_plan("phase-1"), date(YEAR, 3, 10), roll, [])


def test_simulate_needs_a_roll_per_day() -> None:
    with pytest.raises(ValueError, match="ran out of rolls"):
        simulate(default_plan("phase-1"), 10, date(YEAR, 3, 10), [0.5] * 9)


# --- notification time ------------------------------------------------------------------------


def test_notification_leaves_the_whole_collection_window_before_closing() -> None:
    plan = default_plan("phase-1")  # 07:00-19:00, 8 h window: notify 07:00-11:00
    day = date(YEAR, 3, 10)
    assert notification_time(plan, day, 0.0) == time(7, 0)
    assert notification_time(plan, day, 0.5) == time(9, 0)
    assert notification_time(plan, day, 0.999999) == time(10, 59)


def test_notification_at_opening_when_the_window_is_longer_than_the_hours() -> None:
    plan = replace(default_plan("phase-1"), opens_at="09:00", closes_at="13:00")
    assert notification_time(plan, date(YEAR, 3, 10), 0.7) == time(9, 0)


def test_no_notification_on_a_closed_day() -> None:
    plan = replace(default_plan("phase-1"), closed_dates=("2025-03-10",))
    with pytest.raises(ValueError, match="does not collect"):
        notification_time(plan, date(YEAR, 3, 10), 0.5)


def first_collection_day(plan: TestingPlan, after: date) -> date:
    week = (after + timedelta(days=k) for k in range(7))
    return next(day for day in week if day.weekday() in plan.collection_weekdays)


def minutes(clock: time) -> int:
    return clock.hour * 60 + clock.minute


@settings(max_examples=200, deadline=None)
@given(plan=plans(), roll=unit_rolls)
def test_notification_falls_within_clinic_hours(plan: TestingPlan, roll: float) -> None:
    notified = notification_time(plan, first_collection_day(plan, date(YEAR, 4, 1)), roll)
    opens, closes = time.fromisoformat(plan.opens_at), time.fromisoformat(plan.closes_at)
    assert opens <= notified < closes
    window = round(plan.collection_window_hours * 60)
    if minutes(opens) + window <= minutes(closes):
        assert minutes(notified) + window <= minutes(closes)
    else:
        assert notified == opens


# --- plans ------------------------------------------------------------------------------------


def test_default_plans_follow_the_program_order_and_cite_a_source() -> None:
    assert PHASES == ("phase-1", "phase-2", "phase-3", "aftercare")
    rates = [default_plan(phase).tests_per_week for phase in PHASES]
    assert rates == sorted(rates, reverse=True)
    for phase in PHASES:
        plan = default_plan(phase)
        assert plan.phase == phase
        assert plan.collection_weekdays == (0, 1, 2, 3, 4, 5, 6)  # same odds on weekends
        assert plan.collection_window_hours == 8.0
        assert "Standard VII" in plan.source
    assert default_plan("phase-1").tests_per_week == 3.0
    assert default_plan("phase-2").tests_per_week == 2.0
    assert default_plan("phase-3").tests_per_week == 1.0
    assert 4 * default_plan("aftercare").tests_per_week == pytest.approx(2, abs=0.2)  # ~2 a month


def test_unknown_phase_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match="phase-1, phase-2, phase-3, aftercare"):
        default_plan("phase-9")


BASE = default_plan("phase-1")
PAYLOADS = temporalio.converter.default().payload_converter


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"min_per_rolling_week": -1}, "min_per_rolling_week"),
        ({"min_per_rolling_week": 6}, "floor 6, ceiling 5"),
        ({"max_per_rolling_week": 8}, "<= 7"),
        ({"min_per_rolling_week": 1.5}, "whole numbers"),
        ({"tests_per_week": 0.0}, "above 0"),
        ({"tests_per_week": 8.0, "max_per_rolling_week": 7}, "at most 7"),
        ({"tests_per_week": 1.0}, "between the floor 2 and the ceiling 5"),
        ({"tests_per_week": 6.0}, "between the floor 2 and the ceiling 5"),
        ({"tests_per_week": float("nan")}, "tests_per_week"),
        ({"collection_window_hours": 0.5}, "between 1 and 24"),
        ({"collection_window_hours": 25.0}, "between 1 and 24"),
        ({"opens_at": "7:00"}, "HH:MM"),
        ({"closes_at": "24:00"}, "not a time of day"),
        ({"opens_at": "19:00", "closes_at": "07:00"}, "must be earlier than"),
        ({"collection_weekdays": ()}, "non-empty"),
        ({"collection_weekdays": (0, 7)}, "0 \\(Monday\\) to 6 \\(Sunday\\)"),
        ({"collection_weekdays": (1, 1, 2)}, "distinct"),
        ({"collection_weekdays": [0, 1, 2]}, "tuple"),
        ({"collection_weekdays": (0, 1)}, "add collection weekdays or lower the plan"),
        ({"closed_dates": ("2025-02-30",)}, "not an ISO date"),
        ({"closed_dates": ("20251225",)}, "not an ISO date"),
        ({"timezone": ""}, "timezone"),
        ({"phase": "  "}, "phase"),
        ({"source": ""}, "source"),
    ],
)
def test_invalid_plans_are_rejected_with_a_useful_message(changes: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        replace(BASE, **changes)


@settings(max_examples=200, deadline=None)
@given(plan=plans())
def test_plan_round_trips_through_temporal_and_an_export(plan: TestingPlan) -> None:
    """The plan crosses Temporal as the payload converter writes it, and a selection export keeps that JSON
    (domain.verifiable reads it back with plan_from_dict)."""
    payload = PAYLOADS.to_payloads([plan])
    assert PAYLOADS.from_payloads(payload, [TestingPlan]) == [plan]
    assert plan_from_dict(json.loads(payload[0].data)) == plan


def test_default_plans_round_trip() -> None:
    for phase in PHASES:
        data = as_json(default_plan(phase))
        assert isinstance(data["collection_weekdays"], list)
        assert plan_from_dict(data) == default_plan(phase)


def as_json(plan: TestingPlan) -> dict:
    return json.loads(PAYLOADS.to_payloads([plan])[0].data)


def test_plan_from_dict_takes_whole_numbers_for_rates() -> None:
    data = as_json(BASE) | {"tests_per_week": 3, "collection_window_hours": 8}
    plan = plan_from_dict(data)
    assert plan == BASE and isinstance(plan.tests_per_week, float)


def test_plan_from_dict_rejects_unknown_and_missing_fields() -> None:
    with pytest.raises(ValueError, match="unknown testing-plan field.*tests_per_weak"):
        plan_from_dict(as_json(BASE) | {"tests_per_weak": 2})
    incomplete = as_json(BASE)
    del incomplete["source"]
    with pytest.raises(ValueError, match="incomplete testing plan"):
        plan_from_dict(incomplete)
