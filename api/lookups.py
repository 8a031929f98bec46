"""Finding the record a route is about, or answering 404 (or 409) with the reason."""

from __future__ import annotations

from sqlmodel import Session

from api.deps import done_reading
from api.problems import ProblemError
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
