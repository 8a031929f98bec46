"""domain.attendance: the one summary of sessions every report and page uses, and a session's report facts."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.attendance import STATUSES, summarize
from domain.consent import ATTENDANCE
from domain.report_content import allowed_facts


def test_late_is_attended_excused_is_not_counted_against_and_unrecorded_is_neither():
    summary = summarize(["present", "late", "excused", "absent", "scheduled", None])
    assert (
        summary.sessions,
        summary.attended,
        summary.present,
        summary.late,
        summary.excused,
        summary.absent,
        summary.not_recorded,
    ) == (4, 2, 1, 1, 1, 1, 2)
    assert summary.ratio == round(2 / 3, 2)
    assert summarize([]).ratio is None and summarize(["excused"]).ratio is None


def test_an_unknown_status_is_refused_with_the_vocabulary():
    with pytest.raises(ValueError, match="present, late, excused, absent"):
        summarize(["came"])


@settings(max_examples=50, deadline=None)
@given(st.lists(st.sampled_from([*STATUSES, "scheduled"]), max_size=40))
def test_the_counts_add_up(statuses):
    summary = summarize(statuses)
    assert summary.sessions + summary.not_recorded == len(statuses)
    assert summary.attended + summary.excused + summary.absent == summary.sessions
    assert summary.present + summary.late == summary.attended


def test_a_session_report_carries_the_session_and_its_checked_status():
    facts = {"session_on": "2026-12-02", "session_kind": "group", "attendance_status": "late", "note": "dropped"}
    assert allowed_facts(ATTENDANCE, facts) == {
        "session_on": "2026-12-02",
        "session_kind": "group",
        "attendance_status": "late",
    }
    with pytest.raises(ValueError, match="not one of"):
        allowed_facts(ATTENDANCE, {**facts, "attendance_status": "asleep"})
    with pytest.raises(ValueError, match="needs the fact"):
        allowed_facts(ATTENDANCE, {"session_kind": "group"})
