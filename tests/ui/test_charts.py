"""The server-drawn pictures: well-formed SVG, one mark per day, letters and titles beside colour."""

from datetime import date, timedelta
from xml.etree import ElementTree

from api.ui import charts
from api.ui.charts import DayMark, adherence_chart, screening_kind, worse

SVG = "{http://www.w3.org/2000/svg}"


def days(svg: str) -> dict[str, str]:
    tree = ElementTree.fromstring(svg)
    return {g.get("data-day"): g.get("data-kind") for g in tree.iter(f"{SVG}g") if g.get("data-day")}


def test_screening_kinds():
    assert screening_kind("final", "negative") == "negative"
    assert screening_kind("final", "positive") == "positive"
    assert screening_kind("final", "refusal") == "refused"
    assert screening_kind("missed", None) == "missed"
    assert screening_kind("excused", None) == "excused"
    assert screening_kind("awaiting-review", None) == "pending"
    assert screening_kind("awaiting-collection", None) == "pending"


def test_a_day_with_two_screenings_shows_the_worse():
    day = date(2026, 11, 23)
    assert worse(DayMark(day, "negative", "random"), DayMark(day, "positive", "for-cause")).kind == "positive"
    assert worse(DayMark(day, "missed"), DayMark(day, "negative")).kind == "missed"


def test_calendar_marks_each_day_with_colour_letter_and_title():
    today = date(2026, 11, 25)  # a Wednesday
    first = today - timedelta(days=9)
    marks = {
        first: DayMark(first, "negative", "random"),
        first + timedelta(days=1): DayMark(first + timedelta(days=1), "not-selected"),
        first + timedelta(days=3): DayMark(first + timedelta(days=3), "missed", "random"),
        first + timedelta(days=5): DayMark(first + timedelta(days=5), "excused", "random"),
        today: DayMark(today, "positive", "for-cause"),
    }
    svg = str(charts.testing_calendar(marks, first, today, today))
    shown = days(svg)
    assert shown[first.isoformat()] == "negative" and shown[today.isoformat()] == "positive"
    assert shown[(first + timedelta(days=3)).isoformat()] == "missed"
    assert shown[(first + timedelta(days=2)).isoformat()] == "none"  # no draw recorded
    # Whole weeks are drawn: the days around the period are there, as outlines without a kind.
    assert (today + timedelta(days=1)).isoformat() in shown and shown[(today + timedelta(days=1)).isoformat()] is None
    assert f"{today.isoformat()} (Wed): today, Positive (for-cause)" in svg
    assert ">P</text>" in svg and ">M</text>" in svg and ">E</text>" in svg and ">N</text>" in svg
    assert 'role="img"' in svg and "1 positive, 1 missed, 1 excused, 1 negative" in svg


def test_adherence_chart_shows_each_day_and_both_windows():
    today = date(2026, 11, 25)
    outcomes = {
        (today - timedelta(days=i)).isoformat(): kind
        for i, kind in enumerate(["dosed", "dosed", "missed", "take-home", "held"])
    }
    svg = str(
        adherence_chart(
            outcomes,
            today,
            {"ratio": 0.75, "taken": 3, "expected": 4},
            {"ratio": None, "taken": 0, "expected": 0},
            days=10,
        )
    )
    shown = days(svg)
    assert len(shown) == 10
    assert shown[today.isoformat()] == "dosed" and shown[(today - timedelta(days=2)).isoformat()] == "missed"
    assert shown[(today - timedelta(days=9)).isoformat()] == "none"
    assert "75% (3 of 4 doses)" in svg and "no dose expected" in svg
