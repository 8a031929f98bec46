"""The order card's chart reads the same ledger as the adherence figures (issue 18)."""

from datetime import date

from api.ui import charts


def test_held_days_read_as_not_taken_and_supplies_and_closed_days_show():
    live = {
        "outcomes": {"2026-03-01": "held", "2026-03-02": "dosed", "2026-03-04": "guest-dosed"},
        "supplies": [{"dispensed_on": "2026-03-02", "dates": ["2026-03-03"], "bottle_ids": ["B-1"]}],
        "closed_days": ["2026-03-05"],
    }
    days = charts.ledger_days(live)
    assert days == {
        "2026-03-01": "held",
        "2026-03-02": "dosed",
        "2026-03-03": "take-home",
        "2026-03-04": "guest-dosed",
        "2026-03-05": "closed",
    }
    svg = str(
        charts.adherence_chart(
            days,
            date(2026, 3, 6),
            {"ratio": 0.0, "taken": 0, "expected": 7},
            {"ratio": 0.75, "taken": 3, "expected": 4},
            days=7,
        )
    )
    assert "Held (not a dose taken)" in svg and "Clinic closed (no dose due)" in svg
    assert "0% (0 of 7 doses)" in svg and "75% (3 of 4 doses)" in svg
