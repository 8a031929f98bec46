"""Records written on behalf of the participant's and the screening workflows (idempotent)."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy.engine import Engine
from sqlmodel import select
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.notify import Notifier, RecordingNotifier
from domain import calls
from domain import worklist as wl
from domain.calendar import hours_on, is_open
from domain.clock import local_moment
from domain.misses import MissFacts, miss_verdict
from domain.vocab import NoticeStatus
from store.db import session_scope
from store.models import (
    AlertRecord,
    CallListEntry,
    CheckInDayRecord,
    NotificationAttempt,
    NotificationRecord,
    Participant,
    Screening,
    SelectionDraw,
    utcnow,
)
from store.programs import current_program
from store.worklist import alert_ref, settle
from workflows.contracts.participant import CheckInDay, DrawRecord
from workflows.contracts.screening import (
    CallListItem,
    MissAssessment,
    MissQuestion,
    NoticeResult,
    Notification,
    ScreeningInput,
    ScreeningState,
)

NO_PHONE = "NoPhone"
TOLD_STATUSES = (NoticeStatus.DELIVERED, NoticeStatus.TOLD, NoticeStatus.RECORDED)


def _moment(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _aware(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes; every stored time is UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class ScreeningActivities:
    def __init__(self, engine: Engine, notifier: Notifier | None = None) -> None:
        self.engine = engine
        self.notifier = notifier or RecordingNotifier()

    @activity.defn
    def save_screening(self, state: ScreeningState) -> None:
        with session_scope(self.engine) as session:
            row = session.get(Screening, state.screening_id)
            if row is None:
                row = Screening(
                    id=state.screening_id,
                    participant_id=state.participant_id,
                    site=state.site,
                    day=date.fromisoformat(state.day),
                    reason=state.reason,
                    status=state.status,
                    selected_at=datetime.fromisoformat(state.selected_at),
                    revision=-1,
                )
            if state.revision <= row.revision:
                # A newer snapshot is already stored. Revisions count saves in the order one run made them;
                # after a worker crash the replay may meet an update at another point and number it lower,
                # so facts that are only ever set once (the collection) still land.
                if state.specimen_id and row.specimen_id is None and state.collection:
                    row.specimen_id = state.specimen_id
                    row.specimen_type = state.collection.specimen_type
                    row.collected_at = _moment(state.collection.collected_at)
                    session.add(row)
                return
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
            why = calls.closed_by_status(state.status)
            if why:  # collected, excused, or the window closed: nobody is called about it any more (domain/calls.py)
                for entry in session.exec(
                    select(CallListEntry).where(
                        CallListEntry.screening_id == state.screening_id,
                        CallListEntry.resolved_at == None,  # noqa: E711
                    )
                ).all():
                    entry.resolved_at, entry.resolved_by = utcnow(), "system"
                    entry.outcome = (f"{entry.outcome}; {why}" if entry.outcome else why)[:400]
                    session.add(entry)
            request = state.confirmation_request
            if request is not None and request.answered_by:
                # The lab's confirmatory result arrived: the request to ask for it is done (and its worklist item).
                kind = wl.WorklistKind.CONFIRMATION_REQUESTED.value
                alert = session.exec(
                    select(AlertRecord).where(
                        AlertRecord.kind == kind,
                        AlertRecord.subject_id == state.screening_id,
                        AlertRecord.resolved_at == None,  # noqa: E711
                    )
                ).first()
                if alert is not None:
                    alert.resolved_at = utcnow()
                    session.add(alert)
                settle(
                    session.connection(),
                    source=wl.Source.ALERT,
                    source_ref=alert_ref(kind, state.screening_id),
                    actor="system",
                    text=f"the confirmatory result {request.answered_by} arrived",
                )

    @activity.defn
    def open_screening(self, selected: ScreeningInput) -> None:
        """The record exists before the screening's workflow runs, so staff can find it at once."""
        with session_scope(self.engine) as session:
            if session.get(Screening, selected.screening_id) is None:
                session.add(
                    Screening(
                        id=selected.screening_id,
                        participant_id=selected.participant_id,
                        site=selected.site,
                        day=date.fromisoformat(selected.day),
                        reason=selected.reason,
                        status="scheduled",
                        selected_at=datetime.fromisoformat(selected.selected_at),
                        revision=0,
                    )
                )

    @activity.defn
    def record_draw(self, draw: DrawRecord) -> None:
        with session_scope(self.engine) as session:
            exists = session.exec(
                select(SelectionDraw).where(
                    SelectionDraw.participant_id == draw.participant_id,
                    SelectionDraw.day == date.fromisoformat(draw.day),
                )
            ).first()
            if exists is None:
                session.add(SelectionDraw(**{**asdict(draw), "day": date.fromisoformat(draw.day)}))

    @activity.defn
    def record_check_in_day(self, day: CheckInDay) -> None:
        with session_scope(self.engine) as session:
            row = session.exec(
                select(CheckInDayRecord).where(
                    CheckInDayRecord.participant_id == day.participant_id,
                    CheckInDayRecord.day == date.fromisoformat(day.day),
                )
            ).first()
            if row is None:
                row = CheckInDayRecord(participant_id=day.participant_id, day=date.fromisoformat(day.day))
            if row.checked_in_at is None and day.checked_in_at:
                row.checked_in_at = datetime.fromisoformat(day.checked_in_at)
                row.method = day.method
            if day.required:
                row.missed_required = row.checked_in_at is None
                row.missed_reportable = row.missed_required and day.reportable
            session.add(row)
            if day.required and row.checked_in_at is None:
                subject = f"{day.participant_id}:{day.day}"
                if (
                    session.exec(
                        select(AlertRecord).where(
                            AlertRecord.kind == "missed-check-in", AlertRecord.subject_id == subject
                        )
                    ).first()
                    is None
                ):
                    session.add(
                        AlertRecord(
                            kind="missed-check-in",
                            participant_id=day.participant_id,
                            subject_id=subject,
                            detail=f"no check-in on {day.day}, which the phase requires"
                            + (
                                "; reportable as a missed check-in where consent covers it"
                                if day.reportable
                                else "; not reportable under this program"
                            ),
                        )
                    )

    @activity.defn
    def notify_participant(self, notification: Notification) -> NoticeResult:
        """One attempt through the adapter, recorded whatever its outcome. The phone number is looked up
        here and never returned: the workflow carries ids only."""
        with session_scope(self.engine) as session:
            sent = session.get(NotificationRecord, notification.notification_id)
            if sent is not None:  # handed over on an earlier attempt
                return self._result(session, notification.notification_id, sent.channel)
            participant = session.get(Participant, notification.participant_id)
            if participant is None:
                raise ApplicationError(f"no participant {notification.participant_id}", non_retryable=True)
            report_by = datetime.fromisoformat(notification.report_by)
            local = report_by.astimezone(ZoneInfo(participant.timezone))
            what = (
                "A for-cause drug test is required"
                if notification.kind == "for-cause-test"
                else "You are selected for a drug test today"
            )
            if notification.kind == "reminder":
                what = "Reminder: your drug test today is not done yet"
            message = (
                f"{what}. Report to the {notification.site} clinic by {local:%H:%M} {local.tzname()} "
                f"({local:%a %d %b})."
            )
            phone = participant.phone
        channel = self.notifier.channel
        if channel != "recorded" and not phone:
            self._attempt(notification, channel, "no-phone", error="no phone number on record")
            raise ApplicationError("the participant has no phone number on record", type=NO_PHONE, non_retryable=True)
        try:
            reference = self.notifier.send(notification.notification_id, phone, message)
        except Exception as error:  # noqa: BLE001 - recorded, then retried by the workflow
            self._attempt(notification, channel, "error", error=f"{type(error).__name__}: {str(error)[:300]}")
            raise ApplicationError(f"the gateway did not take the notice ({type(error).__name__})") from None
        told = channel == "recorded" or not self.notifier.expects_receipts
        status = "recorded" if channel == "recorded" else "accepted" if self.notifier.expects_receipts else "delivered"
        with session_scope(self.engine) as session:
            session.add(
                NotificationAttempt(
                    notification_id=notification.notification_id,
                    participant_id=notification.participant_id,
                    screening_id=notification.screening_id,
                    channel=channel,
                    status=status,
                    provider_ref=reference,
                )
            )
            if session.get(NotificationRecord, notification.notification_id) is None:
                session.add(
                    NotificationRecord(
                        id=notification.notification_id,
                        participant_id=notification.participant_id,
                        screening_id=notification.screening_id,
                        kind=notification.kind,
                        channel=channel,
                        report_by=report_by,
                        message=message,
                    )
                )
        return NoticeResult(status, utcnow().isoformat() if told else None)

    def _result(self, session, notification_id: str, channel: str) -> NoticeResult:
        attempts = session.exec(
            select(NotificationAttempt).where(NotificationAttempt.notification_id == notification_id)
        ).all()
        told = [a for a in attempts if a.status in TOLD_STATUSES]
        if told or channel == "recorded":
            return NoticeResult(
                "delivered" if told else "recorded", (told[0].receipt_at or told[0].at).isoformat() if told else None
            )
        return NoticeResult("accepted", None)

    def _attempt(self, notification: Notification, channel: str, status: str, error: str | None = None) -> None:
        with session_scope(self.engine) as session:
            session.add(
                NotificationAttempt(
                    notification_id=notification.notification_id,
                    participant_id=notification.participant_id,
                    screening_id=notification.screening_id,
                    channel=channel,
                    status=status,
                    error=error,
                )
            )

    @activity.defn
    def add_to_call_list(self, item: CallListItem) -> None:
        """Staff must phone the participant (who and the number are shown to staff by the API only)."""
        with session_scope(self.engine) as session:
            exists = session.exec(select(CallListEntry).where(CallListEntry.subject_id == item.notification_id)).first()
            if exists is None:
                session.add(
                    CallListEntry(
                        subject_id=item.notification_id,
                        participant_id=item.participant_id,
                        screening_id=item.screening_id,
                        reason=item.reason,
                        window_closes_at=_moment(item.window_closes_at),
                    )
                )

    @activity.defn
    def assess_miss(self, question: MissQuestion) -> MissAssessment:
        """Reportable or not (domain.misses): told in time, on a day the site's calendar says is open."""
        day = date.fromisoformat(question.day)
        told: list[datetime] = []
        with session_scope(self.engine) as session:
            participant = session.get(Participant, question.participant_id)
            attempts = session.exec(
                select(NotificationAttempt).where(NotificationAttempt.notification_id == question.notification_id)
            ).all()
            # The workflow passes what the adapter told it; here only later facts count: a delivery
            # receipt from the gateway, or a check-in that told the participant.
            told += [_aware(a.receipt_at) for a in attempts if a.status == "delivered" and a.receipt_at]
            told += [_aware(a.at) for a in attempts if a.status == "told"]
            found = current_program(session, participant.program) if participant else None
        if question.told_at:
            told.append(datetime.fromisoformat(question.told_at))
        site_open, site_closes = True, None
        if found is not None and participant is not None and participant.site in found[0].sites:
            calendar = found[0].sites[participant.site]
            site_open = is_open(calendar, day)
            hours = hours_on(calendar, day)
            site_closes = local_moment(day, hours[1], calendar.timezone) if hours else None
        verdict = miss_verdict(
            MissFacts(
                day=question.day,
                site_open=site_open,
                window_opened_at=datetime.fromisoformat(question.window_opened_at),
                window_closes_at=datetime.fromisoformat(question.window_closes_at),
                told_at=min(told) if told else None,
                site_closes_at=site_closes,
            )
        )
        return MissAssessment(verdict.status, verdict.reportable, verdict.detail)

    def all(self) -> list:
        return [
            self.save_screening,
            self.open_screening,
            self.record_draw,
            self.record_check_in_day,
            self.notify_participant,
            self.add_to_call_list,
            self.assess_miss,
        ]
