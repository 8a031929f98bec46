"""`iop simulate` on the rules: capacity planning in memory, in seconds.

A program's definition (its first site's calendar and the phase's plan, or the built-in defaults)
runs through the same pure functions the workflows call: domain.selection.draw_day decides every
day of every synthetic participant, fed the same shape of rolls as ParticipantWorkflow takes from
workflow.random() (a notice-time roll, then the selection roll, each day); notification_time and
window_end place the collection window; domain.misses.miss_verdict says whether a no-show is a
reportable missed test; domain.medication.expected_on says which days a medication order needs an
observed dose. Attendance, positives and the sex of each participant are dice from a seeded
random.Random, one generator per participant so that a seed gives the same run however the work is
split over processes.

A program in colour mode (issue 15: the clinic calls colours each open day, everyone of a called colour
tests) runs through the same functions as its workflows: each open day of the first site, each colour is
drawn by domain.colours.draw_colours (one roll per colour from the run's colour generator, in place of
the period seed's HMAC roll), and each participant's day by domain.colours.participant_verdict on the
colours called; the participant is told at opening, as ParticipantWorkflow does in colour mode.
Participants are spread evenly over the colours (participant i has colour i modulo their number), and
every participant calls the colour line on every open day (the calls per day).

A directly observed collection needs an observer of the participant's gender (49 CFR 40.67, the
DOT procedure treatment courts commonly follow), hence the capacity by sex of collector. Nothing
here touches Temporal or a database.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import random
import statistics
import time as wallclock
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import date, time, timedelta

from domain.calendar import WEEKDAY_NAMES
from domain.clock import local_moment
from domain.colours import draw_colours, drawn, participant_verdict
from domain.medication import (
    OBSERVED_DOSE,
    MedicationOrder,
    Schedule,
    expected_on,
)
from domain.misses import REPORTABLE, MissFacts, miss_verdict
from domain.plan import TestingPlan, default_plan, hours_for
from domain.program import Program, plan_for
from domain.selection import WINDOW_DAYS, draw_day, is_collection_day, notification_time, window_end

WEEKDAYS = WEEKDAY_NAMES
# Below this many participant-days one process is quicker than starting others.
PARALLEL_FROM = 200_000
CHUNK = 500  # participants per unit of work (and per progress step)

# (participants done, participants in all)
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class Assumptions:
    """What the rules do not say and a site supplies: rates, staff time and prices."""

    no_show_rate: float = 0.0
    positive_rate: float = 0.15  # share of collected screens that are non-negative and go to confirmation
    female_share: float = 0.35  # participants; their observed collections need a female collector
    observed_share: float = 1.0  # collections directly observed (the rest unobserved)
    minutes_per_collection: float = 15.0  # staff minutes per collection, paperwork included
    cost_per_screen: float = 10.0  # lab price of an immunoassay screen (currency of the site)
    cost_per_confirmation: float = 45.0  # lab price of an LC-MS/MS confirmation
    medication_share: float = 0.3  # participants with a medication order
    take_home_share: float = 0.5  # of those, observed Mon/Wed/Fri with take-home doses; the rest daily observed
    minutes_per_dose: float = 5.0  # staff minutes per observed dose


@dataclass
class RulesReport:
    participants: int
    days: int
    phase: str
    seed: int | None
    first_day: date
    last_day: date
    assumptions: Assumptions
    plan_tests_per_week: float
    daily_probability: float
    # Per program day, in order.
    day_list: list[date]
    tests: list[int]  # screenings selected
    forced: list[int]  # selected by the floor (reason floor-required)
    collected: list[int]
    missed: list[int]  # reportable missed tests (no-show, told in time, site open)
    observed_female: list[int]  # observed collections needing a female collector
    observed_male: list[int]
    confirmations: list[int]
    observed_doses: list[int]
    holidays: list[str]  # the holiday's name, "" on other days
    closed: list[bool]  # the site's calendar closes the day
    mode: str = "individual"  # domain.program.ProgramMode: colour when the program calls colours each open day
    colours: list[str] = field(default_factory=list)  # colour mode: the program's colours
    colours_called: list[list[str]] = field(default_factory=list)  # colour mode: the colours called each day
    calls: list[int] = field(default_factory=list)  # colour mode: participants calling the colour line each day
    # Per participant: selected tests and weekend tests (for the statistics of the check against the workflows).
    per_participant_tests: list[int] = field(default_factory=list)
    per_participant_weekend: list[int] = field(default_factory=list)
    collection_minutes_by_hour: dict[int, float] = field(default_factory=dict)  # clock hour -> staff minutes
    wall_seconds: float = 0.0
    processes: int = 1

    # --- derived figures ---
    @property
    def selected(self) -> int:
        return sum(self.tests)

    @property
    def tests_per_participant_week(self) -> float:
        return self.selected / (self.participants * self.days / 7)

    @property
    def weekend_share(self) -> float:
        weekend = sum(n for d, n in zip(self.day_list, self.tests, strict=True) if d.weekday() >= 5)
        return weekend / self.selected if self.selected else 0.0

    @property
    def holiday_share(self) -> float:
        on = sum(n for h, n in zip(self.holidays, self.tests, strict=True) if h)
        return on / self.selected if self.selected else 0.0

    def staff_hours(self) -> list[float]:
        a = self.assumptions
        return [
            (c * a.minutes_per_collection + d * a.minutes_per_dose) / 60
            for c, d in zip(self.collected, self.observed_doses, strict=True)
        ]

    def lab_cost(self) -> list[float]:
        a = self.assumptions
        return [
            c * a.cost_per_screen + k * a.cost_per_confirmation
            for c, k in zip(self.collected, self.confirmations, strict=True)
        ]

    def rows(self) -> list[dict]:
        """One row per program day (the CSV)."""
        out = []
        hours, cost = self.staff_hours(), self.lab_cost()
        for i, day in enumerate(self.day_list):
            out.append(
                {
                    "day": day.isoformat(),
                    "weekday": WEEKDAYS[day.weekday()],
                    "holiday": self.holidays[i],
                    "site_closed": self.closed[i],
                    "tests": self.tests[i],
                    "forced_by_floor": self.forced[i],
                    "collected": self.collected[i],
                    "missed": self.missed[i],
                    "observed_female_collector": self.observed_female[i],
                    "observed_male_collector": self.observed_male[i],
                    "lab_screens": self.collected[i],
                    "lab_confirmations": self.confirmations[i],
                    "lab_cost": round(cost[i], 2),
                    "observed_doses": self.observed_doses[i],
                    "staff_hours": round(hours[i], 2),
                }
            )
            if self.mode == "colour":
                out[-1].update(colours_called=" ".join(self.colours_called[i]), calls=self.calls[i])
        return out

    def summary(self) -> dict:
        def spread(values: list) -> dict:
            return {
                "min": min(values),
                "mean": round(statistics.fmean(values), 3),
                "p95": _percentile(values, 0.95),
                "max": max(values),
                "total": round(sum(values), 2),
            }

        hours, cost = self.staff_hours(), self.lab_cost()
        a = self.assumptions
        return {
            "participants": self.participants,
            "days": self.days,
            "phase": self.phase,
            "seed": self.seed,
            "first_day": self.first_day.isoformat(),
            "last_day": self.last_day.isoformat(),
            "assumptions": asdict(a),
            "plan_tests_per_week": self.plan_tests_per_week,
            "daily_probability": round(self.daily_probability, 4),
            "tests_per_participant_week": round(self.tests_per_participant_week, 4),
            "tests_per_day": spread(self.tests),
            "forced_by_floor": sum(self.forced),
            "weekend_share": round(self.weekend_share, 4),
            "holiday_share": round(self.holiday_share, 4),
            "holidays_in_period": sorted({h for h in self.holidays if h}),
            "collected": sum(self.collected),
            "missed_expected": sum(self.missed),
            "missed_per_participant_month": round(sum(self.missed) / (self.participants * self.days / 30), 4),
            "observed_collections_female_collector": spread(self.observed_female),
            "observed_collections_male_collector": spread(self.observed_male),
            "staff_hours_per_day": spread([round(h, 2) for h in hours]),
            # Observed collections alone, by the collector's sex: the hours each pool of collectors must cover.
            "observed_collection_hours_female_collector": spread(
                [round(n * a.minutes_per_collection / 60, 2) for n in self.observed_female]
            ),
            "observed_collection_hours_male_collector": spread(
                [round(n * a.minutes_per_collection / 60, 2) for n in self.observed_male]
            ),
            "collection_staff_minutes_by_clock_hour": {
                f"{h:02d}:00": round(m / self.days, 1) for h, m in sorted(self.collection_minutes_by_hour.items())
            },
            "lab_screens": sum(self.collected),
            "lab_confirmations": sum(self.confirmations),
            "lab_cost": round(sum(cost), 2),
            "lab_cost_per_day": spread([round(c, 2) for c in cost]),
            "observed_doses_per_day": spread(self.observed_doses),
            "wall_seconds": round(self.wall_seconds, 3),
            "processes": self.processes,
            "mode": self.mode,
            **(
                {
                    "colour_days_called": {
                        name: sum(name in day for day in self.colours_called) for name in self.colours
                    },
                    "calls_per_day": spread(self.calls),
                }
                if self.mode == "colour"
                else {}
            ),
        }


# --- the run ----------------------------------------------------------------------------------------


def plan_of(phase: str, program: Program | None) -> TestingPlan:
    """The plan the workflows would draw with: the program's first site and phase, or the defaults."""
    if program is None:
        return default_plan(phase)
    return plan_for(program, 1, sorted(program.sites)[0], phase)


def run_rules(
    participants: int,
    days: int,
    phase: str = "phase-1",
    seed: int | None = None,
    assumptions: Assumptions = Assumptions(),
    program: Program | None = None,
    first_day: date | None = None,
    progress: Progress | None = None,
    processes: int | None = None,
) -> RulesReport:
    """Simulate `participants` x `days` on the rules; the first day is tomorrow unless given."""
    started = wallclock.perf_counter()
    plan = plan_of(phase, program)
    first = first_day or date.today() + timedelta(days=1)
    seed_text = str(random.Random().getrandbits(64) if seed is None else seed)
    called = colour_calls(program, first, days, seed_text) if program is not None and program.mode == "colour" else None
    chunks = [(start, min(participants, start + CHUNK)) for start in range(0, participants, CHUNK)]
    if processes is None:
        processes = min(os.cpu_count() or 1, len(chunks)) if participants * days >= PARALLEL_FROM else 1
    parts: list[dict] = []
    done = 0
    if processes <= 1:
        for lo, hi in chunks:
            parts.append(_simulate_chunk(plan, first, days, lo, hi, seed_text, assumptions, called))
            done += hi - lo
            if progress:
                progress(done, participants)
    else:
        with ProcessPoolExecutor(processes) as pool:
            futures = [
                pool.submit(_simulate_chunk, plan, first, days, lo, hi, seed_text, assumptions, called)
                for lo, hi in chunks
            ]
            for (lo, hi), future in zip(chunks, futures, strict=True):
                parts.append(future.result())
                done += hi - lo
                if progress:
                    progress(done, participants)
    day_list = [first + timedelta(days=i) for i in range(days)]

    def daily(key: str) -> list[int]:  # a count per day, summed over the parts
        return [sum(values) for values in zip(*(part[key] for part in parts), strict=True)]

    holidays = [holiday_name(d) or plan_closed_label(program, d) for d in day_list]
    report = RulesReport(
        participants=participants,
        days=days,
        phase=plan.phase,
        seed=seed,
        first_day=first,
        last_day=day_list[-1],
        assumptions=assumptions,
        plan_tests_per_week=plan.tests_per_week,
        daily_probability=min(1.0, plan.tests_per_week / len(plan.collection_weekdays)),
        day_list=day_list,
        holidays=holidays,
        closed=[not is_collection_day(plan, d) for d in day_list],
        tests=daily("tests"),
        forced=daily("forced"),
        collected=daily("collected"),
        missed=daily("missed"),
        observed_female=daily("observed_female"),
        observed_male=daily("observed_male"),
        confirmations=daily("confirmations"),
        observed_doses=daily("observed_doses"),
    )
    report.per_participant_tests = [n for part in parts for n in part["per_participant_tests"]]
    report.per_participant_weekend = [n for part in parts for n in part["per_participant_weekend"]]
    minutes: dict[int, float] = {}
    for part in parts:
        for hour, value in part["minutes_by_hour"].items():
            minutes[hour] = minutes.get(hour, 0.0) + value
    report.collection_minutes_by_hour = minutes
    if called is not None:
        report.mode, report.colours = "colour", list(called.names)
        report.colours_called = [list(c) for c in called.called]
        report.calls = [participants if not closed else 0 for closed in report.closed]
    report.processes = processes
    report.wall_seconds = wallclock.perf_counter() - started
    return report


@dataclass(frozen=True)
class ColourCalls:
    """A colour-mode program's colours, and those called each day of the run (and those the floor forced)."""

    names: tuple[str, ...]
    called: list[tuple[str, ...]]
    forced: list[tuple[str, ...]]


def colour_calls(program: Program, first: date, days: int, seed_text: str) -> ColourCalls:
    """The colours called on each day of a colour-mode program at its first site: store/colours.py's draw (each
    colour drawn like a participant under the site's calendar, its recent calls counted for its floor and
    ceiling), with one roll per colour per open day from the run's colour generator."""
    site = sorted(program.sites)[0]
    site_plan = plan_for(program, 1, site, program.phases[0].name)
    rolls = random.Random(f"{seed_text}:colours")
    recent: dict[str, list[date]] = {}
    out = ColourCalls(tuple(g.name for g in program.colours), [], [])
    for offset in range(days):
        day = first + timedelta(days=offset)
        if not is_collection_day(site_plan, day):  # the workflows draw no colour on a closed day
            out.called.append(())
            out.forced.append(())
            continue
        window = {name: [d for d in seen if (day - d).days < WINDOW_DAYS] for name, seen in recent.items()}
        draws = draw_colours(
            site_plan,
            program.colours,
            day,
            {g.name: rolls.random() for g in program.colours},
            window,
            history_start=first,
        )
        out.called.append(tuple(drawn(draws, program.colours)))
        out.forced.append(
            tuple(g.name for g, d in zip(program.colours, draws, strict=True) if d.reason == "floor-required")
        )
        for name in out.called[-1]:
            recent.setdefault(name, []).append(day)
    return out


def colour_of(index: int, colours: tuple[str, ...]) -> str:
    """Participant `index`'s colour: the participants spread evenly over the program's colours."""
    return colours[index % len(colours)]


def plan_closed_label(program: Program | None, day: date) -> str:
    if program is None:
        return ""
    return dict(program.sites[sorted(program.sites)[0]].closed).get(day.isoformat(), "")


def _medication_orders(first: date) -> tuple[MedicationOrder, MedicationOrder]:
    """Two typical opioid-treatment-program orders: methadone observed daily; buprenorphine observed
    Monday, Wednesday and Friday with take-home doses between (42 CFR 8.12(i) take-home criteria)."""
    common = dict(participant_id="p-sim", start_date=first.isoformat(), prescriber="sim")
    daily = MedicationOrder(
        order_id="sim-daily",
        drug="methadone",
        dose=80,
        unit="mg",
        route="oral",
        schedule=Schedule(kind="daily-observed"),
        **common,
    )
    mixed = MedicationOrder(
        order_id="sim-mixed",
        drug="buprenorphine",
        dose=16,
        unit="mg",
        route="sublingual",
        schedule=Schedule(kind="observed-plus-take-home", observed_weekdays=(0, 2, 4)),
        **common,
    )
    return daily, mixed


def _simulate_chunk(
    plan: TestingPlan,
    first: date,
    days: int,
    lo: int,
    hi: int,
    seed_text: str,
    a: Assumptions,
    calls: ColourCalls | None = None,
) -> dict:
    """Participants lo..hi-1: per-day sums and per-participant counts. `calls`: the colours called each day of
    a colour-mode program (colour_calls); a participant then tests when their colour is called."""
    day_list = [first + timedelta(days=i) for i in range(days)]
    open_day = [is_collection_day(plan, d) for d in day_list]
    weekend = [d.weekday() >= 5 for d in day_list]
    tests, forced, collected, missed = [0] * days, [0] * days, [0] * days, [0] * days
    female, male, confirmations, doses = [0] * days, [0] * days, [0] * days, [0] * days
    per_tests, per_weekend = [], []
    minutes_by_hour: dict[int, float] = {}
    # What each medication order expects, day by day: the same for every participant on it.
    daily, mixed = _medication_orders(first)
    observed_daily = [expected_on(daily, d).kind == OBSERVED_DOSE for d in day_list]
    observed_mixed = [expected_on(mixed, d).kind == OBSERVED_DOSE for d in day_list]
    verdict_cache: dict[tuple[date, time], bool] = {}
    for index in range(lo, hi):
        draws = random.Random(f"{seed_text}:draws:{index}")  # workflow.random() in the workflow
        dice = random.Random(f"{seed_text}:dice:{index}")  # the participant's behaviour
        is_female = dice.random() < a.female_share
        on_medication = dice.random() < a.medication_share
        medication = None
        if on_medication:
            medication = observed_mixed if dice.random() < a.take_home_share else observed_daily
        selected: list[date] = []
        count = weekend_count = 0
        own = colour_of(index, calls.names) if calls is not None else None
        for i, day in enumerate(day_list):
            # ParticipantWorkflow: the notice-time roll when the day is planned, then the selection roll.
            time_roll = draws.random()
            draw = draw_day(plan, day, draws.random(), selected[-WINDOW_DAYS:], False, history_start=first)
            if medication is not None and medication[i]:
                doses[i] += 1
            if calls is not None:  # colour mode: the day's colours decide, and they are called at opening
                if not participant_verdict(own, calls.called[i], open_day[i], False).selected:
                    continue
                floor = own in calls.forced[i]
                notice = time.fromisoformat(hours_for(plan, day.weekday())[0])
            elif not draw.selected:
                continue
            else:
                floor = draw.reason == "floor-required"
                notice = notification_time(plan, day, time_roll)
            selected.append(day)
            count += 1
            weekend_count += weekend[i]
            tests[i] += 1
            forced[i] += floor
            if dice.random() < a.no_show_rate:
                key = (day, notice)
                if key not in verdict_cache:
                    verdict_cache[key] = _reportable_miss(plan, day, notice, open_day[i])
                missed[i] += verdict_cache[key]
                continue
            collected[i] += 1
            if dice.random() < a.observed_share:
                if is_female:
                    female[i] += 1
                else:
                    male[i] += 1
            if dice.random() < a.positive_rate:
                confirmations[i] += 1
            # The participant comes at a uniform moment of the window.
            hour = _arrival_hour(plan, day, notice, dice.random())
            minutes_by_hour[hour] = minutes_by_hour.get(hour, 0.0) + a.minutes_per_collection
        per_tests.append(count)
        per_weekend.append(weekend_count)
    return {
        "tests": tests,
        "forced": forced,
        "collected": collected,
        "missed": missed,
        "observed_female": female,
        "observed_male": male,
        "confirmations": confirmations,
        "observed_doses": doses,
        "per_participant_tests": per_tests,
        "per_participant_weekend": per_weekend,
        "minutes_by_hour": minutes_by_hour,
    }


def _reportable_miss(plan: TestingPlan, day: date, notice: time, site_open: bool) -> bool:
    """A no-show with the notice delivered when sent: the workflow's verdict at the window's end."""
    opened = local_moment(day, notice, plan.timezone)
    closes = local_moment(day, window_end(plan, day, notice), plan.timezone)
    site_closes = local_moment(day, time.fromisoformat(hours_for(plan, day.weekday())[1]), plan.timezone)
    facts = MissFacts(
        day=day.isoformat(),
        site_open=site_open,
        window_opened_at=opened,
        window_closes_at=closes,
        told_at=opened,
        site_closes_at=site_closes,
    )
    return miss_verdict(facts).status == REPORTABLE


def _arrival_hour(plan: TestingPlan, day: date, notice: time, roll: float) -> int:
    start = notice.hour * 60 + notice.minute
    closes = window_end(plan, day, notice)
    end = closes.hour * 60 + closes.minute
    return (start + int(roll * max(0, end - start))) // 60


# --- holidays ---------------------------------------------------------------------------------------


def _nth_weekday(year: int, month: int, weekday: int, n: int) -> date:
    """The n-th (1-based; -1 the last) given weekday of a month."""
    if n > 0:
        first = date(year, month, 1)
        return first + timedelta(days=(weekday - first.weekday()) % 7 + 7 * (n - 1))
    last = date(year + (month == 12), month % 12 + 1, 1) - timedelta(days=1)
    return last - timedelta(days=(last.weekday() - weekday) % 7)


def federal_holidays(year: int) -> dict[date, str]:
    """The legal public holidays of 5 U.S.C. 6103(a) (dates as the statute sets them, not the observed ones)."""
    return {
        date(year, 1, 1): "New Year's Day",
        _nth_weekday(year, 1, 0, 3): "Birthday of Martin Luther King, Jr.",
        _nth_weekday(year, 2, 0, 3): "Washington's Birthday",
        _nth_weekday(year, 5, 0, -1): "Memorial Day",
        date(year, 6, 19): "Juneteenth National Independence Day",
        date(year, 7, 4): "Independence Day",
        _nth_weekday(year, 9, 0, 1): "Labor Day",
        _nth_weekday(year, 10, 0, 2): "Columbus Day",
        date(year, 11, 11): "Veterans Day",
        _nth_weekday(year, 11, 3, 4): "Thanksgiving Day",
        date(year, 12, 25): "Christmas Day",
    }


def holiday_name(day: date) -> str:
    return federal_holidays(day.year).get(day, "")


# --- output -----------------------------------------------------------------------------------------


def _percentile(values: list, share: float):
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def to_json(report: RulesReport) -> str:
    return json.dumps({"summary": report.summary(), "days": report.rows()}, indent=2)


def to_csv(report: RulesReport) -> str:
    rows = report.rows()
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def to_svg(report: RulesReport, width: int = 900, height: int = 300) -> str:
    """Tests per day as bars (weekends darker, holidays marked), with the observed doses as a line."""
    left, right, top, bottom = 50, 10, 30, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = max(max(report.tests), max(report.observed_doses), 1)
    scale = plot_h / peak
    bar = plot_w / report.days
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
        f'aria-labelledby="t"><title id="t">Tests per day, {report.participants} participants, '
        f"{report.first_day} to {report.last_day}</title>",
        f'<rect width="{width}" height="{height}" fill="#ffffff"/>',
        f'<text x="{left}" y="18" font-family="sans-serif" font-size="13">Tests per day (bars; weekends dark, '
        f"holidays outlined) and observed doses (line)</text>",
    ]
    for tick in range(5):
        value = peak * tick / 4
        y = top + plot_h - value * scale
        parts.append(
            f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e0e0e0"/>'
            f'<text x="{left - 4}" y="{y + 4:.1f}" text-anchor="end" font-family="sans-serif" '
            f'font-size="10">{value:.0f}</text>'
        )
    for i, (day, n) in enumerate(zip(report.day_list, report.tests, strict=True)):
        x, h = left + i * bar, n * scale
        fill = "#1a4f8b" if day.weekday() >= 5 else "#6a9fd4"
        stroke = ' stroke="#c62828" stroke-width="1.5"' if report.holidays[i] else ""
        holiday = f" ({report.holidays[i]})" if report.holidays[i] else ""
        label = f"{day} {WEEKDAYS[day.weekday()]}: {n} tests{holiday}"
        parts.append(
            f'<rect x="{x:.2f}" y="{top + plot_h - h:.2f}" width="{max(bar - 0.5, 0.5):.2f}" '
            f'height="{h:.2f}" fill="{fill}"{stroke}><title>{_escape(label)}</title></rect>'
        )
    points = " ".join(
        f"{left + (i + 0.5) * bar:.1f},{top + plot_h - d * scale:.1f}" for i, d in enumerate(report.observed_doses)
    )
    if any(report.observed_doses):
        parts.append(f'<polyline points="{points}" fill="none" stroke="#a84b00" stroke-width="1.5"/>')
    for i in range(0, report.days, max(1, report.days // 8)):
        x = left + (i + 0.5) * bar
        parts.append(
            f'<text x="{x:.1f}" y="{height - bottom + 14}" text-anchor="middle" font-family="sans-serif" '
            f'font-size="10">{report.day_list[i]:%m-%d}</text>'
        )
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def format_rules_report(report: RulesReport, daily_table: bool = True) -> str:
    s = report.summary()
    a = report.assumptions
    seed = "random" if report.seed is None else str(report.seed)

    def spread(d: dict, fmt: str | None = None) -> str:
        if fmt is None:  # counts: whole numbers, the mean to a tenth
            return f"{d['min']:g} / {d['mean']:.1f} / {d['p95']:g} / {d['max']:g}"
        return " / ".join(fmt.format(d[k]) for k in ("min", "mean", "p95", "max"))

    rows = [
        ("Simulation on the rules", ""),
        ("  participants", f"{report.participants}"),
        ("  program days", f"{report.days} ({report.first_day} .. {report.last_day})"),
        ("  phase", f"{report.phase} (seed {seed})"),
        (
            "  assumptions",
            f"no-show {a.no_show_rate:.0%}, positive {a.positive_rate:.0%}, female "
            f"{a.female_share:.0%}, observed {a.observed_share:.0%}, "
            f"medication {a.medication_share:.0%}",
        ),
        ("Tests per day (min / mean / p95 / max)", spread(s["tests_per_day"])),
        (
            "  tests per participant-week",
            f"{s['tests_per_participant_week']:.2f} (plan {report.plan_tests_per_week:g})",
        ),
        ("  forced by the floor", f"{s['forced_by_floor']}"),
        ("  weekend share", f"{report.weekend_share:.1%}"),
        ("  holiday share", f"{report.holiday_share:.1%} ({', '.join(s['holidays_in_period']) or 'no holidays'})"),
        ("Observed collections per day, female collector", spread(s["observed_collections_female_collector"])),
        ("Observed collections per day, male collector", spread(s["observed_collections_male_collector"])),
        (
            "  collector hours per day, female / male (p95)",
            f"{s['observed_collection_hours_female_collector']['p95']:.1f} / "
            f"{s['observed_collection_hours_male_collector']['p95']:.1f}",
        ),
        ("Staff hours per day (collections + doses)", spread(s["staff_hours_per_day"], "{:.1f}")),
        ("Observed doses per day (dosing-window load)", spread(s["observed_doses_per_day"])),
        ("Lab: screens / confirmations", f"{s['lab_screens']} / {s['lab_confirmations']}"),
        ("  cost", f"{s['lab_cost']:,.2f} (screen {a.cost_per_screen:g}, confirmation {a.cost_per_confirmation:g})"),
        (
            "Missed tests expected (reportable)",
            f"{s['missed_expected']} ({s['missed_per_participant_month']:.2f} per participant-month)",
        ),
        ("Wall time", f"{report.wall_seconds:.2f} s on {report.processes} process(es)"),
    ]
    if report.mode == "colour":
        rows[5:5] = [
            (
                "Colour mode: open days each colour is called",
                ", ".join(f"{name} {n}" for name, n in s["colour_days_called"].items()),
            ),
            ("  calls to the colour line per day (min / mean / p95 / max)", spread(s["calls_per_day"])),
        ]
    width = max(len(label) for label, _ in rows) + 2
    text = "\n".join(f"{label:<{width}}{value}".rstrip() for label, value in rows)
    if daily_table:
        header = (
            f"{'day':<10} {'wd':<3} {'tests':>6} {'coll':>6} {'miss':>5} {'obs F':>6} {'obs M':>6} "
            f"{'doses':>6} {'staff h':>8} {'lab cost':>10}  holiday"
            + ("  colours called" if report.mode == "colour" else "")
        )
        lines = [header]
        for row in report.rows():
            colours = f"  {row['colours_called'] or '-'}" if report.mode == "colour" else ""
            lines.append(
                (
                    f"{row['day']:<10} {row['weekday']:<3} {row['tests']:>6} {row['collected']:>6} "
                    f"{row['missed']:>5} {row['observed_female_collector']:>6} "
                    f"{row['observed_male_collector']:>6} "
                    f"{row['observed_doses']:>6} {row['staff_hours']:>8.1f} {row['lab_cost']:>10.2f}  "
                    f"{row['holiday']}{colours}"
                ).rstrip()
            )
        text += "\n\n" + "\n".join(lines)
    return text
