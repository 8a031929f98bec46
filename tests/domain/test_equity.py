"""The equity report's statistics: Wilson intervals, log-method rate ratios, suppression, flags."""

from __future__ import annotations

import math
from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.demographics import NOT_RECORDED, Demographics, Race, Sex
from domain.equity import (
    METRICS,
    ParticipantMonth,
    Ratio,
    equity_report,
    flag,
    rate_ratio,
    wilson,
)

counts = st.integers(min_value=0, max_value=5000).flatmap(
    lambda n: st.tuples(st.integers(min_value=0, max_value=n), st.just(n))
)


# --- Wilson ---------------------------------------------------------------------------------------


def test_wilson_known_values():
    # Newcombe (1998), table I, method 3: 81/263 -> 0.2553 to 0.3662; 15/148 -> 0.0624 to 0.1605.
    low, high = wilson(81, 263).low, wilson(81, 263).high
    assert (round(low, 4), round(high, 4)) == (0.2553, 0.3662)
    assert (round(wilson(15, 148).low, 4), round(wilson(15, 148).high, 4)) == (0.0624, 0.1605)
    assert wilson(0, 10).low == 0.0 and round(wilson(0, 10).high, 4) == 0.2775
    assert wilson(10, 10).high == 1.0
    assert wilson(0, 0) is None


@given(counts)
def test_wilson_contains_the_estimate_and_stays_in_unit_interval(pair):
    k, n = pair
    interval = wilson(k, n)
    if n == 0:
        assert interval is None
        return
    assert 0.0 <= interval.low <= k / n <= interval.high <= 1.0
    assert interval.high - interval.low > 0


@given(counts)
def test_wilson_is_symmetric_in_successes_and_failures(pair):
    k, n = pair
    if n == 0:
        return
    a, b = wilson(k, n), wilson(n - k, n)
    assert math.isclose(a.low, 1 - b.high, abs_tol=1e-12) and math.isclose(a.high, 1 - b.low, abs_tol=1e-12)


@given(st.integers(1, 200), st.integers(1, 20))
def test_wilson_narrows_with_more_trials(n, factor):
    k = n // 3
    small, large = wilson(k, n), wilson(k * (factor + 1), n * (factor + 1))
    assert large.high - large.low < small.high - small.low


def test_wilson_refuses_impossible_counts():
    with pytest.raises(ValueError):
        wilson(3, 2)
    with pytest.raises(ValueError):
        wilson(-1, 2)


# --- rate ratio --------------------------------------------------------------------------------------


def test_rate_ratio_known_value():
    # 10/100 against 5/100: RR 2, SE(log RR) = sqrt(1/10 - 1/100 + 1/5 - 1/100) = sqrt(0.28).
    ratio = rate_ratio(10, 100, 5, 100)
    se = math.sqrt(0.28)
    assert ratio.ratio == 2.0
    assert math.isclose(ratio.low, 2 * math.exp(-1.959963984540054 * se))
    assert math.isclose(ratio.high, 2 * math.exp(1.959963984540054 * se))
    assert not ratio.excludes_one
    assert rate_ratio(200, 1000, 100, 1000).excludes_one


@given(counts, counts)
def test_rate_ratio_contains_its_estimate_and_inverts(first, second):
    (a, n1), (c, n2) = first, second
    ratio = rate_ratio(a, n1, c, n2)
    if n1 == 0 or n2 == 0 or (a == 0 and c == 0):
        assert ratio is None
        return
    assert 0 < ratio.low <= ratio.ratio <= ratio.high < math.inf
    if a and c:
        assert math.isclose(ratio.ratio, (a / n1) / (c / n2))
    inverse = rate_ratio(c, n2, a, n1)
    assert math.isclose(ratio.ratio * inverse.ratio, 1.0, rel_tol=1e-9)
    assert math.isclose(ratio.low * inverse.high, 1.0, rel_tol=1e-9)


def test_flag_at_the_four_fifths_thresholds():
    assert flag(Ratio(1.25, 1.0, 1.5)) == "higher"
    assert flag(Ratio(1.24, 1.0, 1.5)) is None
    assert flag(Ratio(0.8, 0.5, 1.1)) == "lower"
    assert flag(Ratio(0.81, 0.5, 1.1)) is None
    assert flag(None) is None
    assert flag(Ratio(1.5, 1.0, 2.0), high=2.0) is None


# --- the report --------------------------------------------------------------------------------------

PERIOD = ("2026-11", date(2026, 11, 1), date(2026, 11, 30))


def person(i: int, race: Race | None, **counts: int) -> ParticipantMonth:
    base = {"days_enrolled": 30, "draw_days": 30}
    base.update(counts)
    return ParticipantMonth(f"p-{i}", Demographics(race=race), **base)


def test_a_group_tested_twice_as_often_is_flagged_and_small_groups_are_suppressed():
    months = (
        [person(i, Race.BLACK_AFRICAN_AMERICAN, selected_days=6) for i in range(20)]
        + [person(100 + i, Race.WHITE, selected_days=3) for i in range(40)]
        + [person(200 + i, Race.ASIAN, selected_days=3) for i in range(5)]
    )
    report = equity_report(*PERIOD, months)
    by = {(g.dimension, g.group): g for g in report.groups}
    black = {c.metric: c for c in by[("race", "black-or-african-american")].rates}["random-selection"]
    assert (black.count, black.of) == (120, 600)
    assert black.flag == "higher" and black.interval_excludes_one
    assert math.isclose(black.ratio, (120 / 600) / (135 / 1350))
    white = {c.metric: c for c in by[("race", "white")].rates}["random-selection"]
    assert white.flag == "lower"
    asian = by[("race", "asian")]
    assert asian.suppressed and asian.participants is None and asian.rates == []
    # Nobody answered sex: one group holding everyone, whose complement is empty: suppressed.
    assert by[("sex", NOT_RECORDED)].suppressed
    overall = {r.metric: r for r in report.overall}["random-selection"]
    assert (overall.count, overall.of) == (120 + 120 + 15, 65 * 30)
    assert report.flagged >= 2


def test_for_cause_is_its_own_section_and_counts_are_capped_by_chances():
    months = [person(i, Race.WHITE, for_cause_days=40, days_enrolled=30) for i in range(12)]
    months += [person(100 + i, Race.ASIAN) for i in range(12)]
    report = equity_report(*PERIOD, months)
    sections = {m.key: m.section for m in report.metrics}
    assert sections["for-cause"] == "for-cause" and sections["random-selection"] == "random"
    overall = {r.metric: r for r in report.overall}["for-cause"]
    assert overall.count == 12 * 30 and overall.of == 24 * 30  # never more days with a test than days


def test_sanctions_relevant_reports_count_participants():
    months = [person(i, None, sanction_reports=3 if i < 4 else 0) for i in range(20)]
    rate = {r.metric: r for r in equity_report(*PERIOD, months).overall}["sanction-reports"]
    assert (rate.count, rate.of) == (4, 20)


def test_bad_configuration_and_duplicates_are_refused():
    with pytest.raises(ValueError):
        equity_report(*PERIOD, [], low=1.2)
    with pytest.raises(ValueError):
        equity_report(*PERIOD, [], min_group_size=0)
    with pytest.raises(ValueError):
        equity_report(*PERIOD, [person(1, None), person(1, None)])


month_strategy = st.builds(
    lambda i, race, sex, drawn, selected, tests, missed, final, positive, reports: ParticipantMonth(
        f"p-{i}",
        Demographics(race=race, sex=sex),
        days_enrolled=drawn,
        draw_days=drawn,
        selected_days=min(selected, drawn),
        random_scheduled=tests,
        random_missed=min(missed, tests),
        random_final=min(final, tests),
        random_positive=min(positive, final, tests),
        sanction_reports=reports,
    ),
    st.integers(0, 10**6),
    st.none() | st.sampled_from(list(Race)),
    st.none() | st.sampled_from(list(Sex)),
    st.integers(0, 31),
    st.integers(0, 31),
    st.integers(0, 10),
    st.integers(0, 10),
    st.integers(0, 10),
    st.integers(0, 10),
    st.integers(0, 3),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(month_strategy, max_size=80, unique_by=lambda m: m.participant_id), st.integers(1, 15))
def test_no_shown_group_is_small_and_rates_are_consistent(months, min_size):
    report = equity_report(*PERIOD, months, min_group_size=min_size)
    total = len(months)
    assert report.participants == total
    for group in report.groups:
        if group.suppressed:
            assert group.participants is None and group.rates == []
            members = sum(1 for m in months if m.demographics.group(group.dimension) == group.group)
            assert members < min_size or total - members < min_size
        else:
            assert min_size <= group.participants and total - group.participants >= min_size
            assert [c.metric for c in group.rates] == [m.key for m in METRICS]
            for c in group.rates:
                assert c.count <= c.of
                if c.of:
                    assert c.ci_low <= c.rate <= c.ci_high
                if c.ratio is not None:
                    assert c.ratio_ci_low <= c.ratio <= c.ratio_ci_high
                    assert (c.flag == "higher") == (c.ratio >= report.ratio_high)
                    assert (c.flag == "lower") == (c.ratio <= report.ratio_low)
    # Every participant is in exactly one group of every dimension.
    for dimension in ("race", "sex"):
        named = {g.group for g in report.groups if g.dimension == dimension}
        assert named == {m.demographics.group(dimension) for m in months}
