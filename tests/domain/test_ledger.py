"""The dose ledger and the one adherence function (issue 18), with properties."""

from datetime import date, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from domain import ledger
from domain import medication as med

TODAY = date(2026, 3, 2)  # a Monday


def order(start: date, kind: str = med.DAILY_OBSERVED, weekdays=med.ALL_WEEKDAYS, **extra) -> med.MedicationOrder:
    schedule = med.Schedule(kind, observed_weekdays=tuple(weekdays), **extra)
    drug, route = ("naltrexone-er-injection", "intramuscular") if kind == med.INJECTION else ("methadone", "oral")
    return med.MedicationOrder(
        order_id="m-1",
        participant_id="p-1",
        drug=drug,
        dose=60,
        unit="mg",
        route=route,
        schedule=schedule,
        start_date=start.isoformat(),
        prescriber="Dr. A",
    )


def days_before(n: int) -> date:
    return TODAY - timedelta(days=n)


def held_after_three_misses(start: date, dosed: set[date] = frozenset()) -> ledger.DoseLedger:
    outcomes, day, misses = {}, start, 0
    while day < TODAY:
        if day in dosed:
            outcomes[day.isoformat()] = ledger.DOSED
        elif misses < 3:
            outcomes[day.isoformat()] = ledger.MISSED
            misses += 1
        else:
            outcomes[day.isoformat()] = ledger.HELD
        day += timedelta(days=1)
    return ledger.DoseLedger(outcomes)


# --- the reproduced cases --------------------------------------------------------------------


def test_order_started_in_the_past_then_held_reads_its_real_adherence():
    """Issue 18: 21 days, 3 missed then 18 held, showed 86% (18 of 21) and 100% (7 of 7)."""
    start = days_before(21)
    book = held_after_three_misses(start)
    week, month = ledger.adherence_windows(order(start), book, TODAY)
    assert (week.taken, week.expected, week.ratio) == (0, 7, 0.0)
    assert (month.taken, month.expected, month.ratio) == (0, 21, 0.0)


def test_one_dose_ever_counts_one():
    start = days_before(21)
    book = held_after_three_misses(start, dosed={start})
    week, month = ledger.adherence_windows(order(start), book, TODAY)
    assert (month.taken, month.expected) == (1, 21) and week.ratio == 0.0


def test_zero_doses_is_zero_not_two_thirds():
    start = days_before(9)
    month = ledger.adherence(order(start), held_after_three_misses(start), 30, TODAY)
    assert (month.taken, month.expected, month.ratio) == (0, 9, 0.0)


def test_the_run_that_caused_a_hold_still_reads_three():
    start = days_before(21)
    assert ledger.missed_run(order(start), held_after_three_misses(start), TODAY - timedelta(days=1)) == 3


def test_closed_days_and_days_before_the_start_are_not_due():
    start = days_before(10)
    closed = {days_before(2), days_before(3)}
    outcomes = {
        (start + timedelta(days=i)).isoformat(): ledger.DOSED
        for i in range(10)
        if start + timedelta(days=i) not in closed
    }
    month = ledger.adherence(order(start), ledger.DoseLedger(outcomes), 30, TODAY, closed)
    assert (month.taken, month.expected) == (8, 8)
    statuses = ledger.day_statuses(order(start), ledger.DoseLedger(outcomes), days_before(12), days_before(1), closed)
    assert [s.status for s in statuses[:2]] == [ledger.BEFORE_START] * 2
    assert {s.status for s in statuses if date.fromisoformat(s.day) in closed} == {ledger.CLOSED}


def test_a_closed_day_covered_by_a_supply_is_a_take_home_day_taken():
    start = days_before(3)
    closed = {days_before(1)}
    book = ledger.DoseLedger(
        {days_before(3).isoformat(): "dosed", days_before(2).isoformat(): "dosed"},
        (ledger.Supply(days_before(2).isoformat(), (days_before(1).isoformat(),)),),
    )
    month = ledger.adherence(order(start), book, 30, TODAY, closed)
    assert (month.taken, month.expected) == (3, 3)


def test_take_home_days_count_only_when_a_supply_covers_them():
    start = TODAY - timedelta(days=7)  # a Monday
    weekly = order(start, med.OBSERVED_PLUS_TAKE_HOME, weekdays=(0,))
    dosed = {start.isoformat(): "dosed"}
    uncovered = ledger.adherence(weekly, ledger.DoseLedger(dosed), 7, TODAY)
    supply = ledger.Supply(start.isoformat(), ledger.supply_dates(start + timedelta(days=1), 6))
    covered = ledger.adherence(weekly, ledger.DoseLedger(dosed, (supply,)), 7, TODAY)
    assert (uncovered.taken, uncovered.expected) == (1, 7) and (covered.taken, covered.expected) == (7, 7)


def test_injections_count_within_their_window_only():
    start = days_before(70)
    monthly = order(start, med.INJECTION, every_days=28, grace_days=3)
    on_time = ledger.DoseLedger({}, injections=(start.isoformat(), (start + timedelta(days=29)).isoformat()))
    # due start (given), due start+28 (given day 29, in grace), due start+57: 13 days ago, grace over, missing
    result = ledger.adherence(monthly, on_time, 90, TODAY)
    assert (result.taken, result.expected) == (2, 3)
    late = ledger.DoseLedger({}, injections=(start.isoformat(), (start + timedelta(days=35)).isoformat()))
    assert ledger.adherence(monthly, late, 90, TODAY).taken == 1


def test_overlap_and_schedule_checks_name_the_dates():
    supply = ledger.Supply("2026-03-02", ("2026-03-03", "2026-03-04"))
    assert ledger.overlapping_dates([supply], ["2026-03-04", "2026-03-05"]) == ("2026-03-04",)
    ok, why = ledger.schedule_allows_take_home(order(TODAY), [TODAY + timedelta(days=1)])
    assert not ok and "2026-03-03" in why and "daily-observed" in why
    ok, _ = ledger.schedule_allows_take_home(order(TODAY), [TODAY + timedelta(days=1)], {TODAY + timedelta(days=1)})
    assert ok  # a clinic-closed day's dose may go home (42 CFR 8.12(i)(1))


def test_split_dose_parts_must_add_up_to_the_order():
    assert ledger.split_part_reason(120, "mg", med.OBSERVED_DOSE, 60, "mg", 2) is None
    assert "each of the 2 parts must be 60 mg" in ledger.split_part_reason(120, "mg", med.OBSERVED_DOSE, 50, "mg", 2)
    assert "only an observed dose" in ledger.split_part_reason(120, "mg", med.TAKE_HOME, 60, "mg", 2)


def test_plain_reasons():
    assert "on hold: 3 consecutive missed doses" in ledger.plain_reason("3 consecutive missed doses", 3, med.HELD)
    assert ledger.plain_reason(None, 2, med.ACTIVE).startswith("2 consecutive missed dose(s)")


# --- properties ------------------------------------------------------------------------------

OUTCOME = st.sampled_from([None, *ledger.RECORDED_OUTCOMES])


@st.composite
def histories(draw):
    length = draw(st.integers(1, 40))
    start = TODAY - timedelta(days=length)
    outcomes = {}
    for i in range(length):
        outcome = draw(OUTCOME)
        if outcome is not None:
            outcomes[(start + timedelta(days=i)).isoformat()] = outcome
    closed = {start + timedelta(days=i) for i in draw(st.sets(st.integers(0, length - 1), max_size=5))}
    supplies, taken = [], set()
    for first in sorted(draw(st.sets(st.integers(0, length - 1), max_size=3))):
        count = draw(st.integers(1, 5))
        dates = [d for d in ledger.supply_dates(start + timedelta(days=first), count) if d not in taken]
        if dates:
            taken |= set(dates)
            supplies.append(ledger.Supply((start + timedelta(days=first)).isoformat(), tuple(dates)))
    return start, ledger.DoseLedger(outcomes, tuple(supplies)), closed


@settings(max_examples=150, deadline=None)
@given(histories(), st.integers(1, 45))
def test_adherence_never_exceeds_taken_over_due(history, window):
    start, book, closed = history
    result = ledger.adherence(order(start), book, window, TODAY, closed)
    statuses = ledger.day_statuses(
        order(start), book, TODAY - timedelta(days=window), TODAY - timedelta(days=1), closed
    )
    due = sum(s.due for s in statuses)
    taken_days = sum(s.status in ledger.TAKEN for s in statuses)
    assert result.expected == due and result.taken <= due and result.taken <= taken_days
    if due:
        assert result.ratio == result.taken / due and 0 <= result.ratio <= 1
    else:
        assert result.ratio is None


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 60), st.integers(1, 45), st.sets(st.integers(0, 59), max_size=10))
def test_held_only_history_is_zero(length, window, closed_offsets):
    start = TODAY - timedelta(days=length)
    book = ledger.DoseLedger({(start + timedelta(days=i)).isoformat(): ledger.HELD for i in range(length)})
    closed = {start + timedelta(days=i) for i in closed_offsets}
    result = ledger.adherence(order(start), book, window, TODAY, closed)
    assert result.taken == 0 and result.ratio in (0.0, None)


@settings(max_examples=100, deadline=None)
@given(histories())
def test_held_days_neither_end_nor_extend_a_run(history):
    start, book, closed = history
    through = TODAY - timedelta(days=1)
    run = ledger.missed_run(order(start), book, through, closed_days=closed)
    without_holds = ledger.DoseLedger({d: o for d, o in book.outcomes.items() if o != ledger.HELD}, book.supplies)
    # Removing the holds turns those days into misses: the run can only grow.
    assert ledger.missed_run(order(start), without_holds, through, closed_days=closed) >= run


class SupplyMachine(RuleBasedStateMachine):
    """Supplies handed out in any order, with refusals: no date is ever covered twice, and
    adherence never counts more than one dose a day."""

    def __init__(self):
        super().__init__()
        self.start = TODAY - timedelta(days=30)
        self.book = ledger.DoseLedger({})

    @rule(first=st.integers(0, 29), count=st.integers(1, 7))
    def supply(self, first, count):
        dates = ledger.supply_dates(self.start + timedelta(days=first), count)
        overlap = ledger.overlapping_dates(self.book.supplies, dates)
        if overlap:  # refused: nothing recorded
            assert set(overlap) <= ledger.covered_dates(self.book.supplies)
            return
        supply = ledger.Supply((self.start + timedelta(days=first)).isoformat(), dates)
        self.book = ledger.DoseLedger(self.book.outcomes, (*self.book.supplies, supply))

    @rule(day=st.integers(0, 29), outcome=st.sampled_from(ledger.RECORDED_OUTCOMES))
    def record(self, day, outcome):
        self.book = ledger.DoseLedger(
            {**self.book.outcomes, (self.start + timedelta(days=day)).isoformat(): outcome}, self.book.supplies
        )

    @invariant()
    def no_date_twice(self):
        dates = [d for s in self.book.supplies for d in s.dates]
        assert len(dates) == len(set(dates))

    @invariant()
    def bounded(self):
        result = ledger.adherence(order(self.start), self.book, 30, TODAY)
        assert result.taken <= result.expected == 30


SupplyMachine.TestCase.settings = settings(max_examples=30, stateful_step_count=20, deadline=None)
TestSupplies = SupplyMachine.TestCase


def test_supply_rejects_days_before_dispensing():
    with pytest.raises(ValueError, match="before it was dispensed"):
        ledger.Supply("2026-03-02", ("2026-03-01",))
