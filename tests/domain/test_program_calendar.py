"""Programs and calendars as data, the miss verdict, and the participant channel's signatures and PINs."""

import base64
from datetime import UTC, date, datetime, time, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.calendar import SiteCalendar, closed_days, is_open, parse_ics, tightest_week
from domain.channel import (
    Lockout,
    after_failure,
    hash_pin,
    is_locked,
    parse_message,
    pin_matches,
    twilio_signature,
    verify_standard_webhook,
    verify_twilio,
)
from domain.clock import local_moment
from domain.misses import NOT_NOTIFIED, REPORTABLE, WINDOW_LOST, MissFacts, miss_verdict
from domain.plan import default_plan
from domain.program import default_program, plan_for, program_from_dict, program_to_dict
from domain.selection import draw_day, is_collection_day, notification_time, window_end
from domain.webhook_signing import sign

ZONE = "America/New_York"


def weekday_program(floor=1, closed=None, days=("mon", "tue", "wed", "thu", "fri")):
    return {
        "program_id": "court",
        "name": "Court",
        "sites": {"north": {"timezone": ZONE, "hours": {d: ["08:00", "17:00"] for d in days}, "closed": closed or {}}},
        "phases": [
            {
                "name": "phase-1",
                "tests_per_week": max(floor, 1),
                "min_per_rolling_week": floor,
                "max_per_rolling_week": 4,
            }
        ],
    }


def test_the_default_program_reproduces_the_built_in_plans():
    program = default_program()
    for phase in ("phase-1", "phase-2", "phase-3", "aftercare"):
        plan, built_in = plan_for(program, 0, "north", phase), default_plan(phase)
        for key in (
            "tests_per_week",
            "min_per_rolling_week",
            "max_per_rolling_week",
            "collection_window_hours",
            "collection_weekdays",
            "opens_at",
            "closes_at",
            "closed_dates",
            "timezone",
        ):
            assert getattr(plan, key) == getattr(built_in, key), key
    assert program_from_dict(program_to_dict(program)) == program


def test_a_floor_the_open_days_cannot_hold_is_refused_with_the_arithmetic():
    with pytest.raises(ValueError, match=r"open 2 day\(s\) a week \(Mon, Wed\): 3 > 2"):
        program_from_dict(weekday_program(floor=3, days=("mon", "wed")))
    # Three weekdays a week hold a floor of 3, but not the week a holiday takes one of them.
    with pytest.raises(ValueError, match=r"3 open weekday\(s\) minus 1 closed day\(s\) \(2026-12-23\) = 2 < 3"):
        program_from_dict(weekday_program(floor=3, days=("mon", "wed", "fri"), closed={"2026-12-23": "holiday"}))


def test_calendar_closed_days_and_hours():
    calendar = SiteCalendar(
        timezone=ZONE, hours={0: ("08:00", "17:00"), 2: ("09:00", "13:00")}, closed={"2026-12-07": "closure"}
    )
    assert is_open(calendar, date(2026, 12, 2)) and not is_open(calendar, date(2026, 12, 7))
    assert not is_open(calendar, date(2026, 12, 5))
    assert closed_days(calendar, date(2026, 12, 7), date(2026, 12, 9)) == {date(2026, 12, 7), date(2026, 12, 8)}
    assert tightest_week(calendar).open_days == 1


def test_ics_holidays_are_read_folded_multi_day_and_yearly():
    text = (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nDTSTART;VALUE=DATE:20261225\r\n"
        "SUMMARY:Christmas\r\n  Day\r\nRRULE:FREQ=YEARLY;COUNT=2\r\nEND:VEVENT\r\nBEGIN:VEVENT\r\n"
        "DTSTART;VALUE=DATE:20261126\r\nDTEND;VALUE=DATE:20261128\r\nSUMMARY:Thanksgiving\\, and after\r\n"
        "END:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    assert parse_ics(text) == [
        (date(2026, 11, 26), "Thanksgiving, and after"),
        (date(2026, 11, 27), "Thanksgiving, and after"),
        (date(2026, 12, 25), "Christmas Day"),
        (date(2027, 12, 25), "Christmas Day"),
    ]
    with pytest.raises(ValueError, match="BEGIN:VCALENDAR"):
        parse_ics("hello")
    with pytest.raises(ValueError, match="FREQ=YEARLY"):
        parse_ics("BEGIN:VCALENDAR\nBEGIN:VEVENT\nDTSTART:20261225\nRRULE:FREQ=WEEKLY\nEND:VEVENT\nEND:VCALENDAR")


def test_windows_end_at_closing_time():
    plan = plan_for(program_from_dict({**weekday_program(), "collection_windows": {"urine": 8}}), 1, "north", "phase-1")
    day = date(2026, 12, 2)
    notice = notification_time(plan, day, 0.99)
    assert window_end(plan, day, notice) <= time(17, 0)
    assert window_end(plan, day, time(12, 0)) == time(17, 0)


def test_miss_verdicts():
    opened = datetime(2026, 12, 2, 13, tzinfo=UTC)
    closes = opened + timedelta(hours=8)
    facts = dict(day="2026-12-02", site_open=True, window_opened_at=opened, window_closes_at=closes)
    assert miss_verdict(MissFacts(**facts, told_at=opened)).status == REPORTABLE
    assert miss_verdict(MissFacts(**facts, told_at=None)).status == NOT_NOTIFIED
    assert miss_verdict(MissFacts(**facts, told_at=closes)).status == NOT_NOTIFIED
    assert miss_verdict(MissFacts(**facts, told_at=opened + timedelta(hours=2))).status == WINDOW_LOST
    assert miss_verdict(MissFacts(**{**facts, "site_open": False}, told_at=opened)).status == WINDOW_LOST
    assert (
        miss_verdict(MissFacts(**facts, told_at=opened, site_closes_at=closes - timedelta(hours=1))).status
        == WINDOW_LOST
    )


# --- property: a reportable miss needs an open day and a notice -----------------------------------

calendars = st.fixed_dictionaries(
    {
        "days": st.sets(st.sampled_from(["mon", "tue", "wed", "thu", "fri", "sat", "sun"]), min_size=1),
        "closed": st.sets(st.integers(0, 59), max_size=12),
        "opens": st.integers(6, 10),
        "length": st.integers(3, 12),
    }
)
phases = st.tuples(st.integers(0, 3), st.floats(0.3, 3.0), st.integers(3, 7))


@settings(max_examples=40, deadline=None)
@given(
    calendars,
    phases,
    st.lists(st.floats(0, 0.999), min_size=60, max_size=60),
    st.lists(st.sampled_from(["none", "on-time", "late", "after"]), min_size=60, max_size=60),
    st.sets(st.integers(0, 59), max_size=5),
)
def test_a_reportable_miss_never_falls_on_a_closed_day_or_without_a_notice(
    calendar, phase, rolls, notices, closed_later
):
    start = date(2026, 11, 2)
    floor, rate, ceiling = phase
    open_count = len(calendar["days"])
    floor = min(floor, open_count, ceiling)
    rate = min(max(rate, floor, 0.1), ceiling, open_count)
    hours = [f"{calendar['opens']:02d}:00", f"{calendar['opens'] + calendar['length']:02d}:00"]
    closed = {(start + timedelta(days=d)).isoformat(): "closed" for d in calendar["closed"]}
    try:
        program = program_from_dict(
            {
                "program_id": "p",
                "name": "p",
                "sites": {"s": {"timezone": ZONE, "hours": {d: hours for d in calendar["days"]}, "closed": closed}},
                "phases": [
                    {
                        "name": "x",
                        "tests_per_week": rate,
                        "min_per_rolling_week": floor,
                        "max_per_rolling_week": ceiling,
                        "specimen_types": ["oral-fluid"],
                    }
                ],
            }
        )
    except ValueError as refused:
        assert "<" in str(refused) or ">" in str(refused)  # refused only with the arithmetic
        return
    plan = plan_for(program, 1, "s", "x")
    calendar_now = program.sites["s"]
    # Staff close further days after the draws were made (a snow day): the verdict reads the calendar then.
    later = {**closed, **{(start + timedelta(days=d)).isoformat(): "snow" for d in closed_later}}
    calendar_later = SiteCalendar(timezone=ZONE, hours=calendar_now.hours, closed=later)
    selected: list[date] = []
    for offset in range(60):
        day = start + timedelta(days=offset)
        draw = draw_day(plan, day, rolls[offset], selected[-7:], history_start=start)
        assert not draw.selected or is_open(calendar_now, day)
        if not draw.selected:
            continue
        selected.append(day)
        notice = notification_time(plan, day, rolls[offset] / 2)
        opened = local_moment(day, notice, ZONE)
        closes = local_moment(day, window_end(plan, day, notice), ZONE)
        told = {"none": None, "on-time": opened, "late": opened + (closes - opened) / 2, "after": closes}[
            notices[offset]
        ]
        verdict = miss_verdict(
            MissFacts(
                day=day.isoformat(),
                site_open=is_open(calendar_later, day),
                window_opened_at=opened,
                window_closes_at=closes,
                told_at=told,
            )
        )
        if verdict.reportable:
            assert is_open(calendar_later, day) and is_collection_day(plan, day)
            assert told is not None and told < closes
            assert closes.time() <= datetime.strptime(hours[1], "%H:%M").time()


# --- channel ----------------------------------------------------------------------------------------


def test_twilio_signature_matches_the_published_example():
    params = [
        ("CallSid", "CA1234567890ABCDE"),
        ("Caller", "+12349013030"),
        ("Digits", "1234"),
        ("From", "+12349013030"),
        ("To", "+18005551212"),
    ]
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    assert twilio_signature("12345", url, params) == "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
    assert verify_twilio("12345", url, params, "0/KCTR6DLpKmkAf8muzZqo1nDgQ=")
    assert not verify_twilio("12345", url, params + [("Body", "x")], "0/KCTR6DLpKmkAf8muzZqo1nDgQ=")
    assert not verify_twilio("12345", url, params, None)


def test_standard_webhooks_signature_and_freshness():
    secret = "whsec_" + base64.b64encode(b"k" * 32).decode()
    now = datetime(2026, 12, 1, 12, tzinfo=UTC)
    stamp = str(int(now.timestamp()))
    good = sign(secret, "msg_1", int(stamp), b"{}")
    assert verify_standard_webhook(secret, "msg_1", stamp, f"v1,bogus {good}", b"{}", now)
    assert not verify_standard_webhook(secret, "msg_1", stamp, good, b"{ }", now)
    assert not verify_standard_webhook(secret, "msg_1", stamp, good, b"{}", now + timedelta(minutes=6))


def test_pins_are_hashed_checked_and_locked_after_a_run_of_wrong_ones():
    stored = hash_pin("4821", b"salt-salt-salt-1")
    assert "4821" not in stored and pin_matches("4821", stored) and not pin_matches("4822", stored)
    with pytest.raises(ValueError, match="run like 1234"):
        hash_pin("1234", b"s" * 16)
    now = datetime(2026, 12, 1, tzinfo=UTC)
    state = Lockout(0, None, None)
    for _ in range(5):
        state = after_failure(state, now)
    assert is_locked(state, now) and not is_locked(state, now + timedelta(hours=1))
    assert parse_message(" #4821# ") == ("4821", "check-in") and parse_message("4821 color") == ("4821", "colour")


# --- colour mode and reminders ----------------------------------------------------------------------

colour_groups = st.lists(st.tuples(st.floats(0.2, 3.0), st.integers(0, 2), st.integers(2, 7)), min_size=1, max_size=5)


@settings(max_examples=40, deadline=None)
@given(
    calendars,
    colour_groups,
    st.lists(st.lists(st.floats(0, 0.999), min_size=5, max_size=5), min_size=42, max_size=42),
    st.lists(st.sampled_from(["none", "red", "c1", "c2"]), min_size=1, max_size=4),
    st.sets(st.integers(0, 41)),
)
def test_colours_are_called_on_open_days_only_within_ceilings_and_everyone_of_a_called_colour_tests(
    calendar, groups, rolls, members, paused_days
):
    """The pure rule: no colour on a closed day; each colour within its ceiling per rolling 7 days and, on a calendar
    without closed dates, never short of its floor; a participant tests exactly when their colour is called and
    they are not paused."""
    from domain.colours import ColourGroup, draw_colours, drawn, participant_verdict

    start = date(2026, 11, 2)
    open_count = len(calendar["days"])
    hours = [f"{calendar['opens']:02d}:00", f"{calendar['opens'] + calendar['length']:02d}:00"]
    closed = {(start + timedelta(days=d)).isoformat(): "closed" for d in calendar["closed"]}
    colours = []
    for i, (rate, floor, ceiling) in enumerate(groups):
        floor = min(floor, open_count, ceiling)
        colours.append(
            {
                "name": "red" if i == 0 else f"c{i}",
                "tests_per_week": min(max(rate, floor, 0.1), ceiling, open_count),
                "min_per_rolling_week": floor,
                "max_per_rolling_week": ceiling,
            }
        )
    try:
        program = program_from_dict(
            {
                "program_id": "p",
                "name": "p",
                "mode": "colour",
                "colours": colours,
                "sites": {"s": {"timezone": ZONE, "hours": {d: hours for d in calendar["days"]}, "closed": closed}},
                "phases": [{"name": "x", "tests_per_week": 0.5, "min_per_rolling_week": 0, "max_per_rolling_week": 7}],
            }
        )
    except ValueError as refused:
        assert "<" in str(refused) or ">" in str(refused)  # refused only with the arithmetic
        return
    plan = plan_for(program, 1, "s", "x")
    groups_ = program.colours
    assert all(isinstance(g, ColourGroup) for g in groups_)
    recent: dict[str, list[date]] = {}
    for offset in range(42):
        day = start + timedelta(days=offset)
        draws = draw_colours(
            plan, groups_, day, {g.name: rolls[offset][i] for i, g in enumerate(groups_)}, recent, history_start=start
        )
        called = drawn(draws, groups_)
        if not is_open(program.sites["s"], day):
            assert called == []
        for name in called:
            recent.setdefault(name, []).append(day)
        for member in members:
            own = None if member == "none" else member
            verdict = participant_verdict(own, called, is_open(program.sites["s"], day), offset in paused_days)
            assert verdict.selected == (own in called and offset not in paused_days)
    for group in groups_:
        days = recent.get(group.name, [])
        for first in range(42 - 6):
            window = [start + timedelta(days=first + i) for i in range(7)]
            count = sum(1 for d in days if d in window)
            assert count <= group.max_per_rolling_week
            # The floor holds wherever no closed date intervenes (then the ceiling wins: domain/selection.py).
            if not closed:
                assert count >= group.min_per_rolling_week, (group, window)


def test_colour_mode_and_reminders_are_validated_with_the_arithmetic():
    base = {**weekday_program(floor=0), "mode": "colour"}
    with pytest.raises(ValueError, match="colour mode needs its colours"):
        program_from_dict(base)
    with pytest.raises(ValueError, match=r"colour red needs at least 6 tests .* open 5 day\(s\) a week .*: 6 > 5"):
        program_from_dict({**base, "colours": [{"name": "red", "tests_per_week": 6, "min_per_rolling_week": 6}]})
    with pytest.raises(ValueError, match="colour name 'Red!'"):
        program_from_dict({**base, "colours": [{"name": "Red!", "tests_per_week": 1}]})
    with pytest.raises(ValueError, match="colour names must be distinct"):
        program_from_dict({**base, "colours": [{"name": "red", "tests_per_week": 1}] * 2})
    program = program_from_dict({**base, "colours": [{"name": "red", "tests_per_week": 2}]})
    assert program_from_dict(program_to_dict(program)) == program
    assert plan_for(program, 1, "north", "phase-1").selection_mode == "colour"
    with pytest.raises(ValueError, match=r"shortest collection window is 8.0 h \(8 >= 8.0\)"):
        program_from_dict({**weekday_program(), "reminder_hours_before_close": 8})
    reminding = program_from_dict({**weekday_program(), "reminder_hours_before_close": 2})
    assert plan_for(reminding, 1, "north", "phase-1").reminder_hours_before_close == 2.0


def test_lab_turnaround_target_is_a_program_setting():
    """Issue 19: 48 h unless the program sets it; kept through the JSON form; bounded with the reason."""
    from dataclasses import replace as with_

    from domain.program import check_program, default_program, program_from_dict, program_to_dict

    program = default_program()
    assert program.lab_turnaround_hours == 48.0
    data = program_to_dict(with_(program, lab_turnaround_hours=24.0))
    assert program_from_dict(data).lab_turnaround_hours == 24.0
    assert program_from_dict({k: v for k, v in data.items() if k != "lab_turnaround_hours"}).lab_turnaround_hours == 48
    for bad in (0.0, 721.0, float("nan")):
        assert any(
            "lab_turnaround_hours must be 1 to 720" in p
            for p in check_program(with_(program, lab_turnaround_hours=bad))
        )
