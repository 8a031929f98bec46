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
    report = await run_simulation(5, 21, no_show_rate=0.0, phase="phase-1", seed=7,
                                  progress=lambda done, total, day: days.append((done, total)))
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
