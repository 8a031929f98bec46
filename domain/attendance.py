"""Treatment sessions and attendance: the closed vocabularies and the one summary every report uses.

A participant is scheduled for group and individual sessions; staff (or a kiosk at the door) record each
one as present, late, excused or absent. Only a recorded attendance is a fact: a session nobody recorded is
reported as neither attended nor missed (it is counted apart, as not recorded), the same rule as for missed
tests. Attendance at scheduled treatment sessions is the "attendance" information a consent names under
42 CFR 2.31(a)(3) (a specific and meaningful description of what is disclosed).

Pure and stdlib-only.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from domain.vocab import Vocabulary


class SessionKind(Vocabulary):
    """A scheduled treatment session: a group session or an individual one."""

    GROUP = "group"
    INDIVIDUAL = "individual"


class AttendanceStatus(Vocabulary):
    """What staff or the kiosk recorded of one participant at one session."""

    PRESENT = "present"
    LATE = "late"  # came, after the start: attended, and counted as late
    EXCUSED = "excused"  # absent with a reason staff accepted
    ABSENT = "absent"  # absent without an accepted reason


SCHEDULED = "scheduled"  # on the roster, nothing recorded yet
STATUSES: tuple[str, ...] = tuple(s.value for s in AttendanceStatus)
ATTENDED: frozenset[str] = frozenset({AttendanceStatus.PRESENT, AttendanceStatus.LATE})


class RecordingMethod(Vocabulary):
    """Who recorded an attendance: staff, or the kiosk at the door."""

    STAFF = "staff"
    KIOSK = "kiosk"


RECORDING_METHODS: tuple[str, ...] = tuple(RecordingMethod)
MAX_WEEKLY_REPEATS = 26  # a series of weekly sessions scheduled at once: half a year at most


@dataclass(frozen=True)
class AttendanceSummary:
    """Counts over a period. `sessions` counts recorded sessions only; `not_recorded` those still open."""

    sessions: int
    attended: int  # present + late
    present: int
    late: int
    excused: int
    absent: int
    not_recorded: int = 0

    @property
    def ratio(self) -> float | None:
        """Sessions attended over sessions recorded (excused ones left out of both); None when none counts."""
        counted = self.sessions - self.excused
        return round(self.attended / counted, 2) if counted else None


def check_status(status: str) -> str:
    if status not in STATUSES:
        raise ValueError(f"attendance {status!r} is not one of {', '.join(STATUSES)}")
    return status


def summarize(statuses: Iterable[str | None]) -> AttendanceSummary:
    """The summary of one participant's sessions, one status per scheduled session (None or "scheduled": not
    recorded yet)."""
    counts = {status: 0 for status in STATUSES}
    open_ = 0
    for status in statuses:
        if status in (None, SCHEDULED):
            open_ += 1
            continue
        counts[check_status(status)] += 1
    recorded = sum(counts.values())
    return AttendanceSummary(
        sessions=recorded,
        attended=counts[AttendanceStatus.PRESENT] + counts[AttendanceStatus.LATE],
        present=counts[AttendanceStatus.PRESENT],
        late=counts[AttendanceStatus.LATE],
        excused=counts[AttendanceStatus.EXCUSED],
        absent=counts[AttendanceStatus.ABSENT],
        not_recorded=open_,
    )
