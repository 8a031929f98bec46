"""The equity report: testing, results and sanctions-relevant reports by demographic group.

All Rise, Adult Treatment Court Best Practice Standards, 2nd ed. (2023), Standard II (Equity and
Inclusion): a program monitors whether members of groups that have historically experienced
discrimination receive the same opportunities, services, incentives and sanctions as others,
and takes corrective action where they do not. Participants and their lawyers ask the same
question of "random" testing; this report answers it with counts and intervals, not anecdotes.

What it computes, for a program month and each group of each dimension (domain/demographics.py):

- Random testing: the random-selection rate (days selected / days drawn), and among random tests
  the positive rate (final positive / tests with a final outcome) and the missed-test rate
  (missed / tests scheduled, cancelled ones left out).
- For-cause testing, apart, because it is human discretion rather than chance: days with a
  for-cause test / days enrolled, and the positive and missed rates among for-cause tests.
- Sanctions-relevant reports: participants with at least one report delivered to a recipient in
  the month that can lead to a sanction (a missed test, a positive result) / participants.

Each rate has a Wilson score interval (Wilson 1927; Newcombe, Stat Med 1998;17:857-72, method 3).
Each group is compared with everyone else in the month (not with a total that contains the group
itself, which would pull every ratio toward 1 and break the independence the interval needs): the
ratio of the two rates with a confidence interval by the log method (Katz et al., Biometrics
1978;34:469-74), 0.5 added to every cell when a count is zero. A ratio at or above the upper
threshold, or at or below the lower one, is flagged; the default 1.25 / 0.8 are the four-fifths
rule's bounds (29 CFR 1607.4(D)) - read for an adverse action such as a test, a higher rate is the
one to look at. A flag is a prompt to look, not a finding: the interval says how sure it is.

A group with fewer participants than the minimum size (default 11, the small-cell rule of CMS's
cell-size suppression policy) is suppressed, and so is a group whose complement is that small (its
numbers would follow from the totals): a suppressed group shows no count and no rate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date

from domain.demographics import DIMENSIONS, NOT_RECORDED, Demographics
from domain.vocab import Vocabulary

Z95 = 1.959963984540054  # the standard normal quantile for a two-sided 95% interval

DEFAULT_MIN_GROUP = 11
DEFAULT_HIGH = 1.25
DEFAULT_LOW = 0.8


class EquitySection(Vocabulary):
    """The sections of the equity report: who is tested by chance, by staff discretion, and reported."""

    RANDOM = "random"
    FOR_CAUSE = "for-cause"
    REPORTS = "reports"


RANDOM, FOR_CAUSE, REPORTS = EquitySection.RANDOM, EquitySection.FOR_CAUSE, EquitySection.REPORTS
SECTIONS: dict[str, str] = {
    RANDOM: "Random testing (chance)",
    FOR_CAUSE: "For-cause testing (staff discretion)",
    REPORTS: "Sanctions-relevant reports sent",
}


@dataclass(frozen=True)
class Interval:
    low: float
    high: float


def wilson(successes: int, trials: int, z: float = Z95) -> Interval | None:
    """The Wilson score interval for successes / trials; None when there were no trials."""
    if trials < 0 or successes < 0 or successes > trials:
        raise ValueError(f"need 0 <= successes <= trials, got {successes} / {trials}")
    if trials == 0:
        return None
    p = successes / trials
    z2 = z * z
    centre = (p + z2 / (2 * trials)) / (1 + z2 / trials)
    half = z * math.sqrt(p * (1 - p) / trials + z2 / (4 * trials * trials)) / (1 + z2 / trials)
    low, high = max(0.0, centre - half), min(1.0, centre + half)
    if successes == 0:
        low = 0.0  # exact at the bounds (rounding otherwise leaves a tiny positive number)
    if successes == trials:
        high = 1.0
    return Interval(low, high)


@dataclass(frozen=True)
class Ratio:
    ratio: float
    low: float
    high: float

    @property
    def excludes_one(self) -> bool:
        return self.low > 1.0 or self.high < 1.0


def rate_ratio(a: int, n1: int, c: int, n2: int, z: float = Z95) -> Ratio | None:
    """(a / n1) / (c / n2) with a log-method (Katz) interval; None when undefined.

    Undefined when a group has no trials, or neither group had any event. With a zero count,
    0.5 is added to every cell (a, n1 - a, c, n2 - c) so that the ratio and interval are finite.
    """
    for count, trials in ((a, n1), (c, n2)):
        if trials < 0 or count < 0 or count > trials:
            raise ValueError(f"need 0 <= count <= trials, got {count} / {trials}")
    if n1 == 0 or n2 == 0 or (a == 0 and c == 0):
        return None
    if a == 0 or c == 0:
        a_, n1_, c_, n2_ = a + 0.5, n1 + 1.0, c + 0.5, n2 + 1.0
    else:
        a_, n1_, c_, n2_ = float(a), float(n1), float(c), float(n2)
    ratio = (a_ / n1_) / (c_ / n2_)
    se = math.sqrt(max(0.0, 1 / a_ - 1 / n1_ + 1 / c_ - 1 / n2_))
    return Ratio(ratio, ratio * math.exp(-z * se), ratio * math.exp(z * se))


def flag(ratio: Ratio | None, high: float = DEFAULT_HIGH, low: float = DEFAULT_LOW) -> str | None:
    """'higher' or 'lower' when the ratio passes a threshold, else None."""
    if ratio is None:
        return None
    if ratio.ratio >= high:
        return "higher"
    if ratio.ratio <= low:
        return "lower"
    return None


# --- one participant's month ---------------------------------------------------------------------


@dataclass(frozen=True)
class ParticipantMonth:
    """What happened to one participant in the month, counted from the records (no names)."""

    participant_id: str
    demographics: Demographics = Demographics()
    days_enrolled: int = 0
    draw_days: int = 0  # days a random draw was made
    selected_days: int = 0  # of those, days selected
    for_cause_days: int = 0  # days with at least one for-cause test
    random_scheduled: int = 0  # random tests scheduled (not cancelled)
    random_missed: int = 0
    random_final: int = 0  # random tests with a final outcome
    random_positive: int = 0
    for_cause_scheduled: int = 0
    for_cause_missed: int = 0
    for_cause_final: int = 0
    for_cause_positive: int = 0
    sanction_reports: int = 0  # reports delivered that can lead to a sanction


@dataclass(frozen=True)
class Metric:
    key: str
    section: str
    label: str
    numerator: str  # a ParticipantMonth field
    denominator: str  # a ParticipantMonth field, or "participants" (one per participant)
    per: str  # what the denominator counts, for the reader


METRICS: tuple[Metric, ...] = (
    Metric("random-selection", RANDOM, "Random-selection rate", "selected_days", "draw_days", "days drawn"),
    Metric(
        "random-positive",
        RANDOM,
        "Positive rate (random tests)",
        "random_positive",
        "random_final",
        "random tests with a final result",
    ),
    Metric(
        "random-missed",
        RANDOM,
        "Missed-test rate (random tests)",
        "random_missed",
        "random_scheduled",
        "random tests scheduled",
    ),
    Metric("for-cause", FOR_CAUSE, "For-cause testing rate", "for_cause_days", "days_enrolled", "days enrolled"),
    Metric(
        "for-cause-positive",
        FOR_CAUSE,
        "Positive rate (for-cause tests)",
        "for_cause_positive",
        "for_cause_final",
        "for-cause tests with a final result",
    ),
    Metric(
        "for-cause-missed",
        FOR_CAUSE,
        "Missed-test rate (for-cause tests)",
        "for_cause_missed",
        "for_cause_scheduled",
        "for-cause tests scheduled",
    ),
    Metric(
        "sanction-reports",
        REPORTS,
        "Participants with a sanctions-relevant report sent",
        "sanction_reports",
        "participants",
        "participants",
    ),
)


def _counts(months: list[ParticipantMonth], metric: Metric) -> tuple[int, int]:
    if metric.denominator == "participants":
        return sum(1 for m in months if getattr(m, metric.numerator) > 0), len(months)
    numerator = denominator = 0
    for m in months:
        d = getattr(m, metric.denominator)
        numerator += min(getattr(m, metric.numerator), d)  # never more events than chances
        denominator += d
    return numerator, denominator


# --- the report -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rate:
    metric: str
    count: int
    of: int
    rate: float | None
    ci_low: float | None
    ci_high: float | None


@dataclass(frozen=True)
class Comparison:
    """A group's rate against everyone else's."""

    metric: str
    count: int
    of: int
    rate: float | None
    ci_low: float | None
    ci_high: float | None
    others_rate: float | None
    ratio: float | None
    ratio_ci_low: float | None
    ratio_ci_high: float | None
    flag: str | None  # higher | lower | None
    interval_excludes_one: bool


@dataclass(frozen=True)
class GroupRow:
    dimension: str
    group: str
    suppressed: bool
    participants: int | None  # None when suppressed
    rates: list[Comparison] = field(default_factory=list)


@dataclass(frozen=True)
class MetricInfo:
    key: str
    section: str
    label: str
    per: str


@dataclass(frozen=True)
class EquityReport:
    period: str
    period_start: date
    period_end: date
    participants: int
    min_group_size: int
    ratio_high: float
    ratio_low: float
    metrics: list[MetricInfo]
    overall: list[Rate]
    groups: list[GroupRow]
    flagged: int
    sections: dict[str, str]
    method: str


METHOD_NOTE = (
    "Rates with 95% Wilson score intervals; each group against all other participants as a rate "
    "ratio with a 95% log-method (Katz) interval; flags at the configured thresholds (four-fifths "
    "rule, 29 CFR 1607.4(D)); groups below the minimum size, or whose complement is, are suppressed."
)


def _rate(metric: Metric, months: list[ParticipantMonth]) -> Rate:
    count, of = _counts(months, metric)
    interval = wilson(count, of)
    return Rate(
        metric.key,
        count,
        of,
        count / of if of else None,
        interval.low if interval else None,
        interval.high if interval else None,
    )


def _comparison(
    metric: Metric, group: list[ParticipantMonth], others: list[ParticipantMonth], high: float, low: float
) -> Comparison:
    a, n1 = _counts(group, metric)
    c, n2 = _counts(others, metric)
    interval = wilson(a, n1)
    ratio = rate_ratio(a, n1, c, n2)
    return Comparison(
        metric=metric.key,
        count=a,
        of=n1,
        rate=a / n1 if n1 else None,
        ci_low=interval.low if interval else None,
        ci_high=interval.high if interval else None,
        others_rate=c / n2 if n2 else None,
        ratio=ratio.ratio if ratio else None,
        ratio_ci_low=ratio.low if ratio else None,
        ratio_ci_high=ratio.high if ratio else None,
        flag=flag(ratio, high, low),
        interval_excludes_one=bool(ratio and ratio.excludes_one),
    )


def equity_report(
    period: str,
    period_start: date,
    period_end: date,
    months: list[ParticipantMonth],
    *,
    min_group_size: int = DEFAULT_MIN_GROUP,
    high: float = DEFAULT_HIGH,
    low: float = DEFAULT_LOW,
) -> EquityReport:
    """The report over every participant enrolled during the month."""
    if min_group_size < 1:
        raise ValueError("min_group_size must be at least 1")
    if not 0 < low < 1 < high:
        raise ValueError("the thresholds must satisfy 0 < low < 1 < high")
    ids = [m.participant_id for m in months]
    if len(set(ids)) != len(ids):
        raise ValueError("a participant is counted twice")
    total = len(months)
    groups: list[GroupRow] = []
    for dimension, vocabulary in DIMENSIONS.items():
        by_group: dict[str, list[ParticipantMonth]] = {}
        for m in months:
            by_group.setdefault(m.demographics.group(dimension), []).append(m)
        for name in [*(str(v) for v in vocabulary), NOT_RECORDED]:
            members = by_group.get(name, [])
            if not members:
                continue
            if len(members) < min_group_size or total - len(members) < min_group_size:
                groups.append(GroupRow(dimension, name, True, None))
                continue
            others = [m for m in months if m.demographics.group(dimension) != name]
            groups.append(
                GroupRow(
                    dimension,
                    name,
                    False,
                    len(members),
                    [_comparison(metric, members, others, high, low) for metric in METRICS],
                )
            )
    return EquityReport(
        period=period,
        period_start=period_start,
        period_end=period_end,
        participants=total,
        min_group_size=min_group_size,
        ratio_high=high,
        ratio_low=low,
        metrics=[MetricInfo(m.key, m.section, m.label, m.per) for m in METRICS],
        overall=[_rate(metric, months) for metric in METRICS],
        groups=groups,
        flagged=sum(1 for g in groups for r in g.rates if r.flag),
        sections=dict(SECTIONS),
        method=METHOD_NOTE,
    )
