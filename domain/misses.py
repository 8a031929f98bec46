"""When a test not given is a reportable "missed test", and when it is not.

A missed test is a fact only when the participant was told (a notice delivered, or a check-in
answered "you must test today") and could comply: the site was open that day and the collection
window was open its full length after they were told. Otherwise it is "not-notified" or
"window-lost" and staff decide (excuse or reschedule). All Rise (NADCP) Adult Treatment Court Best
Practice Standards, Standard VII: sanctions for missed tests presuppose notice and an opportunity
to test; 42 CFR 2.31/2.33 limit what is disclosed to what the consent covers.

Pure and stdlib-only: imported inside Temporal's deterministic workflow sandbox.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from domain.vocab import Vocabulary


class MissStatus(Vocabulary):
    """What a window that closed without a collection counts as."""

    REPORTABLE = "missed"
    NOT_NOTIFIED = "not-notified"
    WINDOW_LOST = "window-lost"


REPORTABLE = MissStatus.REPORTABLE
NOT_NOTIFIED = MissStatus.NOT_NOTIFIED
WINDOW_LOST = MissStatus.WINDOW_LOST
VERDICTS = tuple(MissStatus)
# A notice delivered this long after the window opened still leaves the participant the window.
NOTICE_GRACE = timedelta(minutes=15)


@dataclass(frozen=True)
class MissFacts:
    day: str  # ISO program day
    site_open: bool  # the site's calendar, as it stands when the window closes, says open that day
    window_opened_at: datetime  # when the notice went out (the planned start of the window)
    window_closes_at: datetime
    told_at: datetime | None  # first delivered notice, or a check-in answered "test today"
    site_closes_at: datetime | None = None  # the site's closing time that day, if known


@dataclass(frozen=True)
class MissVerdict:
    status: MissStatus
    reportable: bool
    detail: str


def miss_verdict(facts: MissFacts) -> MissVerdict:
    """Reportable only with a notice in time for the full window on an open day."""
    if not facts.site_open:
        return MissVerdict(WINDOW_LOST, False, f"the site was closed on {facts.day}: no test could be given")
    if facts.site_closes_at is not None and facts.site_closes_at < facts.window_closes_at:
        return MissVerdict(
            WINDOW_LOST,
            False,
            f"the site closed at {facts.site_closes_at.isoformat()}, before the "
            f"window's end {facts.window_closes_at.isoformat()}",
        )
    if facts.told_at is None or facts.told_at >= facts.window_closes_at:
        return MissVerdict(
            NOT_NOTIFIED,
            False,
            "no notice reached the participant before the window closed and they "
            "did not check in; staff decide (excuse or reschedule)",
        )
    late = facts.told_at - facts.window_opened_at
    if late > NOTICE_GRACE:
        minutes = int(late.total_seconds() // 60)
        return MissVerdict(
            WINDOW_LOST,
            False,
            f"told at {facts.told_at.isoformat()}, {minutes} min after the window "
            f"opened: the participant did not have the full window",
        )
    return MissVerdict(
        REPORTABLE,
        True,
        f"told at {facts.told_at.isoformat()}; the window closed at "
        f"{facts.window_closes_at.isoformat()} with no collection",
    )
