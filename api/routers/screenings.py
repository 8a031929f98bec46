"""Screenings: today's list, one screening's live state, collection, excuse, refusal, for-cause
tests, check-ins, pauses, and the record of every daily draw."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field, TypeAdapter, field_validator
from sqlalchemy import func
from sqlmodel import Session, col, select

from api.inputs import ProgramDay, ProgramMoment, RequestModel
from api.deps import ServicesDep, SessionDep, ShownDep, require
from api.lookups import active_participant, participant_or_404, screening_or_404
from api.idempotency import Attempt, Idempotency, IdempotentRoute, joins_update
from api.problems import ProblemError, responses
from api.tokens import Actor
from api.workflow_calls import workflow_call
from api.routers.channel import _record_told
from store.models import Screening, SelectionDraw
from workflows.contracts import (
    NOT_NOTIFIED,
    REFUSAL_KINDS,
    WINDOW_LOST,
    TAKES_COLLECTION,
    CheckIn,
    CheckInAnswer,
    Collection,
    Excuse,
    ForCause,
    ParticipantState,
    Pause,
    PocReading,
    Refusal,
    ScreeningRef,
    ScreeningState,
    already_message,
)
from workflows.participant import ParticipantWorkflow
from workflows.participant import workflow_id as participant_workflow_id
from workflows.screening import ScreeningWorkflow
from workflows.screening import workflow_id as screening_workflow_id

# Any input can fail validation (422, problem+json), whatever else a route answers.
router = APIRouter(route_class=IdempotentRoute, tags=["screenings"], responses=responses(422))

Reader = Annotated[Actor, Depends(require("admin", "staff", "clinician", "auditor"))]
Collector = Annotated[Actor, Depends(require("admin", "staff", "clinician"))]
FrontDesk = Annotated[Actor, Depends(require("admin", "staff"))]


class ScreeningPublic(BaseModel):
    id: str
    participant_id: str
    site: str
    day: date
    reason: str
    status: str
    selected_at: datetime
    notified_at: datetime | None
    window_closes_at: datetime | None
    specimen_id: str | None
    specimen_type: str | None
    late_collection: bool
    collected_at: datetime | None
    result_due_at: datetime | None
    result_overdue: bool
    updated_at: datetime


class ScreeningDetail(ScreeningPublic):
    workflow_id: str
    workflow: ScreeningState | None = Field(description="Live state of the screening workflow")


class ScreeningPage(BaseModel):
    items: list[ScreeningPublic]
    total: int
    limit: int
    offset: int
    next_offset: int | None


class DrawPublic(BaseModel):
    day: date
    phase: str
    weekday: int
    probability: float
    roll: float
    time_roll: float
    selected: bool
    reason: str
    detail: str
    screening_id: str | None
    program_id: str | None = None
    program_version: int | None = None


class ForCauseRequest(RequestModel):
    reason: str = Field(min_length=1, max_length=500, description="Why staff want a test now")


class PocReadingIn(RequestModel):
    analyte: str = Field(min_length=1, max_length=40)
    result: Literal["positive", "negative", "invalid"]


class CollectionRequest(RequestModel):
    specimen_type: Literal["urine", "oral-fluid", "breath"]
    observed: bool
    collector: str = Field(min_length=1, max_length=80, description="Staff id or initials of the collector")
    collected_at: ProgramMoment | None = Field(default=None, description="Defaults to now")
    temperature_in_range: bool | None = Field(default=None, description="Urine 90-100 °F within 4 minutes")
    temperature_f: float | None = Field(default=None, ge=50, le=120)
    poc_readings: list[PocReadingIn] = Field(default_factory=list, max_length=30)
    breath_alcohol: float | None = Field(default=None, ge=0, le=1, description="g/210 L, breath tests")
    custody_notes: str | None = Field(default=None, max_length=2000)
    late: bool = Field(default=False, description="Collected after the window closed")
    late_reason: str | None = Field(default=None, max_length=500)

    @field_validator("collected_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("collected_at needs a time zone offset, e.g. 2026-11-23T09:30:00-05:00")
        return value


class ExcuseRequest(RequestModel):
    reason: str = Field(min_length=1, max_length=500)


class MakeUpRequest(RequestModel):
    reason: str = Field(min_length=1, max_length=500, description="Why a make-up test instead of the lost one")


class RefusalRequest(RequestModel):
    kind: Literal[REFUSAL_KINDS]  # type: ignore[valid-type]
    detail: str = Field(min_length=1, max_length=1000)


class CheckInRequest(RequestModel):
    participant_id: str = Field(min_length=1, max_length=40)
    method: Literal["kiosk", "ivr", "sms", "app", "staff"]


class PauseRequest(RequestModel):
    start: ProgramDay
    end: ProgramDay
    reason: str = Field(min_length=1, max_length=500)


def _public(row: Screening) -> ScreeningPublic:
    return ScreeningPublic.model_validate(row, from_attributes=True)


def _page(session: Session, query, limit: int, offset: int) -> ScreeningPage:
    total = session.exec(select(func.count()).select_from(query.subquery())).one()
    rows = session.exec(query.order_by(col(Screening.day).desc(), col(Screening.id)).offset(offset).limit(limit)).all()
    return ScreeningPage(items=[_public(r) for r in rows], total=total, limit=limit, offset=offset,
                         next_offset=offset + limit if offset + limit < total else None)


@router.get("/screenings", response_model=ScreeningPage, responses=responses(401, 403, 422))
def list_screenings(
    actor: Reader,
    session: SessionDep,
    shown: ShownDep,
    day: Annotated[date | None, Query(alias="date", description="Program day (YYYY-MM-DD)")] = None,
    status: str | None = None,
    participant_id: str | None = None,
    site: str | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,  # past this, SQL integers overflow
) -> ScreeningPage:
    query = select(Screening)
    if day:
        query = query.where(Screening.day == day)
    if status:
        query = query.where(Screening.status == status)
    if participant_id:
        query = query.where(Screening.participant_id == participant_id)
    if site:
        query = query.where(Screening.site == site)
    page = _page(session, query, limit, offset)
    shown.extend(item.participant_id for item in page.items)
    return page


@router.get("/participants/{participant_id}/screenings", response_model=ScreeningPage,
            responses=responses(401, 403, 404, 422))
def participant_screenings(
    participant_id: str,
    actor: Reader,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,  # past this, SQL integers overflow
) -> ScreeningPage:
    participant_or_404(session, participant_id)
    return _page(session, select(Screening).where(Screening.participant_id == participant_id), limit, offset)


@router.get("/participants/{participant_id}/draws", response_model=list[DrawPublic],
            responses=responses(401, 403, 404, 422))
def participant_draws(
    participant_id: str,
    actor: Reader,
    session: SessionDep,
    since: date | None = None,
    until: date | None = None,
) -> list[DrawPublic]:
    """Every daily draw so far, with its rolls: why each day was or was not selected."""
    participant_or_404(session, participant_id)
    query = select(SelectionDraw).where(SelectionDraw.participant_id == participant_id)
    if since:
        query = query.where(SelectionDraw.day >= since)
    if until:
        query = query.where(SelectionDraw.day <= until)
    rows = session.exec(query.order_by(col(SelectionDraw.day))).all()
    return [DrawPublic.model_validate(r, from_attributes=True) for r in rows]


@router.get("/screenings/{screening_id}", response_model=ScreeningDetail, responses=responses(401, 403, 404, 503))
async def get_screening(screening_id: str, actor: Reader, session: SessionDep, services: ServicesDep) -> ScreeningDetail:
    row = await run_in_threadpool(screening_or_404, session, screening_id)
    handle = services.temporal.get_workflow_handle(screening_workflow_id(screening_id))
    async with workflow_call("screening"):
        state = await handle.query(ScreeningWorkflow.status)
    return ScreeningDetail(**_public(row).model_dump(), workflow_id=handle.id, workflow=state)


_SNAPSHOT = TypeAdapter(ScreeningState)


def _open_screening(session: Session, screening_id: str) -> Screening:
    """A screening that can still take a fact; a settled one answers 409 with what happened."""
    row = screening_or_404(session, screening_id)
    if row.status not in TAKES_COLLECTION and row.state:
        raise ProblemError(409, _sentence(already_message(_SNAPSHOT.validate_python(row.state))))
    return row


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:] + "."


async def _screening_update(services: ServicesDep, session: Session, screening_id: str, update, argument,
                            attempt: Attempt | None) -> ScreeningState:
    if attempt is None or not attempt.retry:  # a retry may find its own first attempt's effect: it joins it
        await run_in_threadpool(_open_screening, session, screening_id)
    handle = services.temporal.get_workflow_handle(screening_workflow_id(screening_id))
    async with workflow_call("screening"):
        return await handle.execute_update(update, argument, id=attempt.update_id(screening_id) if attempt else None)


@router.post("/screenings/{screening_id}/collection", response_model=ScreeningState,
             responses=responses(401, 403, 404, 409, 422, 503))
@joins_update
async def record_collection(screening_id: str, body: CollectionRequest, actor: Collector, session: SessionDep,
                            services: ServicesDep, attempt: Idempotency) -> ScreeningState:
    collection = Collection(
        **body.model_dump(exclude={"poc_readings", "collected_at"}),
        collected_at=body.collected_at.isoformat() if body.collected_at else None,
        poc_readings=[PocReading(r.analyte, r.result) for r in body.poc_readings],
        actor=actor.token_id,
    )
    return await _screening_update(services, session, screening_id, ScreeningWorkflow.record_collection, collection,
                                   attempt)


@router.post("/screenings/{screening_id}/excuse", response_model=ScreeningState,
             responses=responses(401, 403, 404, 409, 422, 503))
@joins_update
async def excuse(screening_id: str, body: ExcuseRequest, actor: Collector, session: SessionDep,
                 services: ServicesDep, attempt: Idempotency) -> ScreeningState:
    return await _screening_update(services, session, screening_id, ScreeningWorkflow.excuse,
                                   Excuse(reason=body.reason, actor=actor.token_id), attempt)


@router.post("/screenings/{screening_id}/refusal", response_model=ScreeningState,
             responses=responses(401, 403, 404, 409, 422, 503))
@joins_update
async def refusal(screening_id: str, body: RefusalRequest, actor: Collector, session: SessionDep,
                  services: ServicesDep, attempt: Idempotency) -> ScreeningState:
    return await _screening_update(services, session, screening_id, ScreeningWorkflow.refuse,
                                   Refusal(kind=body.kind, detail=body.detail, actor=actor.token_id), attempt)


@router.post("/screenings/{screening_id}/make-up", status_code=201, response_model=ScreeningRef,
             responses=responses(401, 403, 404, 409, 422, 503),
             summary="Staff decision on a test not notified or whose window was lost: a make-up test now")
async def make_up(screening_id: str, body: MakeUpRequest, actor: Collector, session: SessionDep,
                  services: ServicesDep) -> ScreeningRef:
    row = await run_in_threadpool(screening_or_404, session, screening_id)
    if row.status not in (NOT_NOTIFIED, WINDOW_LOST):
        raise ProblemError(409, f"Screening {screening_id} is {row.status}; a make-up test replaces only one that is "
                                f"{NOT_NOTIFIED} or {WINDOW_LOST} (excuse or record it otherwise).")
    await _screening_update(services, session, screening_id, ScreeningWorkflow.excuse,
                            Excuse(reason=f"replaced by a make-up test: {body.reason}", actor=actor.token_id))
    return await _participant_update(services, session, row.participant_id, ParticipantWorkflow.order_for_cause,
                                     ForCause(reason=f"make-up for {screening_id}: {body.reason}",
                                              actor=actor.token_id), "order a make-up test")


async def _participant_update(services: ServicesDep, session: Session, participant_id: str, update, argument,
                              what: str, attempt: Attempt | None) -> Any:
    if attempt is None or not attempt.retry:  # a retry may find its own first attempt's effect: it joins it
        await run_in_threadpool(active_participant, session, participant_id, what)
    handle = services.temporal.get_workflow_handle(participant_workflow_id(participant_id))
    async with workflow_call("participant"):
        return await handle.execute_update(update, argument,
                                           id=attempt.update_id(participant_id) if attempt else None)


@router.post("/participants/{participant_id}/screenings", status_code=201, response_model=ScreeningRef,
             responses=responses(401, 403, 404, 409, 422, 503), summary="Order a for-cause test now")
@joins_update
async def order_for_cause(participant_id: str, body: ForCauseRequest, actor: Collector, session: SessionDep,
                          services: ServicesDep, attempt: Idempotency) -> ScreeningRef:
    return await _participant_update(services, session, participant_id, ParticipantWorkflow.order_for_cause,
                                     ForCause(reason=body.reason, actor=actor.token_id), "order a for-cause test",
                                     attempt)


@router.post("/participants/{participant_id}/pauses", response_model=ParticipantState,
             responses=responses(401, 403, 404, 409, 422, 503), summary="Suspend random selection for a while")
@joins_update
async def pause(participant_id: str, body: PauseRequest, actor: Collector, session: SessionDep,
                services: ServicesDep, attempt: Idempotency) -> ParticipantState:
    return await _participant_update(
        services, session, participant_id, ParticipantWorkflow.pause,
        Pause(start=body.start.isoformat(), end=body.end.isoformat(), reason=body.reason, actor=actor.token_id),
        "pause testing", attempt,
    )


@router.post("/check-ins", response_model=CheckInAnswer, responses=responses(401, 403, 404, 409, 422, 503),
             summary="Daily check-in: must the participant test today?")
@joins_update
async def check_in(body: CheckInRequest, actor: FrontDesk, session: SessionDep, services: ServicesDep,
                   attempt: Idempotency) -> CheckInAnswer:
    answer = await _participant_update(services, session, body.participant_id, ParticipantWorkflow.check_in,
                                       CheckIn(method=body.method, actor=actor.token_id), "check in", attempt)
    if answer.must_test and answer.screening_id:
        # Told at the desk: a notice in its own right (domain.misses).
        await run_in_threadpool(_record_told, services.engine, body.participant_id, answer.screening_id, body.method)
    return answer
