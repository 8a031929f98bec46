"""Finding the record a route is about, or answering 404 (or 409) with the reason."""

from __future__ import annotations

from sqlalchemy.engine import Engine
from sqlmodel import Session

from api.deps import done_reading
from api.problems import ProblemError
from domain.vocab import ScreeningStatus
from store.models import Participant, Screening


def participant_or_404(session: Session, participant_id: str) -> Participant:
    participant = session.get(Participant, participant_id)
    done_reading(session)
    if participant is None:
        raise ProblemError(404, f"No participant has the id {participant_id!r}.")
    return participant


def active_participant(session: Session, participant_id: str, what: str) -> Participant:
    """The participant, if still in the program; otherwise 409 saying since when they are not."""
    participant = participant_or_404(session, participant_id)
    if participant.status != "active":
        since = f" since {participant.discharged_at.date().isoformat()}" if participant.discharged_at else ""
        raise ProblemError(409, f"Cannot {what}: the participant is {participant.status}{since}.")
    return participant


def screening_or_404(session: Session, screening_id: str) -> Screening:
    row = session.get(Screening, screening_id)
    done_reading(session)
    if row is None:
        raise ProblemError(404, f"No screening has the id {screening_id!r}.")
    return row


def closed_screening_problem(engine: Engine, screening_id: str) -> ProblemError:
    """What to answer when Temporal has no running workflow for a screening: 404 when no such screening was ever
    recorded; otherwise its workflow has closed (the make-up or correction period is over), so 409 saying how it
    ended and what can still be done with it."""
    with Session(engine) as session:
        row = session.get(Screening, screening_id)
    if row is None:
        return ProblemError(404, f"No screening has the id {screening_id!r}.")
    return ProblemError(
        409,
        f"Screening {row.id} is closed ({row.status}): its workflow has ended, so it takes no "
        f"collection, refusal, admission or review now; nothing was changed. "
        f"{_still_possible(row)}",
    )


def _still_possible(row: Screening) -> str:
    excuse = f"POST /screenings/{row.id}/excuse"
    order = f"POST /participants/{row.participant_id}/screenings"
    if row.status == ScreeningStatus.MISSED:
        return f"A missed test can still be excused with a documented reason ({excuse})."
    if row.status in (ScreeningStatus.NOT_NOTIFIED, ScreeningStatus.WINDOW_LOST):
        return f"It can still be excused ({excuse}) or replaced by a make-up test (POST /screenings/{row.id}/make-up)."
    if row.status == ScreeningStatus.FINAL:
        return f"A corrected result from the lab reopens it; to test again, order a for-cause test ({order})."
    return f"To test again, order a for-cause test ({order})."
