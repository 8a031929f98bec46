"""Medication orders and the dose calendar (take-homes: 42 CFR 8.12(i); program defaults: docs/rules.md).

What a participant is expected to do on a day (come in for an observed dose, take a take-home
dose, receive an injection), whether a dispense may be recorded against an order, how long the
current run of missed doses is and what it calls for, adherence over a window, and what a bottle
return or callback pill count says about possible diversion.

Pure and stdlib-only: imported inside Temporal's deterministic workflow sandbox. Dates come in as
arguments (the program day), never from the clock. Dates inside dataclasses are ISO strings
(YYYY-MM-DD) so they cross Temporal as JSON unchanged; function arguments are `date` objects.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from itertools import pairwise
from typing import Any

from domain.checks import is_finite_number as _is_finite_number
from domain.checks import is_int as _is_int
from domain.checks import parse_day as _parse_day
from domain.checks import require_text as _require_text
from domain.vocab import Vocabulary

# --- closed vocabularies ---------------------------------------------------------------------


class Drug(Vocabulary):
    """The medications for opioid use disorder an order can be for."""

    BUPRENORPHINE = "buprenorphine"
    BUPRENORPHINE_NALOXONE = "buprenorphine-naloxone"
    METHADONE = "methadone"
    NALTREXONE_ORAL = "naltrexone-oral"
    NALTREXONE_ER_INJECTION = "naltrexone-er-injection"
    OTHER = "other"


DRUGS: tuple[str, ...] = tuple(Drug)

# The medication key screening interpretation expects to find (domain.analytes.MEDICATIONS).
# Both buprenorphine products show as buprenorphine; "other" promises nothing a panel can check.
_EXPECTED_SUBSTANCE: dict[str, str | None] = {
    Drug.BUPRENORPHINE: "buprenorphine",
    Drug.BUPRENORPHINE_NALOXONE: "buprenorphine",
    Drug.METHADONE: "methadone",
    Drug.NALTREXONE_ORAL: "naltrexone",
    Drug.NALTREXONE_ER_INJECTION: "naltrexone",
    Drug.OTHER: None,
}

# Drugs only ever given as an injection by a clinician; their orders must use an injection schedule.
INJECTION_DRUGS: frozenset[str] = frozenset({Drug.NALTREXONE_ER_INJECTION})


class DoseUnit(Vocabulary):
    """The unit of a dose."""

    MG = "mg"
    MCG = "mcg"
    ML = "mL"


class Route(Vocabulary):
    """How a dose is given (the FHIR R4 route-codes value set names these routes in SNOMED CT)."""

    ORAL = "oral"
    SUBLINGUAL = "sublingual"
    BUCCAL = "buccal"
    INTRAMUSCULAR = "intramuscular"
    SUBCUTANEOUS = "subcutaneous"


UNITS: tuple[str, ...] = tuple(DoseUnit)
ROUTES: tuple[str, ...] = tuple(Route)
INJECTABLE_ROUTES: frozenset[str] = frozenset({Route.INTRAMUSCULAR, Route.SUBCUTANEOUS})

# Routes each product comes in, so that a slip (methadone "intramuscular") is caught at entry.
_ROUTES_BY_DRUG: dict[str, tuple[str, ...]] = {
    Drug.BUPRENORPHINE: (Route.SUBLINGUAL, Route.BUCCAL),
    Drug.BUPRENORPHINE_NALOXONE: (Route.SUBLINGUAL, Route.BUCCAL),
    Drug.METHADONE: (Route.ORAL,),
    Drug.NALTREXONE_ORAL: (Route.ORAL,),
    Drug.NALTREXONE_ER_INJECTION: (Route.INTRAMUSCULAR,),
    Drug.OTHER: ROUTES,
}


class ScheduleKind(Vocabulary):
    """How an order's doses are given."""

    DAILY_OBSERVED = "daily-observed"
    OBSERVED_PLUS_TAKE_HOME = "observed-plus-take-home"
    INJECTION = "injection"


DAILY_OBSERVED = ScheduleKind.DAILY_OBSERVED
OBSERVED_PLUS_TAKE_HOME = ScheduleKind.OBSERVED_PLUS_TAKE_HOME
INJECTION = ScheduleKind.INJECTION
SCHEDULE_KINDS: tuple[str, ...] = tuple(ScheduleKind)


class OrderStatus(Vocabulary):
    """Where a medication order is."""

    ACTIVE = "active"
    HELD = "held"
    STOPPED = "stopped"


ACTIVE = OrderStatus.ACTIVE
HELD = OrderStatus.HELD
STOPPED = OrderStatus.STOPPED
ORDER_STATUSES: tuple[str, ...] = tuple(OrderStatus)


class ExpectedKind(Vocabulary):
    """What the calendar expects on a day."""

    OBSERVED_DOSE = "observed-dose"
    TAKE_HOME_DAY = "take-home-day"
    INJECTION_DUE = "injection-due"
    INJECTION_OVERDUE = "injection-overdue"
    NOTHING_EXPECTED = "none"


TAKE_HOME_DAY = ExpectedKind.TAKE_HOME_DAY
INJECTION_DUE = ExpectedKind.INJECTION_DUE
INJECTION_OVERDUE = ExpectedKind.INJECTION_OVERDUE
NOTHING_EXPECTED = ExpectedKind.NOTHING_EXPECTED
EXPECTED_KINDS: tuple[str, ...] = tuple(ExpectedKind)


class DispenseKind(Vocabulary):
    """What a nurse records. "refused" and "held" record a dose not given, and why, on the day."""

    OBSERVED_DOSE = "observed-dose"
    TAKE_HOME = "take-home"
    REFUSED = "refused"
    HELD = "held"
    INJECTION = "injection"


OBSERVED_DOSE = DispenseKind.OBSERVED_DOSE
TAKE_HOME = DispenseKind.TAKE_HOME
REFUSED = DispenseKind.REFUSED
DOSE_HELD = DispenseKind.HELD
DISPENSE_KINDS: tuple[str, ...] = tuple(DispenseKind)
# The kinds that hand medication to the participant.
DOSING_KINDS: frozenset[str] = frozenset({OBSERVED_DOSE, TAKE_HOME, DispenseKind.INJECTION})


class RefusalCode(Vocabulary):
    """Why the order refused a request."""

    CONFLICT = "conflict"  # the request is well formed but the order's state forbids it
    INVALID = "invalid"  # the request does not fit the order


CONFLICT = RefusalCode.CONFLICT
INVALID = RefusalCode.INVALID
REFUSAL_CODES: tuple[str, ...] = tuple(RefusalCode)


class MissedDoseAction(Vocabulary):
    """What a run of missed doses calls for."""

    NO_ACTION = "none"
    ALERT = "alert"
    HOLD_FOR_REASSESSMENT = "hold-for-reassessment"
    NO_DOSING_UNTIL_REEVALUATED = "no-dosing-until-reevaluated"


NO_ACTION = MissedDoseAction.NO_ACTION
ALERT = MissedDoseAction.ALERT
HOLD_FOR_REASSESSMENT = MissedDoseAction.HOLD_FOR_REASSESSMENT
NO_DOSING_UNTIL_REEVALUATED = MissedDoseAction.NO_DOSING_UNTIL_REEVALUATED
MISSED_DOSE_ACTIONS: tuple[str, ...] = tuple(MissedDoseAction)


class CallbackStatus(Vocabulary):
    """Where a random callback (a call to bring every take-home bottle back for a count) is."""

    SCHEDULED = "scheduled"
    CALLED = "called"
    KEPT = "kept"
    MISSED = "missed"


@dataclass(frozen=True)
class Callback:
    """A random callback: at `call_at` (ISO datetime, drawn at random) the participant is called and has
    `respond_hours` to bring back `bottles`, every take-home bottle out at the call, by `deadline`."""

    call_at: str
    respond_hours: int
    status: str = CallbackStatus.SCHEDULED  # one of CallbackStatus
    bottles: tuple[str, ...] = ()
    deadline: str | None = None  # set when the call is made
    actor: str = ""  # who scheduled it (a token id)


ALL_WEEKDAYS: tuple[int, ...] = (0, 1, 2, 3, 4, 5, 6)
_WEEKDAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")

# Extended-release naltrexone is given every 4 weeks (FDA prescribing information: 28-day cycle). The
# 3-day grace before "overdue" is a program default, not a regulation (check).
DEFAULT_GRACE_DAYS = 3

ADHERENCE_WINDOWS: tuple[int, ...] = (7, 30)


# --- small checks ----------------------------------------------------------------------------


def _require_choice(name: str, value: Any, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ValueError(f"unknown {name} {value!r}; known values are {', '.join(choices)}")


def _positive_float(name: str, value: Any) -> float:
    if not _is_finite_number(value) or value <= 0:
        raise ValueError(f"{name} must be a positive number; got {value!r}")
    return float(value)


# --- dose plausibility ------------------------------------------------------------------------
# Two bounds per drug, in mg per dose. Above `usual_max_mg` a clinician records why (an override
# reason kept with the order); above `ceiling_mg` the number is taken for a slip (1e308 mg, a dose
# typed into the wrong field) and refused whatever the reason. The usual maxima come from labels and
# federal rules; the ceilings are this program's plausibility guard, not clinical guidance (check).


@dataclass(frozen=True)
class DoseLimit:
    usual_max_mg: float | None  # None: no usual maximum is known ("other")
    ceiling_mg: float
    source: str
    initial_max_mg: float | None = None  # the first day of treatment, where a rule sets one


DOSE_LIMITS: dict[str, DoseLimit] = {
    Drug.METHADONE: DoseLimit(
        usual_max_mg=120.0,
        ceiling_mg=1000.0,
        initial_max_mg=50.0,
        source="42 CFR 8.12(h)(3)(ii) (2024): initial dose at most 50 mg unless the OTP practitioner documents "
        "that more is clinically indicated; SAMHSA TIP 63: maintenance usually 60-120 mg/day, higher "
        "doses are used with documentation (120 mg is a program setting, uncertain); ceiling 1000 mg: "
        "plausibility only (uncertain)",
    ),
    Drug.BUPRENORPHINE: DoseLimit(
        usual_max_mg=24.0,
        ceiling_mg=64.0,
        source="buprenorphine sublingual labels: maintenance 4-24 mg/day, doses above 24 mg/day not shown to "
        "add benefit (some labels and practice allow up to 32 mg/day, hence override, not refusal); "
        "ceiling 64 mg: plausibility only (uncertain)",
    ),
    Drug.BUPRENORPHINE_NALOXONE: DoseLimit(
        usual_max_mg=24.0,
        ceiling_mg=64.0,
        source="buprenorphine/naloxone sublingual labels (e.g. Suboxone): target 16 mg, range 4-24 mg/day; "
        "up to 32 mg/day in practice with documentation; ceiling 64 mg: plausibility only (uncertain)",
    ),
    Drug.NALTREXONE_ORAL: DoseLimit(
        usual_max_mg=150.0,
        ceiling_mg=300.0,
        source="naltrexone tablet label: 50 mg/day, or 100/100/150 mg three times a week; ceiling 300 mg: "
        "plausibility only (uncertain)",
    ),
    Drug.NALTREXONE_ER_INJECTION: DoseLimit(
        usual_max_mg=380.0,
        ceiling_mg=760.0,
        source="extended-release naltrexone label (Vivitrol): 380 mg IM every 4 weeks, the only strength; "
        "ceiling 760 mg: plausibility only (uncertain)",
    ),
    Drug.OTHER: DoseLimit(
        usual_max_mg=None,
        ceiling_mg=10_000.0,
        source="no drug-specific maximum; 10 g per dose as a plausibility ceiling only (uncertain)",
    ),
}

# mg per mL, to compare a volume with the limits. Methadone: the 10 mg/mL oral concentrate most
# OTPs dispense (1 and 2 mg/mL solutions exist: for them this overstates the dose, so asks for an
# override early, the safe side). Naltrexone ER: 380 mg in the 4 mL of diluent (about 95 mg/mL).
# Drugs without a liquid form here are compared at 1 mg/mL, which keeps the ceiling meaningful.
_MG_PER_ML: dict[str, float] = {Drug.METHADONE: 10.0, Drug.NALTREXONE_ER_INJECTION: 95.0}
_MG_PER_UNIT: dict[str, float] = {DoseUnit.MG: 1.0, DoseUnit.MCG: 0.001}


class DoseOverrideRequired(ValueError):
    """The dose is above the drug's usual maximum and no override reason was given."""


def dose_in_mg(drug: str, dose: float, unit: str) -> float:
    _require_choice("drug", drug, DRUGS)
    _require_choice("unit", unit, UNITS)
    factor = _MG_PER_ML.get(drug, 1.0) if unit == "mL" else _MG_PER_UNIT[unit]
    return dose * factor


def check_dose_plausible(drug: str, dose: Any, unit: str) -> tuple[float, float, str]:
    """Raise ValueError unless `dose` is a positive finite number within the drug's ceiling.
    Returns the dose, its mg equivalent and how to show it."""
    value = _positive_float("dose", dose)
    mg = dose_in_mg(drug, value, unit)
    shown = f"{drug} {value:g} {unit}" + ("" if unit == "mg" else f" (about {mg:g} mg)")
    ceiling = DOSE_LIMITS[drug].ceiling_mg
    if mg > ceiling:
        raise ValueError(
            f"dose {shown} is above the plausible ceiling of {ceiling:g} mg; no override can "
            "record it: check the number and the unit"
        )
    return value, mg, shown


def check_dose(
    drug: str, dose: Any, unit: str, *, override_reason: str | None = None, initial: bool = False
) -> str | None:
    """Raise ValueError for a dose that is not a positive finite number or is above the drug's
    ceiling, DoseOverrideRequired for one above its usual maximum (or, on the first day of
    treatment, above the initial maximum) without `override_reason`. Returns what the override
    covers (for the record), or None when the dose needed none."""
    value, mg, shown = check_dose_plausible(drug, dose, unit)
    limit = DOSE_LIMITS[drug]
    bound, why = limit.usual_max_mg, "usual maximum"
    if initial and limit.initial_max_mg is not None:
        bound, why = limit.initial_max_mg, "first day of treatment maximum"
    if bound is None or mg <= bound:
        return None
    if override_reason is None or not override_reason.strip():
        raise DoseOverrideRequired(
            f"dose {shown} is above the {why} of {bound:g} mg ({limit.source.split(';')[0]}); a clinician "
            "confirms it with override_reason, the clinical reason, which is kept with the order"
        )
    return f"dose override: {shown} above the {why} of {bound:g} mg: {override_reason.strip()}"


# --- drugs -----------------------------------------------------------------------------------


def expected_substance(drug: str) -> str | None:
    """The medication key screening interpretation should expect for this drug, or None for "other"."""
    _require_choice("drug", drug, DRUGS)
    return _EXPECTED_SUBSTANCE[drug]


# --- schedules and orders --------------------------------------------------------------------


@dataclass(frozen=True)
class Schedule:
    """How an order is taken.

    daily-observed: every day at the clinic. observed-plus-take-home: observed on
    `observed_weekdays` (Monday 0 .. Sunday 6), a take-home dose on the other days. injection: one
    injection every `every_days`, overdue once `grace_days` have passed after the due date.
    """

    kind: str
    observed_weekdays: tuple[int, ...] = ALL_WEEKDAYS
    every_days: int | None = None
    grace_days: int = DEFAULT_GRACE_DAYS

    def __post_init__(self) -> None:
        _require_choice("schedule kind", self.kind, SCHEDULE_KINDS)
        _check_weekdays(self.observed_weekdays)
        _check_weekdays_fit_kind(self)
        _check_injection_interval(self)


def _check_weekdays(weekdays: Any) -> None:
    if not isinstance(weekdays, tuple) or not weekdays:
        raise ValueError("observed_weekdays must be a non-empty tuple of weekday numbers (Monday 0 .. Sunday 6)")
    if any(not _is_int(day) or not 0 <= day <= 6 for day in weekdays) or len(set(weekdays)) != len(weekdays):
        raise ValueError(f"observed_weekdays must be distinct numbers from 0 (Monday) to 6 (Sunday); got {weekdays}")


def _check_weekdays_fit_kind(schedule: Schedule) -> None:
    every_day = set(schedule.observed_weekdays) == set(ALL_WEEKDAYS)
    if schedule.kind == DAILY_OBSERVED and not every_day:
        raise ValueError(
            "a daily-observed schedule observes all seven days; use 'observed-plus-take-home' to make "
            "some days take-home days"
        )
    if schedule.kind == OBSERVED_PLUS_TAKE_HOME and every_day:
        raise ValueError(
            "an observed-plus-take-home schedule needs at least one take-home weekday (a weekday missing from "
            "observed_weekdays); with every day observed use 'daily-observed'"
        )


def _check_injection_interval(schedule: Schedule) -> None:
    if not _is_int(schedule.grace_days) or schedule.grace_days < 0:
        raise ValueError(f"grace_days must be a whole number of days, 0 or more; got {schedule.grace_days!r}")
    if schedule.kind != INJECTION:
        if schedule.every_days is not None:
            raise ValueError(f"every_days is only for injection schedules; leave it empty for {schedule.kind}")
        return
    if not _is_int(schedule.every_days) or schedule.every_days < 1:
        raise ValueError(
            f"an injection schedule needs every_days, a whole number of days (e.g. 28); got {schedule.every_days!r}"
        )
    # Otherwise the next injection falls due before the last one could be called overdue.
    if schedule.grace_days >= schedule.every_days:
        raise ValueError(
            f"grace_days ({schedule.grace_days}) must be shorter than the injection interval "
            f"({schedule.every_days} days)"
        )


@dataclass(frozen=True, kw_only=True)
class MedicationOrder:
    """A prescriber's order. `stop_date` is the last day of the order (inclusive); None while open-ended.

    A dose is recorded only if it matches `dose` and `unit` exactly: to change the dose a clinician
    changes the order first.
    """

    order_id: str
    participant_id: str
    drug: str
    dose: float
    unit: str
    route: str
    schedule: Schedule
    start_date: str
    stop_date: str | None = None
    prescriber: str
    # Why a dose above the drug's usual maximum was ordered (check_dose); None when none was needed.
    dose_override_reason: str | None = None

    def __post_init__(self) -> None:
        for name in ("order_id", "participant_id", "prescriber"):
            _require_text(name, getattr(self, name))
        _require_choice("drug", self.drug, DRUGS)
        _require_choice("unit", self.unit, UNITS)
        _require_choice("route", self.route, ROUTES)
        if not isinstance(self.schedule, Schedule):
            raise ValueError("schedule must be a Schedule")
        object.__setattr__(self, "dose", _positive_float("dose", self.dose))
        if self.dose_override_reason is not None and not isinstance(self.dose_override_reason, str):
            raise ValueError("dose_override_reason must be text")
        check_dose(self.drug, self.dose, self.unit, override_reason=self.dose_override_reason)
        _check_period(self)
        _check_drug_fits_route_and_schedule(self)

    @property
    def start(self) -> date:
        return _parse_day("start_date", self.start_date)

    @property
    def stop(self) -> date | None:
        return None if self.stop_date is None else _parse_day("stop_date", self.stop_date)

    @property
    def is_injection(self) -> bool:
        return self.schedule.kind == INJECTION


def _check_period(order: MedicationOrder) -> None:
    start = _parse_day("start_date", order.start_date)
    if order.stop_date is not None and _parse_day("stop_date", order.stop_date) < start:
        raise ValueError(f"stop_date {order.stop_date} is before start_date {order.start_date}")


def _check_drug_fits_route_and_schedule(order: MedicationOrder) -> None:
    if order.route not in _ROUTES_BY_DRUG[order.drug]:
        raise ValueError(
            f"{order.drug} is not given by the {order.route} route; use one of {', '.join(_ROUTES_BY_DRUG[order.drug])}"
        )
    injected = order.schedule.kind == INJECTION
    if order.drug in INJECTION_DRUGS and not injected:
        raise ValueError(f"{order.drug} is an injection: its schedule kind must be 'injection'")
    if injected and order.drug not in INJECTION_DRUGS and order.drug != "other":
        raise ValueError(
            f"{order.drug} is not an injectable product: use a daily-observed or observed-plus-take-home schedule"
        )
    if injected != (order.route in INJECTABLE_ROUTES):
        raise ValueError(
            f"route {order.route} does not fit a {order.schedule.kind} schedule: injection schedules need "
            "an injectable route (intramuscular or subcutaneous) and other schedules a non-injectable one"
        )


def is_in_effect(order: MedicationOrder, day: date) -> bool:
    """Whether `day` lies between the order's start and stop dates, both included."""
    stop = order.stop
    return order.start <= day and (stop is None or day <= stop)


# --- the dose calendar -----------------------------------------------------------------------


@dataclass(frozen=True)
class Expected:
    """What the order expects of the participant on one day, and why."""

    day: str
    kind: str  # one of EXPECTED_KINDS
    reason: str


def expected_on(order: MedicationOrder, day: date, last_injection_given: date | None = None) -> Expected:
    """What `order` expects on `day`.

    For injection orders `last_injection_given` is the last injection given before `day` (None if
    none yet under any order): it moves the next due date, since a late injection restarts the cycle.
    """
    if day < order.start:
        return Expected(day.isoformat(), NOTHING_EXPECTED, f"before the order starts on {order.start_date}")
    if order.stop is not None and day > order.stop:
        return Expected(day.isoformat(), NOTHING_EXPECTED, f"after the order's last day {order.stop_date}")
    if order.schedule.kind == DAILY_OBSERVED:
        return Expected(day.isoformat(), OBSERVED_DOSE, "daily observed dosing")
    if order.schedule.kind == OBSERVED_PLUS_TAKE_HOME:
        return _observed_or_take_home(order.schedule, day)
    return _injection_expectation(order, day, last_injection_given)


def _observed_or_take_home(schedule: Schedule, day: date) -> Expected:
    observed = ", ".join(_WEEKDAY_NAMES[weekday] for weekday in sorted(schedule.observed_weekdays))
    weekday = _WEEKDAY_NAMES[day.weekday()]
    if day.weekday() in schedule.observed_weekdays:
        return Expected(day.isoformat(), OBSERVED_DOSE, f"{weekday} is an observed day (observed: {observed})")
    return Expected(day.isoformat(), TAKE_HOME_DAY, f"{weekday} is a take-home day (observed: {observed})")


def _injection_expectation(order: MedicationOrder, day: date, last_given: date | None) -> Expected:
    due = next_injection_due(order, last_given)
    last_grace_day = due + timedelta(days=order.schedule.grace_days)
    if day < due:
        return Expected(day.isoformat(), NOTHING_EXPECTED, f"next injection due {due.isoformat()}")
    if day == due:
        return Expected(day.isoformat(), INJECTION_DUE, "injection due today")
    if day <= last_grace_day:
        return Expected(
            day.isoformat(),
            INJECTION_DUE,
            f"injection due since {due.isoformat()}; within the {order.schedule.grace_days}-day grace "
            f"until {last_grace_day.isoformat()}",
        )
    return Expected(
        day.isoformat(),
        INJECTION_OVERDUE,
        f"injection overdue: due {due.isoformat()}, grace ended {last_grace_day.isoformat()}",
    )


def next_injection_due(order: MedicationOrder, last_given: date | None) -> date:
    """The next injection's due date: the order's start if none has been given, else the last one
    given plus the interval. A late injection therefore moves every later due date with it; an
    injection from before this order never makes one due before the order starts."""
    if not order.is_injection:
        raise ValueError(f"order {order.order_id} is a {order.schedule.kind} order, not an injection order")
    if last_given is None:
        return order.start
    interval = order.schedule.every_days or 0  # never 0: an injection schedule has every_days
    return max(order.start, last_given + timedelta(days=interval))


def injection_overdue_from(order: MedicationOrder, last_given: date | None) -> date:
    """The first day on which the next injection counts as overdue: after the due date and its grace."""
    return next_injection_due(order, last_given) + timedelta(days=order.schedule.grace_days + 1)


def expected_calendar(
    order: MedicationOrder, first: date, last: date, injections_given: Sequence[date] = ()
) -> tuple[Expected, ...]:
    """What the order expects on each day from `first` to `last`, both included.

    For injection orders each day is judged against the last injection given before it, so a past
    calendar reads as it did on each day.
    """
    if last < first:
        raise ValueError(f"the calendar's last day {last.isoformat()} is before its first day {first.isoformat()}")
    given = sorted(injections_given)
    calendar: list[Expected] = []
    for offset in range((last - first).days + 1):
        day = first + timedelta(days=offset)
        before = [injected for injected in given if injected < day]
        calendar.append(expected_on(order, day, before[-1] if before else None))
    return tuple(calendar)


# --- dispensing ------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Dispense:
    """One dispensing event as a nurse records it.

    observed-dose and injection: `dose` and `unit` given on the day. take-home: `dose` and `unit`
    per day, `take_home_count` days' worth, in `bottle_ids`. refused and held: no medication given.
    An injection records the `lot` and the injection `site`.
    """

    kind: str
    day: str
    dose: float | None = None
    unit: str | None = None
    take_home_count: int = 0
    bottle_ids: tuple[str, ...] = ()
    lot: str | None = None
    site: str | None = None
    actor: str

    def __post_init__(self) -> None:
        _require_choice("dispense kind", self.kind, DISPENSE_KINDS)
        _parse_day("day", self.day)
        _require_text("actor", self.actor)
        if self.kind in DOSING_KINDS:
            object.__setattr__(self, "dose", _positive_float("dose", self.dose))
            _require_choice("unit", self.unit, UNITS)
        elif self.dose is not None or self.unit is not None:
            raise ValueError(f"a {self.kind} record gives no medication: leave dose and unit empty")
        _check_take_home_fields(self)
        _check_injection_fields(self)


def _check_take_home_fields(dispense: Dispense) -> None:
    count = dispense.take_home_count
    if dispense.kind == TAKE_HOME:
        if not _is_int(count) or count < 1:
            raise ValueError(
                f"a take-home dispense needs take_home_count, the number of days supplied (1 or more); got {count!r}"
            )
    elif count != 0:
        raise ValueError(f"take_home_count is only for take-home dispenses; a {dispense.kind} record has 0")
    bottles = dispense.bottle_ids
    if not isinstance(bottles, tuple) or any(not isinstance(b, str) or not b.strip() for b in bottles):
        raise ValueError("bottle_ids must be a tuple of non-empty bottle identifiers")
    if len(set(bottles)) != len(bottles):
        raise ValueError(f"bottle_ids lists a bottle twice: {bottles}")
    if bottles and dispense.kind != TAKE_HOME:
        raise ValueError(f"bottles go home only with a take-home dispense, not with a {dispense.kind} record")


def _check_injection_fields(dispense: Dispense) -> None:
    if dispense.kind == INJECTION:
        # Lot and site are part of any injection record: a recall or a site reaction needs them.
        _require_text("lot", dispense.lot)
        _require_text("site", dispense.site)
        return
    if dispense.site is not None:
        raise ValueError(f"an injection site is recorded only for injections, not for a {dispense.kind} record")
    if dispense.lot is not None and dispense.kind not in DOSING_KINDS:
        raise ValueError(f"a {dispense.kind} record gives no medication, so it has no lot")


class DispenseRefused(Exception):
    """A dispense that must not be recorded. `code` is "conflict" (the order's state forbids it)
    or "invalid" (it does not fit the order); `reason` says what to do about it."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(code, reason)
        self.code = code
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.code}: {self.reason}"


def validate_dispense(
    order: MedicationOrder,
    status: str,
    day: date,
    dispense: Dispense,
    already_dosed_today: bool,
    take_home_days_allowed: int,
) -> None:
    """Raise DispenseRefused unless `dispense` may be recorded against `order` on `day`.

    `status` is the order's current status; `already_dosed_today` whether an observed dose or an
    injection was already recorded today; `take_home_days_allowed` the take-home days the
    participant may receive now (domain.takehome.eligibility, plus any clinic-closed days).
    Checks run in a fixed order, fit to the order first, then the order's state, so the same
    request always gets the same answer.
    """
    _require_choice("order status", status, ORDER_STATUSES)
    if not _is_int(take_home_days_allowed) or take_home_days_allowed < 0:
        raise ValueError(f"take_home_days_allowed must be a whole number, 0 or more; got {take_home_days_allowed!r}")
    _refuse_if_not_fitting(order, day, dispense)
    _refuse_if_order_forbids(order, status, day, dispense)
    _refuse_if_too_much(dispense, already_dosed_today, take_home_days_allowed)


def _refuse_if_not_fitting(order: MedicationOrder, day: date, dispense: Dispense) -> None:
    if dispense.day != day.isoformat():
        raise DispenseRefused(INVALID, f"the record is dated {dispense.day} but is being entered for {day.isoformat()}")
    if dispense.kind == INJECTION and not order.is_injection:
        raise DispenseRefused(
            INVALID,
            f"order {order.order_id} is a {order.schedule.kind} {order.drug} order, not an injection order",
        )
    if dispense.kind in (OBSERVED_DOSE, TAKE_HOME) and order.is_injection:
        raise DispenseRefused(
            INVALID,
            f"order {order.order_id} is an injection order: record an injection, not a {dispense.kind}",
        )
    if dispense.kind in DOSING_KINDS:
        try:  # a dose must match the order (whose override covers it); nothing covers an implausible one
            check_dose_plausible(order.drug, dispense.dose, dispense.unit or "")
        except ValueError as exc:
            raise DispenseRefused(INVALID, str(exc)) from None
    if dispense.kind in DOSING_KINDS and (dispense.dose != order.dose or dispense.unit != order.unit):
        raise DispenseRefused(
            INVALID,
            f"dose {dispense.dose:g} {dispense.unit} does not match the order's {order.dose:g} {order.unit}; "
            "a clinician changes the order first",
        )


def _refuse_if_order_forbids(order: MedicationOrder, status: str, day: date, dispense: Dispense) -> None:
    if status == STOPPED:
        raise DispenseRefused(CONFLICT, f"order {order.order_id} is stopped; nothing can be recorded against it")
    if status == HELD and dispense.kind in DOSING_KINDS:
        raise DispenseRefused(CONFLICT, f"order {order.order_id} is on hold; a clinician must release it before dosing")
    if day < order.start:
        raise DispenseRefused(CONFLICT, f"order {order.order_id} starts on {order.start_date}, after {day.isoformat()}")
    if order.stop is not None and day > order.stop:
        raise DispenseRefused(CONFLICT, f"order {order.order_id} ended on {order.stop_date}, before {day.isoformat()}")


def _refuse_if_too_much(dispense: Dispense, already_dosed_today: bool, take_home_days_allowed: int) -> None:
    if dispense.kind in (OBSERVED_DOSE, INJECTION) and already_dosed_today:
        raise DispenseRefused(
            CONFLICT,
            f"a dose was already given on {dispense.day}; a second dose the same day is not recorded",
        )
    if dispense.kind == TAKE_HOME and dispense.take_home_count > take_home_days_allowed:
        raise DispenseRefused(
            CONFLICT,
            f"{dispense.take_home_count} take-home day(s) requested but only {take_home_days_allowed} allowed now",
        )


# --- missed doses ----------------------------------------------------------------------------

_MISSED_DOSE_SOURCE = (
    "project rule (docs/rules.md): alert after 1-3 missed days; about 3 missed days require clinician "
    "reassessment before the next dose; 5 or more, no dosing until re-evaluated (check)"
)


@dataclass(frozen=True)
class MissedDoseRules:
    """Consecutive missed observed doses at which each action starts."""

    alert_after: int = 1
    reassess_after: int = 3
    no_dosing_after: int = 5
    source: str = _MISSED_DOSE_SOURCE

    def __post_init__(self) -> None:
        values = (self.alert_after, self.reassess_after, self.no_dosing_after)
        if any(not _is_int(value) for value in values) or not 1 <= values[0] <= values[1] <= values[2]:
            raise ValueError(f"need 1 <= alert_after <= reassess_after <= no_dosing_after (whole days); got {values}")
        _require_text("source", self.source)


DEFAULT_MISSED_DOSE_RULES = MissedDoseRules()


@dataclass(frozen=True)
class MissedDoseDecision:
    run: int
    action: str  # one of MISSED_DOSE_ACTIONS
    reason: str
    source: str


def missed_dose_run(expected_days_with_outcomes: Sequence[tuple[date, bool]]) -> int:
    """Length of the current run of consecutive missed doses.

    Each entry is an observed-dose day up to yesterday, oldest first, with True when the day was
    covered: a dose given, an authorised take-home covering it, or a clinician hold.
    """
    days = [day for day, _ in expected_days_with_outcomes]
    if any(later <= earlier for earlier, later in pairwise(days)):
        raise ValueError("expected days must be in chronological order, each day once")
    run = 0
    for _, covered in reversed(expected_days_with_outcomes):
        if covered:
            break
        run += 1
    return run


def missed_dose_decision(run: int, rules: MissedDoseRules = DEFAULT_MISSED_DOSE_RULES) -> MissedDoseDecision:
    """What a run of `run` consecutive missed doses calls for, with the reason."""
    if not _is_int(run) or run < 0:
        raise ValueError(f"a missed-dose run is a whole number, 0 or more; got {run!r}")
    if run >= rules.no_dosing_after:
        action = NO_DOSING_UNTIL_REEVALUATED
        reason = (
            f"{run} consecutive missed doses (limit {rules.no_dosing_after}): no dosing until a clinician re-evaluates"
        )
    elif run >= rules.reassess_after:
        action = HOLD_FOR_REASSESSMENT
        reason = (
            f"{run} consecutive missed doses (limit {rules.reassess_after}): "
            "a clinician reassesses before the next dose"
        )
    elif run >= rules.alert_after:
        action = ALERT
        reason = f"{run} consecutive missed dose(s): alert staff (from {rules.alert_after})"
    else:
        action = NO_ACTION
        reason = "no missed dose in the current run"
    return MissedDoseDecision(run, action, reason, rules.source)


def missed_dose_action(run: int, rules: MissedDoseRules = DEFAULT_MISSED_DOSE_RULES) -> str:
    """The action for a missed-dose run: one of MISSED_DOSE_ACTIONS."""
    return missed_dose_decision(run, rules).action


# --- adherence -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Adherence:
    """Doses taken of doses expected over the `window_days` days before today (today, not yet over,
    is left out). `ratio` is None when no dose was expected."""

    window_days: int
    first_day: str
    last_day: str
    expected: int
    taken: int
    ratio: float | None


def adherence(expected_days: Sequence[tuple[date, bool]], window_days: int, today: date) -> Adherence:
    """Adherence over the `window_days` days ending yesterday. Each entry is a day a dose was
    expected with whether it was taken; entries outside the window are ignored."""
    if not _is_int(window_days) or window_days < 1:
        raise ValueError(f"window_days must be a whole number of days, 1 or more; got {window_days!r}")
    days = [day for day, _ in expected_days]
    if len(set(days)) != len(days):
        raise ValueError("each expected day may appear only once")
    first, last = today - timedelta(days=window_days), today - timedelta(days=1)
    in_window = [taken for day, taken in expected_days if first <= day <= last]
    taken = sum(1 for was_taken in in_window if was_taken)
    ratio = taken / len(in_window) if in_window else None
    return Adherence(window_days, first.isoformat(), last.isoformat(), len(in_window), taken, ratio)


def adherence_windows(
    expected_days: Sequence[tuple[date, bool]], today: date, windows: Sequence[int] = ADHERENCE_WINDOWS
) -> tuple[Adherence, ...]:
    """Adherence over each window, by default the last 7 and 30 days."""
    return tuple(adherence(expected_days, window, today) for window in windows)


# --- bottle returns and callback pill counts -------------------------------------------------


@dataclass(frozen=True)
class PillCount:
    """A returned bottle or a random callback count: what should be left and what was found."""

    day: str
    bottle_id: str
    expected_units: float
    counted_units: float
    returned_on_time: bool
    seal_intact: bool = True

    def __post_init__(self) -> None:
        _parse_day("day", self.day)
        _require_text("bottle_id", self.bottle_id)
        for name in ("expected_units", "counted_units"):
            value = getattr(self, name)
            if not _is_finite_number(value) or value < 0:
                raise ValueError(f"{name} must be a number, 0 or more; got {value!r}")
            object.__setattr__(self, name, float(value))
        for name in ("returned_on_time", "seal_intact"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be true or false")


def count_discrepancy(count: PillCount, tolerance: float = 0.0) -> str | None:
    """Why this count suggests possible diversion, or None when it does not.

    Fewer units than expected beyond `tolerance` (units), a bottle not returned on time, and a
    broken seal each count; every one found is listed. Extra units are not diversion and are
    left to adherence review.
    """
    if not _is_finite_number(tolerance) or tolerance < 0:
        raise ValueError(f"tolerance must be a number of units, 0 or more; got {tolerance!r}")
    reasons: list[str] = []
    shortfall = count.expected_units - count.counted_units
    if shortfall > tolerance:
        reasons.append(
            f"bottle {count.bottle_id}: {count.counted_units:g} unit(s) counted, {count.expected_units:g} expected "
            f"({shortfall:g} short, tolerance {tolerance:g})"
        )
    if not count.returned_on_time:
        reasons.append(f"bottle {count.bottle_id} was not returned on time")
    if not count.seal_intact:
        reasons.append(f"bottle {count.bottle_id} came back with its seal broken")
    return "; ".join(reasons) if reasons else None
