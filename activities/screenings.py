"""Records written on behalf of the participant's and the screening workflows (idempotent)."""

from __future__ import annotations

from dataclasses import asdict
from datetime import date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy.engine import Engine
from sqlmodel import select
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.notify import Notifier, RecordingNotifier
from store.db import session_scope
from store.models import (
    CheckInDayRecord,
    NotificationRecord,
    Participant,
    Screening,
    SelectionDraw,
    utcnow,
)
from workflows.contracts import CheckInDay, DrawRecord, Notification, ScreeningInput, ScreeningState


def _moment(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


class ScreeningActivities:
    def __init__(self, engine: Engine, notifier: Notifier | None = None) -> None:
        self.engine = engine
        self.notifier = notifier or RecordingNotifier()

    @activity.defn
    def save_screening(self, state: ScreeningState) -> None:
        with session_scope(self.engine) as session:
            row = session.get(Screening, state.screening_id)
            if row is None:
                row = Screening(id=state.screening_id, participant_id=state.participant_id, site=state.site,
                                day=date.fromisoformat(state.day), reason=state.reason, status=state.status,
                                selected_at=datetime.fromisoformat(state.selected_at), revision=-1)
            if state.revision <= row.revision:
                return  # a newer snapshot is already stored
            row.status = state.status
            row.revision = state.revision
            row.notified_at = _moment(state.notified_at)
            row.window_closes_at = _moment(state.window_closes_at)
            row.specimen_id = state.specimen_id
            row.specimen_type = state.collection.specimen_type if state.collection else None
            row.collected_at = _moment(state.collection.collected_at) if state.collection else None
            row.late_collection = state.late_collection
            row.result_due_at = _moment(state.result_due_at)
            row.result_overdue = state.result_overdue
            row.state = asdict(state)
            row.updated_at = utcnow()
            session.add(row)

    @activity.defn
    def open_screening(self, selected: ScreeningInput) -> None:
        """The record exists before the screening's workflow runs, so staff can find it at once."""
        with session_scope(self.engine) as session:
            if session.get(Screening, selected.screening_id) is None:
                session.add(Screening(
                    id=selected.screening_id, participant_id=selected.participant_id, site=selected.site,
                    day=date.fromisoformat(selected.day), reason=selected.reason, status="scheduled",
                    selected_at=datetime.fromisoformat(selected.selected_at), revision=0,
                ))

    @activity.defn
    def record_draw(self, draw: DrawRecord) -> None:
        with session_scope(self.engine) as session:
            exists = session.exec(
                select(SelectionDraw).where(SelectionDraw.participant_id == draw.participant_id,
                                            SelectionDraw.day == date.fromisoformat(draw.day))
            ).first()
            if exists is None:
                session.add(SelectionDraw(**{**asdict(draw), "day": date.fromisoformat(draw.day)}))

    @activity.defn
    def record_check_in_day(self, day: CheckInDay) -> None:
        with session_scope(self.engine) as session:
            row = session.exec(
                select(CheckInDayRecord).where(CheckInDayRecord.participant_id == day.participant_id,
                                               CheckInDayRecord.day == date.fromisoformat(day.day))
            ).first()
            if row is None:
                row = CheckInDayRecord(participant_id=day.participant_id, day=date.fromisoformat(day.day))
            if row.checked_in_at is None and day.checked_in_at:
                row.checked_in_at = datetime.fromisoformat(day.checked_in_at)
                row.method = day.method
            session.add(row)

    @activity.defn
    def notify_participant(self, notification: Notification) -> None:
        with session_scope(self.engine) as session:
            if session.get(NotificationRecord, notification.notification_id) is not None:
                return  # sent on an earlier attempt
            participant = session.get(Participant, notification.participant_id)
            if participant is None:
                raise ApplicationError(f"no participant {notification.participant_id}", non_retryable=True)
            report_by = datetime.fromisoformat(notification.report_by)
            local = report_by.astimezone(ZoneInfo(participant.timezone))
            what = "A for-cause drug test is required" if notification.kind == "for-cause-test" else "You are selected for a drug test today"
            message = f"{what}. Report to the {notification.site} clinic by {local:%H:%M} ({local:%a %d %b})."
            self.notifier.send(notification.notification_id, participant.phone, message)
            session.add(NotificationRecord(
                id=notification.notification_id, participant_id=notification.participant_id,
                screening_id=notification.screening_id, kind=notification.kind, channel=self.notifier.channel,
                report_by=report_by, message=message,
            ))

    def all(self) -> list:
        return [self.save_screening, self.open_screening, self.record_draw, self.record_check_in_day,
                self.notify_participant]
