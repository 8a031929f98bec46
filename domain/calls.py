"""What a phone call on the staff call list settles, and what it leaves open.

The call list holds participants whose notice to test could not be delivered (api/routers/channel.py,
activities/screenings.py). A call ends in one of three results:

- reached: the participant was told on the phone. That is a notice from that moment (domain/misses.py: a
  missed test presupposes notice and an opportunity to test, All Rise Adult Treatment Court Best Practice
  Standards, Standard VII), and the entry is done.
- message-left: a voicemail or a message with someone else. Nobody knows the participant heard it, so it is
  not a notice and the entry stays on the list, with the attempt noted, to be called again (or marked
  reached when they call back or check in) until the collection window closes.
- not-reached: no answer and no way to leave a message, or a wrong number; staff have done what they can for
  now, and the entry is done (not a notice either).

When the window closes, an entry still open is closed by the system: the screening is then "not-notified"
(or "window-lost") and lands on the worklist for a decision (excuse or make-up test); a participant who
collected, or a test excused or cancelled, needs no more calls.

Pure and stdlib-only.
"""

from __future__ import annotations

from domain.vocab import ScreeningStatus, Vocabulary


class CallResult(Vocabulary):
    """What a call to tell a participant to test came to."""

    REACHED = "reached"
    MESSAGE_LEFT = "message-left"
    NOT_REACHED = "not-reached"


# Free-text outcomes (the API's `outcome`, before `result` existed) read by their first words.
_PREFIXES = (
    (CallResult.REACHED, ("told", "reached")),
    (CallResult.MESSAGE_LEFT, ("called, left a message", "left a message", "left message", "voicemail")),
)


def result_of(outcome: str) -> CallResult:
    """The result a free-text outcome states: 'reached and told ...' -> reached; 'left a message' -> message-left;
    anything else -> not-reached."""
    text = outcome.strip().lower()
    for result, prefixes in _PREFIXES:
        if text.startswith(prefixes):
            return result
    return CallResult.NOT_REACHED


def closes_entry(result: CallResult) -> bool:
    """A message left keeps the entry on the list; reached or not reached takes it off."""
    return result is not CallResult.MESSAGE_LEFT


def counts_as_told(result: CallResult) -> bool:
    return result is CallResult.REACHED


# Screening statuses after which no call is needed, and what the system notes when it closes the entry.
WINDOW_CLOSED = frozenset({ScreeningStatus.NOT_NOTIFIED, ScreeningStatus.WINDOW_LOST, ScreeningStatus.MISSED})
# Statuses before the participant is told or collects: the entry stays open.
_STILL_OPEN = frozenset({ScreeningStatus.SCHEDULED, ScreeningStatus.AWAITING_COLLECTION})


def closed_by_status(status: str) -> str | None:
    """Why an open call-list entry is closed by the system when its screening reaches `status`; None: still open."""
    if status in _STILL_OPEN:
        return None
    if status == ScreeningStatus.MISSED:
        return "closed by the system: the collection window closed (the test is missed)"
    if status in WINDOW_CLOSED:
        return (
            f"closed by the system: the collection window closed before the participant was reached "
            f"(the test is {status}: on the worklist for a decision)"
        )
    if status in (ScreeningStatus.EXCUSED, ScreeningStatus.CANCELLED):
        return f"closed by the system: no call needed, the test was {status}"
    if status == ScreeningStatus.REFUSED:
        return "closed by the system: no call needed, the participant came in (refusal recorded)"
    return "closed by the system: no call needed, the specimen was collected"
