"""`iop simulate`: the real workflows on the time-skipping server, with synthetic participants."""

import pytest

from iop.simulate import SimulationReport, format_report, run_simulation, validate


def check_consistent(report: SimulationReport, participants: int, days: int) -> None:
    # One draw per participant and program day; every selected draw made one screening.
    assert report.draws == participants * days
    assert report.selected == sum(report.selected_per_day) == report.screenings
    assert len(report.selected_per_day) == days
    assert report.load_min <= report.load_mean <= report.load_max
    assert report.load_min <= report.load_p95 <= report.load_max
    assert set(report.weekday_mean) == {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"}
    assert 0.0 <= report.weekend_share <= 1.0
    assert report.expected_weekend_share == pytest.approx(2 / 7)
    # Phase 1 plans 3 a week with a floor of 2 and a ceiling of 5 in any 7 days.
    assert report.plan_tests_per_week == 3.0
    assert 1.5 <= report.tests_per_participant_week <= 5.0, report.tests_per_participant_week
    # Each day is simulated past its last window: every screening is settled.
    assert report.still_open == 0
    assert report.collected + report.missed + report.excused + report.other == report.screenings
    assert report.wall_seconds > 0


async def test_everyone_shows_up():
    days = []
    report = await run_simulation(
        5, 21, no_show_rate=0.0, phase="phase-1", seed=7, progress=lambda done, total, day: days.append((done, total))
    )
    check_consistent(report, 5, 21)
    assert report.screenings > 0
    assert report.missed == 0 and report.late_collections == 0 and report.collections_refused == 0
    assert report.collected == report.screenings == report.collections_sent
    assert days == [(i, 21) for i in range(1, 22)]
    text = format_report(report)
    assert "tests per participant-week" in text and "collected" in text and "Wall time" in text


async def test_nobody_shows_up():
    report = await run_simulation(5, 21, no_show_rate=1.0, phase="phase-1", seed=7)
    check_consistent(report, 5, 21)
    assert report.collected == 0 and report.collections_sent == 0
    assert report.missed == report.screenings > 0


@pytest.mark.parametrize(
    "args, message",
    [
        ((0, 10, 0.1, "phase-1"), "--participants"),
        ((5, 0, 0.1, "phase-1"), "--days"),
        ((5, 731, 0.1, "phase-1"), "--days"),
        ((5, 10, 1.5, "phase-1"), "--no-show-rate"),
        ((5, 10, float("nan"), "phase-1"), "--no-show-rate"),
        ((5, 10, 0.1, "phase-9"), "--phase"),
    ],
)
def test_arguments_are_checked(args, message):
    with pytest.raises(ValueError, match=message):
        validate(*args)


# --- the simulation on the rules (iop/rulesim.py) -------------------------------------------------

import csv  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import random  # noqa: E402
import statistics  # noqa: E402
import xml.etree.ElementTree as ElementTree  # noqa: E402
from dataclasses import replace  # noqa: E402
from datetime import date, timedelta  # noqa: E402

from typer.testing import CliRunner  # noqa: E402

from domain.calendar import SiteCalendar  # noqa: E402
from domain.plan import default_plan  # noqa: E402
from domain.program import default_program, program_to_dict  # noqa: E402
from domain.selection import draw_day  # noqa: E402
from iop import rulesim  # noqa: E402
from iop.rulesim import Assumptions, run_rules  # noqa: E402

MONDAY = date(2026, 3, 2)


def test_rules_draw_with_draw_day_and_the_workflows_rolls():
    """Participant 0's tests, redrawn by hand: the notice-time roll, then the selection roll, each day,
    from the participant's own generator, through domain.selection.draw_day."""
    report = run_rules(3, 40, seed=11, first_day=MONDAY, assumptions=Assumptions(medication_share=0.0))
    plan = default_plan("phase-1")
    for index in range(3):
        rolls = random.Random(f"11:draws:{index}")
        selected: list[date] = []
        for offset in range(40):
            day = MONDAY + timedelta(days=offset)
            rolls.random()  # the notice-time roll
            if draw_day(plan, day, rolls.random(), selected[-7:], False, history_start=MONDAY).selected:
                selected.append(day)
        assert report.per_participant_tests[index] == len(selected)
        assert report.per_participant_weekend[index] == sum(d.weekday() >= 5 for d in selected)


def test_rules_same_seed_same_run_however_split():
    one = run_rules(1100, 12, seed=4, first_day=MONDAY, assumptions=Assumptions(no_show_rate=0.2), processes=1)
    two = run_rules(1100, 12, seed=4, first_day=MONDAY, assumptions=Assumptions(no_show_rate=0.2), processes=2)
    assert two.processes == 2
    assert one.rows() == two.rows() and one.per_participant_tests == two.per_participant_tests
    other = run_rules(1100, 12, seed=5, first_day=MONDAY, assumptions=Assumptions(no_show_rate=0.2), processes=1)
    assert other.tests != one.tests


def test_rules_figures_add_up():
    a = Assumptions(
        no_show_rate=0.25,
        positive_rate=0.2,
        female_share=0.4,
        observed_share=1.0,
        minutes_per_collection=12,
        cost_per_screen=7,
        cost_per_confirmation=50,
        medication_share=0.0,
    )
    r = run_rules(400, 28, seed=2, first_day=MONDAY, assumptions=a)
    assert r.selected == sum(r.per_participant_tests) > 0
    for row in r.rows():
        assert row["collected"] + row["missed"] <= row["tests"]
        assert row["observed_female_collector"] + row["observed_male_collector"] == row["collected"]
        assert row["lab_cost"] == pytest.approx(7 * row["collected"] + 50 * row["lab_confirmations"])
        assert row["staff_hours"] == pytest.approx(12 * row["collected"] / 60, abs=0.01)
        assert row["observed_doses"] == 0
    # Every no-show of an open every-day site, told when the window opens, is a reportable miss.
    assert sum(r.collected) + sum(r.missed) == r.selected
    no_shows = sum(r.missed) / r.selected
    assert abs(no_shows - 0.25) < 4 * math.sqrt(0.25 * 0.75 / r.selected)
    female = sum(r.observed_female) / sum(r.collected)
    assert 0.3 < female < 0.5  # 400 participants, 40% women
    # The floor and the ceiling (2..5 a rolling week): 28 days hold 4 disjoint weeks.
    assert all(8 <= n <= 20 for n in r.per_participant_tests)
    nobody = run_rules(50, 14, seed=2, first_day=MONDAY, assumptions=replace(a, positive_rate=0.0, no_show_rate=1.0))
    assert sum(nobody.collected) == sum(nobody.confirmations) == 0 and sum(nobody.missed) == nobody.selected


def test_rules_dosing_load_follows_the_medication_schedules():
    daily = run_rules(
        30, 14, seed=1, first_day=MONDAY, assumptions=Assumptions(medication_share=1.0, take_home_share=0.0)
    )
    assert daily.observed_doses == [30] * 14
    mixed = run_rules(
        30, 14, seed=1, first_day=MONDAY, assumptions=Assumptions(medication_share=1.0, take_home_share=1.0)
    )
    assert mixed.observed_doses == [30 if d.weekday() in (0, 2, 4) else 0 for d in mixed.day_list]


def weekday_program() -> dict:
    program = default_program("north")
    calendar = SiteCalendar(
        timezone="America/Chicago",
        hours={d: ("08:00", "17:00") for d in range(5)},
        closed={"2026-05-25": "Memorial Day (site)"},
    )
    return program_to_dict(replace(program, sites={"north": calendar}))


def test_rules_follow_a_programs_calendar():
    from domain.program import program_from_dict

    r = run_rules(200, 28, "phase-2", seed=3, first_day=date(2026, 5, 18), program=program_from_dict(weekday_program()))
    by_day = dict(zip(r.day_list, r.tests, strict=True))
    assert by_day[date(2026, 5, 25)] == 0 and r.closed[r.day_list.index(date(2026, 5, 25))]
    assert all(by_day[d] == 0 for d in r.day_list if d.weekday() >= 5)
    assert r.weekend_share == 0.0 and r.holiday_share == 0.0
    assert "Memorial Day" in r.holidays[r.day_list.index(date(2026, 5, 25))]
    assert r.plan_tests_per_week == 2.0


def test_federal_holidays():
    holidays = rulesim.federal_holidays(2026)
    assert holidays[date(2026, 1, 19)].startswith("Birthday of Martin Luther King")
    assert holidays[date(2026, 2, 16)] == "Washington's Birthday"
    assert holidays[date(2026, 5, 25)] == "Memorial Day"
    assert holidays[date(2026, 9, 7)] == "Labor Day"
    assert holidays[date(2026, 10, 12)] == "Columbus Day"
    assert holidays[date(2026, 11, 26)] == "Thanksgiving Day"
    assert len(holidays) == 11


def test_rules_outputs(tmp_path):
    from iop import cli

    out = tmp_path / "out"
    out.mkdir()
    program = tmp_path / "program.json"
    program.write_text(json.dumps(weekday_program()))
    result = CliRunner().invoke(
        cli.app,
        [
            "simulate",
            "--participants",
            "60",
            "--days",
            "21",
            "--seed",
            "9",
            "--no-show-rate",
            "0.1",
            "--start",
            "2026-05-18",
            "--program",
            str(program),
            "--phase",
            "phase-1",
            "--cost-per-screen",
            "3",
            "--json",
            str(out / "r.json"),
            "--csv",
            str(out / "r.csv"),
            "--svg",
            str(out / "r.svg"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "Tests per day" in result.output and "Missed tests expected" in result.output
    assert "2026-05-25 Mon" in result.output  # the daily table
    data = json.loads((out / "r.json").read_text())
    assert data["summary"]["participants"] == 60 and data["summary"]["assumptions"]["cost_per_screen"] == 3
    assert len(data["days"]) == 21
    rows = list(csv.DictReader(io.StringIO((out / "r.csv").read_text())))
    assert [row["day"] for row in rows] == [d["day"] for d in data["days"]]
    assert sum(int(row["tests"]) for row in rows) == data["summary"]["tests_per_day"]["total"]
    svg = ElementTree.fromstring((out / "r.svg").read_text())
    bars = [
        e
        for e in svg.iter("{http://www.w3.org/2000/svg}rect")
        if e.find("{http://www.w3.org/2000/svg}title") is not None
    ]
    assert len(bars) == 21


@pytest.mark.parametrize(
    "args, message",
    [
        (["--positive-rate", "2"], "--positive-rate"),
        (["--female-share", "nan"], "--female-share"),
        (["--cost-per-screen", "-1"], "--cost-per-screen"),
        (["--start", "18/05/2026"], "--start"),
        (["--workflows", "--json", "x.json"], "--workflows"),
    ],
)
def test_rules_options_are_checked(args, message):
    from iop import cli

    result = CliRunner().invoke(cli.app, ["simulate", "--participants", "5", "--days", "5", *args])
    assert result.exit_code == 2 and message in result.output, result.output


# --- the rules agree with the workflows -----------------------------------------------------------

# Two-sided bounds at |z| < 4 (a false alarm about once in 16,000 runs per figure).
Z = 4.0


def chi_square_bounds(k: int, z: float = 3.72) -> tuple[float, float]:
    """Wilson-Hilferty quantiles of chi-square with k degrees of freedom at -z and +z (1e-4 each side)."""

    def at(zz: float) -> float:
        return k * (1 - 2 / (9 * k) + zz * math.sqrt(2 / (9 * k))) ** 3

    return at(-z), at(z)


async def test_rules_agree_with_the_workflows():
    """50 participants x 60 days on the real workflows against 4,000 x 60 on the rules, same first day.

    Participants are independent, so per-participant totals are i.i.d.: the workflows' mean tests per
    participant-week is compared by the CLT with the rules' own variance; each test falls on a weekend
    or not, so the weekend share gets the binomial variance; on each day every participant is selected
    or not with the rules' probability m_d for that day, so the day's load is Binomial(50, m_d) and the
    60 standardised loads sum to a chi-square with 60 degrees of freedom (checked on both tails: too
    little day-to-day variation is as wrong as too much).
    """
    participants, days, reference = 50, 60, 4000
    wf = await run_simulation(participants, days, no_show_rate=0.1, phase="phase-1", seed=5)
    check_consistent(wf, participants, days)
    rules = run_rules(
        reference,
        days,
        "phase-1",
        seed=5,
        first_day=wf.first_day,
        assumptions=Assumptions(no_show_rate=0.1, medication_share=0.0),
    )

    # Tests per participant-week.
    mean_r, sd_r = statistics.fmean(rules.per_participant_tests), statistics.stdev(rules.per_participant_tests)
    mean_w = statistics.fmean(wf.selected_per_participant)
    z = (mean_w - mean_r) / (sd_r * math.sqrt(1 / participants + 1 / reference))
    assert abs(z) < Z, f"tests per participant-week {mean_w * 7 / days:.3f} vs {mean_r * 7 / days:.3f} (z {z:.2f})"

    # Weekend share.
    p = rules.weekend_share
    share_w = sum(wf.weekend_per_participant) / wf.selected
    z = (share_w - p) / math.sqrt(p * (1 - p) * (1 / wf.selected + 1 / rules.selected))
    assert abs(z) < Z, f"weekend share {share_w:.3f} vs {p:.3f} (z {z:.2f})"

    # Per-day load distribution.
    chi2 = 0.0
    for load, count in zip(wf.selected_per_day, rules.tests, strict=False):
        m = count / reference
        variance = participants * m * (1 - m) * (1 + participants / reference)
        chi2 += (load - participants * m) ** 2 / variance
    low, high = chi_square_bounds(days)
    assert low < chi2 < high, f"per-day loads: chi-square {chi2:.1f} outside {low:.1f}..{high:.1f} (60 df)"

    # Missed tests: a no-show of a told participant is a reportable miss on both sides.
    q = sum(rules.missed) / rules.selected
    z = (wf.missed / wf.screenings - q) / math.sqrt(q * (1 - q) * (1 / wf.screenings + 1 / rules.selected))
    assert abs(z) < Z, f"missed share {wf.missed / wf.screenings:.3f} vs {q:.3f} (z {z:.2f})"


def test_rules_simulate_a_colour_mode_program_with_the_workflows_functions():
    """A program that calls colours (issue 15): each open day the colours are drawn by domain.colours.draw_colours
    (redrawn here by hand from the run's colour generator), nothing on the closed weekend and holiday, and each
    day's tests are exactly the participants of the called colours (participant i has colour i mod 2)."""
    from domain.colours import draw_colours, drawn
    from domain.program import plan_for, program_from_dict
    from domain.selection import is_collection_day

    definition = {
        **weekday_program(),
        "mode": "colour",
        "colours": [
            {"name": "red", "tests_per_week": 1.5, "min_per_rolling_week": 1, "max_per_rolling_week": 2},
            {"name": "blue", "tests_per_week": 2},
        ],
    }
    program = program_from_dict(definition)
    first = date(2026, 5, 18)
    r = run_rules(
        6, 28, "phase-1", seed=7, first_day=first, program=program, assumptions=Assumptions(medication_share=0.0)
    )
    site_plan = plan_for(program, 1, "north", program.phases[0].name)
    rolls, recent, expected = random.Random("7:colours"), {"red": [], "blue": []}, []
    for day in r.day_list:
        if not is_collection_day(site_plan, day):
            expected.append([])
            continue
        window = {name: [d for d in days if (day - d).days < 7] for name, days in recent.items()}
        draws = draw_colours(
            site_plan,
            program.colours,
            day,
            {g.name: rolls.random() for g in program.colours},
            window,
            history_start=first,
        )
        expected.append(drawn(draws, program.colours))
        for name in expected[-1]:
            recent[name].append(day)
    assert r.mode == "colour" and r.colours_called == expected
    assert any(expected) and not all(expected)
    assert all(
        not called
        for day, called in zip(r.day_list, expected, strict=True)
        if day.weekday() >= 5 or day == date(2026, 5, 25)
    )
    assert r.tests == [3 * ("red" in called) + 3 * ("blue" in called) for called in expected]
    assert r.calls == [0 if closed else 6 for closed in r.closed]
    red = [day for day, called in zip(r.day_list, expected, strict=True) if "red" in called]
    assert all(
        1 <= sum(start <= d < start + timedelta(days=7) for d in red) <= 2 for start in r.day_list[:-6]
    )  # red's floor and ceiling in every rolling week
    summary = r.summary()
    assert summary["colour_days_called"] == {"red": len(red), "blue": sum("blue" in c for c in expected)}
    assert r.rows()[0]["colours_called"] == " ".join(expected[0])
    assert "Colour mode: open days each colour is called" in rulesim.format_rules_report(r)
