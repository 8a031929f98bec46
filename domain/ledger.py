"""The dose ledger: what happened to each dose an order made due, and the one adherence figure.

Every consumer (the medication workflow's card and dashboard, the API, take-home eligibility and
the periodic report) counts adherence with `adherence` below, over the same ledger:

- taken: an observed dose given (at the home site or as a guest elsewhere), a take-home day
  covered by a supply that was dispensed, an injection given within its window (due date plus
  grace);
- not taken: held, refused and missed days;
- not due: days before the order starts or after it ends, clinic-closed days without a supply
  covering them, days the schedule expects nothing on.

The ratio is taken over due, so it can never exceed it, and a history of holds alone is 0%.
Clinic-closed days come in as an argument (a set of dates, empty by default) for the program
calendar to supply.

Take-home supplies cover named dates: a supply is the list of days it is for, so two supplies
for one day are an overlap the caller refuses (42 CFR 8.12(i): take-home doses are counted in
days of supply; a second supply for a covered day would double it).

Pure and stdlib-only: imported inside Temporal's deterministic workflow sandbox.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from domain import medication as med
from domain.checks import is_int as _is_int
from domain.checks import parse_day as _parse_day
from domain.vocab import Vocabulary


class LedgerStatus(Vocabulary):
    """What a day of the ledger can read. Recorded outcomes first, then what the ledger derives."""

    DOSED = "dosed"
    GUEST_DOSED = "guest-dosed"  # an observed dose given at another site under a guest order
    TAKE_HOME = "take-home"
    INJECTED = "injection"
    HELD = "held"
    REFUSED = "refused"
    MISSED = "missed"
    CLOSED = "closed"
    BEFORE_START = "before-start"
    NOT_DUE = "not-due"
    PENDING = "pending"  # an injection still inside its window: neither taken nor missed yet


DOSED = LedgerStatus.DOSED
GUEST_DOSED = LedgerStatus.GUEST_DOSED
TAKE_HOME = LedgerStatus.TAKE_HOME
INJECTED = LedgerStatus.INJECTED
HELD = LedgerStatus.HELD
REFUSED = LedgerStatus.REFUSED
MISSED = LedgerStatus.MISSED
CLOSED = LedgerStatus.CLOSED
BEFORE_START = LedgerStatus.BEFORE_START
NOT_DUE = LedgerStatus.NOT_DUE
PENDING = LedgerStatus.PENDING
RECORDED_OUTCOMES: tuple[str, ...] = (DOSED, GUEST_DOSED, TAKE_HOME, INJECTED, HELD, REFUSED, MISSED)
TAKEN: frozenset[str] = frozenset({DOSED, GUEST_DOSED, TAKE_HOME, INJECTED})

# Plain words for the dashboard.
STATUS_WORDS: dict[str, str] = {
    DOSED: "observed dose given",
    GUEST_DOSED: "observed dose given at another site (guest dosing)",
    TAKE_HOME: "take-home day covered by a dispensed supply",
    INJECTED: "injection given within its window",
    HELD: "dosing held (not a dose taken)",
    REFUSED: "dose refused",
    MISSED: "dose missed",
    CLOSED: "clinic closed (no dose due)",
    BEFORE_START: "before the order started",
    NOT_DUE: "no dose due",
    PENDING: "injection window still open",
}


@dataclass(frozen=True)
class Supply:
    """A take-home supply: dispensed on `dispensed_on`, one dose for each of `dates`."""

    dispensed_on: str
    dates: tuple[str, ...]
    bottle_ids: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _parse_day("dispensed_on", self.dispensed_on)
        if not isinstance(self.dates, tuple) or not self.dates:
            raise ValueError("a take-home supply covers at least one named date")
        days = [_parse_day("supply date", text) for text in self.dates]
        if len(set(days)) != len(days):
            raise ValueError(f"a supply names a date twice: {', '.join(self.dates)}")
        if min(days) < _parse_day("dispensed_on", self.dispensed_on):
            raise ValueError("a take-home supply cannot cover a day before it was dispensed")


@dataclass(frozen=True)
class DoseLedger:
    """What was recorded: `outcomes` day -> one of RECORDED_OUTCOMES (the day's own record, e.g.
    an observed dose, a refusal, a hold, a miss found at the end of the day), the take-home
    `supplies` dispensed, and the days `injections` were given."""

    outcomes: Mapping[str, str]
    supplies: tuple[Supply, ...] = ()
    injections: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for day, outcome in self.outcomes.items():
            _parse_day("ledger day", day)
            if outcome not in RECORDED_OUTCOMES:
                raise ValueError(f"unknown ledger outcome {outcome!r}; known: {', '.join(RECORDED_OUTCOMES)}")
        for day in self.injections:
            _parse_day("injection day", day)
        if any(not isinstance(supply, Supply) for supply in self.supplies):
            raise ValueError("supplies must be Supply records")


@dataclass(frozen=True)
class DayStatus:
    day: str
    status: str  # one of STATUS_WORDS
    due: bool
    taken: bool


def covered_dates(supplies: Sequence[Supply]) -> frozenset[str]:
    return frozenset(day for supply in supplies for day in supply.dates)


def supply_dates(first: date, count: int) -> tuple[str, ...]:
    """The `count` consecutive days a supply starting on `first` covers."""
    if not _is_int(count) or count < 1:
        raise ValueError(f"a supply covers 1 or more days; got {count!r}")
    return tuple((first + timedelta(days=offset)).isoformat() for offset in range(count))


def overlapping_dates(supplies: Sequence[Supply], dates: Sequence[str]) -> tuple[str, ...]:
    """The dates of `dates` an earlier supply already covers, sorted: a non-empty answer refuses it."""
    covered = covered_dates(supplies)
    return tuple(sorted(day for day in set(dates) if day in covered))


def schedule_allows_take_home(
    order: med.MedicationOrder, dates: Sequence[date], closed_days: Collection[date] = frozenset()
) -> tuple[bool, str]:
    """Whether `order`'s schedule lets a take-home dose cover every one of `dates`.

    A take-home day of an observed-plus-take-home schedule, or a clinic-closed day (42 CFR
    8.12(i)(1): doses for days the clinic is closed go home), may be covered; a day the schedule
    observes may not, and an injection order has no take-home dose at all.
    """
    if order.is_injection:
        return False, f"order {order.order_id} is an injection order: there is no take-home dose"
    observed = [
        day for day in dates if day not in closed_days and med.expected_on(order, day).kind == med.OBSERVED_DOSE
    ]
    if observed:
        listed = ", ".join(day.isoformat() for day in observed)
        return False, (
            f"order {order.order_id} is {order.schedule.kind}: {listed} "
            f"{'is an observed day' if len(observed) == 1 else 'are observed days'}, "
            "not take-home days (a clinician changes the schedule first)"
        )
    outside = [day for day in dates if not med.is_in_effect(order, day)]
    if outside:
        return False, f"{', '.join(d.isoformat() for d in outside)} outside the order's dates"
    return True, "every date is a take-home or clinic-closed day"


def day_statuses(
    order: med.MedicationOrder, ledger: DoseLedger, first: date, last: date, closed_days: Collection[date] = frozenset()
) -> tuple[DayStatus, ...]:
    """The status of every day from `first` to `last`, both included."""
    if last < first:
        return ()
    if order.is_injection:
        return _injection_statuses(order, ledger, first, last)
    covered = covered_dates(ledger.supplies)
    out: list[DayStatus] = []
    for offset in range((last - first).days + 1):
        day = first + timedelta(days=offset)
        key = day.isoformat()
        recorded = ledger.outcomes.get(key)
        if day < order.start:
            out.append(DayStatus(key, BEFORE_START, False, False))
        elif not med.is_in_effect(order, day) or med.expected_on(order, day).kind == med.NOTHING_EXPECTED:
            out.append(DayStatus(key, NOT_DUE, False, False))
        elif recorded in (DOSED, GUEST_DOSED):
            out.append(DayStatus(key, recorded, True, True))
        elif key in covered or recorded == TAKE_HOME:  # TAKE_HOME: a day the first build marked covered
            out.append(DayStatus(key, TAKE_HOME, True, True))
        elif day in closed_days:
            out.append(DayStatus(key, CLOSED, False, False))
        elif recorded in (HELD, REFUSED):
            out.append(DayStatus(key, recorded, True, False))
        else:  # nothing recorded, "missed", or a take-home day no supply covers
            out.append(DayStatus(key, MISSED, True, False))
    return tuple(out)


def _injection_statuses(
    order: med.MedicationOrder, ledger: DoseLedger, first: date, last: date
) -> tuple[DayStatus, ...]:
    """Injection orders count cycles, one per due date, shown on the due date: taken when an
    injection was given no later than its due date plus grace, missed once the grace ended
    without one, pending while the window is open."""
    given = sorted(_parse_day("injection day", d) for d in ledger.injections)
    by_day: dict[date, DayStatus] = {}
    last_given: date | None = None
    cursor = order.start
    stop = min(last, order.stop) if order.stop else last
    while True:
        due = med.next_injection_due(order, last_given)
        if due > stop:
            break
        window_end = due + timedelta(days=order.schedule.grace_days)
        shot = next((d for d in given if (last_given is None or d > last_given) and d >= cursor), None)
        if shot is not None and shot <= window_end:
            by_day[due] = DayStatus(due.isoformat(), INJECTED, True, True)
        elif window_end > last:
            by_day[due] = DayStatus(due.isoformat(), PENDING, False, False)
        else:
            by_day[due] = DayStatus(
                due.isoformat(), ledger.outcomes.get(due.isoformat()) == HELD and HELD or MISSED, True, False
            )
        if shot is None:
            break
        last_given, cursor = shot, shot + timedelta(days=1)
    out = []
    for offset in range((last - first).days + 1):
        day = first + timedelta(days=offset)
        status = DayStatus(day.isoformat(), BEFORE_START if day < order.start else NOT_DUE, False, False)
        out.append(by_day.get(day, status))
    return tuple(out)


def adherence(
    order: med.MedicationOrder,
    ledger: DoseLedger,
    window_days: int,
    today: date,
    closed_days: Collection[date] = frozenset(),
) -> med.Adherence:
    """THE adherence figure: doses taken over doses due in the `window_days` days ending
    yesterday (today is not over). `ratio` is None when no dose was due."""
    if not _is_int(window_days) or window_days < 1:
        raise ValueError(f"window_days must be a whole number of days, 1 or more; got {window_days!r}")
    first, last = today - timedelta(days=window_days), today - timedelta(days=1)
    days = day_statuses(order, ledger, first, last, closed_days)
    due = sum(1 for d in days if d.due)
    taken = sum(1 for d in days if d.taken)
    return med.Adherence(window_days, first.isoformat(), last.isoformat(), due, taken, taken / due if due else None)


def adherence_between(
    order: med.MedicationOrder, ledger: DoseLedger, first: date, last: date, closed_days: Collection[date] = frozenset()
) -> med.Adherence:
    """The same figure over the period `first`..`last` (a report's week or month)."""
    return adherence(order, ledger, (last - first).days + 1, last + timedelta(days=1), closed_days)


def adherence_windows(
    order: med.MedicationOrder,
    ledger: DoseLedger,
    today: date,
    closed_days: Collection[date] = frozenset(),
    windows: Sequence[int] = med.ADHERENCE_WINDOWS,
) -> tuple[med.Adherence, ...]:
    return tuple(adherence(order, ledger, window, today, closed_days) for window in windows)


def missed_run(
    order: med.MedicationOrder,
    ledger: DoseLedger,
    through: date,
    after: date | None = None,
    closed_days: Collection[date] = frozenset(),
    *,
    count_refused: bool = True,
) -> int:
    """Consecutive missed due days up to `through` (after `after`, when a clinician's reassessment
    started the count afresh). A dose taken ends the run; held and closed days neither end nor
    extend it, so a hold for three missed doses still reads "3 consecutive missed doses". A
    refused dose is a dose not taken and counts as missed unless `count_refused` is False."""
    first = order.start if after is None else max(order.start, after + timedelta(days=1))
    run = 0
    counted = {MISSED, REFUSED} if count_refused else {MISSED}
    for status in reversed(day_statuses(order, ledger, first, through, closed_days)):
        if status.taken:
            break
        if status.status in counted:
            run += 1
    return run


def split_part_reason(
    order_dose: float, order_unit: str, kind: str, part_dose: float | None, part_unit: str | None, parts: int
) -> str | None:
    """Why a part of a split dose does not fit the order, or None when it does: the order's daily
    dose given in `parts` equal observed parts (2 to 4), e.g. methadone 120 mg as 2 x 60 mg."""
    if kind != med.OBSERVED_DOSE:
        return f"only an observed dose can be split, not a {kind} record"
    if not _is_int(parts) or not 2 <= parts <= 4:
        return f"a split dose has 2 to 4 parts; got {parts!r}"
    if part_unit != order_unit or part_dose is None or abs(part_dose * parts - order_dose) > 1e-9:
        return (
            f"each of the {parts} parts must be {order_dose / parts:g} {order_unit} "
            f"(the order's {order_dose:g} {order_unit} split {parts} ways); got {part_dose} {part_unit}"
        )
    return None


def plain_reason(decision_reason: str | None, run: int, status: str) -> str:
    """One sentence for the dashboard: why the order is held, and what the run of misses is."""
    if status == med.HELD:
        why = decision_reason or "held by a clinician"
        return f"Dosing is on hold: {why}. A clinician reassesses and releases the hold before the next dose."
    if run:
        return f"{run} consecutive missed dose(s); staff are alerted, and at 3 a clinician reassesses."
    return "No missed dose in the current run."
