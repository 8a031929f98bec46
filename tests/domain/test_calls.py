"""What a call on the call list settles (domain/calls.py)."""

import pytest

from domain.calls import CallResult, closed_by_status, closes_entry, counts_as_told, result_of


@pytest.mark.parametrize(
    ("outcome", "result"),
    [
        ("reached and told to test: will come by 3", CallResult.REACHED),
        ("told by phone at 10:05", CallResult.REACHED),
        ("called, left a message: voicemail", CallResult.MESSAGE_LEFT),
        ("Left a message with her mother", CallResult.MESSAGE_LEFT),
        ("not reached", CallResult.NOT_REACHED),
        ("wrong number", CallResult.NOT_REACHED),
    ],
)
def test_free_text_outcomes_read_by_their_first_words(outcome, result):
    assert result_of(outcome) is result


def test_only_reached_is_a_notice_and_only_a_message_left_stays_open():
    assert [r for r in CallResult if counts_as_told(r)] == [CallResult.REACHED]
    assert [r for r in CallResult if not closes_entry(r)] == [CallResult.MESSAGE_LEFT]


def test_the_entry_stays_open_while_the_window_is_open_and_closes_after():
    assert closed_by_status("scheduled") is None and closed_by_status("awaiting-collection") is None
    assert "worklist" in closed_by_status("not-notified") and "worklist" in closed_by_status("window-lost")
    assert "collected" in closed_by_status("awaiting-result") and "excused" in closed_by_status("excused")
