"""Database writes on behalf of workflows. Each activity is idempotent: running it twice leaves
the same rows as running it once, because Temporal may retry any of them."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime

from sqlalchemy.engine import Engine
from sqlmodel import select
from temporalio import activity
from temporalio.exceptions import ApplicationError

from store import audit
from store.db import session_scope
from store.models import AlertRecord, Participant, utcnow
from workflows.contracts.alerts import Alert
from workflows.contracts.participant import ParticipantSync


class RecordActivities:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @activity.defn
    def confirm_enrollment(self, participant_id: str) -> None:
        with session_scope(self.engine) as session:
            participant = session.get(Participant, participant_id)
            if participant is None:
                raise ApplicationError(f"no enrollment record for participant {participant_id}", type="RecordMissing")
            if participant.status == "enrolling":
                participant.status = "active"
                participant.updated_at = utcnow()
                session.add(participant)

    @activity.defn
    def sync_participant(self, change: ParticipantSync) -> None:
        with session_scope(self.engine) as session:
            participant = session.get(Participant, change.participant_id)
            if participant is None:
                raise ApplicationError(f"no record for participant {change.participant_id}", non_retryable=True)
            participant.phase = change.phase
            participant.status = change.status
            participant.discharged_at = datetime.fromisoformat(change.discharged_at) if change.discharged_at else None
            participant.updated_at = utcnow()
            session.add(participant)

    @activity.defn
    def raise_alert(self, alert: Alert) -> None:
        """The alert, and (store/worklist.py, same transaction) the worklist item staff work it from."""
        with session_scope(self.engine) as session:
            exists = session.exec(
                select(AlertRecord).where(AlertRecord.kind == alert.kind, AlertRecord.subject_id == alert.subject_id)
            ).first()
            if exists is None:
                session.add(AlertRecord(**asdict(alert)))
        if exists is None:
            audit.append(
                self.engine,
                audit.AuditEntry(
                    actor="system",
                    role="system",
                    action="worklist.opened",
                    outcome=alert.kind,
                    subject_type="alert",
                    subject_id=alert.subject_id[:200],
                    participant_id=alert.participant_id,
                    source="alert",
                ),
            )

    def all(self) -> list:
        return [self.confirm_enrollment, self.sync_participant, self.raise_alert]
