"""Treatment sessions and attendance: group and individual sessions scheduled with their roster, attendance
recorded by staff or a kiosk (present, late, excused, absent), each record reported under consent in the
attendance category and counted in monthly summaries and completion letters (domain.attendance)."""

from __future__ import annotations

import secrets
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal, overload
from uuid import uuid4
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlalchemy import func
from sqlmodel import Session, col, select

from api.deps import ServicesDep, SessionDep, ShownDep, done_reading, require
from api.idempotency import IdempotentRoute
from api.inputs import ProgramMoment, RequestModel
from api.lookups import participant_or_404
from api.pages import Page, PagingDep
from api.problems import ProblemError, responses
from api.tokens import Actor
from api.workflow_calls import workflow_call
from domain.attendance import (
    MAX_WEEKLY_REPEATS,
    RECORDING_METHODS,
    SCHEDULED,
    STATUSES,
    AttendanceStatus,
    SessionKind,
    summarize,
)
from domain.consent import ATTENDANCE
from domain.report_facts import ReportFacts
from store.models import AttendanceRecord, AttendanceSession, Participant
from workflows.contracts.disclosure import DisclosureEvent
from workflows.disclosure import DiscloseEventWorkflow

# Any input can fail validation (422, problem+json), whatever else a route answers.
router = APIRouter(route_class=IdempotentRoute, tags=["attendance"], responses=responses(422))

Scheduler = Annotated[Actor, Depends(require("admin", "staff", "clinician"))]
Recorder = Annotated[Actor, Depends(require("admin", "staff", "clinician"))]
Reader = Annotated[Actor, Depends(require("admin", "staff", "clinician", "auditor"))]

# Attendance may be taken from this long before a session starts (a kiosk at the door).
EARLY_RECORDING = timedelta(minutes=30)


class SessionIn(RequestModel):
    """A group or individual treatment session, with who is expected; optionally the same session weekly."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "kind": "group",
                    "title": "Relapse prevention group",
                    "site": "north",
                    "starts_at": "2026-12-02T18:00:00-05:00",
                    "duration_minutes": 90,
                    "facilitator": "A. Osei, LCSW",
                    "participant_ids": ["p-3f9a1c27b4"],
                    "weekly_repeats": 4,
                }
            ]
        }
    )

    kind: Literal[tuple(k.value for k in SessionKind)] = Field(  # type: ignore[valid-type]  # runtime-built enum
        description="group or individual (an individual session has exactly one participant)"
    )
    title: str = Field(
        min_length=1,
        max_length=200,
        description="What the session is, e.g. 'Relapse prevention group'; no participant names",
    )
    site: str = Field(min_length=1, max_length=64, description="The clinic site where it is held")
    starts_at: ProgramMoment = Field(description="When the (first) session starts, with a time zone offset")
    duration_minutes: int = Field(ge=10, le=480, description="How long it lasts, in minutes")
    facilitator: str = Field(min_length=1, max_length=80, description="The staff member who runs it")
    participant_ids: list[Annotated[str, Field(min_length=1, max_length=40)]] = Field(
        min_length=1, max_length=60, description="Who is expected (the roster)"
    )
    weekly_repeats: int = Field(
        default=1,
        ge=1,
        le=MAX_WEEKLY_REPEATS,
        description="How many weekly sessions to schedule, the first at starts_at",
    )

    @field_validator("starts_at")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("starts_at needs a time zone offset, e.g. 2026-12-02T18:00:00-05:00")
        return value

    @model_validator(mode="after")
    def _roster(self) -> SessionIn:
        if self.kind == SessionKind.INDIVIDUAL and len(self.participant_ids) != 1:
            raise ValueError("an individual session has exactly one participant")
        return self


class SessionPublic(BaseModel):
    """A scheduled session and its roster."""

    id: str = Field(description="The session's id")
    kind: str = Field(description="group or individual")
    title: str = Field(description="What the session is")
    site: str = Field(description="Where it is held")
    starts_at: datetime = Field(description="When it starts (UTC)")
    duration_minutes: int = Field(description="How long it lasts")
    facilitator: str = Field(description="Who runs it")
    participant_ids: list[str] = Field(description="Who is expected")


class AttendanceIn(RequestModel):
    """One participant's attendance at one session."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "participant_id": "p-3f9a1c27b4",
                    "status": "excused",
                    "note": "Hospital appointment, letter on file",
                    "method": "staff",
                }
            ]
        }
    )

    participant_id: str = Field(min_length=1, max_length=40, description="Whose attendance")
    status: Literal[STATUSES] = Field(  # type: ignore[valid-type]  # runtime-built enum
        description="present, late (came after the start), excused (absent with a reason accepted) or absent"
    )
    note: str | None = Field(default=None, max_length=500, description="Why excused (required then), or a remark")
    method: Literal[RECORDING_METHODS] = Field(  # type: ignore[valid-type]  # runtime-built enum
        default="staff", description="Who recorded it: staff, or the kiosk at the door"
    )

    @model_validator(mode="after")
    def _excuse_has_a_reason(self) -> AttendanceIn:
        if self.status == AttendanceStatus.EXCUSED and not (self.note or "").strip():
            raise ValueError("an excused absence needs a note saying why")
        return self


class AttendancePublic(BaseModel):
    """One participant's attendance at one session."""

    session_id: str = Field(description="The session")
    participant_id: str = Field(description="The participant")
    kind: str = Field(description="group or individual")
    title: str = Field(description="What the session is")
    site: str = Field(description="Where it is held")
    starts_at: datetime = Field(description="When it starts (UTC)")
    status: str = Field(description="scheduled (nothing recorded yet), present, late, excused or absent")
    note: str | None = Field(description="Why excused, or a remark")
    method: str | None = Field(description="staff or kiosk")
    recorded_by: str | None = Field(description="The token id that recorded it")
    recorded_at: datetime | None = Field(description="When it was recorded (UTC)")


class AttendanceSummaryPublic(BaseModel):
    """A participant's attendance over every session so far (domain.attendance.summarize)."""

    sessions: int = Field(description="Sessions whose attendance was recorded")
    attended: int = Field(description="Present or late")
    present: int = Field(description="Present on time")
    late: int = Field(description="Came late")
    excused: int = Field(description="Absent with a reason accepted")
    absent: int = Field(description="Absent without an accepted reason")
    not_recorded: int = Field(description="Sessions already begun whose attendance nobody recorded")
    ratio: float | None = Field(description="Attended over recorded sessions, excused ones left out; null if none")


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC)


@overload
def _aware(moment: datetime) -> datetime: ...


@overload
def _aware(moment: datetime | None) -> datetime | None: ...


def _aware(moment: datetime | None) -> datetime | None:
    """Times are stored and read back in UTC (store.models columns are UTCDateTime)."""
    return moment.replace(tzinfo=UTC) if moment is not None and moment.tzinfo is None else moment


def _session_public(row: AttendanceSession, roster: list[str]) -> SessionPublic:
    return SessionPublic(
        id=row.id,
        kind=row.kind,
        title=row.title,
        site=row.site,
        starts_at=_aware(row.starts_at),
        duration_minutes=row.duration_minutes,
        facilitator=row.facilitator,
        participant_ids=roster,
    )


def _attendance_public(record: AttendanceRecord, row: AttendanceSession) -> AttendancePublic:
    return AttendancePublic(
        session_id=row.id,
        participant_id=record.participant_id,
        kind=row.kind,
        title=row.title,
        site=row.site,
        starts_at=_aware(row.starts_at),
        status=record.status,
        note=record.note,
        method=record.method,
        recorded_by=record.recorded_by,
        recorded_at=_aware(record.recorded_at),
    )


def _schedule(session: Session, body: SessionIn, actor: str) -> list[SessionPublic]:
    roster = list(dict.fromkeys(body.participant_ids))
    unknown = [pid for pid in roster if session.get(Participant, pid) is None]
    if unknown:
        raise ProblemError(422, f"No participant has the id(s) {', '.join(unknown)}; check the roster.")
    created = []
    for week in range(body.weekly_repeats):
        row = AttendanceSession(
            id="as-" + secrets.token_hex(5),
            kind=body.kind,
            title=body.title,
            site=body.site,
            starts_at=_utc(body.starts_at + timedelta(weeks=week)),
            duration_minutes=body.duration_minutes,
            facilitator=body.facilitator,
            created_by=actor,
        )
        session.add(row)
        session.flush()
        for pid in roster:
            session.add(AttendanceRecord(session_id=row.id, participant_id=pid, status=SCHEDULED))
        created.append(_session_public(row, roster))
    session.commit()
    return created


@router.post(
    "/attendance-sessions",
    status_code=201,
    response_model=list[SessionPublic],
    responses=responses(401, 403, 422),
    summary="Schedule a group or individual session (or a weekly series)",
)
def schedule_sessions(body: SessionIn, actor: Scheduler, session: SessionDep) -> list[SessionPublic]:
    """Schedules a treatment session with the participants expected at it; weekly_repeats schedules the same session
    on as many consecutive weeks. Each participant's attendance is then recorded at
    POST /attendance-sessions/{session_id}/attendance."""
    return _schedule(session, body, actor.token_id)


@router.get("/attendance-sessions", response_model=Page[SessionPublic], responses=responses(401, 403, 422))
def list_sessions(
    actor: Reader,
    session: SessionDep,
    pages: PagingDep,
    site: str | None = None,
    since: Annotated[ProgramMoment | None, Query(description="Sessions starting at or after (with an offset)")] = None,
    until: Annotated[ProgramMoment | None, Query(description="Sessions starting before (with an offset)")] = None,
) -> Page[SessionPublic]:
    """Scheduled sessions, soonest first, filtered by site and start time: the facilitator's list for the day."""
    query = select(AttendanceSession)
    if site:
        query = query.where(AttendanceSession.site == site)
    for bound, op in ((since, "ge"), (until, "lt")):
        if bound is not None:
            if bound.tzinfo is None:
                raise ProblemError(422, "since and until need a time zone offset, e.g. 2026-12-02T00:00:00-05:00.")
            column = col(AttendanceSession.starts_at)
            query = query.where(column >= _utc(bound) if op == "ge" else column < _utc(bound))
    total = session.exec(select(func.count()).select_from(query.subquery())).one()
    rows = session.exec(
        query.order_by(col(AttendanceSession.starts_at), col(AttendanceSession.id))
        .offset(pages.offset)
        .limit(pages.limit)
    ).all()
    rosters: dict[str, list[str]] = {row.id: [] for row in rows}
    if rows:
        for record in session.exec(
            select(AttendanceRecord)
            .where(col(AttendanceRecord.session_id).in_(list(rosters)))
            .order_by(col(AttendanceRecord.id))
        ).all():
            rosters[record.session_id].append(record.participant_id)
    return pages.page([_session_public(row, rosters[row.id]) for row in rows], total)


def _record(session: Session, session_id: str, body: AttendanceIn, actor: str) -> tuple[AttendancePublic, str, str]:
    row = session.get(AttendanceSession, session_id)
    if row is None:
        raise ProblemError(404, f"No session has the id {session_id!r}.")
    participant = session.get(Participant, body.participant_id)
    if participant is None:
        raise ProblemError(422, f"No participant has the id {body.participant_id!r}.")
    now = datetime.now(UTC)
    starts = _aware(row.starts_at)
    if now < starts - EARLY_RECORDING:
        raise ProblemError(
            409,
            f"Session {session_id} starts at {starts.isoformat()}; attendance can be recorded from "
            f"{int(EARLY_RECORDING.total_seconds() // 60)} minutes before it starts.",
        )
    record = session.exec(
        select(AttendanceRecord).where(
            AttendanceRecord.session_id == session_id, AttendanceRecord.participant_id == participant.id
        )
    ).first()
    if record is None:
        if row.kind == SessionKind.INDIVIDUAL:
            raise ProblemError(409, f"Session {session_id} is an individual session for another participant.")
        record = AttendanceRecord(session_id=session_id, participant_id=participant.id)  # joined the group
    record.status, record.note, record.method = body.status, (body.note or "").strip() or None, body.method
    record.recorded_by, record.recorded_at = actor, _utc(now)
    session.add(record)
    session.commit()
    answer = _attendance_public(record, row)
    session_on = starts.astimezone(ZoneInfo(participant.timezone)).date().isoformat()
    done_reading(session)
    return answer, session_on, participant.id


@router.post(
    "/attendance-sessions/{session_id}/attendance",
    response_model=AttendancePublic,
    responses=responses(401, 403, 404, 409, 422, 503),
    summary="Record a participant's attendance",
)
async def record_attendance(
    session_id: str, body: AttendanceIn, actor: Recorder, session: SessionDep, services: ServicesDep, request: Request
) -> AttendancePublic:
    """Records one participant as present, late, excused (with a note) or absent at a session, by staff or the kiosk;
    recording it again corrects it. Each record is reported, under consent, to recipients that take attendance
    (a correction amends what they were told) and is counted in monthly summaries and completion letters."""
    answer, session_on, participant_id = await run_in_threadpool(_record, session, session_id, body, actor.token_id)
    request.state.audit_participant = participant_id
    request.state.audit_detail = f"attendance {body.status} ({body.method})"
    event = DisclosureEvent(
        participant_id,
        ATTENDANCE,
        f"attendance-{session_id}",
        ReportFacts(session_on=session_on, session_kind=answer.kind, attendance_status=body.status),
    )
    # Planned and delivered on the usual schedule; started, not awaited.
    async with workflow_call("disclosure"):
        await services.temporal.start_workflow(
            DiscloseEventWorkflow.run,
            event,
            id=f"disclose-{session_id}-{participant_id}-{uuid4().hex[:8]}",
            task_queue=services.settings.task_queue,
        )
    return answer


@router.get(
    "/participants/{participant_id}/attendance",
    response_model=Page[AttendancePublic],
    responses=responses(401, 403, 404, 422),
)
def participant_attendance(
    participant_id: str, actor: Reader, session: SessionDep, shown: ShownDep, pages: PagingDep
) -> Page[AttendancePublic]:
    """Every session a participant was scheduled for, latest first, with what was recorded (the counts over them
    are at GET /participants/{participant_id}/attendance/summary)."""
    participant_or_404(session, participant_id)
    query = select(AttendanceRecord, AttendanceSession).where(
        AttendanceRecord.session_id == AttendanceSession.id, AttendanceRecord.participant_id == participant_id
    )
    shown.append(participant_id)
    return pages.rows(
        session,
        query,
        [col(AttendanceSession.starts_at).desc(), col(AttendanceSession.id)],
        lambda pair: _attendance_public(*pair),
    )


@router.get(
    "/participants/{participant_id}/attendance/summary",
    response_model=AttendanceSummaryPublic,
    responses=responses(401, 403, 404, 422),
    summary="A participant's attendance, counted",
)
def participant_attendance_summary(
    participant_id: str, actor: Reader, session: SessionDep, shown: ShownDep
) -> AttendanceSummaryPublic:
    """The counts over every session already begun that the participant was scheduled for: the figures the
    monthly summary and the completion letter report."""
    participant_or_404(session, participant_id)
    now = _utc(datetime.now(UTC))
    statuses = session.exec(
        select(AttendanceRecord.status).where(
            AttendanceRecord.session_id == AttendanceSession.id,
            AttendanceRecord.participant_id == participant_id,
            AttendanceSession.starts_at <= now,
        )
    ).all()
    counted = summarize(statuses)
    shown.append(participant_id)
    return AttendanceSummaryPublic(**asdict(counted), ratio=counted.ratio)
