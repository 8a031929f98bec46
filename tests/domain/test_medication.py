"""Medication orders, the dose calendar, dispensing checks, missed doses, adherence, pill counts
(domain.medication) and take-home eligibility (domain.takehome)."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import date, timedelta

import pytest
import temporalio.converter
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.medication import (
    DRUGS,
    MISSED_DOSE_ACTIONS,
    Adherence,
    Dispense,
    DispenseRefused,
    Expected,
    MedicationOrder,
    MissedDoseRules,
    PillCount,
    Schedule,
    adherence,
    adherence_windows,
    count_discrepancy,
    expected_calendar,
    expected_on,
    expected_substance,
    injection_overdue_from,
    is_in_effect,
    missed_dose_action,
    missed_dose_decision,
    missed_dose_run,
    next_injection_due,
    validate_dispense,
)
from domain.takehome import (
    ATTENDANCE,
    CLINICIAN_HOLD,
    CRITERIA,
    DIVERSION,
    FEDERAL_OTP_2024,
    MISSED_DOSES,
    RULE_SETS,
    SAFE_STORAGE,
    SCREEN_RESULTS,
    SCREENS,
    STATE_STRICT_EXAMPLE,
    Band,
    Eligibility,
    ScreenFact,
    TakeHomeFacts,
    TakeHomeRules,
    eligibility,
    get_rules,
    rules_from_dict,
    rules_to_dict,
    treatment_day,
)

TODAY = date(2025, 6, 30)  # a Monday
START = date(2025, 6, 2)  # a Monday


def days_ago(n: int) -> str:
    return (TODAY - timedelta(days=n)).isoformat()


def json_round_trip(payload: dict) -> dict:
    """What a payload looks like after crossing Temporal as JSON."""
    return json.loads(json.dumps(payload))


_PAYLOADS = temporalio.converter.default().payload_converter


def through_temporal(value: object) -> object:
    """A domain dataclass after crossing Temporal: encoded and decoded by the payload converter as its type."""
    return _PAYLOADS.from_payloads(_PAYLOADS.to_payloads([value]), [type(value)])[0]


# --- builders --------------------------------------------------------------------------------


def methadone_order(**changes) -> MedicationOrder:
    values = dict(
        order_id="ord-1",
        participant_id="p-1",
        drug="methadone",
        dose=90.0,
        unit="mg",
        route="oral",
        schedule=Schedule("daily-observed"),
        start_date=START.isoformat(),
        stop_date=None,
        prescriber="dr-ng",
    )
    values.update(changes)
    return MedicationOrder(**values)


def injection_order(**changes) -> MedicationOrder:
    values = dict(
        order_id="ord-2",
        participant_id="p-1",
        drug="naltrexone-er-injection",
        dose=380.0,
        unit="mg",
        route="intramuscular",
        schedule=Schedule("injection", every_days=28, grace_days=3),
        start_date=START.isoformat(),
        prescriber="dr-ng",
    )
    values.update(changes)
    return MedicationOrder(**values)


def observed(day: date = TODAY, dose: float = 90.0, unit: str = "mg") -> Dispense:
    return Dispense(kind="observed-dose", day=day.isoformat(), dose=dose, unit=unit, actor="rn-1")


def take_home(count: int, day: date = TODAY) -> Dispense:
    bottles = tuple(f"b-{n}" for n in range(count))
    return Dispense(
        kind="take-home",
        day=day.isoformat(),
        dose=90.0,
        unit="mg",
        take_home_count=count,
        bottle_ids=bottles,
        actor="rn-1",
    )


def injection(day: date = TODAY, dose: float = 380.0) -> Dispense:
    return Dispense(
        kind="injection", day=day.isoformat(), dose=dose, unit="mg", lot="L123", site="left gluteal", actor="rn-1"
    )


def facts(**changes) -> TakeHomeFacts:
    """A participant who meets every criterion, long in treatment, on methadone."""
    values = dict(
        drug="methadone",
        days_in_treatment=400,
        attendance_ratio_30d=1.0,
        recent_screens=(ScreenFact(days_ago(20), "negative"), ScreenFact(days_ago(6), "negative")),
        diversion_flag_since=None,
        safe_storage_attested=True,
        clinician_hold=False,
        missed_dose_run=0,
        today=TODAY.isoformat(),
    )
    values.update(changes)
    return TakeHomeFacts(**values)


def reason_for(result: Eligibility, code: str) -> str:
    return result.reasons[CRITERIA.index(code)]


# === domain.medication =======================================================================

# --- drugs, schedules, orders ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("drug", "substance"),
    [
        ("buprenorphine", "buprenorphine"),
        ("buprenorphine-naloxone", "buprenorphine"),
        ("methadone", "methadone"),
        ("naltrexone-oral", "naltrexone"),
        ("naltrexone-er-injection", "naltrexone"),
        ("other", None),
    ],
)
def test_expected_substance_maps_every_drug_to_its_screening_key(drug, substance):
    assert expected_substance(drug) == substance


def test_expected_substance_rejects_an_unknown_drug():
    with pytest.raises(ValueError, match="unknown drug 'suboxone'"):
        expected_substance("suboxone")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(kind="weekly"), "unknown schedule kind"),
        (dict(kind="daily-observed", observed_weekdays=(0, 1, 2, 3, 4, 5)), "use 'observed-plus-take-home'"),
        (dict(kind="observed-plus-take-home"), "at least one take-home weekday"),
        (dict(kind="observed-plus-take-home", observed_weekdays=(0, 7)), "from 0 \\(Monday\\) to 6"),
        (dict(kind="observed-plus-take-home", observed_weekdays=(0, 0)), "distinct"),
        (dict(kind="observed-plus-take-home", observed_weekdays=()), "non-empty tuple"),
        (dict(kind="injection"), "needs every_days"),
        (dict(kind="injection", every_days=0), "needs every_days"),
        (dict(kind="daily-observed", every_days=28), "only for injection schedules"),
        (dict(kind="injection", every_days=28, grace_days=28), "shorter than the injection interval"),
        (dict(kind="injection", every_days=28, grace_days=-1), "grace_days"),
    ],
)
def test_schedule_rejects_what_cannot_be_followed(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Schedule(**kwargs)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (dict(dose=0), "dose must be a positive number"),
        (dict(dose=-5.0), "dose must be a positive number"),
        (dict(dose=float("nan")), "dose must be a positive number"),
        (dict(dose=True), "dose must be a positive number"),
        (dict(unit="grains"), "unknown unit"),
        (dict(route="nasal"), "unknown route"),
        (dict(drug="heroin"), "unknown drug"),
        (dict(start_date="20250602"), "not an ISO date"),
        (dict(stop_date="2025-06-01"), "before start_date"),
        (dict(order_id=" "), "order_id must be a non-empty string"),
        (dict(route="intramuscular"), "not given by the intramuscular route"),
        (dict(schedule=Schedule("injection", every_days=28)), "not an injectable product"),
    ],
)
def test_order_rejects_inconsistent_fields(changes, message):
    with pytest.raises(ValueError, match=message):
        methadone_order(**changes)


def test_injection_drug_needs_an_injection_schedule():
    with pytest.raises(ValueError, match="its schedule kind must be 'injection'"):
        injection_order(schedule=Schedule("daily-observed"))


def test_other_drug_may_be_injected_by_an_injectable_route_only():
    injected = methadone_order(drug="other", route="subcutaneous", schedule=Schedule("injection", every_days=7))
    assert injected.is_injection
    with pytest.raises(ValueError, match="injectable route"):
        methadone_order(drug="other", route="oral", schedule=Schedule("injection", every_days=7))
    with pytest.raises(ValueError, match="non-injectable one"):
        methadone_order(drug="other", route="subcutaneous")


def test_order_dose_is_held_as_a_float_and_stop_day_is_inclusive():
    order = methadone_order(dose=90, stop_date=START.isoformat())
    assert order.dose == 90.0 and isinstance(order.dose, float)
    assert is_in_effect(order, START)
    assert not is_in_effect(order, START + timedelta(days=1))
    assert not is_in_effect(order, START - timedelta(days=1))


# --- the dose calendar -----------------------------------------------------------------------


def test_daily_observed_expects_an_observed_dose_every_day_of_the_order():
    order = methadone_order(stop_date=(START + timedelta(days=9)).isoformat())
    kinds = [e.kind for e in expected_calendar(order, START - timedelta(days=1), START + timedelta(days=10))]
    assert kinds == ["none"] + ["observed-dose"] * 10 + ["none"]
    assert "before the order starts" in expected_on(order, START - timedelta(days=1)).reason
    assert "after the order's last day" in expected_on(order, START + timedelta(days=10)).reason


def test_observed_plus_take_home_splits_the_week_by_observed_weekdays():
    # Observed Monday to Saturday; Sunday is a take-home day.
    order = methadone_order(schedule=Schedule("observed-plus-take-home", observed_weekdays=(0, 1, 2, 3, 4, 5)))
    week = expected_calendar(order, START, START + timedelta(days=6))
    assert [e.kind for e in week] == ["observed-dose"] * 6 + ["take-home-day"]
    assert week[6].reason.startswith("Sunday is a take-home day")
    assert week[0].day == START.isoformat()


def test_injection_is_due_at_start_then_within_grace_then_overdue():
    order = injection_order()
    assert expected_on(order, START - timedelta(days=1)).kind == "none"
    assert expected_on(order, START) == Expected(START.isoformat(), "injection-due", "injection due today")
    for late in (1, 2, 3):
        result = expected_on(order, START + timedelta(days=late))
        assert result.kind == "injection-due" and "within the 3-day grace" in result.reason
    overdue = expected_on(order, START + timedelta(days=4))
    assert overdue.kind == "injection-overdue"
    assert injection_overdue_from(order, None) == START + timedelta(days=4)


def test_injection_due_dates_follow_the_last_injection_given():
    order = injection_order()
    assert next_injection_due(order, START) == START + timedelta(days=28)
    # Given 5 days late: the cycle restarts from the day it was actually given.
    late = START + timedelta(days=33)
    assert next_injection_due(order, late) == late + timedelta(days=28)
    assert expected_on(order, late + timedelta(days=27), late).kind == "none"
    assert expected_on(order, late + timedelta(days=28), late).kind == "injection-due"
    assert expected_on(order, late + timedelta(days=31), late).kind == "injection-due"
    assert expected_on(order, late + timedelta(days=32), late).kind == "injection-overdue"
    assert injection_overdue_from(order, late) == late + timedelta(days=32)


def test_injection_before_the_order_never_makes_one_due_before_it_starts():
    assert next_injection_due(injection_order(), START - timedelta(days=60)) == START


def test_next_injection_due_is_only_for_injection_orders():
    with pytest.raises(ValueError, match="not an injection order"):
        next_injection_due(methadone_order(), None)


def test_calendar_judges_each_day_against_the_injections_given_before_it():
    order = injection_order()
    calendar = expected_calendar(order, START, START + timedelta(days=29), injections_given=[START])
    kinds = [e.kind for e in calendar]
    assert kinds[0] == "injection-due"  # due on the day it was given
    assert kinds[1:28] == ["none"] * 27
    assert kinds[28:] == ["injection-due", "injection-due"]


def test_calendar_rejects_a_reversed_range():
    with pytest.raises(ValueError, match="before its first day"):
        expected_calendar(methadone_order(), TODAY, TODAY - timedelta(days=1))


# --- dispensing ------------------------------------------------------------------------------


def test_a_matching_observed_dose_is_accepted():
    validate_dispense(
        methadone_order(), "active", TODAY, observed(), already_dosed_today=False, take_home_days_allowed=0
    )


def test_take_homes_up_to_the_allowed_days_are_accepted():
    validate_dispense(
        methadone_order(), "active", TODAY, take_home(6), already_dosed_today=True, take_home_days_allowed=6
    )


def test_an_injection_on_an_injection_order_is_accepted():
    validate_dispense(
        injection_order(), "active", TODAY, injection(), already_dosed_today=False, take_home_days_allowed=0
    )


def test_a_refusal_may_be_recorded_on_a_held_order():
    refusal = Dispense(kind="refused", day=TODAY.isoformat(), actor="rn-1")
    validate_dispense(methadone_order(), "held", TODAY, refusal, already_dosed_today=False, take_home_days_allowed=0)


REFUSALS = [
    # (order, status, day, dispense, already dosed, take-home allowed, code, words in the reason)
    ("methadone", "held", TODAY, observed(), False, 0, "conflict", "on hold"),
    ("methadone", "held", TODAY, take_home(1), False, 7, "conflict", "on hold"),
    ("methadone", "stopped", TODAY, observed(), False, 0, "conflict", "is stopped"),
    (
        "methadone",
        "stopped",
        TODAY,
        Dispense(kind="refused", day=TODAY.isoformat(), actor="rn-1"),
        False,
        0,
        "conflict",
        "is stopped",
    ),
    (
        "methadone",
        "active",
        START - timedelta(days=1),
        observed(START - timedelta(days=1)),
        False,
        0,
        "conflict",
        "starts on",
    ),
    ("methadone-ended", "active", TODAY, observed(), False, 0, "conflict", "ended on"),
    ("methadone", "active", TODAY, observed(dose=100.0), False, 0, "invalid", "does not match the order's 90 mg"),
    ("methadone", "active", TODAY, observed(unit="mL"), False, 0, "invalid", "does not match the order's 90 mg"),
    ("methadone", "active", TODAY, observed(), True, 0, "conflict", "second dose the same day"),
    ("methadone", "active", TODAY, take_home(7), False, 6, "conflict", "7 take-home day(s) requested but only 6"),
    ("methadone", "active", TODAY, take_home(1), False, 0, "conflict", "only 0 allowed"),
    ("methadone", "active", TODAY, injection(dose=90.0), False, 0, "invalid", "not an injection order"),
    (
        "injection",
        "active",
        TODAY,
        observed(dose=380.0),
        False,
        0,
        "invalid",
        "record an injection, not a observed-dose",
    ),
    ("injection", "active", TODAY, take_home(1), False, 7, "invalid", "is an injection order"),
    ("injection", "active", TODAY, injection(), True, 0, "conflict", "second dose the same day"),
    ("injection", "active", TODAY, injection(dose=190.0), False, 0, "invalid", "does not match"),
    ("methadone", "active", TODAY, observed(TODAY - timedelta(days=1)), False, 0, "invalid", "is being entered for"),
]


@pytest.mark.parametrize(("which", "status", "day", "dispense", "dosed", "allowed", "code", "words"), REFUSALS)
def test_every_refused_dispense_says_why(which, status, day, dispense, dosed, allowed, code, words):
    orders = {
        "methadone": methadone_order(),
        "methadone-ended": methadone_order(stop_date=(TODAY - timedelta(days=1)).isoformat()),
        "injection": injection_order(),
    }
    with pytest.raises(DispenseRefused) as refused:
        validate_dispense(
            orders[which], status, day, dispense, already_dosed_today=dosed, take_home_days_allowed=allowed
        )
    assert refused.value.code == code
    assert words in refused.value.reason
    assert str(refused.value) == f"{code}: {refused.value.reason}"


def test_validate_dispense_rejects_a_bad_status_or_allowance_as_a_programming_error():
    with pytest.raises(ValueError, match="unknown order status"):
        validate_dispense(methadone_order(), "paused", TODAY, observed(), False, 0)
    with pytest.raises(ValueError, match="take_home_days_allowed"):
        validate_dispense(methadone_order(), "active", TODAY, observed(), False, -1)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(kind="take-home", dose=90.0, unit="mg"), "needs take_home_count"),
        (dict(kind="observed-dose", dose=90.0, unit="mg", take_home_count=2), "only for take-home"),
        (dict(kind="observed-dose", unit="mg"), "dose must be a positive number"),
        (dict(kind="observed-dose", dose=90.0), "unknown unit"),
        (dict(kind="refused", dose=90.0, unit="mg"), "leave dose and unit empty"),
        (dict(kind="held", lot="L1"), "has no lot"),
        (dict(kind="injection", dose=380.0, unit="mg", site="deltoid"), "lot must be"),
        (dict(kind="injection", dose=380.0, unit="mg", lot="L1"), "site must be"),
        (dict(kind="observed-dose", dose=90.0, unit="mg", site="deltoid"), "only for injections"),
        (dict(kind="observed-dose", dose=90.0, unit="mg", bottle_ids=("b1",)), "only with a take-home"),
        (dict(kind="take-home", dose=90.0, unit="mg", take_home_count=2, bottle_ids=("b1", "b1")), "twice"),
        (dict(kind="observed-dose", dose=90.0, unit="mg", actor=""), "actor"),
        (dict(kind="given", dose=90.0, unit="mg"), "unknown dispense kind"),
    ],
)
def test_dispense_records_are_checked_for_shape(kwargs, message):
    values = dict(day=TODAY.isoformat(), actor="rn-1")
    values.update(kwargs)
    with pytest.raises(ValueError, match=message):
        Dispense(**values)


# --- missed doses ----------------------------------------------------------------------------


def outcomes(*covered: bool) -> list[tuple[date, bool]]:
    first = TODAY - timedelta(days=len(covered))
    return [(first + timedelta(days=n), was) for n, was in enumerate(covered)]


@pytest.mark.parametrize(
    ("covered", "run"),
    [
        ((), 0),
        ((True, True, True), 0),
        ((True, False), 1),
        ((False, False, True), 0),
        ((True, False, True, False, False, False), 3),
        ((False,) * 6, 6),
    ],
)
def test_missed_dose_run_counts_the_trailing_misses(covered, run):
    assert missed_dose_run(outcomes(*covered)) == run


def test_missed_dose_run_needs_chronological_days():
    days = outcomes(True, False)
    with pytest.raises(ValueError, match="chronological"):
        missed_dose_run(list(reversed(days)))
    with pytest.raises(ValueError, match="chronological"):
        missed_dose_run([days[0], days[0]])


@pytest.mark.parametrize(
    ("run", "action"),
    [
        (0, "none"),
        (1, "alert"),
        (2, "alert"),
        (3, "hold-for-reassessment"),
        (4, "hold-for-reassessment"),
        (5, "no-dosing-until-reevaluated"),
        (12, "no-dosing-until-reevaluated"),
    ],
)
def test_missed_dose_action_at_each_default_threshold(run, action):
    assert missed_dose_action(run) == action
    decision = missed_dose_decision(run)
    assert decision.action == action and decision.run == run
    assert "project rule (docs/rules.md)" in decision.source


def test_missed_dose_thresholds_are_configurable():
    rules = MissedDoseRules(alert_after=2, reassess_after=2, no_dosing_after=4)
    assert [missed_dose_action(run, rules) for run in range(5)] == [
        "none",
        "none",
        "hold-for-reassessment",
        "hold-for-reassessment",
        "no-dosing-until-reevaluated",
    ]
    assert set(MISSED_DOSE_ACTIONS) >= {missed_dose_action(run) for run in range(8)}


@pytest.mark.parametrize(("values"), [(0, 3, 5), (3, 2, 5), (1, 6, 5), (1.0, 3, 5)])
def test_missed_dose_rules_must_be_ordered_whole_days(values):
    with pytest.raises(ValueError, match="alert_after <= reassess_after <= no_dosing_after"):
        MissedDoseRules(*values)


def test_missed_dose_run_must_not_be_negative():
    with pytest.raises(ValueError, match="0 or more"):
        missed_dose_action(-1)


# --- adherence -------------------------------------------------------------------------------


def test_adherence_over_7_and_30_days_ends_yesterday():
    # 40 days of expected doses up to and including today; missed: 2 and 5 days ago, and 20 days ago.
    missed = {TODAY - timedelta(days=n) for n in (2, 5, 20)}
    history = [(TODAY - timedelta(days=n), TODAY - timedelta(days=n) not in missed) for n in range(39, -1, -1)]
    week, month = adherence_windows(history, TODAY)
    assert week == Adherence(7, days_ago(7), days_ago(1), expected=7, taken=5, ratio=5 / 7)
    assert month == Adherence(30, days_ago(30), days_ago(1), expected=30, taken=27, ratio=0.9)


def test_adherence_counts_only_expected_days_and_is_none_without_any():
    take_home_week = [(TODAY - timedelta(days=n), True) for n in (1, 3, 5)]
    assert adherence(take_home_week, 7, TODAY).expected == 3
    assert adherence([], 7, TODAY).ratio is None
    assert adherence([(TODAY, False)], 7, TODAY).ratio is None  # today is not over yet


def test_adherence_rejects_bad_windows_and_repeated_days():
    with pytest.raises(ValueError, match="window_days"):
        adherence([], 0, TODAY)
    with pytest.raises(ValueError, match="only once"):
        adherence([(TODAY, True), (TODAY, False)], 7, TODAY)


# --- pill counts -----------------------------------------------------------------------------


def count(**changes) -> PillCount:
    values = dict(day=TODAY.isoformat(), bottle_id="b-7", expected_units=14, counted_units=14, returned_on_time=True)
    values.update(changes)
    return PillCount(**values)


def test_a_full_count_returned_on_time_raises_nothing():
    assert count_discrepancy(count()) is None
    assert count_discrepancy(count(counted_units=15)) is None  # extra units are an adherence question


def test_a_short_count_beyond_tolerance_suggests_diversion():
    assert count_discrepancy(count(counted_units=12)) == (
        "bottle b-7: 12 unit(s) counted, 14 expected (2 short, tolerance 0)"
    )
    assert count_discrepancy(count(counted_units=13), tolerance=1) is None
    assert "short" in count_discrepancy(count(counted_units=12.5), tolerance=1)


def test_late_returns_and_broken_seals_are_listed_with_any_shortfall():
    assert count_discrepancy(count(returned_on_time=False)) == "bottle b-7 was not returned on time"
    everything = count_discrepancy(count(counted_units=10, returned_on_time=False, seal_intact=False))
    assert everything.split("; ") == [
        "bottle b-7: 10 unit(s) counted, 14 expected (4 short, tolerance 0)",
        "bottle b-7 was not returned on time",
        "bottle b-7 came back with its seal broken",
    ]


def test_pill_counts_reject_nonsense():
    with pytest.raises(ValueError, match="counted_units"):
        count(counted_units=-1)
    with pytest.raises(ValueError, match="returned_on_time"):
        count(returned_on_time="yes")
    with pytest.raises(ValueError, match="tolerance"):
        count_discrepancy(count(), tolerance=-0.5)


# --- payloads --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        Schedule("observed-plus-take-home", observed_weekdays=(0, 2, 4)),
        Schedule("injection", every_days=28, grace_days=5),
        methadone_order(stop_date="2025-12-31"),
        injection_order(),
        take_home(3),
        injection(),
        Dispense(kind="held", day=TODAY.isoformat(), actor="rn-1"),
        Expected(TODAY.isoformat(), "take-home-day", "Monday is a take-home day"),
        Adherence(7, days_ago(7), days_ago(1), 7, 6, 6 / 7),
        Adherence(7, days_ago(7), days_ago(1), 0, 0, None),
        count(seal_intact=False),
        MissedDoseRules(2, 3, 6, "program policy 2025"),
        missed_dose_decision(4),
    ],
    ids=lambda value: type(value).__name__,
)
def test_medication_payloads_round_trip_through_temporal(value):
    assert through_temporal(value) == value


def test_a_medication_payload_missing_a_field_or_breaking_a_rule_is_not_read():
    """The converter builds the frozen dataclass, so its own checks (__post_init__) refuse what they refuse
    anywhere; an unknown key (a field a newer worker added) is left out."""
    payload = json.loads(_PAYLOADS.to_payloads([methadone_order()])[0].data)
    decode = temporalio.converter.value_to_type
    assert decode(MedicationOrder, {**payload, "added_later": 1}) == methadone_order()
    with pytest.raises(TypeError, match="missing 1 required keyword-only argument: 'drug'"):
        decode(MedicationOrder, {k: v for k, v in payload.items() if k != "drug"})
    with pytest.raises(ValueError, match="usual maximum"):
        decode(MedicationOrder, {**payload, "dose": 150.0})


# === domain.takehome =========================================================================

# --- time in treatment -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("day", "cap", "band"),
    [
        (1, 7, "days 1-14"),
        (14, 7, "days 1-14"),
        (15, 14, "days 15-30"),
        (30, 14, "days 15-30"),
        (31, 28, "from day 31"),
        (900, 28, "from day 31"),
    ],
)
def test_federal_bands_for_methadone(day, cap, band):
    result = eligibility(facts(days_in_treatment=day), FEDERAL_OTP_2024)
    assert (result.max_take_home_days, result.cap) == (cap, cap)
    assert f"day {day} falls in the band {band} of federal-otp-2024 v2024-04-02" in result.reasons[0]
    assert result.basis == "federal-otp-2024 v2024-04-02"


@pytest.mark.parametrize(
    ("day", "cap"),
    [(1, 0), (30, 0), (31, 1), (90, 1), (91, 2), (180, 2), (181, 6), (2000, 6)],
)
def test_state_strict_example_bands(day, cap):
    for drug in ("methadone", "buprenorphine", "buprenorphine-naloxone"):
        result = eligibility(facts(drug=drug, days_in_treatment=day), STATE_STRICT_EXAMPLE)
        assert (result.max_take_home_days, result.cap) == (cap, cap)


@pytest.mark.parametrize("drug", ["buprenorphine", "buprenorphine-naloxone", "naltrexone-oral", "other"])
def test_federal_caps_do_not_bind_buprenorphine_or_other_drugs(drug):
    result = eligibility(facts(drug=drug, days_in_treatment=1), FEDERAL_OTP_2024)
    assert result.cap == result.max_take_home_days == FEDERAL_OTP_2024.max_days_for_uncapped_drugs == 28
    assert "not capped by this rule set" in result.reasons[0]
    assert "caps methadone" in result.reasons[0]


def test_the_program_maximum_for_uncapped_drugs_is_configurable():
    rules = replace(FEDERAL_OTP_2024, max_days_for_uncapped_drugs=14)
    assert eligibility(facts(drug="buprenorphine", days_in_treatment=3), rules).max_take_home_days == 14


def test_injected_naltrexone_has_no_take_home_doses():
    result = eligibility(facts(drug="naltrexone-er-injection"), FEDERAL_OTP_2024)
    assert result.max_take_home_days == 0
    assert "injected at the clinic" in result.reasons[0]


def test_treatment_day_counts_the_first_day_as_day_1():
    assert treatment_day(START, START) == 1
    assert treatment_day(START, START + timedelta(days=14)) == 15
    with pytest.raises(ValueError, match="after"):
        treatment_day(START, START - timedelta(days=1))


# --- each criterion alone --------------------------------------------------------------------

ALONE = [
    (dict(attendance_ratio_30d=0.79), ATTENDANCE, "79% of expected doses in the last 30 days, below the 80% required"),
    (dict(attendance_ratio_30d=None), ATTENDANCE, "no attendance record"),
    (dict(recent_screens=(ScreenFact(days_ago(5), "positive"),)), SCREENS, "positive screen on"),
    (dict(recent_screens=(ScreenFact(days_ago(5), "expected-absent"),)), SCREENS, "expected-absent screen on"),
    (dict(recent_screens=(ScreenFact(days_ago(5), "missed"),)), SCREENS, "missed screen on"),
    (dict(recent_screens=(ScreenFact(days_ago(5), "refused"),)), SCREENS, "refused screen on"),
    (dict(recent_screens=(ScreenFact(days_ago(30), "positive"),)), SCREENS, "within the last 30 days"),
    (dict(diversion_flag_since=days_ago(10)), DIVERSION, f"diversion found on {days_ago(10)}"),
    (dict(diversion_flag_since=days_ago(30)), DIVERSION, "within 30 days"),
    (dict(safe_storage_attested=False), SAFE_STORAGE, "not attested"),
    (dict(clinician_hold=True), CLINICIAN_HOLD, "a clinician has held take-home doses"),
    (dict(missed_dose_run=3), MISSED_DOSES, "3 consecutive missed dose(s), at or above 3"),
]


@pytest.mark.parametrize(("changes", "code", "words"), ALONE)
@pytest.mark.parametrize("rules", [FEDERAL_OTP_2024, STATE_STRICT_EXAMPLE], ids=lambda r: r.name)
def test_each_criterion_alone_removes_take_homes_and_says_why(rules, changes, code, words):
    assert eligibility(facts(), rules).max_take_home_days > 0  # the baseline meets every criterion
    result = eligibility(facts(**changes), rules)
    assert result.max_take_home_days == 0
    assert result.not_met == (code,)
    assert words in reason_for(result, code)
    assert len(result.reasons) == len(CRITERIA)


MET_AT_THE_EDGE = [
    (dict(attendance_ratio_30d=0.8), ATTENDANCE, "80% of expected doses in the last 30 days meets the 80% required"),
    (
        dict(recent_screens=(ScreenFact(days_ago(31), "positive"),)),
        SCREENS,
        "no positive, expected-absent, missed or refused",
    ),
    (dict(recent_screens=(ScreenFact(days_ago(2), "invalid"),)), SCREENS, "no positive"),
    (dict(diversion_flag_since=days_ago(31)), DIVERSION, "older than 30 days"),
    (dict(missed_dose_run=2), MISSED_DOSES, "2 consecutive missed dose(s), below 3"),
]


@pytest.mark.parametrize(("changes", "code", "words"), MET_AT_THE_EDGE)
def test_criteria_just_inside_their_limits_are_met_and_still_listed(changes, code, words):
    result = eligibility(facts(**changes), FEDERAL_OTP_2024)
    assert result.max_take_home_days == 28 and result.not_met == ()
    assert words in reason_for(result, code)


def test_attendance_record_can_be_made_optional():
    rules = replace(FEDERAL_OTP_2024, require_attendance_record=False)
    result = eligibility(facts(attendance_ratio_30d=None), rules)
    assert result.max_take_home_days == 28
    assert "does not require one" in reason_for(result, ATTENDANCE)


def test_a_positive_screen_may_reduce_rather_than_remove():
    rules = replace(FEDERAL_OTP_2024, positive_screen_reduces_to=2)
    result = eligibility(facts(recent_screens=(ScreenFact(days_ago(3), "positive"),)), rules)
    assert result.max_take_home_days == 2
    assert "at most 2 take-home day(s) until then" in reason_for(result, SCREENS)


def test_every_failed_criterion_is_listed_in_a_fixed_order():
    result = eligibility(
        facts(
            attendance_ratio_30d=0.5,
            recent_screens=(ScreenFact(days_ago(1), "refused"),),
            diversion_flag_since=days_ago(1),
            safe_storage_attested=False,
            clinician_hold=True,
            missed_dose_run=7,
        ),
        FEDERAL_OTP_2024,
    )
    assert result.max_take_home_days == 0
    assert result.not_met == (ATTENDANCE, SCREENS, DIVERSION, SAFE_STORAGE, CLINICIAN_HOLD, MISSED_DOSES)
    assert [reason.split(":")[0] for reason in result.reasons] == [code.replace("-", " ") for code in CRITERIA]


# --- reinstatement after a bad screen --------------------------------------------------------


def screens_after_positive(*clean_offsets: int, positive_ago: int = 25) -> tuple[ScreenFact, ...]:
    positive_day = TODAY - timedelta(days=positive_ago)
    clean = [ScreenFact((positive_day + timedelta(days=n)).isoformat(), "negative") for n in clean_offsets]
    return (ScreenFact(positive_day.isoformat(), "positive"), *clean)


def test_three_clean_screens_a_week_apart_reinstate_take_homes():
    result = eligibility(facts(recent_screens=screens_after_positive(7, 14, 21)), FEDERAL_OTP_2024)
    assert result.max_take_home_days == 28 and result.not_met == ()
    assert "then 3 clean screens at least 7 day(s) apart" in reason_for(result, SCREENS)
    assert "reinstated" in reason_for(result, SCREENS)


def test_clean_screens_closer_than_a_week_do_not_all_count():
    result = eligibility(facts(recent_screens=screens_after_positive(2, 5, 8, 11)), FEDERAL_OTP_2024)
    assert result.max_take_home_days == 0
    # Counted: day 2, then day 11 (9 days later); days 5 and 8 come too soon after the one before.
    assert "2 of the 3 clean screens at least 7 day(s) apart" in reason_for(result, SCREENS)


def test_spacing_of_exactly_a_week_counts_and_six_days_does_not():
    weekly = facts(recent_screens=screens_after_positive(1, 8, 15))
    six_days = facts(recent_screens=screens_after_positive(1, 7, 13))
    assert eligibility(weekly, FEDERAL_OTP_2024).max_take_home_days == 28
    assert eligibility(six_days, FEDERAL_OTP_2024).max_take_home_days == 0


def test_a_clean_screen_on_the_day_of_the_bad_one_does_not_count():
    assert eligibility(facts(recent_screens=screens_after_positive(0, 7, 14)), FEDERAL_OTP_2024).max_take_home_days == 0


def test_a_new_bad_screen_restarts_the_count():
    screens = (
        *screens_after_positive(3, 10, positive_ago=29),
        ScreenFact(days_ago(12), "missed"),
        ScreenFact(days_ago(5), "negative"),
    )
    result = eligibility(facts(recent_screens=screens), FEDERAL_OTP_2024)
    assert result.max_take_home_days == 0
    assert f"missed screen on {days_ago(12)}" in reason_for(result, SCREENS)
    assert "1 of the 3" in reason_for(result, SCREENS)


def test_invalid_specimens_neither_break_nor_extend_the_clean_series():
    screens = screens_after_positive(7, 10, 14, 21)
    screens = tuple(ScreenFact(s.day, "invalid") if i == 2 else s for i, s in enumerate(screens))
    assert eligibility(facts(recent_screens=screens), FEDERAL_OTP_2024).max_take_home_days == 28


# --- rule sets and facts are validated -------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (dict(bands=()), "non-empty tuple of Band"),
        (dict(bands=(Band(2, None, 7),)), "start on day 1"),
        (dict(bands=(Band(1, 14, 7), Band(16, None, 14))), "without gap or overlap"),
        (dict(bands=(Band(1, 14, 7), Band(14, None, 14))), "without gap or overlap"),
        (dict(bands=(Band(1, 14, 7),)), "must be open-ended"),
        (dict(bands=(Band(1, None, 7), Band(2, None, 7))), "only the last band"),
        (dict(bands=(Band(1, None, -1),)), "max_days"),
        (dict(applies_to=frozenset({"heroin"})), "unknown value"),
        (dict(applies_to="methadone"), "collection of names"),
        (dict(bad_screen_results=frozenset({"negative"})), "cannot include 'negative'"),
        (dict(attendance_threshold=1.5), "attendance_threshold"),
        (dict(min_clean_screens_for_reinstatement=0), "min_clean_screens_for_reinstatement"),
        (dict(positive_screen_reduces_to=-1), "positive_screen_reduces_to"),
        (dict(version=""), "version must be a non-empty string"),
    ],
)
def test_rule_sets_reject_gaps_and_nonsense(changes, message):
    with pytest.raises(ValueError, match=message):
        replace(FEDERAL_OTP_2024, **changes)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (dict(drug="fentanyl"), "unknown drug"),
        (dict(days_in_treatment=0), "1 on the first day"),
        (dict(attendance_ratio_30d=1.2), "fraction from 0 to 1"),
        (dict(missed_dose_run=-1), "missed_dose_run"),
        (dict(today="30/06/2025"), "not an ISO date"),
        (
            dict(recent_screens=(ScreenFact(days_ago(1), "negative"), ScreenFact(days_ago(2), "negative"))),
            "chronological",
        ),
        (dict(recent_screens=(ScreenFact(days_ago(-1), "negative"),)), "after today"),
        (dict(recent_screens=[ScreenFact(days_ago(1), "negative")]), "tuple of ScreenFact"),
        (dict(diversion_flag_since=days_ago(-1)), "after today"),
        (dict(safe_storage_attested=1), "true or false"),
    ],
)
def test_facts_reject_what_cannot_be_true(changes, message):
    with pytest.raises(ValueError, match=message):
        facts(**changes)


def test_screen_facts_have_known_results():
    with pytest.raises(ValueError, match="unknown screen result"):
        ScreenFact(days_ago(1), "dilute")


def test_rule_sets_are_found_by_name():
    assert get_rules("federal-otp-2024") is FEDERAL_OTP_2024
    # The built-in sets; the worker and API add the cited files (iop/takehome_rules.py) at start.
    assert set(RULE_SETS) >= {"federal-otp-2024", "state-strict-example"}
    with pytest.raises(ValueError, match="known rule sets are .*federal-otp-2024.*state-strict-example"):
        get_rules("federal")


def test_rule_sets_cite_their_sources():
    assert "42 CFR 8.12(i)" in FEDERAL_OTP_2024.source and "89 FR 7528" in FEDERAL_OTP_2024.source
    assert "illustrative" in STATE_STRICT_EXAMPLE.source and "(check)" in STATE_STRICT_EXAMPLE.source


# --- payloads --------------------------------------------------------------------------------


@pytest.mark.parametrize("rules", [FEDERAL_OTP_2024, STATE_STRICT_EXAMPLE], ids=lambda r: r.name)
def test_rule_sets_round_trip_through_json(rules):
    assert rules_from_dict(json_round_trip(rules_to_dict(rules))) == rules


def test_facts_and_eligibility_round_trip_through_temporal():
    value = facts(
        recent_screens=screens_after_positive(7, 14), diversion_flag_since=days_ago(90), attendance_ratio_30d=1
    )
    assert through_temporal(value) == value
    result = eligibility(value, FEDERAL_OTP_2024)
    assert through_temporal(result) == result


def test_rule_files_reject_unknown_fields():
    with pytest.raises(ValueError, match="unknown TakeHomeRules field\\(s\\): max_days"):
        rules_from_dict({**rules_to_dict(FEDERAL_OTP_2024), "max_days": 3})


# --- properties ------------------------------------------------------------------------------

dates_before_today = st.integers(min_value=0, max_value=120).map(days_ago)


@st.composite
def screen_histories(draw) -> tuple[ScreenFact, ...]:
    offsets = sorted(draw(st.lists(st.integers(min_value=0, max_value=120), max_size=12)), reverse=True)
    return tuple(ScreenFact(days_ago(n), draw(st.sampled_from(SCREEN_RESULTS))) for n in offsets)


valid_facts = st.builds(
    TakeHomeFacts,
    drug=st.sampled_from(DRUGS),
    days_in_treatment=st.integers(min_value=1, max_value=1500),
    attendance_ratio_30d=st.none() | st.floats(min_value=0, max_value=1),
    recent_screens=screen_histories(),
    diversion_flag_since=st.none() | dates_before_today,
    safe_storage_attested=st.booleans(),
    clinician_hold=st.booleans(),
    missed_dose_run=st.integers(min_value=0, max_value=20),
    today=st.just(TODAY.isoformat()),
)

rule_sets = st.builds(
    lambda base, reduce_to, needed, spacing: replace(
        base,
        positive_screen_reduces_to=reduce_to,
        min_clean_screens_for_reinstatement=needed,
        reinstatement_min_spacing_days=spacing,
    ),
    st.sampled_from([FEDERAL_OTP_2024, STATE_STRICT_EXAMPLE]),
    st.integers(min_value=0, max_value=40),
    st.integers(min_value=1, max_value=5),
    st.integers(min_value=0, max_value=14),
)


def band_cap(facts_: TakeHomeFacts, rules: TakeHomeRules) -> int:
    if facts_.drug == "naltrexone-er-injection":
        return 0
    if facts_.drug not in rules.applies_to:
        return rules.max_days_for_uncapped_drugs
    return next(b.max_days for b in rules.bands if b.from_day <= facts_.days_in_treatment <= (b.to_day or 10**9))


@settings(max_examples=300, deadline=None)
@given(valid_facts, rule_sets)
def test_eligibility_never_exceeds_the_band_cap_and_always_explains_itself(facts_, rules):
    result = eligibility(facts_, rules)
    assert result.cap == band_cap(facts_, rules)
    assert 0 <= result.max_take_home_days <= result.cap
    assert len(result.reasons) == len(CRITERIA)
    assert list(result.not_met) == [code for code in CRITERIA if code in result.not_met]
    if not result.not_met:
        assert result.max_take_home_days == result.cap
    assert result.basis == rules.basis
    assert through_temporal(result) == result
    assert through_temporal(facts_) == facts_


@settings(max_examples=200, deadline=None)
@given(st.lists(st.booleans(), max_size=40))
def test_missed_dose_run_is_the_number_of_trailing_misses(covered):
    run = missed_dose_run(outcomes(*covered))
    assert run == len(covered) - len("".join("x" if c else "." for c in covered).rstrip("."))
    assert missed_dose_action(run) in MISSED_DOSE_ACTIONS
